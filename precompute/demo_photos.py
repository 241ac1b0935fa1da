"""Demo photographs: a product layer composed on a background with crop, zoom,
rotation, light, stickers and JPEG quality, and the alternative layouts of hard case (b)."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from precompute.demo_catalogue import BANNERS, PALETTE, STICKERS, SYLLABLES, WHITE, contrast, pick
from precompute.demo_drawing import LABEL_Y, LAYER, draw_text

CANVAS = 320         # side of the composition canvas (the JPEG is 256-400 px)
JPEG_SUBSAMPLING = 2  # 4:2:0, fixed

LAYOUTS_ALT = ("twopack", "flatlay", "closeup", "withbox", "scene")
BACKGROUNDS = ("plain", "gradient", "blotch", "wood", "tiles", "studio", "cloth")


@dataclass
class Shot:
    layout: str
    bg: str
    bg_a: tuple[int, int, int]
    bg_b: tuple[int, int, int]
    bg_seed: int
    scale: float
    angle: float
    dx: float
    dy: float
    bright: float
    contrast: float
    sat: float
    crop: tuple[float, float, float]      # x0, y0 (fractions) and the side fraction
    size: tuple[int, int]
    quality: int
    deco: str                             # none, sticker, watermark, frame
    deco_text: str


def _soft(rng: np.random.Generator) -> tuple[int, int, int]:
    if rng.random() < 0.45:
        v = int(rng.integers(215, 256))
        return (v, v, max(0, v - int(rng.integers(0, 12))))
    base = np.array(PALETTE[int(rng.integers(len(PALETTE)))][2], float)
    mix = rng.uniform(0.35, 0.8)
    return tuple(int(c) for c in base * (1 - mix) + 255 * mix)


def random_shot(rng: np.random.Generator, layout: str = "normal") -> Shot:
    side = int(rng.integers(256, 401))
    size = (side, side) if rng.random() < 0.85 else (side, int(side * rng.uniform(0.75, 1.0)))
    zoom = rng.uniform(0.8, 1.0)
    r = rng.random()
    deco = "none" if r < 0.72 else ("sticker" if r < 0.84 else
                                    ("watermark" if r < 0.93 else "frame"))
    deco_text = {"sticker": pick(rng, STICKERS), "frame": pick(rng, BANNERS),
                 "none": ""}.get(deco, "")
    if deco == "watermark":
        prefix = pick(rng, ("TOKO ", "", ""))  # the draws stay in this order
        shop = "".join(pick(rng, SYLLABLES) for _ in range(3)).upper()
        deco_text = prefix + shop + pick(rng, (" SHOP", " STORE", " OFFICIAL", ""))
    angle = float(rng.uniform(-8, 8))
    if layout == "flatlay":
        angle = float(pick(rng, (-1, 1)) * rng.uniform(70, 105))
    return Shot(
        layout=layout, bg=pick(rng, BACKGROUNDS), bg_a=_soft(rng), bg_b=_soft(rng),
        bg_seed=int(rng.integers(2**31)), scale=float(rng.uniform(0.62, 0.92)), angle=angle,
        dx=float(rng.uniform(-0.07, 0.07)), dy=float(rng.uniform(-0.05, 0.06)),
        bright=float(rng.uniform(0.82, 1.16)), contrast=float(rng.uniform(0.8, 1.2)),
        sat=float(rng.uniform(0.8, 1.2)),
        crop=(float(rng.uniform(0, 1 - zoom)), float(rng.uniform(0, 1 - zoom)), float(zoom)),
        size=size, quality=int(rng.integers(40, 96)), deco=deco, deco_text=deco_text)


BG_HALF = CANVAS // 2   # backgrounds are smooth: drawn at half size, then scaled up
BG_VARIANTS = 8


@cache
def _bg_mask(kind: str, variant: int) -> np.ndarray:
    """The background's two-colour mixing mask in [0, 1] (a small bank per style)."""
    rng = np.random.default_rng(1000 * (*BACKGROUNDS, "scene").index(kind) + variant)
    c = BG_HALF
    yy, xx = np.mgrid[0:c, 0:c].astype(np.float32) / c
    if kind == "gradient":
        m = (yy if variant % 2 else (xx + yy) / 2) * 0.9
    elif kind == "blotch":
        small = rng.random((8, 8)).astype(np.float32)
        m = np.asarray(Image.fromarray((small * 255).astype(np.uint8)).resize(
            (c, c), Image.Resampling.BICUBIC), np.float32) / 255 * 0.7
    elif kind == "wood":
        m = (np.sin(yy * rng.uniform(25, 60) + np.sin(xx * 6) * 0.8) + 1) / 2
    elif kind == "tiles":
        p = rng.uniform(0.12, 0.25)
        m = (((xx % p) < 0.015) | ((yy % p) < 0.015)).astype(np.float32) * 0.5
    elif kind == "studio":
        m = np.clip(np.sqrt((xx - 0.5) ** 2 + (yy - rng.uniform(0.35, 0.55)) ** 2) * 0.9, 0, 1)
    elif kind == "cloth":
        f = rng.uniform(45, 75)
        m = ((np.sin(xx * f) * np.sin(yy * f)) > 0).astype(np.float32) * 0.18
    elif kind == "scene":   # a wall over a table top
        m = (yy > rng.uniform(0.55, 0.7)).astype(np.float32)
    else:
        m = np.zeros((c, c), np.float32)
    return m[..., None]


