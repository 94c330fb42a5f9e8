"""Hostile input, generated at test time (never committed): malformed and adversarial images, and
hostile strings for every text field.

    images(seed=0)            -> list[HostileImage] (>= 1,000 items, deterministic for a seed)
    write_corpus(dir, seed)   -> the same images as files under `dir` (for manual replay with curl)
    huge_upload(size)         -> a 50 MB "JPEG" (JPEG header, then filler), made on demand
    hostile_strings()         -> list[(label, str)]: SQL metacharacters, control characters, very long,
                                 Unicode look-alikes, bidi overrides, lone surrogates escaped for JSON...
    non_utf8_bytes()          -> list[(label, bytes)] for transports that carry raw bytes

Every image is small (the corpus is about 25 MB in memory) except the explicit size tests. The
categories are those of issue 9: truncated, wrong magic bytes, huge dimensions (forged headers),
decompression bombs (tiny files that expand to gigapixels), zero bytes, animated, CMYK, 16-bit, EXIF
tricks (every orientation value, out-of-range ones, huge and looping EXIF), plus bit-flip mutations of
valid files and polyglots (image + ZIP, SVG with XXE, HTML).
"""

from __future__ import annotations

import io
import random
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw

MIB = 1024 * 1024


@dataclass(frozen=True)
class HostileImage:
    name: str
    category: str
    data: bytes
    decodable: bool = False  # a valid image the service should analyse (OK), not reject


# -- building blocks --------------------------------------------------------------------------------


