"""The demo catalogue grown to millions of postings (for `precompute scale-data`): more
product lines by hand, brands with Zipf-like popularity and procedural variant names
(series words, model codes), all drawn deterministically from a seed.

A product is one label group; families of products are the demo's hard cases: one
product in several pack sizes (another group each), one brand and line in several
variants, several products sold with the same stock photo, and generic titles."""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass

import numpy as np

from precompute.demo_catalogue import (
    FAMILY_MEAN,
    FAMILY_SHARE,
    FAMILY_TYPES,
    KEYWORDS,
    KIND_KEYWORDS,
    LINES,
    PALETTE,
    SYLLABLES,
    Line,
)

EXTRA_LINES: tuple[Line, ...] = (
    Line("bottle", ("Kecap Manis", "Soy Sauce", "Kecap"), "ml", (135, 275, 520),
         ("Original", "Pedas", "Asin", "Jamur")),
    Line("bottle", ("Saus Sambal", "Chili Sauce", "Sambal Botol"), "ml", (135, 335),
         ("Extra Pedas", "Bawang", "Tomat", "Original")),
    Line("bottle", ("Deterjen Cair", "Liquid Detergent", "Sabun Cuci Cair"), "ml", (800, 1600),
         ("Lavender", "Anti Noda", "Softener", "Color")),
    Line("bottle", ("Pewangi Pakaian", "Pelembut Pakaian", "Fabric Softener"), "ml",
         (800, 1600), ("Floral", "Blue", "Pink", "Morning Fresh")),
    Line("bottle", ("Parfum", "Eau de Parfum", "Perfume"), "ml", (30, 50, 100),
         ("Vanilla", "Musk", "Oud", "Citrus", "Bubble Gum")),
    Line("bottle", ("Minyak Kayu Putih", "Eucalyptus Oil", "Minyak Telon"), "ml", (30, 60, 120),
         ("Plus", "Aromatherapy", "Bayi")),
    Line("bottle", ("Body Lotion", "Hand Body", "Lotion"), "ml", (100, 200, 400),
         ("Whitening", "Aloe", "Shea Butter", "UV")),
    Line("bottle", ("Toner Wajah", "Face Toner", "Micellar Water"), "ml", (100, 150, 400),
         ("Hydrating", "Exfoliating", "Rose", "Acne")),
    Line("bottle", ("Sirup", "Syrup", "Sirup Buah"), "ml", (460, 620),
         ("Cocopandan", "Melon", "Jeruk", "Leci")),
    Line("box", ("Popok Bayi", "Diapers", "Popok Celana"), "pcs", (20, 32, 48),
         ("S", "M", "L", "XL")),
    Line("box", ("Kapas Wajah", "Cotton Pads", "Kapas"), "pcs", (50, 100, 150),
         ("Square", "Round", "Organic")),
    Line("box", ("Kabel Data", "USB Cable", "Kabel Charger"), None, (),
         ("Type C", "Micro USB", "Lightning", "Fast Charging")),
    Line("box", ("Casing HP", "Softcase", "Case HP"), None, (),
         ("Bening", "Anti Crack", "Magsafe", "Motif")),
    Line("box", ("Charger", "Adaptor Charger", "Kepala Charger"), None, (),
         ("Fast Charging", "20W", "Dual Port", "Quick Charge")),
    Line("box", ("Earphone", "Headset", "TWS Bluetooth"), None, (),
         ("Bass", "Stereo", "Gaming", "Noise Cancelling")),
    Line("jar", ("Petroleum Jelly", "Vaseline", "Jelly"), "g", (50, 100),
         ("Original", "Aloe", "Cocoa")),
    Line("jar", ("Masker Wajah", "Clay Mask", "Masker Lumpur"), "g", (50, 100, 150),
         ("Charcoal", "Green Tea", "Rice")),
    Line("jar", ("Pomade", "Minyak Rambut", "Hair Wax"), "g", (40, 80),
         ("Water Based", "Oil Based", "Matte Clay")),
    Line("jar", ("Susu Bubuk", "Milk Powder", "Susu Formula"), "g", (400, 800),
         ("Vanila", "Madu", "Coklat", "Plain")),
    Line("tube", ("Lip Balm", "Pelembab Bibir", "Lip Care"), "g", (4, 10),
         ("Strawberry", "Mint", "Tinted")),
    Line("tube", ("Serum Wajah", "Face Serum", "Serum"), "ml", (20, 30),
         ("Vitamin C", "Niacinamide", "Retinol", "Hyaluronic")),
    Line("tube", ("Salep", "Ointment", "Salep Kulit"), "g", (10, 20),
         ("Gatal", "Luka", "Jerawat")),
    Line("bag", ("Gula Pasir", "Sugar", "Gula"), "g", (500, 1000),
         ("Putih", "Aren", "Merah")),
    Line("bag", ("Tepung Terigu", "Flour", "Tepung"), "g", (500, 1000),
         ("Protein Tinggi", "Serbaguna", "Beras")),
    Line("bag", ("Mie Instan", "Instant Noodle", "Mie"), "pcs", (5, 40),
         ("Goreng", "Kari Ayam", "Soto", "Rendang")),
    Line("bag", ("Pasir Kucing", "Cat Litter", "Pasir Gumpal"), "g", (5000, 10000),
         ("Lavender", "Apel", "Kopi", "Tofu")),
    Line("bag", ("Makanan Anjing", "Dog Food", "Dry Food Anjing"), "g", (500, 1500),
         ("Puppy", "Adult", "Beef")),
    Line("bag", ("Deterjen Bubuk", "Detergent Powder", "Sabun Cuci Bubuk"), "g", (800, 1800),
         ("Lemon", "Rose", "Anti Bakteri")),
    Line("can", ("Sarden", "Sardines", "Ikan Kaleng"), "g", (155, 425),
         ("Saus Tomat", "Saus Cabai", "Minyak")),
    Line("can", ("Kornet", "Corned Beef", "Daging Kornet"), "g", (198, 340),
         ("Sapi", "Ayam", "Original")),
    Line("can", ("Pengharum Ruangan", "Air Freshener", "Pewangi Ruangan"), "ml", (300, 400),
         ("Lemon", "Lavender", "Ocean", "Jasmine")),
    Line("shoe", ("Sandal Jepit", "Flip Flops", "Sandal"), None, (),
         ("Karet", "Pria", "Wanita"), colour_titled=True),
    Line("shoe", ("Sepatu Boots", "Boots", "Sepatu Boot"), None, (),
         ("Kulit", "Safety", "Pria"), colour_titled=True),
    Line("shoe", ("Sepatu Sekolah", "School Shoes", "Sepatu Anak"), None, (),
         ("Tali", "Perekat", "Anak"), colour_titled=True),
    Line("shirt", ("Kemeja", "Shirt", "Kemeja Pria"), None, (),
         ("Flanel", "Lengan Panjang", "Oxford"), colour_titled=True),
    Line("shirt", ("Hoodie", "Sweater Hoodie", "Jaket Hoodie"), None, (),
         ("Polos", "Zipper", "Oversize"), colour_titled=True),
    Line("shirt", ("Celana Jeans", "Jeans", "Celana Panjang"), None, (),
         ("Slim Fit", "Highwaist", "Cutbray"), colour_titled=True),
    Line("shirt", ("Hijab", "Jilbab", "Kerudung"), None, (),
         ("Segi Empat", "Pashmina", "Instan"), colour_titled=True),
    Line("shirt", ("Gamis", "Dress Muslim", "Daster"), None, (),
         ("Syari", "Busui", "Motif Bunga"), colour_titled=True),
)
ALL_LINES: tuple[Line, ...] = LINES + EXTRA_LINES

