"""Draw the app icons (PNG) with Pillow: `python services/gateway/web/icons/make_icons.py`.

A friendly face on the brand blue; the maskable variant keeps the face inside
the 80 % safe zone. The PNGs are committed; rerun this only to change them.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).parent
BLUE = (31, 95, 139, 255)
FACE = (255, 204, 77, 255)
INK = (40, 40, 40, 255)


def draw(size: int, face_fraction: float, rounded: bool) -> Image.Image:
    scale = 4  # draw large, then downsample for smooth edges
    big = size * scale
    image = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    g = ImageDraw.Draw(image)
    if rounded:
        g.rounded_rectangle((0, 0, big - 1, big - 1), radius=big * 0.22, fill=BLUE)
    else:
        g.rectangle((0, 0, big, big), fill=BLUE)
    r = big * face_fraction / 2
    c = big / 2
    g.ellipse((c - r, c - r, c + r, c + r), fill=FACE)
    eye_r = r * 0.11
    for dx in (-0.36, 0.36):
        ex, ey = c + dx * r, c - 0.22 * r
        g.ellipse((ex - eye_r, ey - eye_r * 1.3, ex + eye_r, ey + eye_r * 1.3), fill=INK)
    mouth = (c - 0.5 * r, c - 0.25 * r, c + 0.5 * r, c + 0.55 * r)
    g.arc(mouth, start=20, end=160, fill=INK, width=max(2, int(r * 0.1)))
    return image.resize((size, size), Image.LANCZOS)


def main() -> None:
    outputs = {
        "icon-192.png": draw(192, 0.72, rounded=True),
        "icon-512.png": draw(512, 0.72, rounded=True),
        "icon-maskable-512.png": draw(512, 0.56, rounded=False),
        "apple-touch-icon.png": draw(180, 0.64, rounded=False),
        "favicon-32.png": draw(32, 0.8, rounded=True),
    }
    for name, image in outputs.items():
        image.save(HERE / name, optimize=True)
        print(name, (HERE / name).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
