"""Image decoding and validation: encoded bytes in, an upright grey uint8 array out, or InvalidImage.

Pillow decodes JPEG, PNG, WebP, BMP and GIF (first frame). EXIF orientation is applied so boxes refer to
the image as people see it. Every pixel format Pillow produces is reduced to 8-bit grey the way the
classifier was trained (FER-2013 is 8-bit grey): transparency is flattened onto white, CMYK goes through
RGB, 16-bit samples are scaled (not clipped) to 8 bits.

Limits protect the service: the byte size is checked before parsing, the pixel count from the header
before any pixel is decoded (so a decompression bomb costs nothing), and Pillow's own bomb check is
kept as a second line.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000


class InvalidImage(ValueError):
    """The bytes are not an image this service accepts; the message says why (shown to clients)."""


@dataclass(frozen=True)
class DecodedImage:
    grey: np.ndarray  # uint8 (height, width), EXIF-rotated
    format: str

    @property
    def width(self) -> int:
        return int(self.grey.shape[1])

    @property
    def height(self) -> int:
        return int(self.grey.shape[0])


def decode_image(
    data: bytes, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS
) -> DecodedImage:
    """Decode and validate; raise InvalidImage with a client-facing message on any problem."""
    if not data:
        raise InvalidImage("image is empty: send the encoded bytes of a JPEG, PNG, WebP, BMP or GIF")
    if len(data) > max_bytes:
        raise InvalidImage(f"image is {len(data):,} bytes; the limit is {max_bytes:,} bytes")
    try:
        with warnings.catch_warnings():
            # Pillow warns (rather than fails) between MAX_IMAGE_PIXELS and twice that: make it fail.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.format not in SUPPORTED_FORMATS:
                raise InvalidImage(
                    f"unsupported image format {image.format}; send JPEG, PNG, WebP, BMP or GIF"
                )
            source_format = image.format
            width, height = image.size
            if width <= 0 or height <= 0:
                raise InvalidImage(f"image has no pixels ({width}x{height})")
            if width * height > max_pixels:
                raise InvalidImage(
                    f"image is {width}x{height} = {width * height / 1e6:.1f} megapixels; "
                    f"the limit is {max_pixels / 1e6:.0f} megapixels"
                )
            image.seek(0)  # first frame of an animated GIF/WebP
            image.load()
            image = ImageOps.exif_transpose(image) or image
            grey = _to_grey(image)
    except InvalidImage:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"image rejected as a decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise InvalidImage("bytes are not a recognised image; send a JPEG, PNG, WebP, BMP or GIF") from None
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError, MemoryError) as exc:
        # Pillow reports truncated and corrupt data through several exception types.
        message = str(exc) or type(exc).__name__
        if "truncated" in message or isinstance(exc, EOFError):
            raise InvalidImage(f"image data is truncated or incomplete ({message})") from None
        raise InvalidImage(f"image data is corrupt and cannot be decoded ({message})") from None
    if grey.size == 0:
        raise InvalidImage("image has no pixels")
    return DecodedImage(grey=np.ascontiguousarray(grey), format=source_format)


def _to_grey(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> uint8 grey (ITU-R 601-2 luma, as Pillow's convert('L'))."""
    mode = image.mode
    if mode == "L":
        return np.asarray(image)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (and 32-bit int) grey: scale the 16-bit range to 8 bits instead of clipping at 255.
        values = np.asarray(image, dtype=np.float64) if mode == "I" else np.asarray(image).astype(np.float64)
        top = 65535.0 if values.max(initial=0) > 255 or mode.startswith("I;16") else 255.0
        return np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        top = 1.0 if values.max(initial=0) <= 1.0 else 255.0
        return np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
    if mode in ("1", "RGB", "YCbCr", "LAB", "HSV"):
        return np.asarray(image.convert("RGB").convert("L"))
    if mode == "CMYK":
        return np.asarray(image.convert("RGB").convert("L"))
    # P, PA, LA, RGBA, La, RGBa...: flatten any transparency onto white, as a viewer would show it.
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(background, rgba).convert("L"))