# Words sellers add to a variant name: a series of the line, or a model code.
SERIES = ("Plus", "Pro", "Max", "Mini", "Ultra", "Gold", "Silver", "Active", "Extra",
          "Classic", "Deluxe", "Natural", "Herbal", "Fresh", "Soft", "Baby", "Men", "Women",
          "Sport", "Lite", "Special", "Royal", "Super", "Double", "Nano", "Hydra", "Bright",
          "Glow", "Intense", "Daily", "Power", "Cool", "Sensitive", "Gentle", "Black",
          "Platinum", "Series", "Limited", "Signature", "Essential")
CODE_LETTERS = "ABCDEFGHJKLMNPRSTVXZ"
# Brands per product and the Zipf exponent of their popularity: set so that TF-IDF + Min2
# matching is about as hard as on the real table (see README, `precompute scale-data`).
BRANDS_PER_PRODUCT = 3.0
BRAND_ZIPF = 0.5


@dataclass(frozen=True)
class ScaleProduct:
    """One label group's product; `style` is the colour-titled lines' cut, `variant`
    everything else's flavour or type (with any series word or model code)."""
    brand: str
    line: int              # index into ALL_LINES
    variant: str
    colour: int            # palette index
    amount: int | None
    family: int
    family_type: str       # pack, variant, stock, generic_title, plain
    keywords: tuple[str, ...]


def brand_names(rng: random.Random, n: int) -> list[str]:
    """`n` distinct brand names of 2-4 syllables (lower-cased distinct)."""
    out: list[str] = []
    seen: set[str] = set()
    tails = ("", "", "", "x", "n", "ra", "ku", "ia", "o", "e", "s")
    while len(out) < n:
        k = 2 + int(rng.random() * (3 if len(seen) > 20_000 else 2))
        core = "".join(SYLLABLES[int(rng.random() * len(SYLLABLES))] for _ in range(k))
        name = core + tails[int(rng.random() * len(tails))]
        if len(name) < 4 or name in seen:
            continue
        seen.add(name)
        out.append(name.capitalize())
    return out


