"""Checks of a bundle's arrays: shapes, dtypes, ranges, sort order, no repeated
candidate, the top-K bits; each raises BundleError naming the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from explorer.core.bundle.items import first
from explorer.core.bundle.schema import (
    COSINE_TOLERANCE,
    NORM_TOLERANCE,
    SCORE_TOLERANCE,
    BundleError,
    Modality,
)


def check_shape(where: Path, arr: np.ndarray, shape: tuple, dtype: Any) -> None:
    ok = len(arr.shape) == len(shape) and all(s is None or a == s for a, s in zip(
        arr.shape, shape, strict=True))
    if not ok:
        raise BundleError(f"{where}: shape {arr.shape}, expected {shape}")
    if dtype is not None and arr.dtype != dtype:
        raise BundleError(f"{where}: dtype {arr.dtype}, expected {np.dtype(dtype)}")


def _score_range(mod: Modality) -> tuple[float, float, str]:
    if mod.storage == "bits":
        return -SCORE_TOLERANCE, 1 + SCORE_TOLERANCE, "1 - hamming / 64"
    return -1 - COSINE_TOLERANCE, 1 + COSINE_TOLERANCE, "a cosine"


def check_range(where: Path, sim: np.ndarray, mask: np.ndarray, mod: Modality,
                 allowed: np.ndarray | None = None) -> None:
    """Similarities of the pairs in `mask` finite and in the modality's range, except -inf
    where `allowed` holds. Elementwise masks: no copy of the selected values."""
    lo, hi, what = _score_range(mod)
    bad = mask & ~((sim >= lo) & (sim <= hi))  # NaN and infinities fail both comparisons
    if allowed is not None:
        bad &= ~allowed
    if bad.any():
        b, c = np.argwhere(bad)[0]
        value = sim[b, c]
        if not np.isfinite(value):
            raise BundleError(f"{where}: row {b}: contains NaN or infinite values ({value})")
        raise BundleError(f"{where}: row {b}: similarity {value:.6g} out of range "
                          f"[{lo:.4g}, {hi:.4g}] of {what}")


def check_scores(where: Path, sims: np.ndarray, cand: np.ndarray, valid: np.ndarray,
                  rows: np.ndarray, present: np.ndarray | None, mod: Modality) -> None:
    """A graph's similarities of real pairs: in range, the query's own 1, and -inf exactly
    where a posting of the pair has no embedding in that modality (an image that could not
    be decoded): a fusion counts -inf as 0, so a finite value there would be used."""
    neg = valid & np.isneginf(sims)
    if present is None:
        if neg.any():
            b = first(neg.any(axis=1))
            raise BundleError(f"{where}: row {b}: -inf for a pair whose postings both have "
                              f"an embedding in {mod.name!r}")
    else:
        absent = valid & (~present[rows][:, None] | ~present[np.maximum(cand, 0)])
        absent[:, 0] = False
        if (neg & ~absent).any():
            b = first((neg & ~absent).any(axis=1))
            raise BundleError(f"{where}: row {b}: -inf for a pair whose postings both have "
                              f"an embedding in {mod.name!r}")
        if (absent & ~neg).any():
            b = first((absent & ~neg).any(axis=1))
            raise BundleError(f"{where}: row {b}: a finite similarity for a posting without "
                              f"an embedding in {mod.name!r} (must be -inf)")
    check_range(where, sims, valid, mod, allowed=neg)
    low = sims[:, 0] < 1 - SCORE_TOLERANCE
    if low.any():
        b = first(low)
        raise BundleError(f"{where}: row {b}: the query's own similarity is "
                          f"{sims[b, 0]:.6g}, not 1")


def check_finite(where: Path, arr: np.ndarray, mask: np.ndarray | None) -> None:
    vals = arr if mask is None else arr[mask]
    if not np.isfinite(vals).all():
        raise BundleError(f"{where}: contains NaN or infinite values")


def check_index_array(where: Path, idx: np.ndarray, rows: np.ndarray, inside: np.ndarray,
                       shape: tuple) -> np.ndarray:
    """Global rows of the scope, the query first, -1 padding only at the end of a row;
    returns the array read into memory."""
    check_shape(where, idx, shape, np.int32)
    idx = np.asarray(idx)
    n_items = len(inside)
    if idx.min(initial=0) < -1 or idx.max(initial=0) >= n_items:
        raise BundleError(f"{where}: neighbour index out of range 0..{n_items - 1}")
    valid = idx >= 0
    if not inside.all() and not (inside[np.maximum(idx, 0)] | ~valid).all():
        raise BundleError(f"{where}: neighbour outside its scope")
    if idx.shape[1] == 0 or not np.array_equal(idx[:, 0], rows):
        raise BundleError(f"{where}: the first neighbour of each query must be the query")
    gap = valid[:, 1:] & ~valid[:, :-1]
    if gap.any():
        raise BundleError(f"{where}: row {first(gap.any(axis=1))}: -1 padding before a "
                          "neighbour (padding only ends a row)")
    return idx


def check_no_repeats(where: Path, idx: np.ndarray, rows: np.ndarray, *,
                      ascending: bool = False) -> np.ndarray:
    """No posting twice in a row (a repeat would count twice in precision and recall).
    With `ascending` the entries after the query must be strictly ascending (the graph's
    order), else they are sorted per row. Returns the entries after the query, sorted per
    row (-1 padding first with a sort, last when ascending)."""
    rest = idx[:, 1:]
    again = rest == rows[:, None]
    if again.any():
        b = first(again.any(axis=1))
        raise BundleError(f"{where}: row {b} lists its query (global row {rows[b]}) again")
    if ascending:
        bad = (rest[:, 1:] >= 0) & (rest[:, 1:] <= rest[:, :-1])
        if bad.any():
            b = first(bad.any(axis=1))
            raise BundleError(f"{where}: row {b}: candidates after the query are not strictly "
                              "ascending (a posting listed twice, or out of order)")
        return rest
    ordered = np.sort(rest, axis=1)
    twice = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    if twice.any():
        b, c = np.argwhere(twice)[0]
        raise BundleError(f"{where}: row {b} lists global row {ordered[b, c + 1]} twice")
    return ordered


def check_topk_bits(where: Path, topk: np.ndarray, cand: np.ndarray,
                     lists: dict[str, np.ndarray]) -> None:
    """Bit m of a candidate is set exactly when the pair is in modality m's top-K list, so
    the candidates are the union of the lists and a single modality uses its own list."""
    full = (1 << len(lists)) - 1
    if topk.max(initial=0) > full:
        raise BundleError(f"{where}: bits set beyond the bundle's {len(lists)} modalities")
    if (topk[:, 0] != full).any():
        b = first(topk[:, 0] != full)
        raise BundleError(f"{where}: row {b}: the query must be in every modality's top-K")
    # a candidate is in some list, padding in none
    odd = (topk != 0) != (cand >= 0)
    if odd.any():
        b = first(odd.any(axis=1))
        raise BundleError(f"{where}: row {b}: a candidate in no top-K list, or -1 padding "
                          "marked as in one")
    rest = cand[:, 1:]
    for m, (name, neighbours) in enumerate(lists.items()):
        mine = (topk[:, 1:] & np.uint8(1 << m)) != 0
        listed = neighbours >= 0
        counts = mine.sum(axis=1)
        differ = counts != listed.sum(axis=1)
        if not differ.any():
            # both sides are ascending per row with equal counts: compare them flat
            a, b = rest[mine], neighbours[listed]
            if not np.array_equal(a, b):
                at = first(a != b)
                differ = np.zeros(len(counts), bool)
                differ[np.searchsorted(np.cumsum(counts), at, side="right")] = True
        if differ.any():
            raise BundleError(f"{where}: row {first(differ)}: the bits of {name!r} do not "
                              f"match its top-K list")


def check_unit_rows(where: Path, arr: np.ndarray, present: np.ndarray | None) -> None:
    step = 65536
    for start in range(0, len(arr), step):
        block = np.asarray(arr[start:start + step], dtype=np.float32)
        if not np.isfinite(block).all():
            raise BundleError(f"{where}: contains NaN or infinite values")
        norms = np.linalg.norm(block, axis=1)
        expect = np.ones(len(block), bool) if present is None else present[start:start + step]
        bad = np.where(expect, np.abs(norms - 1) > NORM_TOLERANCE, norms != 0)
        if bad.any():
            raise BundleError(
                f"{where}: row {start + int(np.flatnonzero(bad)[0])} is not L2-normalised"
            )
