"""The built-in demo dataset: a Shopee-format table of synthetic product postings.

`generate_demo(out)` draws every picture with PIL and writes `out/train.csv`
(posting_id, image, image_phash, title, label_group) and `out/train_images/*.jpg`, offline
and deterministically: the same seed gives byte-identical files on the same Pillow/libjpeg.

The data is built so that no single signal is enough, like the real table:
- (a) pack sizes: one product in 2-3 pack sizes (250ml / 500ml) looks the same in every
  picture (some pictures are near-identical shots); only the titles (and a small label on
  the picture) tell the label groups apart;
- (b) multi-look groups: about 15% of the postings in groups of 3+ are a quite different
  photo of the product (two-pack, flat-lay, close-up, next to its box, a room scene);
- (c) generic titles ("Botol minum murah"): the picture carries the group;
- (d) generic pictures: several products of different brands share one stock look (same
  shape, colour and a generic label); the title carries the group;
- colour variants: one brand and line in several colours or flavours, with titles that
  differ by one word.
On top of that the titles carry seller noise (prefixes, casing, typos, word order, the
quantity written several ways, Indonesian and English words) and the pictures vary in
background, crop, zoom, rotation, lighting, JPEG quality and stickers.

With `metadata=True` the generator also writes `out/demo_meta.json`: per label group the
product's attributes, its family and the hard cases it belongs to.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont
from tqdm import tqdm

__all__ = ["DEFAULT_POSTINGS", "HARD_CASES", "generate_demo", "pack_text", "plan_demo"]

DEFAULT_POSTINGS = 1600
MIN_POSTINGS = 20
HARD_CASES = ("a_pack_size", "b_multi_look", "c_generic_title", "d_generic_image",
              "colour_variant")
LAYER = 256          # side of a drawn product layer
CANVAS = 320         # side of the composition canvas (the JPEG is 256-400 px)
JPEG_SUBSAMPLING = 2  # 4:2:0, fixed

# ------------------------------------------------------------------------------ catalogue

PALETTE: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("red", "merah", (200, 32, 42)),
    ("blue", "biru", (32, 84, 192)),
    ("black", "hitam", (28, 28, 32)),
    ("white", "putih", (242, 242, 238)),
    ("green", "hijau", (40, 150, 72)),
    ("yellow", "kuning", (246, 202, 44)),
    ("pink", "pink", (240, 132, 172)),
    ("grey", "abu-abu", (132, 134, 140)),
    ("navy", "navy", (22, 38, 88)),
    ("orange", "oranye", (240, 122, 32)),
    ("purple", "ungu", (122, 62, 162)),
    ("brown", "coklat", (122, 76, 42)),
    ("maroon", "maroon", (122, 22, 42)),
    ("tosca", "tosca", (32, 170, 160)),
    ("cream", "krem", (236, 222, 186)),
    ("lime", "hijau muda", (152, 210, 62)),
)
WHITE, BLACK = (255, 255, 255), (20, 20, 24)


class Line(NamedTuple):
    kind: str
    names: tuple[str, ...]          # how sellers name the product line
    unit: str | None                # "ml", "g", "pcs" or None (no pack size)
    amounts: tuple[int, ...]        # pack sizes in ml / g / pieces
    variants: tuple[str, ...]       # flavours / types
    colour_titled: bool = False     # the colour is the variant (shoes, shirts, tumblers)


LINES: tuple[Line, ...] = (
    Line("bottle", ("Shampoo", "Sampo", "Shampo"), "ml", (170, 250, 340, 500, 680),
         ("Anti Dandruff", "Smooth Silky", "Hijab Clean", "Ginseng", "Aloe Vera", "Menthol")),
    Line("bottle", ("Sabun Cair", "Body Wash", "Sabun Mandi Cair"), "ml", (250, 400, 500, 1000),
         ("Lavender", "Rose", "Fresh", "Milk", "Sakura", "Lemon")),
    Line("bottle", ("Botol Minum", "Water Bottle", "Tumbler"), "ml", (500, 600, 750, 1000),
         ("Sport", "Kids", "Motivasi", "Anti Tumpah"), colour_titled=True),
    Line("bottle", ("Minyak Goreng", "Cooking Oil", "Minyak"), "ml", (1000, 2000),
         ("Sawit", "Kelapa", "Premium")),
    Line("bottle", ("Hand Sanitizer", "Pembersih Tangan"), "ml", (60, 100, 250, 500),
         ("Gel", "Spray", "Lemon", "Aloe")),
    Line("box", ("Teh Celup", "Tea Bag", "Teh"), "pcs", (25, 30, 50, 100),
         ("Melati", "Hijau", "Original", "Chamomile")),
    Line("box", ("Masker", "Masker Medis", "Face Mask"), "pcs", (10, 20, 50),
         ("Earloop", "Duckbill", "Hijab")),
    Line("box", ("Sereal", "Cereal", "Granola"), "g", (250, 400, 500),
         ("Coklat", "Madu", "Original", "Strawberry")),
    Line("box", ("Tisu Wajah", "Facial Tissue", "Tissue"), "pcs", (50, 100, 250),
         ("Soft", "Non Parfum", "Travel")),
    Line("jar", ("Madu", "Madu Murni", "Honey"), "g", (250, 500, 1000),
         ("Hutan", "Klanceng", "Randu", "Kelengkeng")),
    Line("jar", ("Selai", "Selai Roti", "Jam"), "g", (170, 350),
         ("Strawberry", "Blueberry", "Nanas", "Kacang")),
    Line("jar", ("Krim Wajah", "Face Cream", "Cream Wajah"), "g", (15, 30, 50),
         ("Night", "Day", "Whitening", "Acne")),
    Line("tube", ("Pasta Gigi", "Toothpaste", "Odol"), "g", (75, 120, 190),
         ("Mint", "Herbal", "Whitening", "Kids")),
    Line("tube", ("Sabun Muka", "Facial Wash", "Facial Foam"), "ml", (50, 100, 150),
         ("Acne", "Brightening", "Oil Control")),
    Line("tube", ("Sunscreen", "Sunblock", "Tabir Surya"), "ml", (30, 50, 100),
         ("Aqua Gel", "Matte", "Kids")),
    Line("bag", ("Beras", "Beras Premium", "Rice"), "g", (1000, 2000, 5000),
         ("Pandan Wangi", "Rojolele", "Organik", "Pulen")),
    Line("bag", ("Kopi Bubuk", "Ground Coffee", "Kopi"), "g", (100, 200, 250, 500, 1000),
         ("Arabika", "Robusta", "Gayo", "Toraja")),
    Line("bag", ("Keripik", "Snack Keripik", "Chips"), "g", (100, 250, 500),
         ("Pedas", "Balado", "Original", "Keju")),
    Line("bag", ("Makanan Kucing", "Cat Food"), "g", (500, 1000, 1500),
         ("Tuna", "Salmon", "Kitten", "Adult")),
    Line("can", ("Susu Kental Manis", "Condensed Milk", "SKM"), "g", (370, 490),
         ("Vanila", "Coklat")),
    Line("can", ("Minuman Soda", "Soft Drink", "Minuman Kaleng"), "ml", (250, 330),
         ("Cola", "Lemon", "Anggur", "Jeruk")),
    Line("can", ("Cat Tembok", "Wall Paint", "Cat Kayu"), "g", (1000, 5000),
         ("Matt", "Gloss")),
    Line("can", ("Biskuit Kaleng", "Kue Kaleng", "Butter Cookies"), "g", (300, 650),
         ("Butter", "Coklat", "Keju")),
    Line("shoe", ("Sepatu Sneakers", "Sneakers", "Sepatu Casual"), None, (),
         ("Pria", "Wanita", "Unisex"), colour_titled=True),
    Line("shoe", ("Sepatu Lari", "Running Shoes", "Sepatu Olahraga"), None, (),
         ("Pria", "Wanita", "Ringan"), colour_titled=True),
    Line("shoe", ("Sepatu Slip On", "Slip On", "Sepatu Santai"), None, (),
         ("Canvas", "Kanvas", "Polos"), colour_titled=True),
    Line("shirt", ("Kaos Polos", "T-Shirt", "Baju Kaos"), None, (),
         ("Cotton Combed 30s", "Oversize", "Lengan Pendek"), colour_titled=True),
    Line("shirt", ("Kaos Polo", "Polo Shirt", "Kemeja Polo"), None, (),
         ("Slim Fit", "Pique", "Kerah"), colour_titled=True),
    Line("shirt", ("Kaos Anak", "Baju Anak", "Kids T-Shirt"), None, (),
         ("Karakter", "Lucu", "Motif"), colour_titled=True),
)
KINDS = ("bottle", "box", "jar", "tube", "bag", "can", "shoe", "shirt")
KIND_WORDS = {"bottle": ("botol", "bottle"), "box": ("kotak", "box", "kemasan kotak"),
              "jar": ("toples", "jar"), "tube": ("tube", "kemasan tube"),
              "bag": ("pouch", "kemasan", "kantong"), "can": ("kaleng", "can"),
              "shoe": ("sepatu",), "shirt": ("baju", "atasan")}
GENERIC_TITLES = {
    "bottle": ("Botol minum murah", "Botol serbaguna", "botol plastik bagus",
               "Botol viral murah meriah", "Botol isi ulang", "botol kekinian"),
    "box": ("Kotak serbaguna murah", "produk kemasan kotak", "Paket hemat box",
            "barang kotak bagus"),
    "jar": ("Toples kaca murah", "jar serbaguna", "Toples bagus murah meriah", "wadah toples"),
    "tube": ("Tube kemasan murah", "produk tube bagus", "cream tube murah meriah"),
    "bag": ("Kemasan pouch murah", "Standing pouch serbaguna", "snack kemasan murah",
            "paket hemat pouch"),
    "can": ("Kaleng murah", "minuman kaleng murah", "kaleng serbaguna bagus"),
    "shoe": ("Sepatu murah", "Sepatu pria wanita murah", "sepatu sneakers murah meriah",
             "Sepatu kekinian"),
    "shirt": ("Kaos murah", "Baju kaos murah meriah", "kaos distro bagus",
              "Atasan pria wanita murah"),
}
GENERIC_FILLERS = ("barang bagus", "produk terlaris", "best seller", "murah meriah",
                   "kualitas oke", "harga grosir", "kekinian", "viral")
PREFIXES = ("[COD]", "READY STOCK", "PROMO", "ORIGINAL", "Murah!!", "BISA COD", "[READY]",
            "NEW", "SALE", "100% ORI", "TERMURAH", "[PROMO]", "Grosir", "HOT ITEM")
SUFFIXES = ("Termurah", "Bisa COD", "Ready Stock", "Promo", "Best Seller", "Murah",
            "Original 100%", "Grosir", "Free Bubble Wrap", "Halal", "BPOM", "Asli")
SIZE_WORDS = {"shoe": ("Size 39-43", "All Size", "ukuran 36-40", "Size 37-44", "size 40"),
              "shirt": ("S M L XL", "All Size Fit L", "M L XL XXL", "All Size", "ukuran XL")}
KEYWORDS = ("Premium", "Asli", "Terlaris", "Kualitas Terbaik", "Import", "Lokal", "Hemat",
            "Jumbo", "Travel Size", "Refill", "Wangi", "Segar", "Lembut", "Tahan Lama",
            "Praktis", "Higienis", "Halal MUI", "Ecer", "Kekinian", "Terbaru", "Edisi Baru",
            "Awet", "Kemasan Baru", "Best Quality", "Murah Meriah", "Harga Pabrik")
KIND_KEYWORDS = {
    "bottle": ("Anti Bocor", "BPA Free", "Isi Ulang"), "box": ("Kotak Besar", "Hemat"),
    "jar": ("Kaca", "Toples Kaca"), "tube": ("Praktis Dibawa",), "bag": ("Ziplock", "Kiloan"),
    "can": ("Kaleng Besar",), "shoe": ("Sol Karet", "Anti Slip", "Nyaman Dipakai", "Ringan"),
    "shirt": ("Bahan Adem", "Katun", "Distro", "Unisex", "Premium Cotton")}
STOCK_LABELS = ("PREMIUM", "ORIGINAL", "100% NATURAL", "BEST QUALITY", "", "")
STICKERS = ("PROMO", "SALE", "50%", "COD", "ORI", "HOT", "NEW", "-20%")
BANNERS = ("FREE ONGKIR", "100% ORIGINAL", "READY STOCK", "BISA COD", "GARANSI ASLI")
SYLLABLES = ("ka", "ra", "mi", "lo", "su", "na", "te", "vi", "zo", "be", "du", "fi", "ga",
             "ho", "ji", "ku", "le", "mo", "ne", "pa", "ri", "sa", "to", "wa", "ya", "ce",
             "dan", "rin", "tos", "mar", "vel", "kin")
BRAND_TAILS = ("", "", "", "", "x", "n", "ra", "ku", "ia", " Care", " Fresh", " Lab",
               " Mart", " Indo", " Pro")

# Group sizes like the real table (63.4% pairs, 2..51): about two thirds pairs, a tail to 50.
SIZE_VALUES = np.array([2, 3, 4, 5, 6, 7, 8, 9, *range(10, 20), *range(20, 30), *range(30, 51)])
SIZE_PROBS = np.array([0.66, 0.15, 0.07, 0.04, 0.025, 0.015, 0.01, 0.008,
                       *[0.02 / 10] * 10, *[0.008 / 10] * 10, *[0.004 / 21] * 21])
SIZE_PROBS = SIZE_PROBS / SIZE_PROBS.sum()

# ------------------------------------------------------------------------------- products


@dataclass
class Look:
    kind: str
    body: int                  # palette index
    pattern: str               # plain, stripes, dots, gradient, checks
    pattern_colour: int
    accent: tuple[int, int, int]   # label colour
    text: tuple[int, int, int]
    cap: tuple[int, int, int]
    label: str                 # band, panel, oval
    width: float               # kind-specific proportion
    period: int                # pattern period in px
    flag: bool                 # kind-specific switch (pump, high-top, window, ...)
    brand_colour: tuple[int, int, int]


@dataclass
class Product:
    brand: str
    line: int                  # index into LINES
    variant: str
    colour: int                # palette index of the colour named in titles
    amount: int | None
    look: Look
    image_text: str            # brand text printed on the product ("" = none)
    show_pack: bool
    family: int
    family_type: str           # pack, variant, stock, generic_title, plain
    keywords: tuple[str, ...] = ()   # how its sellers tend to describe it
    cases: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return LINES[self.line].kind

    @property
    def unit(self) -> str | None:
        return LINES[self.line].unit


def _pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _brand_names(rng: np.random.Generator, n: int) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        k = int(rng.integers(2, 4))
        core = "".join(_pick(rng, SYLLABLES) for _ in range(k))
        name = (core + _pick(rng, BRAND_TAILS)).strip()
        name = name[0].upper() + name[1:]
        if len(name) < 4 or name.lower() in seen:
            continue
        seen.add(name.lower())
        out.append(name)
    return out


def _lum(rgb: tuple[int, int, int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _contrast(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return BLACK if _lum(rgb) > 150 else WHITE


def _readable(fg: tuple[int, int, int], bg: tuple[int, int, int]) -> tuple[int, int, int]:
    """`fg`, or black/white when it would be hard to read on `bg`."""
    return fg if abs(_lum(fg) - _lum(bg)) >= 70 else _contrast(bg)


def _random_look(rng: np.random.Generator, kind: str, body: int | None = None) -> Look:
    body = int(rng.integers(len(PALETTE))) if body is None else body
    pcol = int(rng.integers(len(PALETTE)))
    if pcol == body:
        pcol = (pcol + 5) % len(PALETTE)
    patterns = ("plain", "stripes", "dots", "gradient", "checks")
    probs = (0.34, 0.2, 0.14, 0.22, 0.1) if kind in ("shirt", "bag", "box") else \
        (0.38, 0.22, 0.16, 0.24, 0.0)
    pattern = patterns[int(rng.choice(len(patterns), p=probs))]
    r = rng.random()
    if r < 0.35:
        accent = WHITE
    elif r < 0.5:
        accent = PALETTE[14][2]
    elif r < 0.62:
        accent = BLACK
    else:
        accent = PALETTE[int(rng.integers(len(PALETTE)))][2]
    if accent == PALETTE[body][2]:
        accent = WHITE if body != 3 else BLACK
    widths = {"bottle": (0.30, 0.42), "box": (0.42, 0.58), "jar": (0.56, 0.72),
              "tube": (0.38, 0.46), "bag": (0.52, 0.64), "can": (0.40, 0.54),
              "shoe": (0.0, 1.0), "shirt": (0.0, 1.0)}[kind]
    brand_colour = _readable(PALETTE[int(rng.integers(len(PALETTE)))][2], accent)
    return Look(
        kind=kind, body=body, pattern=pattern, pattern_colour=pcol, accent=accent,
        text=_contrast(accent), cap=PALETTE[int(rng.integers(len(PALETTE)))][2],
        label=_pick(rng, ("band", "panel", "oval", "band", "panel")),
        width=float(rng.uniform(*widths)), period=int(rng.integers(12, 30)),
        flag=bool(rng.random() < 0.45), brand_colour=brand_colour)


def _stock_look(rng: np.random.Generator, kind: str) -> Look:
    """The plain stock-photo look shared by several different products."""
    body = _pick(rng, (3, 3, 14, 11, 2, 7))   # white, cream, brown (kraft), black, grey
    look = _random_look(rng, kind, body)
    accent = WHITE if body in (2, 7, 11) else PALETTE[7][2]
    return replace(look, pattern="plain", accent=accent, text=_contrast(accent),
                   brand_colour=_contrast(accent), label="band",
                   cap=PALETTE[_pick(rng, (2, 3, 7))][2])


def _fit(look: Look, line: Line) -> Look:
    """Line-specific details of a look: polo shirts have a collar, T-shirts do not."""
    if line.kind == "shirt":
        return replace(look, flag="Polo" in line.names[0])
    return look


def _variant_of(rng: np.random.Generator, line: Line, taken: set[str]) -> tuple[str, int]:
    """(variant word, title colour index)."""
    colour = int(rng.integers(len(PALETTE)))
    if line.colour_titled:
        for _ in range(20):
            if PALETTE[colour][0] not in taken:
                break
            colour = int(rng.integers(len(PALETTE)))
        return PALETTE[colour][0], colour
    free = [v for v in line.variants if v not in taken] or list(line.variants)
    return _pick(rng, free), colour


FAMILY_TYPES = ("pack", "variant", "stock", "generic_title", "plain")
# Share of products per family type, and the mean products per family.
FAMILY_SHARE = np.array([0.16, 0.14, 0.14, 0.11, 0.45])
FAMILY_MEAN = np.array([2.3, 2.3, 4.0, 1.0, 1.0])


def _products(rng: np.random.Generator, n_groups: int) -> list[Product]:
    brands = _brand_names(rng, n_groups + 10)
    next_brand = iter(brands)
    brand_lines: dict[str, set[int]] = {}   # brand -> the lines it sells
    probs = FAMILY_SHARE / FAMILY_MEAN
    probs = probs / probs.sum()
    unit_lines = [i for i, ln in enumerate(LINES) if ln.unit and len(ln.amounts) >= 2]
    stock_kinds = ("bottle", "jar", "box", "tube", "bag", "can", "shirt")
    out: list[Product] = []
    family = 0

    def brand(li: int, exclude: set[str] | frozenset[str] = frozenset()) -> str:
        """A new brand, or (1 in 4) one that sells other lines; never two products of one
        line and brand outside a family, so every group stays tellable apart."""
        if brand_lines and rng.random() < 0.25:
            free = [b for b, lines in brand_lines.items() if li not in lines and b not in exclude]
            if free:
                b = _pick(rng, free)
                brand_lines[b].add(li)
                return b
        b = next(next_brand)
        brand_lines[b] = {li}
        return b

    def amount_of(line: Line) -> int | None:
        return int(_pick(rng, line.amounts)) if line.unit else None

    def keywords(kind: str) -> tuple[str, ...]:
        pool = KEYWORDS + KIND_KEYWORDS[kind]
        return tuple(str(pool[i]) for i in rng.choice(len(pool), 3, replace=False))

    while len(out) < n_groups:
        ftype = FAMILY_TYPES[int(rng.choice(len(FAMILY_TYPES), p=probs))]
        if ftype == "pack":
            li = int(_pick(rng, unit_lines))
            line = LINES[li]
            k = min(len(line.amounts), 2 if rng.random() < 0.7 else 3)
            amounts = sorted(int(a) for a in rng.choice(line.amounts, k, replace=False))
            b, look = brand(li), _random_look(rng, line.kind)
            variant, colour = _variant_of(rng, line, set())
            if line.colour_titled:
                look = replace(look, body=colour)
            kw = keywords(line.kind)
            for a in amounts:
                out.append(Product(b, li, variant, colour, a, look, b, True, family, ftype,
                                   kw))
        elif ftype == "variant":
            li = int(rng.integers(len(LINES)))
            line = LINES[li]
            k = 2 if rng.random() < 0.65 else 3
            if not line.colour_titled:
                k = min(k, len(line.variants))
            b, look, a = brand(li), _fit(_random_look(rng, line.kind), line), amount_of(line)
            kw = keywords(line.kind)   # siblings are described alike
            taken: set[str] = set()
            bodies: set[int] = set()
            for _ in range(k):
                variant, colour = _variant_of(rng, line, taken)
                taken.add(variant)
                body = colour if line.colour_titled else int(rng.integers(len(PALETTE)))
                while body in bodies:
                    body = (body + 3) % len(PALETTE)
                bodies.add(body)
                v_look = replace(look, body=body)
                out.append(Product(b, li, variant, colour, a, v_look, b, True, family, ftype,
                                   kw))
        elif ftype == "stock":
            kind = _pick(rng, stock_kinds)
            lines = [i for i, ln in enumerate(LINES) if ln.kind == kind]
            look = _stock_look(rng, kind)
            text = _pick(rng, STOCK_LABELS)
            same_line = rng.random() < 0.6
            li0 = int(_pick(rng, lines))
            look = _fit(look, LINES[li0])
            cluster: set[str] = set()
            for _ in range(int(rng.integers(3, 6))):
                li = li0 if same_line else int(_pick(rng, lines))
                line = LINES[li]
                variant, colour = _variant_of(rng, line, set())
                if line.colour_titled:   # a stock photo: the picture's colour, not the title's
                    variant, colour = PALETTE[look.body][0], look.body
                b = brand(li, cluster)
                cluster.add(b)
                out.append(Product(b, li, variant, colour, amount_of(line), look, text, False,
                                   family, ftype, keywords(kind)))
        else:
            li = int(rng.integers(len(LINES)))
            line = LINES[li]
            variant, colour = _variant_of(rng, line, set())
            look = _fit(_random_look(rng, line.kind, colour if line.colour_titled else None),
                        line)
            b = brand(li)
            out.append(Product(b, li, variant, colour, amount_of(line), look, b,
                               rng.random() < 0.85, family, ftype, keywords(line.kind)))
        family += 1
    out = out[:n_groups]
    # Hard-case flags from what survived the cut.
    members: dict[int, list[Product]] = {}
    for p in out:
        members.setdefault(p.family, []).append(p)
    for p in out:
        sib = members[p.family]
        if p.family_type == "pack" and len({q.amount for q in sib}) > 1:
            p.cases.append("a_pack_size")
        elif p.family_type == "variant" and len(sib) > 1:
            p.cases.append("colour_variant")
        elif p.family_type == "stock" and len(sib) > 1:
            p.cases.append("d_generic_image")
        elif p.family_type == "generic_title":
            p.cases.append("c_generic_title")
    return out


def _group_sizes(rng: np.random.Generator, n: int) -> list[int]:
    sizes: list[int] = []
    total = 0
    while total < n:
        s = int(rng.choice(SIZE_VALUES, p=SIZE_PROBS))
        sizes.append(s)
        total += s
    if n >= 500 and max(sizes) < 20:   # the long tail, even when the draw missed it
        sizes[0] = int(rng.integers(20, 51))
    while sum(sizes) > n:
        excess = sum(sizes) - n
        if sizes[-1] - excess >= 2:
            sizes[-1] -= excess
        else:
            sizes.pop()
    if sum(sizes) < n:   # at most 1 short: never leave a group of 1
        sizes[int(rng.integers(len(sizes)))] += n - sum(sizes)
    return sizes


# --------------------------------------------------------------------------------- titles


def _num(x: float, comma: bool = False) -> str:
    s = f"{x:g}"
    return s.replace(".", ",") if comma else s


def _qty(rng: np.random.Generator, amount: int, unit: str) -> str:
    a = amount
    if unit == "pcs":
        return _pick(rng, (f"isi {a}", f"{a} pcs", f"{a}pcs", f"isi {a} pcs", f"{a} Pcs",
                           f"isi {a}pcs", f"{a} lembar" if a >= 50 else f"{a} sachet"))
    big = _num(a / 1000, comma=rng.random() < 0.3)
    if unit == "ml":
        small = (f"{a}ml", f"{a} ml", f"{a}ML", f"{a} ML", f"{a}mL")
        large = (f"{big} L", f"{big}L", f"{big} liter", f"{big}ltr", f"{big} Lt")
    else:
        small = (f"{a}g", f"{a} gr", f"{a}gr", f"{a} gram", f"{a}GR", f"{a} Gram")
        large = (f"{big} kg", f"{big}kg", f"{big} KG", f"{big} kilo")
    p_large = 0.75 if a >= 1000 else (0.15 if a >= 100 else 0.0)
    return _pick(rng, large) if rng.random() < p_large else _pick(rng, small)


def pack_text(amount: int | None, unit: str | None) -> str:
    """The pack-size label printed on the product: 250ml, 1.5L, 500g, 1kg, isi 25."""
    if amount is None or unit is None:
        return ""
    if unit == "pcs":
        return f"isi {amount}"
    if unit == "ml":
        return f"{_num(amount / 1000)}L" if amount >= 1000 else f"{amount}ml"
    return f"{_num(amount / 1000)}kg" if amount >= 1000 else f"{amount}g"


def _typo(rng: np.random.Generator, title: str) -> str:
    words = title.split(" ")
    cand = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not cand:
        return title
    i = int(_pick(rng, cand))
    w = words[i]
    j = int(rng.integers(1, len(w) - 1))
    swap = rng.random() < 0.5
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:] if swap else w[:j] + w[j + 1:]
    return " ".join(words)


def _case(rng: np.random.Generator, title: str) -> str:
    r = rng.random()
    if r < 0.2:
        return title.upper()
    if r < 0.4:
        return title.lower()
    if r < 0.55:
        return title.title()
    return title


def _noise(rng: np.random.Generator, core: list[str]) -> str:
    words = [w for w in core if w]
    if len(words) > 1 and rng.random() < 0.3:
        words = [words[i] for i in rng.permutation(len(words))]
    if rng.random() < 0.45:
        words.insert(0, _pick(rng, PREFIXES))
    if rng.random() < 0.25:
        words.append(_pick(rng, SUFFIXES))
    title = _case(rng, " ".join(words))
    if rng.random() < 0.25:
        title = _typo(rng, title)
    return title


def _title(rng: np.random.Generator, p: Product) -> str:
    line = LINES[p.line]
    if "c_generic_title" in p.cases:
        core = [_pick(rng, GENERIC_TITLES[line.kind])]
        if rng.random() < 0.4:
            core.append(_pick(rng, GENERIC_FILLERS))
        if rng.random() < 0.15 and line.unit and p.amount:
            core.append(_qty(rng, p.amount, line.unit))
        return _noise(rng, core)
    name = _pick(rng, line.names)
    if rng.random() < 0.25:
        word = _pick(rng, KIND_WORDS[line.kind])
        if word.split()[-1].lower() not in name.lower():
            name = f"{word} {name}" if rng.random() < 0.5 else f"{name} {word}"
    brand = p.brand if rng.random() < 0.9 else ""
    if line.colour_titled:
        en, idn, _ = PALETTE[p.colour]
        colour = _pick(rng, (en, idn, f"warna {idn}", idn))
        style = line.variants[(p.family + p.line) % len(line.variants)]  # one per product
        style = style if rng.random() < 0.4 else ""
        variant = f"{colour} {style}".strip()
    else:
        variant = p.variant
        if rng.random() < 0.15:
            variant = f"varian {variant}"
    qty = ""
    if line.unit and p.amount is not None:
        if rng.random() < (0.95 if "a_pack_size" in p.cases else 0.8):
            qty = _qty(rng, p.amount, line.unit)
    elif line.kind in ("shoe", "shirt") and rng.random() < 0.4:
        qty = _pick(rng, SIZE_WORDS[line.kind])
    n_kw = int(rng.choice(3, p=(0.35, 0.4, 0.25)))
    kws = [p.keywords[i] for i in rng.choice(len(p.keywords), n_kw, replace=False)]
    return _noise(rng, [brand, name, variant, *kws, qty])


# -------------------------------------------------------------------------------- drawing


@cache
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font (scalable since Pillow 10.1); never a system font file."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # old Pillow or no FreeType: the bitmap font
        return ImageFont.load_default()


def _text(d: ImageDraw.ImageDraw, cx: float, cy: float, text: str, max_w: float,
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
    _text(d, cx, y0 + h * 0.3, brand.upper(), w * 0.9, h * 0.36, look.brand_colour)
    _text(d, cx, y0 + h * 0.6, sub.upper(), w * 0.85, h * 0.17, look.text, bold=False)
    _text(d, cx, y0 + h * 0.83, pack, w * 0.6, h * 0.17, look.text)


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
        _text(d, (x0 + x1) / 2, y0 + h * 0.8, pack, bw * 0.6, h * 0.1, _contrast(
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
    _text(d, 0.155 * s, 0.56 * s, brand.upper()[:6], 0.12 * s, 0.06 * s, look.text)
    _text(d, 0.45 * s, 0.9 * s, brand.upper(), 0.6 * s, 0.08 * s, (60, 60, 60))
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
    colour = _readable(look.brand_colour, PALETTE[look.body][2])
    if look.label in ("oval", "panel"):
        d.ellipse((0.4 * s, 0.3 * s, 0.6 * s, 0.5 * s), outline=colour, width=6)
        _text(d, 0.5 * s, 0.58 * s, brand.upper(), 0.42 * s, 0.09 * s, colour)
    else:
        _text(d, 0.5 * s, 0.42 * s, brand.upper(), 0.44 * s, 0.12 * s, colour)
        d.rectangle((0.33 * s, 0.52 * s, 0.67 * s, 0.545 * s), fill=colour)
    return _shade(layer, 0.1 * s, 0.9 * s, 0.2)


DRAW = {"bottle": _draw_bottle, "jar": _draw_jar, "can": _draw_can, "tube": _draw_tube,
        "bag": _draw_bag, "box": _draw_box, "shoe": _draw_shoe, "shirt": _draw_shirt}
LABEL_Y = {"bottle": 0.67, "jar": 0.6, "can": 0.54, "tube": 0.42, "bag": 0.47, "box": 0.45,
           "shoe": 0.6, "shirt": 0.45}


def _draw_product(look: Look, brand: str, sub: str, pack: str) -> Image.Image:
    mask = Image.new("L", (LAYER, LAYER), 0)
    layer = Image.new("RGBA", (LAYER, LAYER), (0, 0, 0, 0))
    return DRAW[look.kind](look, mask, ImageDraw.Draw(mask), layer, ImageDraw.Draw(layer),
                           _pattern_fill(look), brand, sub, pack)


# ----------------------------------------------------------------------------- the photos

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


def _shot(rng: np.random.Generator, layout: str = "normal") -> Shot:
    side = int(rng.integers(256, 401))
    size = (side, side) if rng.random() < 0.85 else (side, int(side * rng.uniform(0.75, 1.0)))
    zoom = rng.uniform(0.8, 1.0)
    r = rng.random()
    deco = "none" if r < 0.72 else ("sticker" if r < 0.84 else
                                    ("watermark" if r < 0.93 else "frame"))
    deco_text = {"sticker": _pick(rng, STICKERS), "frame": _pick(rng, BANNERS),
                 "none": ""}.get(deco, "")
    if deco == "watermark":
        deco_text = _pick(rng, ("TOKO ", "", "")) + "".join(
            _pick(rng, SYLLABLES) for _ in range(3)).upper() + _pick(rng, (" SHOP", " STORE",
                                                                          " OFFICIAL", ""))
    angle = float(rng.uniform(-8, 8))
    if layout == "flatlay":
        angle = float(_pick(rng, (-1, 1)) * rng.uniform(70, 105))
    return Shot(
        layout=layout, bg=_pick(rng, BACKGROUNDS), bg_a=_soft(rng), bg_b=_soft(rng),
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


def _with_shadow(layer: Image.Image) -> Image.Image:
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
        cx, cy = _pick(rng, ((c * 0.16, c * 0.16), (c * 0.84, c * 0.16), (c * 0.84, c * 0.84)))
        pts = []
        for k in range(24):
            rad = r if k % 2 == 0 else r * 0.8
            t = math.pi * 2 * k / 24
            pts.append((cx + rad * math.cos(t), cy + rad * math.sin(t)))
        colour = _pick(rng, ((220, 30, 40), (250, 180, 20), (230, 80, 20)))
        d.polygon(pts, fill=colour)
        _text(d, cx, cy, shot.deco_text, r * 1.3, r * 0.6, WHITE)
    elif shot.deco == "watermark":
        over = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        od = ImageDraw.Draw(over)
        _text(od, c / 2, c * 0.55, shot.deco_text, c * 0.8, c * 0.09, (255, 255, 255, 110))
        _text(od, c * 0.7, c * 0.94, shot.deco_text, c * 0.5, c * 0.05, (40, 40, 40, 150),
              bold=False)
        canvas.alpha_composite(over)
    elif shot.deco == "frame":
        colour = _pick(rng, ((230, 60, 30), (20, 120, 200), (250, 190, 30), (30, 30, 30)))
        w = int(c * 0.035)
        d.rectangle((0, 0, c - 1, c - 1), outline=colour, width=w)
        d.rectangle((0, int(c * 0.86), c, c), fill=colour)
        _text(d, c / 2, c * 0.93, shot.deco_text, c * 0.8, c * 0.08, _contrast(colour))


def _compose(shot: Shot, layer: Image.Image, extra: Image.Image | None, kind: str,
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
            colour = _pick(rng, ((60, 140, 60), (230, 200, 150), (200, 60, 60), (250, 250, 240)))
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


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, subsampling=JPEG_SUBSAMPLING, optimize=False,
             progressive=False)
    return buf.getvalue()


# ------------------------------------------------------------------------------ generator


def _plan(rng: np.random.Generator, n_postings: int
          ) -> tuple[list[int], list[Product], list[int]]:
    """Group sizes, one product per group and the label_group ids (the first draws of
    the seed's generator, so plan_demo and generate_demo agree)."""
    if n_postings < MIN_POSTINGS:
        raise ValueError(f"n_postings must be at least {MIN_POSTINGS}, got {n_postings}")
    sizes = _group_sizes(rng, n_postings)
    products = _products(rng, len(sizes))
    order = rng.permutation(len(products))       # products to groups, independent of size
    products = [products[i] for i in order]
    labels: list[int] = []
    seen: set[int] = set()
    while len(labels) < len(sizes):
        v = int(rng.integers(10**8, 2**32))
        if v not in seen:
            seen.add(v)
            labels.append(v)
    return sizes, products, labels


def _group_record(size: int, p: Product, label: int) -> dict:
    look = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(p.look).items()}
    look["body"] = PALETTE[p.look.body][0]
    look["pattern_colour"] = PALETTE[p.look.pattern_colour][0]
    return {"label_group": label, "size": size, "family": p.family,
            "family_type": p.family_type, "hard_cases": sorted(p.cases), "brand": p.brand,
            "kind": p.kind, "line": LINES[p.line].names[0], "variant": p.variant,
            "colour": PALETTE[p.colour][0], "amount": p.amount, "unit": p.unit,
            "pack_text": pack_text(p.amount, p.unit), "image_text": p.image_text,
            "look": look}