def _variant(rng: random.Random, line: Line) -> tuple[str, int]:
    """(variant name, palette index): colour-titled lines are named by their colour."""
    colour = int(rng.random() * len(PALETTE))
    base = PALETTE[colour][0] if line.colour_titled \
        else line.variants[int(rng.random() * len(line.variants))]
    r = rng.random()
    if r < 0.45:
        base = f"{base} {SERIES[int(rng.random() * len(SERIES))]}"
    elif r < 0.7:
        letter = CODE_LETTERS[int(rng.random() * len(CODE_LETTERS))]
        base = f"{base} {letter}{int(rng.random() * 90) + 1}"
    return base, colour


def make_scale_products(rng: random.Random, n_groups: int) -> list[ScaleProduct]:
    """`n_groups` distinct products (no two share brand, line, variant and amount), in
    families of the demo's shares; brands are popular in a Zipf-like way, so a popular
    brand's name is a weak signal, as in the real table."""
    n_brands = max(30, int(n_groups * BRANDS_PER_PRODUCT))
    brands = brand_names(rng, n_brands)
    weights = 1.0 / (np.arange(n_brands) + 20.0) ** BRAND_ZIPF
    cum = np.cumsum(weights / weights.sum()).tolist()
    probs = FAMILY_SHARE / FAMILY_MEAN
    fam_cum = np.cumsum(probs / probs.sum()).tolist()
    unit_lines = [i for i, ln in enumerate(ALL_LINES) if ln.unit and len(ln.amounts) >= 2]
    taken: set[tuple[str, int, str, int | None]] = set()
    Member = tuple[str, int, str, int, int | None]   # brand, line, variant, colour, amount
    out: list[ScaleProduct] = []

    def index(cumulative: list[float]) -> int:
        return min(bisect.bisect_right(cumulative, rng.random()), len(cumulative) - 1)

    def kws(line: Line) -> tuple[str, ...]:
        pool = KEYWORDS + KIND_KEYWORDS[line.kind]
        return tuple(rng.sample(pool, 3))

    def amount(line: Line) -> int | None:
        return line.amounts[int(rng.random() * len(line.amounts))] if line.unit else None

    def fresh(line_i: int) -> tuple[str, str, int]:
        """A brand and variant of the line not sold yet (in any amount), and its colour."""
        line = ALL_LINES[line_i]
        while True:
            b, (v, c) = brands[index(cum)], _variant(rng, line)
            if not any((b, line_i, v, a) in taken for a in (line.amounts or (None,))):
                return b, v, c

    family = 0
    while len(out) < n_groups:
        ftype = FAMILY_TYPES[index(fam_cum)]
        members: list[Member] = []
        if ftype == "pack":
            li = unit_lines[int(rng.random() * len(unit_lines))]
            line = ALL_LINES[li]
            b, v, c = fresh(li)
            k = min(len(line.amounts), 2 if rng.random() < 0.7 else 3)
            members = [(b, li, v, c, a) for a in sorted(rng.sample(line.amounts, k))]
        elif ftype == "variant":
            li = int(rng.random() * len(ALL_LINES))
            line = ALL_LINES[li]
            b, v, c = fresh(li)
            a = amount(line)
            members = [(b, li, v, c, a)]
            for _ in range(1 if rng.random() < 0.65 else 2):
                v2, c2 = _variant(rng, line)
                if (b, li, v2, a) not in taken and all(v2 != m[2] for m in members):
                    members.append((b, li, v2, c2, a))
        elif ftype == "stock":
            li0 = int(rng.random() * len(ALL_LINES))
            kind = ALL_LINES[li0].kind
            same = [i for i, ln in enumerate(ALL_LINES) if ln.kind == kind]
            for _ in range(3 + int(rng.random() * 3)):
                li = li0 if rng.random() < 0.6 else same[int(rng.random() * len(same))]
                b, v, c = fresh(li)
                members.append((b, li, v, c, amount(ALL_LINES[li])))
        else:   # generic_title, plain
            li = int(rng.random() * len(ALL_LINES))
            b, v, c = fresh(li)
            members = [(b, li, v, c, amount(ALL_LINES[li]))]
        words = kws(ALL_LINES[members[0][1]])
        for b, li, v, c, a in members:
            taken.add((b, li, v, a))
            out.append(ScaleProduct(b, li, v, c, a, family, ftype,
                                    words if ftype in ("pack", "variant") else
                                    kws(ALL_LINES[li])))
        family += 1
    return out[:n_groups]
