"""Error cases behind the mean metrics: the worst queries, the strongest false-positive
pairs and the closest missed true pairs. Vectorised over the whole scope, in row blocks on
threads. Titles are decoded for reading (explorer.core.titles), the stored ones in
title_raw columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from explorer.core.engine import NEG, Engine, Evaluation
from explorer.core.spaces import in_threads
from explorer.core.titles import decoded_titles, raw_titles

FP, MISSED = "false positive", "missed"
# rows per block of the error-cell scans: ~3 MB of (rows, C) temporaries per worker at
# C = 50, where one whole-scope mask, its np.nonzero and score gather took 1.2 s at 1M rows
BLOCK_ROWS = 1 << 16


def _top(score: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest values, largest first, ties in index order."""
    n = min(n, len(score))
    if n == 0:
        return np.zeros(0, np.int64)
    # ties keep their order (by query, then candidate): the same list every time
    return np.argsort(-score, kind="stable")[:n]


def _lowest(f1: np.ndarray, size: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n lowest f1, the larger size first among equals, then in index
    order. Only the rows at or below the n-th lowest f1 are sorted (a lexsort of all
    took 0.1 s at 1M rows)."""
    sub = np.arange(len(f1))
    if 0 < n < len(f1):
        cut = np.partition(f1, n - 1)[n - 1]
        if not np.isnan(cut):  # NaN sorts last: a NaN cut would drop every row
            sub = np.flatnonzero(f1 <= cut)
    return sub[np.lexsort((-size[sub], f1[sub]))][:n]


def worst_queries(engine: Engine, ev: Evaluation, n: int = 100) -> pd.DataFrame:
    """Lowest-F1 queries; among equal F1 the larger true groups first."""
    order = _lowest(ev.f1, ev.group_size, n)
    at = engine.rows[order]
    items = engine.bundle.items.iloc[at]
    return pd.DataFrame({
        "row": order, "posting_id": items["posting_id"].to_numpy(),
        "title": decoded_titles(engine.bundle)[at], "group_size": ev.group_size[order],
        "n_pred": ev.n_pred[order], "f1": ev.f1[order], "precision": ev.precision[order],
        "recall": ev.recall[order], "title_raw": raw_titles(engine.bundle)[at],
    })


def _error_cells(ev: Evaluation, kind: str, rows: slice) -> np.ndarray:
    """The (rows, C) mask of a block's false positives (kind FP) or missed true pairs
    among the candidates (kind MISSED)."""
    st = ev.stage
    if kind == FP:
        return ev.pred[rows] & ~st.true[rows]
    return ~ev.pred[rows] & st.true[rows] & (st.cand[rows] >= 0)


def _strong_cells(ev: Evaluation, kind: str, m: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(query, column, score), in row-major order, of each block's error cells scoring at
    least the block's m-th highest (all of a block with fewer), and the count of all error
    cells: a superset of the scope's cells scoring at least its m-th highest."""
    n, width = ev.pred.shape
    parts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}

    def run(start: int) -> None:
        rows = slice(start, min(start + BLOCK_ROWS, n))
        mask = _error_cells(ev, kind, rows)
        count = int(np.count_nonzero(mask))
        score = ev.stage.score[rows]
        # a first cut from a sample of 32 m rows: the m-th highest of their best cells is
        # no higher than the block's m-th highest cell (those m rows hold m cells at least
        # that high); the rows' bests cost 8 ms a block, the sample's a few
        step = len(mask) // (32 * m) if m > 0 else 0
        if step > 0:
            best = np.where(mask[::step], score[::step], NEG).max(axis=1)
            cut = np.partition(best, len(best) - m)[len(best) - m]
            if cut > NEG:  # else fewer than m sampled rows hold a scored cell
                mask &= score >= cut
        at = np.flatnonzero(mask)
        val = score.reshape(-1)[at]
        if len(val) > m:  # the block's own m-th highest, ties kept
            keep = val >= _mth_highest(val, m)
            at, val = at[keep], val[keep]
        q, c = np.divmod(at, width)
        parts[start] = (q + start, c, val, count)

    starts = range(0, n, BLOCK_ROWS)
    in_threads(run, starts)
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), ev.stage.score[:0, 0], 0
    q, c, val, count = zip(*(parts[s] for s in starts), strict=True)
    return np.concatenate(q), np.concatenate(c), np.concatenate(val), sum(count)