def plan_demo(n_postings: int = DEFAULT_POSTINGS, seed: int = 0) -> list[dict]:
    """The label groups `generate_demo` would write, without drawing anything: per group
    its size, label_group, product attributes, family and hard cases (all but
    "b_multi_look", which is decided photo by photo)."""
    sizes, products, labels = _plan(np.random.default_rng(seed), n_postings)
    return [_group_record(*args) for args in zip(sizes, products, labels, strict=True)]


def generate_demo(out: str | Path, *, n_postings: int = DEFAULT_POSTINGS, seed: int = 0,
                  progress: bool = True, metadata: bool = False) -> Path:
    """Write the demo dataset into `out` and return the path of its `train.csv`.

    `out/train.csv` has the Shopee columns (posting_id, image, image_phash, title,
    label_group; the phash is imagehash's of the written JPEG), `out/train_images/` one
    JPEG per posting, and with `metadata` `out/demo_meta.json` describes every group (see
    `plan_demo`, plus its posting ids and which of them are different-looking photos).
    The same seed and n_postings give byte-identical files (with the same Pillow, libjpeg
    and FreeType). Files of the same names are overwritten, nothing else in `out` is
    touched; the CSV is written last, so an interrupted run leaves no CSV behind.
    """
    import imagehash

    rng = np.random.default_rng(seed)
    sizes, products, labels = _plan(rng, n_postings)
    out = Path(out)
    images = out / "train_images"
    images.mkdir(parents=True, exist_ok=True)

    # Shared shots: pack-size siblings and stock clusters reuse one photo set-up.
    family_shot: dict[int, Shot] = {}
    layers: dict[tuple[int, str], Image.Image] = {}

    def layer_of(gi: int, kind: str = "") -> Image.Image:
        key = (gi, kind)
        if key not in layers:
            p = products[gi]
            look = p.look if not kind else replace(p.look, kind=kind, width=0.5, label="band")
            sub = "" if "d_generic_image" in p.cases else p.variant
            pack = pack_text(p.amount, p.unit) if p.show_pack else ""
            layers[key] = _with_shadow(_draw_product(look, p.image_text, sub, pack))
        return layers[key]

    postings: list[dict] = []
    for gi, (size, p) in enumerate(zip(sizes, products, strict=True)):
        shots: list[Shot] = []
        for j in range(size):
            if size >= 3 and j > 0 and rng.random() < 0.17:   # hard case (b)
                shot = _shot(rng, _pick(rng, LAYOUTS_ALT))
            elif shots and rng.random() < 0.18:                # the seller reused a photo
                base = shots[int(rng.integers(len(shots)))]
                shot = replace(base, quality=int(rng.integers(40, 96)),
                               size=(int(rng.integers(256, 401)),) * 2)
            elif p.family_type in ("pack", "stock") and rng.random() < 0.35:
                if p.family not in family_shot:                # one photo set-up, 2+ groups
                    family_shot[p.family] = _shot(rng)
                shot = replace(family_shot[p.family], quality=int(rng.integers(40, 96)))
            else:
                shot = _shot(rng)
            shots.append(shot)
            postings.append({"group": gi, "shot": shot, "title": _title(rng, p),
                             "deco_seed": int(rng.integers(2**31))})
    for gi in sorted({q["group"] for q in postings if q["shot"].layout != "normal"}):
        products[gi].cases.append("b_multi_look")

    row_order = rng.permutation(len(postings))
    names: set[str] = set()
    rows = []
    for n, idx in enumerate(tqdm(row_order, desc="demo images", unit="img",
                                 disable=not progress)):
        q = postings[int(idx)]
        gi, shot = q["group"], q["shot"]
        name = rng.bytes(16).hex()
        while name in names:
            name = rng.bytes(16).hex()
        names.add(name)
        extra = layer_of(gi, "box") if shot.layout == "withbox" else None
        img = _compose(shot, layer_of(gi), extra, products[gi].kind,
                       np.random.default_rng(q["deco_seed"]))
        data = _jpeg(img, shot.quality)
        (images / f"{name}.jpg").write_bytes(data)
        with Image.open(io.BytesIO(data)) as im:
            phash = str(imagehash.phash(im))
        q["posting_id"] = f"demo_{n}"
        rows.append({"posting_id": f"demo_{n}", "image": f"{name}.jpg", "image_phash": phash,
                     "title": q["title"], "label_group": labels[gi]})

    if metadata:
        _write_meta(out / "demo_meta.json", seed, sizes, products, labels, postings)
    csv = out / "train.csv"
    table = pd.DataFrame(rows, columns=["posting_id", "image", "image_phash", "title",
                                        "label_group"])
    csv.write_bytes(table.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    return csv


def _write_meta(path: Path, seed: int, sizes: list[int], products: list[Product],
                labels: list[int], postings: list[dict]) -> None:
    by_group: dict[int, list[dict]] = {}
    for q in sorted(postings, key=lambda q: int(q["posting_id"].split("_")[1])):
        by_group.setdefault(q["group"], []).append(q)
    groups = []
    for gi, args in enumerate(zip(sizes, products, labels, strict=True)):
        record = _group_record(*args)
        record["postings"] = [q["posting_id"] for q in by_group[gi]]
        record["alt_photos"] = {q["posting_id"]: q["shot"].layout for q in by_group[gi]
                                if q["shot"].layout != "normal"}
        groups.append(record)
    meta = {"seed": seed, "n_postings": sum(sizes), "n_groups": len(groups),
            "hard_cases": list(HARD_CASES), "groups": groups}
    path.write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
