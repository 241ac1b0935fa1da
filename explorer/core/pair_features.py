"""Features of a scope's candidate pairs for a learned pair classifier (issue 11): what the
graph says about a pair in every modality, both ways round.

Per modality m, for the pair (query q, candidate c):
- `m.sim`: the pair's similarity (NaN where a posting has no embedding);
- `m.rank`, `m.rank_back`: c's place in q's own top-K list of m (1 = best other), q's in
  c's list (NaN: not in it);
- `m.first_q`, `m.fifth_q`, `m.first_c`, `m.fifth_c`: similarity of the 1st and 5th
  other neighbour in q's and c's own lists (how dense each neighbourhood is);
- `m.gap`: the query's best other similarity minus this pair's;
- `m.shared10`: how many postings q's and c's 10 best others share.
And `units.conflict`: 1 when the titles name different amounts of one dimension, 0 when
not, NaN when the scope has no titles; and the titles' TITLE_FEATURES
(explorer.core.title_features). Missing values are NaN (LightGBM's missing).

Optionally (`with_blended`, `explorer learn --blend`), `m.blend_sim`: the pair's
similarity after one INB step of m over its own thresholded list (the threshold stored
with the model)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from explorer.core.graph import ScopeGraph, reverse_cells
from explorer.core.spaces import in_threads
from explorer.core.title_features import TITLE_FEATURES, title_features

__all__ = ["BLENDED", "PER_MODALITY", "PairFeatures", "Scope", "feature_names",
           "pair_features", "with_blended"]

BLOCK_ROWS = 1 << 15  # pairs compared at a time for `shared10`, on threads


class Scope(Protocol):
    """What the features (and the classifier) read of a scope: explorer.core.engine's
    Engine is one. A protocol, so that the engine can use the classifier (the learned
    mode) without the two modules importing each other."""

    scope: str
    graph: ScopeGraph
    rows: np.ndarray
    data: Any            # ScopeData: its `conflicts` and `titles` (None when absent)
    has_labels: bool

    @property
    def graph_conflicts(self) -> np.ndarray: ...

    def true_mask(self, cand: np.ndarray) -> np.ndarray: ...

    def yield_point(self) -> None: ...

    def blended_sims(self, modality: str, threshold: float) -> np.ndarray: ...

PER_MODALITY = ("sim", "rank", "rank_back", "first_q", "fifth_q", "first_c", "fifth_c",
                "gap", "shared10")
SHARED = 10  # neighbours compared for `shared10`


@dataclass(frozen=True)
class PairFeatures:
    """One row per candidate pair (q, candidate column) of the scope, row-major; the
    query itself and padding are not pairs."""

    rows: np.ndarray        # (P,) scope-local query
    cols: np.ndarray        # (P,) column of the pair in the candidate graph
    names: tuple[str, ...]
    values: np.ndarray      # (P, F) float32, NaN missing

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]


@dataclass(frozen=True)
class _Lists:
    """A modality's own top-K lists read from the graph: per row the columns of its other
    neighbours best first (-1 padding), and each own cell's rank (1-based, NaN else)."""

    order: np.ndarray  # (n, W) columns, best first
    rank: np.ndarray   # (n, C) float32


BLENDED = "blend_sim"  # the optional INB-blended similarity feature, `m.blend_sim`


def with_blended(engine: Scope, f: PairFeatures, thresholds: dict[str, float]
                 ) -> PairFeatures:
    """`f` with one more column per modality of `thresholds`: `m.blend_sim`, the pair's
    similarity after one INB step of m over its own list thresholded at the given value
    (Engine.blended_sims, computed once per scope; `f` may hold any subset of its pairs)."""
    if not thresholds:
        return f
    cols = [engine.blended_sims(m, t)[f.rows, f.cols] for m, t in thresholds.items()]
    values = np.column_stack([f.values, *cols]).astype(np.float32, copy=False)
    return PairFeatures(f.rows, f.cols, f.names + tuple(f"{m}.{BLENDED}" for m in thresholds),
                        values)


def without_modalities(f: PairFeatures, leave_out: tuple[str, ...]) -> PairFeatures:
    """`f` without the columns of the modalities `leave_out` (every `m.*` feature)."""
    if not leave_out:
        return f
    keep = [i for i, n in enumerate(f.names) if n.partition(".")[0] not in leave_out]
    return PairFeatures(f.rows, f.cols, tuple(f.names[i] for i in keep), f.values[:, keep])


def feature_names(modalities: tuple[str, ...]) -> tuple[str, ...]:
    """The names `pair_features` gives its columns, in order, for these modalities."""
    return (*(f"{m}.{f}" for m in modalities for f in PER_MODALITY), "units.conflict",
            *TITLE_FEATURES)