def _mth_highest(val: np.ndarray, m: int) -> np.floating:
    """The m-th highest of val (1 <= m <= len). The highest when m values tie at it
    (exact duplicate titles: 110,000 false positives at the top score at 1M rows), where
    np.partition's selection slows down (10 ms for 120,000 values a block)."""
    top = val.max()
    if np.count_nonzero(val == top) >= m:
        return top
    return np.partition(val, len(val) - m)[len(val) - m]


def _distinct(key: np.ndarray) -> int:
    """Count of distinct values (np.unique took 11 s for 10M values here, np.sort 0.65 s)."""
    key = np.sort(key)
    return int(np.count_nonzero(key[1:] != key[:-1])) + (len(key) > 0)


def _first_each(key: np.ndarray) -> np.ndarray:
    """Ascending indices of the first occurrence of each distinct value."""
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    first = np.ones(len(key), bool)
    first[1:] = sorted_key[1:] != sorted_key[:-1]
    return np.sort(order[first])


def _pairs(engine: Engine, ev: Evaluation, kind: str, n: int) -> pd.DataFrame:
    st = ev.stage
    # only the strongest pairs can be listed: keep the directed pairs scoring at least the
    # 2n-th best (each unordered pair has at most two directions), doubling the cut until
    # n distinct pairs are in; sorting all of them took 0.4 s at 100,000 postings
    m = 2 * n
    while True:
        q, c, score, total = _strong_cells(ev, kind, m)
        if m >= total:  # every error cell is in
            break
        sub = np.flatnonzero(score >= _mth_highest(score, m))
        lo = np.minimum(q[sub], st.cand[q[sub], c[sub]]).astype(np.int64)
        hi = np.maximum(q[sub], st.cand[q[sub], c[sub]])
        if _distinct(lo * len(ev.f1) + hi) >= n:
            q, c, score = q[sub], c[sub], score[sub]
            break
        m *= 2
    nb = st.cand[q, c]
    # each unordered pair once, from the side that scores it higher: candidate lists are
    # directed (b in a's top-K, not always a in b's) and Min2 / INB act per query, so a
    # pair may be an error from one side only
    order = np.argsort(-score, kind="stable")
    key = np.minimum(q, nb)[order].astype(np.int64) * len(ev.f1) + np.maximum(q, nb)[order]
    keep = order[_first_each(key)]
    q, c, nb, score = q[keep], c[keep], nb[keep], score[keep]
    pick = _top(score, n)
    q, c, nb, score = q[pick], c[pick], nb[pick], score[pick]
    ids = engine.bundle.items["posting_id"]
    ga, gb = engine.rows[q], engine.rows[nb]
    shown, raw = decoded_titles(engine.bundle), raw_titles(engine.bundle)
    out = pd.DataFrame({
        "row": q, "neighbour": nb, "posting_id": ids.iloc[ga].to_numpy(),
        "neighbour_id": ids.iloc[gb].to_numpy(),
        "score": score, "title": shown[ga], "neighbour_title": shown[gb],
    })
    for name, sims in st.sims.items():
        out[f"sim_{name}"] = sims[q, c]
    out["title_raw"], out["neighbour_title_raw"] = raw[ga], raw[gb]
    out.insert(0, "kind", kind)
    return out


def false_positives(engine: Engine, ev: Evaluation, n: int = 100) -> pd.DataFrame:
    """Predicted pairs of different products, highest score first."""
    return _pairs(engine, ev, FP, n)


def missed_pairs(engine: Engine, ev: Evaluation, n: int = 100) -> pd.DataFrame:
    """True pairs among the candidates that were not predicted, closest (highest score)
    first; pairs removed by the unit filter have score -inf and come last."""
    return _pairs(engine, ev, MISSED, n)
