"""Seller-style titles of demo postings: the product's words with quantities written
several ways, prefixes, promo words, casing, typos and word order."""

from __future__ import annotations

import numpy as np

from precompute.demo_catalogue import (
    GENERIC_FILLERS,
    GENERIC_TITLES,
    KIND_WORDS,
    LINES,
    PALETTE,
    PREFIXES,
    SIZE_WORDS,
    SUFFIXES,
    Line,
    Product,
    pick,
)


def _num(x: float, comma: bool = False) -> str:
    s = f"{x:g}"
    return s.replace(".", ",") if comma else s


def quantity_text(rng: np.random.Generator, amount: int, unit: str) -> str:
    a = amount
    if unit == "pcs":
        return pick(rng, (f"isi {a}", f"{a} pcs", f"{a}pcs", f"isi {a} pcs", f"{a} Pcs",
                          f"isi {a}pcs", f"{a} lembar" if a >= 50 else f"{a} sachet"))
    big = _num(a / 1000, comma=rng.random() < 0.3)
    if unit == "ml":
        small = (f"{a}ml", f"{a} ml", f"{a}ML", f"{a} ML", f"{a}mL")
        large = (f"{big} L", f"{big}L", f"{big} liter", f"{big}ltr", f"{big} Lt")
    else:
        small = (f"{a}g", f"{a} gr", f"{a}gr", f"{a} gram", f"{a}GR", f"{a} Gram")
        large = (f"{big} kg", f"{big}kg", f"{big} KG", f"{big} kilo")
    p_large = 0.75 if a >= 1000 else (0.15 if a >= 100 else 0.0)
    return pick(rng, large) if rng.random() < p_large else pick(rng, small)


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
    i = int(pick(rng, cand))
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


def seller_noise(rng: np.random.Generator, core: list[str]) -> str:
    words = [w for w in core if w]
    if len(words) > 1 and rng.random() < 0.3:
        words = [words[i] for i in rng.permutation(len(words))]
    if rng.random() < 0.45:
        words.insert(0, pick(rng, PREFIXES))
    if rng.random() < 0.25:
        words.append(pick(rng, SUFFIXES))
    title = _case(rng, " ".join(words))
    if rng.random() < 0.25:
        title = _typo(rng, title)
    return title


def generic_title(rng, line: Line, amount: int | None) -> str:
    """A title that names only the kind of product ("Botol Minum Serbaguna"), shared by
    the demo and the scale data (rng: a numpy Generator or scale_titles.FastRandom)."""
    core = [pick(rng, GENERIC_TITLES[line.kind])]
    if rng.random() < 0.4:
        core.append(pick(rng, GENERIC_FILLERS))
    if rng.random() < 0.15 and line.unit and amount:
        core.append(quantity_text(rng, amount, line.unit))
    return seller_noise(rng, core)


def product_name(rng, line: Line) -> str:
    """The line's product name, sometimes with a kind word before or after it."""
    name = pick(rng, line.names)
    if rng.random() < 0.25:
        word = pick(rng, KIND_WORDS[line.kind])
        if word.split()[-1].lower() not in name.lower():
            name = f"{word} {name}" if rng.random() < 0.5 else f"{name} {word}"
    return name


def seller_title(rng: np.random.Generator, p: Product) -> str:
    line = LINES[p.line]
    if "c_generic_title" in p.cases:
        return generic_title(rng, line, p.amount)
    name = product_name(rng, line)
    brand = p.brand if rng.random() < 0.9 else ""
    if line.colour_titled:
        en, idn, _ = PALETTE[p.colour]
        colour = pick(rng, (en, idn, f"warna {idn}", idn))
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
            qty = quantity_text(rng, p.amount, line.unit)
    elif line.kind in ("shoe", "shirt") and rng.random() < 0.4:
        qty = pick(rng, SIZE_WORDS[line.kind])
    n_kw = int(rng.choice(3, p=(0.35, 0.4, 0.25)))
    kws = [p.keywords[i] for i in rng.choice(len(p.keywords), n_kw, replace=False)]
    return seller_noise(rng, [brand, name, variant, *kws, qty])

