"""Seller-style titles of the scale data's postings: the demo's title noise
(demo_titles: quantities written several ways, prefixes, promo words, casing, typos, word
order) on the scaled catalogue's products, drawn with Python's fast scalar generator."""

from __future__ import annotations

import random

from precompute.demo_catalogue import (
    PALETTE,
    SIZE_WORDS,
    pick,
)
from precompute.demo_titles import generic_title, product_name, quantity_text, seller_noise
from precompute.scale_catalogue import ALL_LINES, ScaleProduct


class FastRandom(random.Random):
    """Python's Mersenne Twister with the few numpy Generator methods the demo's title
    functions call: a scalar draw costs ~50 ns here against ~1 us in numpy, which is
    what makes a million titles take seconds. Deterministic for a seed."""

    def integers(self, low: int, high: int | None = None) -> int:
        if high is None:
            low, high = 0, low
        return low + int(self.random() * (high - low))

    def permutation(self, n: int) -> list[int]:
        order = list(range(n))
        self.shuffle(order)
        return order


# Sellers copy each other: a later posting of a group repeats an earlier one's title (as
# is, or re-cased with a promo word), which the real table's groups show often.
COPY_TITLE = 0.5


def group_titles(rng: FastRandom, p: ScaleProduct, size: int) -> list[str]:
    """The titles of the `size` postings of product `p`'s group."""
    titles: list[str] = []
    for _ in range(size):
        if titles and rng.random() < COPY_TITLE:
            title = titles[int(rng.random() * len(titles))]
            if rng.random() < 0.5:
                title = seller_noise(rng, [title])
            titles.append(title)
        else:
            titles.append(scale_title(rng, p))
    return titles


def scale_title(rng: FastRandom, p: ScaleProduct) -> str:
    """One seller's title of product `p` (rng: a FastRandom or a numpy Generator)."""
    line = ALL_LINES[p.line]
    if p.family_type == "generic_title":
        return generic_title(rng, line, p.amount)
    name = product_name(rng, line)
    brand = p.brand if rng.random() < 0.9 else ""
    variant = p.variant
    if line.colour_titled:   # "red Plus": the colour in English or Indonesian, then the rest
        en, idn, _ = PALETTE[p.colour]
        colour = pick(rng, (en, idn, f"warna {idn}", idn))
        variant = f"{colour}{variant[len(en):]}"
    elif rng.random() < 0.15:
        variant = f"varian {variant}"
    qty = ""
    if line.unit and p.amount is not None:
        if rng.random() < (0.95 if p.family_type == "pack" else 0.8):
            qty = quantity_text(rng, p.amount, line.unit)
    elif line.kind in SIZE_WORDS and rng.random() < 0.4:
        qty = pick(rng, SIZE_WORDS[line.kind])
    r = rng.random()
    n_kw = 0 if r < 0.35 else (1 if r < 0.75 else 2)
    kws = rng.sample(p.keywords, n_kw)
    return seller_noise(rng, [brand, name, variant, *kws, qty])