def face_like(size: int = 96, mode: str = "RGB", seed: int = 0) -> Image.Image:
    """A synthetic face-ish picture (ellipse, eyes, mouth) so detection has something to chew on."""
    rng = random.Random(seed)
    image = Image.new("RGB", (size, size), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
    draw = ImageDraw.Draw(image)
    s = size
    draw.ellipse((s * 0.2, s * 0.1, s * 0.8, s * 0.9), fill=(224, 190, 160))
    draw.ellipse((s * 0.33, s * 0.35, s * 0.43, s * 0.45), fill=(30, 30, 30))
    draw.ellipse((s * 0.57, s * 0.35, s * 0.67, s * 0.45), fill=(30, 30, 30))
    draw.arc((s * 0.35, s * 0.55, s * 0.65, s * 0.75), 0, 180, fill=(120, 20, 20), width=max(1, s // 40))
    return image.convert(mode) if mode != "RGB" else image


def encode(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def png_raw(
    width: int, height: int, bit_depth: int, color_type: int, idat: bytes, extra: bytes = b""
) -> bytes:
    """A PNG from its parts, with correct CRCs (so only what we intend is wrong)."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + extra
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def png_bomb(width: int, height: int, bit_depth: int = 8, color_type: int = 0) -> bytes:
    """A PNG whose zero-filled pixel data compresses ~1000:1: small file, gigantic image."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color_type, 1)
    row = 1 + (width * channels * bit_depth + 7) // 8  # filter byte + samples
    total = row * height
    compressor = zlib.compressobj(9)
    chunk = bytes(min(total, 4 * MIB))
    out, left = [], total
    limit = 64 * MIB  # cap the work of generating it; the header still claims the full size
    while left > 0 and total - left < limit:
        n = min(left, len(chunk))
        out.append(compressor.compress(chunk[:n]))
        left -= n
    out.append(compressor.flush())
    return png_raw(width, height, bit_depth, color_type, b"".join(out))


def jpeg_with_dimensions(base: bytes, width: int, height: int) -> bytes:
    """Rewrite the SOF0/SOF2 frame header of a JPEG to claim other dimensions."""
    data = bytearray(base)
    i = 2
    while i < len(data) - 9:
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            struct.pack_into(">HH", data, i + 5, height, width)
            return bytes(data)
        i += 2 + length
    return bytes(data)


def _exif_ifd(entries: list[tuple[int, int, int, bytes]], little: bool = True) -> bytes:
    """A TIFF-structured EXIF blob with one IFD of raw (tag, type, count, value-4-bytes) entries."""
    e = "<" if little else ">"
    header = (b"II" if little else b"MM") + struct.pack(e + "HI", 42, 8)
    body = struct.pack(e + "H", len(entries))
    for tag, typ, count, value in entries:
        body += struct.pack(e + "HHI", tag, typ, count) + value.ljust(4, b"\0")[:4]
    body += struct.pack(e + "I", 0)
    return b"Exif\0\0" + header + body


def jpeg_with_app1(base: bytes, payloads: list[bytes]) -> bytes:
    """Insert APP1 segments (EXIF) after SOI; each payload at most 65533 bytes."""
    segments = b""
    for payload in payloads:
        payload = payload[:65533]
        segments += b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return base[:2] + segments + base[2:]


def orientation_exif(value: int, typ: int = 3, little: bool = True) -> bytes:
    e = "<" if little else ">"
    raw = struct.pack(e + "H", value & 0xFFFF) if typ == 3 else struct.pack(e + "I", value & 0xFFFFFFFF)
    return _exif_ifd([(0x0112, typ, 1, raw)], little)


# -- the corpus ---------------------------------------------------------------------------------------


def _bases(rng: random.Random) -> dict[str, bytes]:
    face = face_like(96, seed=1)
    return {
        "jpeg": encode(face, "JPEG", quality=85),
        "jpeg_progressive": encode(face, "JPEG", quality=80, progressive=True),
        "png": encode(face, "PNG"),
        "gif": encode(face.convert("P"), "GIF"),
        "webp": encode(face, "WEBP", quality=80),
        "bmp": encode(face.resize((48, 48)), "BMP"),
    }


def images(seed: int = 0) -> list[HostileImage]:
    return list(_generate(seed))


def _generate(seed: int) -> Iterator[HostileImage]:
    rng = random.Random(seed)
    bases = _bases(rng)

    # Valid controls of every supported format: these must be analysed (OK).
    for fmt, data in bases.items():
        yield HostileImage(f"valid_{fmt}", "valid", data, decodable=True)

    # Zero bytes and near-empty.
    yield HostileImage("empty", "zero", b"")
    for n in (1, 2, 3, 4, 8, 16, 64, 1024, 65536):
        yield HostileImage(f"zeros_{n}", "zero", bytes(n))
        yield HostileImage(f"ff_{n}", "zero", b"\xff" * n)
    for n in (1, 7, 100, 4096, 100_000):
        yield HostileImage(f"random_{n}", "random", rng.randbytes(n))

    # Truncated at many points (headers only, mid-scan, missing trailer).
    for fmt, data in bases.items():
        cuts = sorted(
            {1, 2, 4, 8, 16, 32, 64, 100, 200, len(data) // 3, len(data) // 2, len(data) - 2, len(data) - 1}
            | {rng.randrange(1, len(data)) for _ in range(22)}
        )
        for cut in cuts:
            if 0 < cut < len(data):
                yield HostileImage(f"truncated_{fmt}_{cut}", "truncated", data[:cut])

    # Wrong magic bytes: one format's signature on another's body, foreign file types.
    magics = {
        "jpeg": b"\xff\xd8\xff\xe0",
        "png": b"\x89PNG\r\n\x1a\n",
        "gif": b"GIF89a",
        "webp": b"RIFF\x00\x00\x00\x00WEBP",
        "bmp": b"BM",
        "pdf": b"%PDF-1.7\n",
        "zip": b"PK\x03\x04",
        "gzip": b"\x1f\x8b\x08\x00",
        "elf": b"\x7fELF\x02\x01\x01",
        "tiff": b"II*\x00",
        "ico": b"\x00\x00\x01\x00",
        "psd": b"8BPS",
        "heic": b"\x00\x00\x00\x18ftypheic",
        "avif": b"\x00\x00\x00\x1cftypavif",
        "svg": b"<svg xmlns='http://www.w3.org/2000/svg'>",
        "html": b"<!DOCTYPE html><html>",
        "exe": b"MZ\x90\x00",
    }
    for fmt, data in bases.items():
        own = magics.get(fmt.split("_")[0], b"")
        for magic_name, magic in magics.items():
            if magic == own:
                continue
            yield HostileImage(f"magic_{magic_name}_on_{fmt}", "wrong_magic", magic + data[len(magic) :])
            yield HostileImage(f"magic_{magic_name}_prefix_{fmt}", "wrong_magic", magic + data)
        yield HostileImage(f"magic_stripped_{fmt}", "wrong_magic", data[8:])
        yield HostileImage(f"magic_reversed_{fmt}", "wrong_magic", data[::-1])

    # Huge dimensions claimed by otherwise tiny files (forged headers).
    tiny_idat = zlib.compress(b"\x00" * 64)
    for w, h in (
        (100_000, 100_000),
        (2**31 - 1, 1),
        (1, 2**31 - 1),
        (65535, 65535),
        (2**32 - 1, 2**32 - 1),
        (0, 0),
        (0, 100),
        (100, 0),
        (7000, 7000),
        (40_000_001, 1),
        (1, 40_000_001),
    ):
        for depth, ctype in ((8, 0), (8, 2), (16, 6), (1, 0)):
            yield HostileImage(
                f"png_dims_{w}x{h}_d{depth}c{ctype}", "huge_dims", png_raw(w, h, depth, ctype, tiny_idat)
            )
    for w, h in ((65535, 65535), (65535, 1), (1, 65535), (0, 0), (0, 500), (60000, 60000), (7000, 7000)):
        yield HostileImage(f"jpeg_dims_{w}x{h}", "huge_dims", jpeg_with_dimensions(bases["jpeg"], w, h))
        yield HostileImage(
            f"jpeg_prog_dims_{w}x{h}", "huge_dims", jpeg_with_dimensions(bases["jpeg_progressive"], w, h)
        )
    gif = bytearray(bases["gif"])
    for w, h in ((65535, 65535), (0, 0), (65535, 1)):
        forged = bytearray(gif)
        struct.pack_into("<HH", forged, 6, w, h)
        yield HostileImage(f"gif_screen_{w}x{h}", "huge_dims", bytes(forged))
    bmp = bytearray(bases["bmp"])
    for w, h in ((100_000, 100_000), (-48, -48), (2**31 - 1, 1), (48, -(2**31)), (0, 48)):
        forged = bytearray(bmp)
        struct.pack_into("<ii", forged, 18, w, h)
        yield HostileImage(f"bmp_dims_{w}x{h}", "huge_dims", bytes(forged))
    webp = bytearray(bases["webp"])
    for offset_value in (0xFFFF, 0x3FFF):
        forged = bytearray(webp)
        if forged[12:16] == b"VP8 " and len(forged) > 30:
            struct.pack_into("<HH", forged, 26, offset_value, offset_value)
        yield HostileImage(f"webp_dims_{offset_value}", "huge_dims", bytes(forged))

    # Decompression bombs: tiny files, gigantic images (header check must stop them before decoding).
    for w, h, depth, ctype in (
        (12_000, 12_000, 8, 0),
        (30_000, 30_000, 1, 0),
        (20_000, 20_000, 8, 2),
        (100_000, 50_000, 1, 0),
        (6_400, 6_400, 8, 6),
        (50_000, 50_000, 8, 0),
    ):
        yield HostileImage(f"bomb_png_{w}x{h}_d{depth}c{ctype}", "bomb", png_bomb(w, h, depth, ctype))
    # A just-under-the-limit image (≈39 MP of one colour: compresses to a few hundred KB, decodes big).
    big = Image.new("L", (6200, 6200), 128)
    yield HostileImage("near_limit_png_6200x6200", "bomb", encode(big, "PNG", optimize=False), decodable=True)
    yield HostileImage("near_limit_jpeg_6200x6200", "bomb", encode(big, "JPEG", quality=10), decodable=True)
    del big
    # GIF whose logical screen and frame are big and LZW-compressed to almost nothing.
    gif_bomb = Image.new("P", (8000, 8000), 0)
    yield HostileImage("bomb_gif_8000x8000", "bomb", encode(gif_bomb, "GIF"), decodable=False)
    del gif_bomb

    # Animated images (first frame is analysed; the rest must not cost memory or time).
    for frames in (2, 10, 100, 400):
        sequence = [face_like(64, seed=i).convert("P") for i in range(min(frames, 20))]
        sequence = (sequence * (frames // len(sequence) + 1))[:frames]
        yield HostileImage(
            f"animated_gif_{frames}",
            "animated",
            encode(sequence[0], "GIF", save_all=True, append_images=sequence[1:], duration=10, loop=0),
            decodable=True,
        )
        rgb = [face_like(64, seed=i) for i in range(min(frames, 10))]
        yield HostileImage(
            f"animated_png_{frames}",
            "animated",
            encode(rgb[0], "PNG", save_all=True, append_images=rgb[1:], duration=10),
            decodable=True,
        )
        try:
            yield HostileImage(
                f"animated_webp_{frames}",
                "animated",
                encode(rgb[0], "WEBP", save_all=True, append_images=rgb[1:], duration=10),
                decodable=True,
            )
        except (OSError, ValueError):  # no animated WebP in this Pillow
            pass
    # An animated GIF whose later frames are truncated away.
    anim = bases["gif"]
    seq = encode(
        face_like(64).convert("P"),
        "GIF",
        save_all=True,
        append_images=[face_like(64, seed=2).convert("P")] * 5,
        duration=10,
    )
    yield HostileImage("animated_gif_truncated_tail", "animated", seq[: len(seq) * 2 // 3], decodable=False)
    del anim

    # Pixel formats: CMYK, 16-bit, alpha, palette, 1-bit, float, LAB; and unsupported containers.
    face = face_like(96, seed=3)
    cmyk = face.convert("CMYK")
    yield HostileImage("cmyk_jpeg", "pixel_format", encode(cmyk, "JPEG"), decodable=True)
    yield HostileImage("cmyk_jpeg_q5", "pixel_format", encode(cmyk, "JPEG", quality=5), decodable=True)
    yield HostileImage("cmyk_tiff_unsupported", "pixel_format", encode(cmyk, "TIFF"))
    grey16 = Image.frombytes("I;16", (96, 96), bytes(rng.randbytes(96 * 96 * 2)))
    yield HostileImage("png_16bit_grey_noise", "pixel_format", encode(grey16, "PNG"), decodable=True)
    yield HostileImage(
        "png_16bit_grey_face",
        "pixel_format",
        encode(face.convert("L").convert("I").point(lambda v: v * 257).convert("I;16"), "PNG"),
        decodable=True,
    )
    rgb16 = png_raw(
        32, 32, 16, 2, zlib.compress(b"".join(b"\x00" + rng.randbytes(32 * 6) for _ in range(32)))
    )
    yield HostileImage("png_16bit_rgb", "pixel_format", rgb16, decodable=True)
    rgba16 = png_raw(
        32, 32, 16, 6, zlib.compress(b"".join(b"\x00" + rng.randbytes(32 * 8) for _ in range(32)))
    )
    yield HostileImage("png_16bit_rgba", "pixel_format", rgba16, decodable=True)
    for mode in ("RGBA", "LA", "P", "1", "L", "I", "PA"):
        try:
            yield HostileImage(
                f"png_mode_{mode}", "pixel_format", encode(face.convert(mode), "PNG"), decodable=True
            )
        except (OSError, ValueError):
            pass
    transparent = face.convert("RGBA")
    transparent.putalpha(0)
    yield HostileImage("png_fully_transparent", "pixel_format", encode(transparent, "PNG"), decodable=True)
    yield HostileImage(
        "webp_rgba", "pixel_format", encode(face.convert("RGBA"), "WEBP", lossless=True), decodable=True
    )
    yield HostileImage("bmp_1bit", "pixel_format", encode(face.convert("1"), "BMP"), decodable=True)
    yield HostileImage("bmp_rgba", "pixel_format", encode(face.convert("RGBA"), "BMP"), decodable=True)
    yield HostileImage(
        "gif_transparent", "pixel_format", encode(face.convert("P"), "GIF", transparency=0), decodable=True
    )
    for fmt, image in (
        ("TIFF", face),
        ("ICO", face),
        ("PPM", face),
        ("PCX", face),
        ("TGA", face),
        ("JPEG2000", face),
        ("EPS", face),
        ("PDF", face),
        ("SGI", face),
        ("DIB", face),
    ):
        try:
            yield HostileImage(f"unsupported_{fmt.lower()}", "unsupported_format", encode(image, fmt))
        except (OSError, ValueError, KeyError):
            pass
    float_tiff = Image.frombytes("F", (16, 16), bytes(16 * 16 * 4))
    yield HostileImage("unsupported_float_tiff", "unsupported_format", encode(float_tiff, "TIFF"))

    # Extreme shapes that are valid.
    for w, h in ((1, 1), (1, 2), (2, 1), (1, 5000), (5000, 1), (3, 3), (47, 47), (48, 48), (49, 49)):
        image = Image.new("RGB", (w, h), (200, 150, 100))
        yield HostileImage(f"shape_png_{w}x{h}", "shape", encode(image, "PNG"), decodable=True)
        yield HostileImage(f"shape_jpeg_{w}x{h}", "shape", encode(image, "JPEG"), decodable=True)

    # EXIF tricks: every orientation value (valid ones rotate), out-of-range ones, wrong types,
    # huge EXIF (many max-size APP1 segments), offsets pointing outside, IFD loops.
    jpeg = bases["jpeg"]
    for value in (*range(0, 10), 255, 256, 1000, 32767, 65535):
        for little in (True, False):
            yield HostileImage(
                f"exif_orientation_{value}_{'le' if little else 'be'}",
                "exif",
                jpeg_with_app1(jpeg, [orientation_exif(value, 3, little)]),
                decodable=True,
            )
    for typ in (1, 2, 4, 5, 7, 9, 10, 11, 12, 13, 99):
        yield HostileImage(
            f"exif_orientation_type_{typ}",
            "exif",
            jpeg_with_app1(
                jpeg,
                [
                    orientation_exif(6, typ if typ in (3, 4) else 3)[:-14]
                    + _exif_ifd([(0x0112, typ, 1, b"\x06\0\0\0")])[-14:]
                ],
            ),
            decodable=True,
        )
        yield HostileImage(
            f"exif_orientation_count_{typ}",
            "exif",
            jpeg_with_app1(jpeg, [_exif_ifd([(0x0112, 3, 2**32 - typ, b"\x06\0\0\0")])]),
            decodable=True,
        )
    for segments in (1, 4, 16, 60):
        yield HostileImage(
            f"exif_huge_{segments}x64k",
            "exif",
            jpeg_with_app1(jpeg, [b"Exif\0\0" + rng.randbytes(65000) for _ in range(segments)]),
            decodable=True,
        )
    yield HostileImage(
        "exif_bad_offset",
        "exif",
        jpeg_with_app1(jpeg, [_exif_ifd([(0x8769, 4, 1, struct.pack("<I", 0x7FFFFFF0))])]),
        decodable=True,
    )
    yield HostileImage(
        "exif_ifd_loop",
        "exif",
        jpeg_with_app1(
            jpeg, [_exif_ifd([(0x8769, 4, 1, struct.pack("<I", 8)), (0x0112, 3, 1, b"\x06\0\0\0")])]
        ),
        decodable=True,
    )
    yield HostileImage(
        "exif_giant_count",
        "exif",
        jpeg_with_app1(jpeg, [_exif_ifd([(0x010F, 2, 2**31, struct.pack("<I", 26))])]),
        decodable=True,
    )
    yield HostileImage(
        "exif_not_tiff",
        "exif",
        jpeg_with_app1(jpeg, [b"Exif\0\0" + b"XX" + rng.randbytes(50)]),
        decodable=True,
    )
    yield HostileImage("exif_empty", "exif", jpeg_with_app1(jpeg, [b"Exif\0\0"]), decodable=True)
    yield HostileImage(
        "exif_truncated_ifd", "exif", jpeg_with_app1(jpeg, [orientation_exif(6)[:14]]), decodable=True
    )
    yield HostileImage(
        "exif_many_entries",
        "exif",
        jpeg_with_app1(jpeg, [_exif_ifd([(0x0112, 3, 1, bytes([i % 9, 0, 0, 0])) for i in range(5000)])]),
        decodable=True,
    )
    yield HostileImage(
        "xmp_huge",
        "exif",
        jpeg_with_app1(jpeg, [b"http://ns.adobe.com/xap/1.0/\0" + b"<x>" * 20000]),
        decodable=True,
    )
    for value in (3, 6, 8, 0, 9):
        exif = Image.Exif()
        exif[0x0112] = value
        yield HostileImage(
            f"exif_png_orientation_{value}", "exif", encode(face, "PNG", exif=exif.tobytes()), decodable=True
        )
        yield HostileImage(
            f"exif_webp_orientation_{value}",
            "exif",
            encode(face, "WEBP", exif=exif.tobytes()),
            decodable=True,
        )
    yield HostileImage(
        "png_huge_text_chunk",
        "exif",
        png_raw(8, 8, 8, 0, zlib.compress(b"\x00" * 72), _png_chunk(b"tEXt", b"k\0" + b"A" * 2_000_000)),
        decodable=True,
    )
    yield HostileImage(
        "png_ztxt_bomb",
        "exif",
        png_raw(
            8,
            8,
            8,
            0,
            zlib.compress(b"\x00" * 72),
            _png_chunk(b"zTXt", b"k\0\0" + zlib.compress(b"\0" * 50 * MIB, 9)),
        ),
        decodable=True,
    )
    yield HostileImage(
        "png_iccp_bomb",
        "exif",
        png_raw(
            8,
            8,
            8,
            0,
            zlib.compress(b"\x00" * 72),
            _png_chunk(b"iCCP", b"p\0\0" + zlib.compress(b"\0" * 50 * MIB, 9)),
        ),
        decodable=True,
    )
    yield HostileImage("png_bad_crc", "exif", bases["png"][:-4] + b"\0\0\0\0", decodable=True)

    # Polyglots and scripts.
    yield HostileImage(
        "jpeg_plus_zip", "polyglot", jpeg + b"PK\x03\x04" + rng.randbytes(2000), decodable=True
    )
    yield HostileImage("jpeg_plus_html", "polyglot", jpeg + b"<script>alert(1)</script>", decodable=True)
    yield HostileImage(
        "svg_xxe",
        "polyglot",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<svg xmlns="http://www.w3.org/2000/svg"><text>&e;</text></svg>',
    )
    yield HostileImage("html_page", "polyglot", b"<html><body><img src=x onerror=alert(1)></body></html>")
    yield HostileImage("gif_with_js_comment", "polyglot", b"GIF89a/*" + bases["gif"][8:] + b"*/=alert(1)")
    yield HostileImage("null_then_jpeg", "polyglot", b"\0" * 100 + jpeg)
    yield HostileImage("double_jpeg", "polyglot", jpeg + jpeg, decodable=True)

    # Bit-flip and byte mutations of valid files (seeded fuzzing).
    mutation_bases = [
        bases["jpeg"],
        bases["png"],
        bases["gif"],
        bases["webp"],
        bases["bmp"],
        bases["jpeg_progressive"],
    ]
    names = ["jpeg", "png", "gif", "webp", "bmp", "jpeg_progressive"]
    for i in range(420):
        k = i % len(mutation_bases)
        data = bytearray(mutation_bases[k])
        kind = rng.choice(("flip", "byte", "block", "header"))
        if kind == "flip":
            for _ in range(rng.randint(1, 8)):
                pos = rng.randrange(len(data))
                data[pos] ^= 1 << rng.randrange(8)
        elif kind == "byte":
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.choice((0x00, 0xFF, 0x7F, 0x80))
        elif kind == "block":
            start = rng.randrange(len(data))
            data[start : start + rng.randint(1, 64)] = rng.randbytes(rng.randint(1, 64))
        else:
            pos = rng.randrange(min(64, len(data)))
            data[pos] = rng.randrange(256)
        yield HostileImage(f"mutant_{names[k]}_{kind}_{i}", "mutation", bytes(data))


def huge_upload(size: int = 50 * MIB) -> bytes:
    """`size` bytes that start like a JPEG (the 50 MB upload test)."""
    head = encode(face_like(32), "JPEG")
    return head + bytes(size - len(head))


def write_corpus(directory: Path, seed: int = 0) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for item in images(seed):
        path = directory / f"{item.category}__{item.name}.bin"
        path.write_bytes(item.data)
        paths.append(path)
    return paths


# -- hostile text -------------------------------------------------------------------------------------


def hostile_strings() -> list[tuple[str, str]]:
    """Strings that have broken real systems. All are valid Unicode scalar sequences (JSON- and
    protobuf-safe); raw non-UTF-8 is in non_utf8_bytes()."""
    return [
        ("empty", ""),
        ("space", " "),
        ("sql_quote", "' OR '1'='1"),
        ("sql_comment", "admin'--"),
        ("sql_union", "x' UNION SELECT id, password_hash FROM users --"),
        ("sql_stacked", "1; DROP TABLE history_analyses; --"),
        ("sql_sleep", "1' AND SLEEP(5)--"),
        ("sql_pg_sleep", "1'; SELECT pg_sleep(5); --"),
        ("sql_like", "%_%\\"),
        ("backslashes", "\\\\\\'\\\"\\0"),
        ("nul", "a\x00b"),
        ("control_chars", "".join(chr(c) for c in range(1, 32))),
        ("del_c1", "\x7f\x80\x9f"),
        ("crlf_injection", "x\r\nSet-Cookie: pwned=1\r\n\r\n"),
        ("newline_log_forging", 'user\n{"level":"ERROR","message":"forged"}'),
        ("very_long_10k", "A" * 10_000),
        ("very_long_1m", "B" * 1_000_000),
        ("very_long_unicode", "\u4e2d" * 50_000),
        ("homoglyph_cyrillic", "\u0430dmin"),  # Cyrillic a
        ("fullwidth", "\uff41\uff44\uff4d\uff49\uff4e"),
        ("zero_width", "ad\u200bmin\u200d"),
        ("bidi_override", "\u202euser\u202c"),
        ("combining_zalgo", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324" * 50),
        ("emoji", "\U0001f600\U0001f469\u200d\U0001f469\u200d\U0001f467"),
        ("astral_private", "\U0010fffd\uffff\ufffe"),
        ("bom", "\ufeffname"),
        ("replacement", "\ufffd\ufffd"),
        ("format_string", "%s%s%n%x{0}{__class__}"),
        ("template", "{{7*7}}${7*7}<%= 7*7 %>"),
        ("html", "<script>alert(1)</script>"),
        ("path_traversal", "../../../../etc/passwd"),
        ("url_encoded", "%2e%2e%2f%00"),
        ("json_breaker", '"}]},{"role":"counselor'),
        ("number_like", "-1e309"),
        ("uuid_like", "00000000-0000-0000-0000-000000000000"),
        ("whitespace_only", "\t\n\u00a0\u3000"),
    ]


def non_utf8_bytes() -> list[tuple[str, bytes]]:
    return [
        ("latin1", "caf\u00e9".encode("latin-1")),
        ("lone_continuation", b"\x80\x80"),
        ("overlong_slash", b"\xc0\xaf"),
        ("surrogate_utf8", b"\xed\xa0\x80"),
        ("truncated_sequence", b"abc\xe4\xb8"),
        ("ff_fe", b"\xff\xfe"),
        ("nul_and_high", b"\x00\xff\x00"),
    ]


if __name__ == "__main__":  # python -m tests.pressure.hostile_corpus DIR: write the corpus for replay
    import sys
    from collections import Counter

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "hostile-corpus")
    written = write_corpus(out)
    print(f"{len(written)} files in {out}")
    print(Counter(p.name.split("__")[0] for p in written))
