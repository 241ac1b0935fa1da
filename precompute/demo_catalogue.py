"""The demo's catalogue: colours, product lines, brands, title vocabulary, group sizes
shaped like the real table, and the products (with their looks) of every label group."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

import numpy as np

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


def pick(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _brand_names(rng: np.random.Generator, n: int) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        k = int(rng.integers(2, 4))
        core = "".join(pick(rng, SYLLABLES) for _ in range(k))
        name = (core + pick(rng, BRAND_TAILS)).strip()
        name = name[0].upper() + name[1:]
        if len(name) < 4 or name.lower() in seen:
            continue
        seen.add(name.lower())
        out.append(name)
    return out


def _lum(rgb: tuple[int, int, int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def contrast(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    return BLACK if _lum(rgb) > 150 else WHITE


def readable(fg: tuple[int, int, int], bg: tuple[int, int, int]) -> tuple[int, int, int]:
    """`fg`, or black/white when it would be hard to read on `bg`."""
    return fg if abs(_lum(fg) - _lum(bg)) >= 70 else contrast(bg)


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
    brand_colour = readable(PALETTE[int(rng.integers(len(PALETTE)))][2], accent)
    return Look(
        kind=kind, body=body, pattern=pattern, pattern_colour=pcol, accent=accent,
        text=contrast(accent), cap=PALETTE[int(rng.integers(len(PALETTE)))][2],
        label=pick(rng, ("band", "panel", "oval", "band", "panel")),
        width=float(rng.uniform(*widths)), period=int(rng.integers(12, 30)),
        flag=bool(rng.random() < 0.45), brand_colour=brand_colour)


def _stock_look(rng: np.random.Generator, kind: str) -> Look:
    """The plain stock-photo look shared by several different products."""
    body = pick(rng, (3, 3, 14, 11, 2, 7))   # white, cream, brown (kraft), black, grey
    look = _random_look(rng, kind, body)
    accent = WHITE if body in (2, 7, 11) else PALETTE[7][2]
    return replace(look, pattern="plain", accent=accent, text=contrast(accent),
                   brand_colour=contrast(accent), label="band",
                   cap=PALETTE[pick(rng, (2, 3, 7))][2])


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
    return pick(rng, free), colour


FAMILY_TYPES = ("pack", "variant", "stock", "generic_title", "plain")
# Share of products per family type, and the mean products per family.
FAMILY_SHARE = np.array([0.16, 0.14, 0.14, 0.11, 0.45])
FAMILY_MEAN = np.array([2.3, 2.3, 4.0, 1.0, 1.0])


def make_products(rng: np.random.Generator, n_groups: int) -> list[Product]:
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
                b = pick(rng, free)
                brand_lines[b].add(li)
                return b
        b = next(next_brand)
        brand_lines[b] = {li}
        return b

    def amount_of(line: Line) -> int | None:
        return int(pick(rng, line.amounts)) if line.unit else None

    def keywords(kind: str) -> tuple[str, ...]:
        pool = KEYWORDS + KIND_KEYWORDS[kind]
        return tuple(str(pool[i]) for i in rng.choice(len(pool), 3, replace=False))

    while len(out) < n_groups:
        ftype = FAMILY_TYPES[int(rng.choice(len(FAMILY_TYPES), p=probs))]
        if ftype == "pack":
            li = int(pick(rng, unit_lines))
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
            kind = pick(rng, stock_kinds)
            lines = [i for i, ln in enumerate(LINES) if ln.kind == kind]
            look = _stock_look(rng, kind)
            text = pick(rng, STOCK_LABELS)
            same_line = rng.random() < 0.6
            li0 = int(pick(rng, lines))
            look = _fit(look, LINES[li0])
            cluster: set[str] = set()
            for _ in range(int(rng.integers(3, 6))):
                li = li0 if same_line else int(pick(rng, lines))
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


def group_sizes(rng: np.random.Generator, n: int) -> list[int]:
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