@cache
def _bg_noise(variant: int) -> np.ndarray:
    rng = np.random.default_rng(7919 + variant)
    return rng.normal(0, 3.0, (BG_HALF, BG_HALF, 1)).astype(np.float32)


def _background(shot: Shot) -> Image.Image:
    a = np.array(shot.bg_a, np.float32)
    b = np.array(shot.bg_b, np.float32)
    kind = "scene" if shot.layout == "scene" else shot.bg
    variant = shot.bg_seed % BG_VARIANTS
    if kind == "wood":
        b = np.array((150 + shot.bg_seed % 61, 105, 60), np.float32)
        a = b * 1.25
    elif kind == "studio":
        a = np.array((248, 248, 248), np.float32)
    elif kind == "scene":
        b = b * 0.8
    img = a + (b - a) * _bg_mask(kind, variant) + _bg_noise(shot.bg_seed // BG_VARIANTS % 8)
    img = Image.fromarray(img.clip(0, 255).astype(np.uint8), "RGB")
    return img.resize((CANVAS, CANVAS), Image.Resampling.BILINEAR).convert("RGBA")


def with_shadow(layer: Image.Image) -> Image.Image:
    """The product layer on a slightly larger transparent square, over its soft shadow
    (drawn once per product, so a photo only scales, rotates and pastes)."""
    pad, dx, dy = 10, 5, 7
    side = layer.width + 2 * pad
    alpha = layer.getchannel("A").reduce(4).filter(ImageFilter.BoxBlur(2))
    alpha = alpha.resize(layer.size, Image.Resampling.BILINEAR).point(lambda v: v * 4 // 10)
    shade = Image.new("RGBA", layer.size, (0, 0, 0, 0))
    shade.putalpha(alpha)
    out = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    out.alpha_composite(shade, (pad + dx, pad + dy))
    out.alpha_composite(layer, (pad, pad))
    return out


def _place(canvas: Image.Image, layer: Image.Image, height: float, angle: float,
           cx: float, cy: float) -> None:
    """Paste `layer` rotated, scaled so the product is `height` px tall, centred on (cx, cy).
    Rotation is nearest-neighbour at full size; the downscale smooths its edges."""
    img = layer.rotate(angle, Image.Resampling.NEAREST, expand=True) if abs(angle) > 0.05 \
        else layer
    f = height / LAYER
    img = img.resize((max(8, int(img.width * f)), max(8, int(img.height * f))),
                     Image.Resampling.BILINEAR)
    x, y = int(cx - img.width / 2), int(cy - img.height / 2)
    canvas.alpha_composite(img, (max(0, x), max(0, y)), (max(0, -x), max(0, -y)))


def _decorate(canvas: Image.Image, shot: Shot, rng: np.random.Generator) -> None:
    c = CANVAS
    d = ImageDraw.Draw(canvas)
    if shot.deco == "sticker":
        r = c * 0.11
        cx, cy = pick(rng, ((c * 0.16, c * 0.16), (c * 0.84, c * 0.16), (c * 0.84, c * 0.84)))
        pts = []
        for k in range(24):
            rad = r if k % 2 == 0 else r * 0.8
            t = math.pi * 2 * k / 24
            pts.append((cx + rad * math.cos(t), cy + rad * math.sin(t)))
        colour = pick(rng, ((220, 30, 40), (250, 180, 20), (230, 80, 20)))
        d.polygon(pts, fill=colour)
        draw_text(d, cx, cy, shot.deco_text, r * 1.3, r * 0.6, WHITE)
    elif shot.deco == "watermark":
        over = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        od = ImageDraw.Draw(over)
        draw_text(od, c / 2, c * 0.55, shot.deco_text, c * 0.8, c * 0.09, (255, 255, 255, 110))
        draw_text(od, c * 0.7, c * 0.94, shot.deco_text, c * 0.5, c * 0.05, (40, 40, 40, 150),
                  bold=False)
        canvas.alpha_composite(over)
    elif shot.deco == "frame":
        colour = pick(rng, ((230, 60, 30), (20, 120, 200), (250, 190, 30), (30, 30, 30)))
        w = int(c * 0.035)
        d.rectangle((0, 0, c - 1, c - 1), outline=colour, width=w)
        d.rectangle((0, int(c * 0.86), c, c), fill=colour)
        draw_text(d, c / 2, c * 0.93, shot.deco_text, c * 0.8, c * 0.08, contrast(colour))


def compose(shot: Shot, layer: Image.Image, extra: Image.Image | None, kind: str,
            rng: np.random.Generator) -> Image.Image:
    c = CANVAS
    canvas = _background(shot)
    h = shot.scale * c
    cx, cy = c * (0.5 + shot.dx), c * (0.5 + shot.dy)
    if shot.layout == "twopack":
        _place(canvas, layer, h * 0.78, shot.angle + 6, cx + c * 0.16, cy - c * 0.04)
        _place(canvas, layer, h * 0.82, shot.angle - 4, cx - c * 0.16, cy + c * 0.04)
    elif shot.layout == "flatlay":
        for _ in range(int(rng.integers(2, 5))):   # props on the table
            px, py = rng.uniform(0.05, 0.95, 2) * c
            pr = rng.uniform(0.04, 0.09) * c
            colour = pick(rng, ((60, 140, 60), (230, 200, 150), (200, 60, 60), (250, 250, 240)))
            ImageDraw.Draw(canvas).ellipse((px - pr, py - pr * 0.6, px + pr, py + pr * 0.6),
                                           fill=colour)
        _place(canvas, layer, h * 1.05, shot.angle, c / 2, c / 2)
    elif shot.layout == "closeup":
        zoom = h * 2.1
        _place(canvas, layer, zoom, shot.angle * 0.5, c / 2,
               c / 2 - (LABEL_Y[kind] - 0.5) * zoom)
    elif shot.layout == "withbox" and extra is not None:
        _place(canvas, extra, h * 1.0, 0, cx + c * 0.14, cy - c * 0.02)
        _place(canvas, layer, h * 0.8, shot.angle, cx - c * 0.18, cy + c * 0.06)
    elif shot.layout == "scene":
        _place(canvas, layer, h * 0.55, shot.angle * 0.5, c * (0.35 + 0.3 * rng.random()),
               c * 0.62)
    else:
        _place(canvas, layer, h, shot.angle, cx, cy)
    _decorate(canvas, shot, rng)
    x0, y0, f = shot.crop
    box = (int(x0 * c), int(y0 * c), int((x0 + f) * c), int((y0 + f) * c))
    img = canvas.convert("RGB").resize(shot.size, Image.Resampling.BILINEAR, box=box)
    img = ImageEnhance.Brightness(img).enhance(shot.bright)
    img = ImageEnhance.Contrast(img).enhance(shot.contrast)
    return ImageEnhance.Color(img).enhance(shot.sat)


def jpeg_bytes(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, subsampling=JPEG_SUBSAMPLING, optimize=False,
             progressive=False)
    return buf.getvalue()