def pair_features(engine: Scope, rows: np.ndarray | None = None,
                  between: Callable[[], None] | None = None) -> PairFeatures:
    """Every candidate pair's features (see the module docstring). With `rows` (scope-local
    queries), only the pairs of those queries: the same pairs, order and values as the full
    computation's rows for them, at a cost that grows with the rows asked for, not with the
    scope (what the app's "why" of one query needs). `between` is called after each
    modality's columns (the engine's yield point: a superseded view may stop there)."""
    g = engine.graph
    if rows is None:
        live = g.cand >= 0
        live[:, 0] = False
        qrows, cols = np.nonzero(live)
        need = None  # every row's own lists are read
    else:
        ask = np.unique(np.asarray(rows, np.int64))
        if len(ask) and (ask[0] < 0 or ask[-1] >= g.n):
            raise IndexError(f"query rows outside the scope's {g.n} rows")
        live = g.cand[ask] >= 0
        live[:, 0] = False
        at, cols = np.nonzero(live)
        qrows = ask[at]
    other = g.cand[qrows, cols].astype(np.int64)
    if rows is None:
        back = reverse_cells(g.cand.shape, qrows, cols, other)
        qi, oi = qrows, other
        cand, topk = g.cand, g.topk
    else:
        # the own lists of the queries and of their candidates only, rows renumbered
        need = np.unique(np.concatenate([qrows, other]))
        qi, oi = np.searchsorted(need, qrows), np.searchsorted(need, other)
        cand, topk = g.cand[need], g.topk[need]
        back = _reverse_cells_of(g.cand, qrows, other, oi)
    columns: list[np.ndarray] = []
    for m in g.modalities:
        raw = g.sims[m] if need is None else g.sims[m][need]
        sims = np.where(np.isfinite(raw), raw, np.nan).astype(np.float32)
        lists = _own_lists(sims, (topk & np.uint8(1 << g.modalities.index(m))) != 0)
        first, fifth = _nth_other(sims, lists.order, 0), _nth_other(sims, lists.order, 4)
        best = first
        rank_back = np.full(len(qrows), np.nan, np.float32)
        found = back >= 0
        rank_back[found] = lists.rank.ravel()[back[found]]
        columns += [sims[qi, cols], lists.rank[qi, cols], rank_back, first[qi],
                    fifth[qi], first[oi], fifth[oi], best[qi] - sims[qi, cols],
                    _shared(cand, lists.order, qi, oi)]
        if between is not None:
            between()
    if engine.data.conflicts is None:
        columns.append(np.full(len(qrows), np.nan, np.float32))
    elif rows is None:
        columns.append(engine.graph_conflicts[qrows, cols].astype(np.float32))
    else:  # the same test as the engine's graph_conflicts, on these pairs alone
        columns.append(engine.data.conflicts(engine.rows[qrows], engine.rows[other])
                       .astype(np.float32))
    if engine.data.titles is None:
        columns += [np.full(len(qrows), np.nan, np.float32)] * len(TITLE_FEATURES)
    elif not len(qrows):
        columns += [np.zeros(0, np.float32)] * len(TITLE_FEATURES)
    else:
        columns += title_features(engine.data.titles(), engine.rows[qrows],
                                  engine.rows[other])
    values = np.stack(columns, axis=1).astype(np.float32) if columns else np.zeros((0, 0))
    return PairFeatures(qrows, cols, feature_names(g.modalities), values)


def _own_lists(sims: np.ndarray, own: np.ndarray) -> _Lists:
    """Each row's own-list cells (column 0, the query, aside) best first, ties by the lower
    posting (the graph's columns are ascending after column 0, and the sort is stable)."""
    n, width = sims.shape
    valid = own & np.isfinite(sims)  # a missing similarity (NaN) is in no list
    valid[:, 0] = False
    key = np.where(valid, sims, -np.inf)
    counts = valid.sum(axis=1)
    keep = int(counts.max()) if n else 0
    order = np.argsort(-key, axis=1, kind="stable")[:, :keep]
    order = np.where(np.arange(keep) < counts[:, None], order, -1)
    rank = np.full((n, width), np.nan, np.float32)
    r, k = np.nonzero(order >= 0)
    rank[r, order[r, k]] = k + 1
    return _Lists(order, rank)


def _nth_other(sims: np.ndarray, order: np.ndarray, k: int) -> np.ndarray:
    """Per row, the similarity of its (k+1)-th best other own neighbour (NaN: none)."""
    out = np.full(len(sims), np.nan, np.float32)
    if order.shape[1] > k:
        has = order[:, k] >= 0
        out[has] = sims[np.flatnonzero(has), order[has, k]]
    return out


def _reverse_cells_of(cand: np.ndarray, rows: np.ndarray, other: np.ndarray,
                     other_at: np.ndarray) -> np.ndarray:
    """`graph.reverse_cells` for some queries' pairs only: the flat cell of (other, row) in
    arrays of the rows `other_at` renumbers `other` to (each as wide as `cand`), -1 where
    `other`'s candidates do not hold `row`. In blocks of pairs: (pairs, C) temporaries."""
    out = np.empty(len(rows), np.int64)
    for lo in range(0, len(rows), BLOCK_ROWS):
        hit = cand[other[lo:lo + BLOCK_ROWS]] == rows[lo:lo + BLOCK_ROWS, None]
        cell = other_at[lo:lo + BLOCK_ROWS] * cand.shape[1] + hit.argmax(axis=1)
        out[lo:lo + len(hit)] = np.where(hit.any(axis=1), cell, -1)
    return out


def _shared(cand: np.ndarray, order: np.ndarray, rows: np.ndarray,
            other: np.ndarray) -> np.ndarray:
    """How many of the SHARED best other neighbours of `rows` and of `other` coincide, in
    blocks of pairs on threads."""
    top = order[:, :SHARED]
    ids = np.where(top >= 0, np.take_along_axis(cand, np.maximum(top, 0), axis=1), -1)
    out = np.empty(len(rows), np.float32)

    def run(lo: int) -> None:
        a, b = ids[rows[lo:lo + BLOCK_ROWS]], ids[other[lo:lo + BLOCK_ROWS]]
        same = (a[:, :, None] == b[:, None, :]) & (a[:, :, None] >= 0)
        out[lo:lo + len(a)] = same.any(axis=2).sum(axis=1)

    in_threads(run, range(0, len(rows), BLOCK_ROWS))
    return out
