"""Draw the application icon (our own art): two overlapping discs, a warm one and a cool
one, whose overlap is the fused image. Writes resources/icon.png (256 px) and
resources/icon.ico (16-256 px, for the Windows executable).

    python tools/make_icon.py
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageChops, ImageDraw

SIZE = 256
SCALE = 4  # drawn large, then downsampled: smooth edges without an antialiasing API
ICO_SIZES = [(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]


def draw_icon(size: int = SIZE) -> Image.Image:
    n = size * SCALE
    canvas = Image.new("RGBA", (n, n), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).rounded_rectangle((0, 0, n - 1, n - 1), radius=n // 6,
                                             fill=(28, 32, 44, 255))
    r = int(n * 0.27)
    cy = n // 2
    warm = Image.new("RGB", (n, n), (0, 0, 0))
    ImageDraw.Draw(warm).ellipse((n * 0.36 - r, cy - r, n * 0.36 + r, cy + r), fill=(240, 120, 40))
    cool = Image.new("RGB", (n, n), (0, 0, 0))
    ImageDraw.Draw(cool).ellipse((n * 0.64 - r, cy - r, n * 0.64 + r, cy + r), fill=(40, 170, 240))
    light = ImageChops.add(warm, cool)  # the overlap mixes both: the fused image
    mask = light.convert("L").point(lambda v: 255 if v else 0)
    canvas.paste(light, (0, 0), mask)
    return canvas.resize((size, size), Image.Resampling.LANCZOS)


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "resources"
    icon = draw_icon()
    icon.save(out / "icon.png", optimize=True)
    icon.save(out / "icon.ico", sizes=ICO_SIZES)
    print(f"wrote {out / 'icon.png'} and {out / 'icon.ico'}")


if __name__ == "__main__":
    main()
