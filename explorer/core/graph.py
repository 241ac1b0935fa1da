"""The candidate graph of a scope: every posting's union of all modalities' top-K lists,
with the exact similarity of each pair in every modality.

Single modalities use only the pairs in their own top-K (a bit mask per modality keeps the
study's protocol exact); fusions score every pair of the union, so a pair that one
modality ranks low but another finds still gets its true fused score."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.core.bundle import Bundle
from explorer.core.spaces import Space


@dataclass
class ScopeGraph:
    """Local view of one scope. Row b is the scope's b-th posting (global row rows[b]);
    cand[b, 0] == b; -1 pads rows with fewer candidates (similarity -inf there)."""

    scope: str
    rows: np.ndarray
    cand: np.ndarray
    topk: np.ndarray
    sims: dict[str, np.ndarray]
    modalities: tuple[str, ...]

    @property
    def n(self) -> int:
        return len(self.rows)

    def topk_mask(self, modality: str) -> np.ndarray:
        return (self.topk & np.uint8(1 << self.modalities.index(modality))) != 0


UNION_BLOCK_ROWS = 1 << 16  # rows merged at a time: temporaries ~ rows x sum K_m x 40 bytes
SIMS_BLOCK_ROWS = 1 << 16  # rows whose candidate similarities are computed at a time


def reverse_cells(shape: tuple[int, int], rows: np.ndarray, cols: np.ndarray,
                  other: np.ndarray) -> np.ndarray:
    """For each pair (row, other) at cell (row, col) of an (n, C) candidate array, the flat
    cell of (other, row), -1 where `other`'s candidates do not hold `row`. The pairs'
    keys row * (n + 1) + other are sorted when the pairs come row-major with each row's
    columns ascending (a union graph, and any stage's columns taken from it): then one
    searchsorted finds every reverse pair; otherwise they are sorted first."""
    n, width = shape
    key = np.asarray(rows, np.int64) * (n + 1) + other
    if not len(key):
        return np.zeros(0, np.int64)
    flat = np.asarray(rows, np.int64) * width + cols
    if np.any(key[1:] < key[:-1]):
        order = np.argsort(key, kind="stable")
        key, flat = key[order], flat[order]
    want = np.asarray(other, np.int64) * (n + 1) + rows
    at = np.minimum(np.searchsorted(key, want), len(key) - 1)
    return np.where(key[at] == want, flat[at], -1)


def union_candidates(knn: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-modality (n, K_m) local neighbour lists (query first, -1 padding) into
    one (n, C) candidate array (query first, then ascending, -1 padding) and a uint8 mask
    whose bit m says the pair is in modality m's list. Vectorised over blocks of rows
    (rows are independent), so the temporaries stay bounded at any n."""
    if not knn or len(knn) > 8:
        raise ValueError("between 1 and 8 modalities are supported")
    n = knn[0].shape[0]
    parts = [_union_block([k[lo:lo + UNION_BLOCK_ROWS] for k in knn], lo, n)
             for lo in range(0, n, UNION_BLOCK_ROWS)]
    width = max((c.shape[1] for c, _ in parts), default=0)
    cand = np.full((n, width), -1, np.int32)
    topk = np.zeros((n, width), np.uint8)
    for lo, (c, t) in zip(range(0, n, UNION_BLOCK_ROWS), parts, strict=True):
        cand[lo:lo + len(c), :c.shape[1]] = c
        topk[lo:lo + len(c), :t.shape[1]] = t
    return cand, topk


def _union_block(knn: list[np.ndarray], first: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`union_candidates` of the rows first..first+b of an n-row scope."""
    b = knn[0].shape[0]
    cols = np.concatenate([np.asarray(k, np.int64) for k in knn], axis=1)
    owner = np.concatenate([np.full(k.shape[1], 1 << m, np.uint8) for m, k in enumerate(knn)])
    local = np.repeat(np.arange(b, dtype=np.int64), cols.shape[1])
    flat, own = cols.ravel(), np.tile(owner, b)
    ok = flat >= 0
    # key sorts each row's own entry (value 0) before its other candidates (value c + 1)
    query = local[ok] + first
    key = local[ok] * (n + 1) + np.where(flat[ok] == query, 0, flat[ok] + 1)
    uniq, inverse = np.unique(key, return_inverse=True)
    bits = np.zeros(len(uniq), np.uint8)
    np.bitwise_or.at(bits, inverse, own[ok])
    urow, uval = np.divmod(uniq, n + 1)
    uval = np.where(uval == 0, urow + first, uval - 1)
    counts = np.bincount(urow, minlength=b)
    pos = np.arange(len(uniq)) - np.repeat(np.cumsum(counts) - counts, counts)
    width = int(counts.max()) if b else 0
    cand = np.full((b, width), -1, np.int32)
    topk = np.zeros((b, width), np.uint8)
    cand[urow, pos] = uval
    topk[urow, pos] = bits
    return cand, topk


def build_graph(scope: str, rows: np.ndarray, spaces: dict[str, Space],
                knn: dict[str, np.ndarray]) -> ScopeGraph:
    """Union the local top-K lists and score every candidate pair in every space."""
    names = tuple(spaces)
    cand, topk = union_candidates([knn[m] for m in names])
    sims = {m: np.empty(cand.shape, np.float32) for m in names}
    for lo in range(0, len(rows), SIMS_BLOCK_ROWS):  # bounded temporaries at any n
        queries = np.arange(lo, min(lo + SIMS_BLOCK_ROWS, len(rows)))
        for m in names:
            sims[m][queries] = spaces[m].sims(queries, cand[queries])
    for m in names:  # a posting is always its own perfect match, even an empty title
        sims[m][:, 0] = np.maximum(sims[m][:, 0], 1.0)
    return ScopeGraph(scope, np.asarray(rows), cand, topk, sims, names)


def to_global(local: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.where(local >= 0, rows[np.maximum(local, 0)], -1).astype(np.int32)


def to_local(glob: np.ndarray, rows: np.ndarray, n_items: int) -> np.ndarray:
    """Scope-local rows of global ones (-1 stays -1). A scope of every row is its own
    local numbering: the array itself is returned (no copy of a memory-mapped graph)."""
    if len(rows) == n_items and (n_items == 0 or (rows[0] == 0 and rows[-1] == n_items - 1)):
        return np.asarray(glob, np.int32)  # rows are sorted and distinct: 0..n-1
    g2l = np.full(n_items, -1, np.int32)
    g2l[rows] = np.arange(len(rows), dtype=np.int32)
    return np.where(glob >= 0, g2l[np.maximum(glob, 0)], -1).astype(np.int32)


def load_graph(bundle: Bundle, scope: str) -> ScopeGraph:
    rows = bundle.scope_rows(scope)
    files = bundle.graph_files(scope)
    names = tuple(m.name for m in bundle.manifest.modalities)
    cand = to_local(np.asarray(bundle.array(files["cand"])), rows, bundle.n_items)
    sims = {m: np.asarray(bundle.array(files["sims"][m])) for m in names}
    return ScopeGraph(scope, rows, cand, np.asarray(bundle.array(files["topk"])), sims, names)
