"""Drawing a demo product (bottle, box, jar, tube, bag, can, shoe, shirt) with its
colours, pattern, brand, variant and pack-size label, on a transparent layer."""

from __future__ import annotations

from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from precompute.demo_catalogue import PALETTE, WHITE, Look, contrast, readable

LAYER = 256          # side of a drawn product layer

@cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font (scalable since Pillow 10.1); never a system font file."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # old Pillow or no FreeType: the bitmap font
        return ImageFont.load_default()


def draw_text(d: ImageDraw.ImageDraw, cx: float, cy: float, text: str, max_w: float,
              max_h: float, fill, bold: bool = True) -> None:
    """Centre `text` on (cx, cy), shrunk until it fits max_w x max_h."""
    if not text:
        return
    size = max(8, int(max_h))
    while True:
        font = _font(size)
        stroke = max(1, size // 16) if bold else 0
        left, top, right, bottom = d.textbbox((0, 0), text, font=font, stroke_width=stroke)
        if (right - left <= max_w and bottom - top <= max_h) or size <= 8:
            break
        size = max(8, int(size * 0.86))
    d.text((cx - (left + right) / 2, cy - (top + bottom) / 2), text, font=font, fill=fill,
           stroke_width=stroke, stroke_fill=fill)


def _pattern_fill(look: Look) -> Image.Image:
    s = LAYER
    base = np.array(PALETTE[look.body][2], np.float32)
    other = np.array(PALETTE[look.pattern_colour][2], np.float32)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    p = look.period
    if look.pattern == "stripes":
        m = (((xx + yy) if look.flag else yy) // (p / 2)) % 2 * 0.85
    elif look.pattern == "dots":
        m = ((xx % p - p / 2) ** 2 + (yy % p - p / 2) ** 2 < (p / 4.2) ** 2) * 0.9
    elif look.pattern == "gradient":
        m = yy / s * 0.9
    elif look.pattern == "checks":
        m = ((xx // p) % 2) * 0.35 + ((yy // p) % 2) * 0.35
    else:
        m = np.zeros((s, s), np.float32)
    img = base * (1 - m[..., None]) + other * m[..., None]
    return Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB")


def _shade(layer: Image.Image, x0: float, x1: float, strength: float = 1.0) -> Image.Image:
    """Cylinder-like horizontal shading with a highlight (bottles, jars, cans, tubes)."""
    arr = np.asarray(layer).astype(np.float32)
    xs = np.arange(LAYER, dtype=np.float32)
    u = np.clip((xs - (x0 + x1) / 2) / max(1.0, (x1 - x0) / 2), -1, 1)
    f = 0.8 + 0.2 * np.sqrt(1 - u ** 2)
    hi = np.exp(-((u + 0.45) / 0.13) ** 2) * 0.35
    rgb = arr[..., :3] * (1 + (f - 1) * strength)[None, :, None]
    rgb = rgb + (255 - rgb) * (hi * strength)[None, :, None]
    arr[..., :3] = rgb
    return Image.fromarray(arr.clip(0, 255).astype(np.uint8), "RGBA")


def _label(d: ImageDraw.ImageDraw, look: Look, box: tuple[float, float, float, float],
           brand: str, sub: str, pack: str) -> None:
    x0, y0, x1, y1 = box
    if look.label == "oval":
        d.ellipse(box, fill=look.accent)
        inset = (x1 - x0) * 0.1
        x0, x1 = x0 + inset, x1 - inset
    elif look.label == "panel":
        d.rounded_rectangle(box, radius=int((y1 - y0) * 0.15), fill=look.accent)
    else:
        d.rectangle(box, fill=look.accent)
    w, h = x1 - x0, y1 - y0
    cx = (x0 + x1) / 2
    draw_text(d, cx, y0 + h * 0.3, brand.upper(), w * 0.9, h * 0.36, look.brand_colour)
    draw_text(d, cx, y0 + h * 0.6, sub.upper(), w * 0.85, h * 0.17, look.text, bold=False)
    draw_text(d, cx, y0 + h * 0.83, pack, w * 0.6, h * 0.17, look.text)


def _draw_bottle(look, mask, md, layer, d, fill, brand, sub, pack):
    s, cx = LAYER, LAYER / 2
    bw = look.width * s
    neck = max(0.1 * s, bw * 0.38)
    top = 0.34 * s
    md.rectangle((cx - neck / 2, 0.12 * s, cx + neck / 2, top), fill=255)
    md.ellipse((cx - bw / 2, top - 0.11 * s, cx + bw / 2, top + 0.13 * s), fill=255)
    md.rounded_rectangle((cx - bw / 2, top, cx + bw / 2, 0.97 * s), radius=int(0.05 * s),
                         fill=255)
    layer.paste(fill, (0, 0), mask)
    cap_w = neck * 1.25
    if look.flag:   # pump dispenser
        d.rectangle((cx - 0.018 * s, 0.02 * s, cx + 0.018 * s, 0.1 * s), fill=look.cap)
        d.rectangle((cx - 0.018 * s, 0.02 * s, cx + 0.12 * s, 0.05 * s), fill=look.cap)
    d.rounded_rectangle((cx - cap_w / 2, 0.08 * s, cx + cap_w / 2, 0.15 * s), radius=4,
                        fill=look.cap)
    _label(d, look, (cx - bw / 2 + 0.02 * s, 0.48 * s, cx + bw / 2 - 0.02 * s, 0.86 * s),
           brand, sub, pack)
    return _shade(layer, cx - bw / 2, cx + bw / 2)


def _draw_jar(look, mask, md, layer, d, fill, brand, sub, pack):
    s, cx = LAYER, LAYER / 2
    jw = look.width * s
    md.rounded_rectangle((cx - jw / 2, 0.27 * s, cx + jw / 2, 0.92 * s), radius=int(0.1 * s),
                         fill=255)
    layer.paste(fill, (0, 0), mask)
    d.rounded_rectangle((cx - jw / 2 + 6, 0.13 * s, cx + jw / 2 - 6, 0.29 * s), radius=8,
                        fill=look.cap)
    for k in range(1, 4):
        y = 0.13 * s + k * 0.04 * s
        d.line((cx - jw / 2 + 8, y, cx + jw / 2 - 8, y), fill=tuple(c // 2 for c in look.cap),
               width=2)
    _label(d, look, (cx - jw / 2, 0.42 * s, cx + jw / 2, 0.8 * s), brand, sub, pack)
    return _shade(layer, cx - jw / 2, cx + jw / 2, 0.8)


def _draw_can(look, mask, md, layer, d, fill, brand, sub, pack):
    s, cx = LAYER, LAYER / 2
    cw = look.width * s
    md.rectangle((cx - cw / 2, 0.13 * s, cx + cw / 2, 0.9 * s), fill=255)
    md.ellipse((cx - cw / 2, 0.86 * s, cx + cw / 2, 0.94 * s), fill=255)
    layer.paste(fill, (0, 0), mask)
    metal = (190, 192, 198)
    d.ellipse((cx - cw / 2, 0.09 * s, cx + cw / 2, 0.17 * s), fill=metal,
              outline=(120, 122, 128), width=3)
    d.ellipse((cx - cw / 2 + 8, 0.105 * s, cx + cw / 2 - 8, 0.155 * s), outline=(150, 152, 158),
              width=2)
    d.rectangle((cx - cw / 2, 0.86 * s, cx + cw / 2, 0.9 * s), fill=metal)
    _label(d, look, (cx - cw / 2, 0.34 * s, cx + cw / 2, 0.74 * s), brand, sub, pack)
    return _shade(layer, cx - cw / 2, cx + cw / 2)


def _draw_tube(look, mask, md, layer, d, fill, brand, sub, pack):
    s, cx = LAYER, LAYER / 2
    tw = look.width * s
    md.polygon([(cx - tw / 2, 0.05 * s), (cx + tw / 2, 0.05 * s), (cx + tw * 0.3, 0.8 * s),
                (cx - tw * 0.3, 0.8 * s)], fill=255)
    layer.paste(fill, (0, 0), mask)
    d.rectangle((cx - tw / 2, 0.05 * s, cx + tw / 2, 0.1 * s), fill=tuple(
        int(c * 0.8) for c in PALETTE[look.body][2]))
    for k in range(12):
        x = cx - tw / 2 + (k + 0.5) * tw / 12
        d.line((x, 0.05 * s, x, 0.1 * s), fill=(90, 90, 90), width=1)
    d.rounded_rectangle((cx - 0.09 * s, 0.79 * s, cx + 0.09 * s, 0.96 * s), radius=6,
                        fill=look.cap)
    _label(d, look, (cx - tw * 0.4, 0.22 * s, cx + tw * 0.4, 0.62 * s), brand, sub, pack)
    return _shade(layer, cx - tw / 2, cx + tw / 2, 0.7)


def _draw_bag(look, mask, md, layer, d, fill, brand, sub, pack):
    s, cx = LAYER, LAYER / 2
    bw = look.width * s
    md.polygon([(cx - bw / 2, 0.08 * s), (cx + bw / 2, 0.08 * s), (cx + bw * 0.56, 0.55 * s),
                (cx + bw * 0.53, 0.94 * s), (cx - bw * 0.53, 0.94 * s),
                (cx - bw * 0.56, 0.55 * s)], fill=255)
    layer.paste(fill, (0, 0), mask)
    dark = tuple(int(c * 0.6) for c in PALETTE[look.body][2])
    d.line((cx - bw / 2 + 4, 0.16 * s, cx + bw / 2 - 4, 0.16 * s), fill=dark, width=3)
    d.polygon([(cx - bw / 2, 0.11 * s), (cx - bw / 2 + 8, 0.13 * s), (cx - bw / 2, 0.15 * s)],
              fill=(0, 0, 0, 0))
    if look.flag:   # a window showing the contents
        d.rounded_rectangle((cx - bw * 0.3, 0.74 * s, cx + bw * 0.3, 0.88 * s), radius=10,
                            fill=(150, 105, 60))
        for k in range(14):
            x = cx - bw * 0.27 + (k % 7) * bw * 0.09
            y = 0.77 * s + (k // 7) * 0.05 * s
            d.ellipse((x, y, x + 10, y + 7), fill=(95, 62, 32))
    _label(d, look, (cx - bw * 0.42, 0.27 * s, cx + bw * 0.42, 0.68 * s), brand, sub, pack)
    return _shade(layer, cx - bw * 0.56, cx + bw * 0.56, 0.45)


def _draw_box(look, mask, md, layer, d, fill, brand, sub, pack):
    s = LAYER
    bw = look.width * s
    dep = 0.12 * s
    x0 = s / 2 - bw / 2 - dep / 2
    x1, y0, y1 = x0 + bw, 0.24 * s, 0.94 * s
    top = [(x0, y0), (x1, y0), (x1 + dep, y0 - dep * 0.8), (x0 + dep, y0 - dep * 0.8)]
    side = [(x1, y0), (x1 + dep, y0 - dep * 0.8), (x1 + dep, y1 - dep * 0.8), (x1, y1)]
    md.rectangle((x0, y0, x1, y1), fill=255)
    md.polygon(top, fill=255)
    md.polygon(side, fill=255)
    layer.paste(fill, (0, 0), mask)
    d.polygon(top, fill=tuple(min(255, int(c * 1.15 + 25)) for c in PALETTE[look.body][2]))
    d.polygon(side, fill=tuple(int(c * 0.62) for c in PALETTE[look.body][2]))
    h = y1 - y0
    if look.label == "oval":
        _label(d, look, (x0 + 6, y0 + h * 0.2, x1 - 6, y0 + h * 0.75), brand, sub, pack)
    else:
        _label(d, look, (x0, y0 + h * 0.12, x1, y0 + h * 0.62), brand, sub, "")
        draw_text(d, (x0 + x1) / 2, y0 + h * 0.8, pack, bw * 0.6, h * 0.1, contrast(
            PALETTE[look.body][2]))
    return layer


def _draw_shoe(look, mask, md, layer, d, fill, brand, sub, pack):
    s = LAYER
    sole = WHITE if look.width < 0.6 else ((40, 40, 40) if look.width < 0.85 else
                                           (190, 140, 80))
    top_y = 0.28 if look.flag else 0.4
    upper = [(0.08 * s, 0.74 * s), (0.1 * s, 0.52 * s), (0.22 * s, 0.46 * s),
             (0.3 * s, top_y * s), (0.5 * s, top_y * s - 6), (0.56 * s, 0.42 * s),
             (0.72 * s, 0.5 * s), (0.9 * s, 0.6 * s), (0.95 * s, 0.7 * s), (0.94 * s, 0.74 * s)]
    md.polygon(upper, fill=255)
    layer.paste(fill, (0, 0), mask)
    d.rounded_rectangle((0.05 * s, 0.72 * s, 0.96 * s, 0.82 * s), radius=int(0.04 * s),
                        fill=sole, outline=(90, 90, 90), width=2)
    d.line((0.08 * s, 0.77 * s, 0.93 * s, 0.77 * s), fill=(150, 150, 150), width=1)
    for k in range(5):   # laces
        x = 0.52 * s + k * 0.045 * s
        y = 0.44 * s + k * 0.03 * s
        d.line((x - 8, y - 6, x + 8, y + 6), fill=WHITE, width=3)
    stripe = [(0.2 * s, 0.66 * s), (0.52 * s, 0.5 * s), (0.6 * s, 0.54 * s),
              (0.3 * s, 0.68 * s)]
    d.polygon(stripe, fill=look.accent if look.accent != PALETTE[look.body][2] else WHITE)
    d.rounded_rectangle((0.09 * s, 0.5 * s, 0.22 * s, 0.62 * s), radius=4, fill=look.accent)
    draw_text(d, 0.155 * s, 0.56 * s, brand.upper()[:6], 0.12 * s, 0.06 * s, look.text)
    draw_text(d, 0.45 * s, 0.9 * s, brand.upper(), 0.6 * s, 0.08 * s, (60, 60, 60))
    return _shade(layer, 0, s, 0.25)


def _draw_shirt(look, mask, md, layer, d, fill, brand, sub, pack):
    s = LAYER
    body = [(0.34 * s, 0.1 * s), (0.12 * s, 0.2 * s), (0.02 * s, 0.4 * s), (0.17 * s, 0.47 * s),
            (0.25 * s, 0.37 * s), (0.25 * s, 0.95 * s), (0.75 * s, 0.95 * s),
            (0.75 * s, 0.37 * s), (0.83 * s, 0.47 * s), (0.98 * s, 0.4 * s), (0.88 * s, 0.2 * s),
            (0.66 * s, 0.1 * s)]
    md.polygon(body, fill=255)
    layer.paste(fill, (0, 0), mask)
    dark = tuple(int(c * 0.7) for c in PALETTE[look.body][2])
    if look.flag:   # polo collar
        d.polygon([(0.38 * s, 0.1 * s), (0.5 * s, 0.22 * s), (0.62 * s, 0.1 * s),
                   (0.57 * s, 0.1 * s), (0.5 * s, 0.17 * s), (0.43 * s, 0.1 * s)], fill=dark)
        d.line((0.5 * s, 0.2 * s, 0.5 * s, 0.3 * s), fill=dark, width=3)
    else:
        d.chord((0.38 * s, 0.03 * s, 0.62 * s, 0.19 * s), 0, 180, fill=dark)
        d.chord((0.4 * s, 0.04 * s, 0.6 * s, 0.16 * s), 0, 180, fill=(0, 0, 0, 0))
    for x0, y0, x1, y1 in ((0.04, 0.385, 0.175, 0.45), (0.825, 0.45, 0.96, 0.385)):
        d.line((x0 * s, y0 * s, x1 * s, y1 * s), fill=dark, width=3)
    colour = readable(look.brand_colour, PALETTE[look.body][2])
    if look.label in ("oval", "panel"):
        d.ellipse((0.4 * s, 0.3 * s, 0.6 * s, 0.5 * s), outline=colour, width=6)
        draw_text(d, 0.5 * s, 0.58 * s, brand.upper(), 0.42 * s, 0.09 * s, colour)
    else:
        draw_text(d, 0.5 * s, 0.42 * s, brand.upper(), 0.44 * s, 0.12 * s, colour)
        d.rectangle((0.33 * s, 0.52 * s, 0.67 * s, 0.545 * s), fill=colour)
    return _shade(layer, 0.1 * s, 0.9 * s, 0.2)


DRAW = {"bottle": _draw_bottle, "jar": _draw_jar, "can": _draw_can, "tube": _draw_tube,
        "bag": _draw_bag, "box": _draw_box, "shoe": _draw_shoe, "shirt": _draw_shirt}
LABEL_Y = {"bottle": 0.67, "jar": 0.6, "can": 0.54, "tube": 0.42, "bag": 0.47, "box": 0.45,
           "shoe": 0.6, "shirt": 0.45}


def draw_product(look: Look, brand: str, sub: str, pack: str) -> Image.Image:
    mask = Image.new("L", (LAYER, LAYER), 0)
    layer = Image.new("RGBA", (LAYER, LAYER), (0, 0, 0, 0))
    return DRAW[look.kind](look, mask, ImageDraw.Draw(mask), layer, ImageDraw.Draw(layer),
                           _pattern_fill(look), brand, sub, pack)
