"""Title features of candidate pairs, for the learned pair classifier: how alike the two
titles (as shown, explorer.core.titles) read, by rapidfuzz's C++ scorers over aligned
lists of pairs, and whether they name different numbers ("250 ml" vs "500 ml")."""

from __future__ import annotations

import re

import numpy as np
from rapidfuzz import fuzz, process

from explorer.core.spaces import search_threads

__all__ = ["TITLE_FEATURES", "title_features"]

TITLE_FEATURES = ("title.ratio", "title.token_set", "title.length_ratio",
                  "title.numbers_differ")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


def title_features(titles: np.ndarray, a: np.ndarray, b: np.ndarray) -> list[np.ndarray]:
    """The TITLE_FEATURES of the pairs (a[i], b[i]) of rows of `titles` (an object array
    or anything indexable by an integer array giving one): edit-distance similarity and
    token-set similarity in [0, 1], shorter length over longer (NaN when both are empty),
    and 1 when both name numbers and the sets of numbers differ, 0 when they are the same
    set, NaN when either names none."""
    used, inverse = np.unique(np.concatenate([a, b]), return_inverse=True)
    text = np.asarray(titles[used], dtype=object)
    ta, tb = text[inverse[:len(a)]], text[inverse[len(a):]]
    workers = search_threads()
    ratio = process.cpdist(ta, tb, scorer=fuzz.ratio, workers=workers) / 100
    token_set = process.cpdist(ta, tb, scorer=fuzz.token_set_ratio, workers=workers) / 100
    length = np.fromiter((len(t) for t in text), np.float32, len(text))
    la, lb = length[inverse[:len(a)]], length[inverse[len(a):]]
    longer = np.maximum(la, lb)
    length_ratio = np.divide(np.minimum(la, lb), longer, out=np.full(len(a), np.nan,
                                                                     np.float32),
                             where=longer > 0)
    numbers = _number_sets(text)  # per used row: -1 none, else an id of its set
    na, nb = numbers[inverse[:len(a)]], numbers[inverse[len(a):]]
    differ = np.where((na < 0) | (nb < 0), np.nan, (na != nb).astype(np.float32))
    return [ratio.astype(np.float32), token_set.astype(np.float32), length_ratio,
            differ.astype(np.float32)]


def _number_sets(text: np.ndarray) -> np.ndarray:
    """Per title an id of the set of numbers it names (a decimal comma read as a point),
    equal ids for equal sets; -1 for a title with none."""
    ids: dict[frozenset, int] = {}
    out = np.empty(len(text), np.int64)
    for i, t in enumerate(text):
        found = frozenset(x.replace(",", ".") for x in _NUMBER.findall(t))
        out[i] = ids.setdefault(found, len(ids)) if found else -1
    return out
