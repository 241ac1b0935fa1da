"""Matching engine: a scope's candidate graph + a MatchConfig -> every query's predicted set
and its precision / recall / F1.

Work is split by how often it changes. A *stage* (the mode's score of every candidate
pair, after the unit filter and, for INB, after blending) is cached; moving a threshold or
the Min2 threshold only re-thresholds the cached stage, which is O(N x C) numpy with no
Python loop over postings.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from explorer.core import post
from explorer.core.bundle import Bundle, BundleError
from explorer.core.config import ConfigError, MatchConfig
from explorer.core.graph import ScopeGraph, build_graph
from explorer.core.metrics import Metrics, query_metrics
from explorer.core.scope_data import ScopeData, scope_data
from explorer.core.spaces import Space, SparseSpace, in_threads

STAGE_CACHE = 8
# ...and at most this many bytes of arrays they own (EXPLORER_STAGE_CACHE_MB): at 34k
# postings a stage is ~40 MB and eight fit; at a million one is ~1.5 GB, and a count
# alone would hold 12 GB. The newest stage always stays.
STAGE_CACHE_MB = 2048
# queries re-scored per block after an INB blend: ~0.2 s of TF-IDF at 34k x 99 candidates,
# the longest a query click waits for the worker during an INB computation
RESCORE_ROWS = 4096
BLOCK_ROWS = 1 << 15  # rows of (n, C) work done at a time, on threads: temporaries stay in cache
NEG = np.float32(-np.inf)


@dataclass
class Stage:
    """Scores of every candidate pair for one step of a configuration.

    `score` is the mode's score (-inf where the pair is not eligible: padding, outside a
    single modality's top-K, removed by the unit filter); for a union, `masked` holds each
    modality's eligible similarities instead and `score` is their maximum."""

    cand: np.ndarray
    true: np.ndarray
    sims: dict[str, np.ndarray]
    score: np.ndarray
    masked: list[np.ndarray] | None = None
    conflict: np.ndarray | None = None
    spaces: dict[str, Space] | None = None
    cache: dict[str, Any] = field(default_factory=dict, repr=False)  # derived, e.g. sweeps

    def best_other(self) -> tuple[np.ndarray, np.ndarray]:
        """Column and score of each query's highest-scoring other candidate (Min2's pick)."""
        if "best" not in self.cache:
            if self.score.shape[1] > 1:
                col = np.argmax(self.score[:, 1:], axis=1) + 1
                val = self.score[np.arange(len(col)), col]
            else:
                col, val = np.zeros(len(self.score), np.int64), np.full(len(self.score), NEG)
            self.cache["best"] = (col, val)
        return self.cache["best"]


@dataclass
class Evaluation:
    """Predicted sets of every query of a scope under one configuration."""

    config: MatchConfig
    stage: Stage
    pred: np.ndarray        # (n, C) bool over stage.cand; column 0 (the query) always True
    min2_col: np.ndarray    # (n,) column Min2 added, -1 where it added nothing
    n_pred: np.ndarray
    tp: np.ndarray
    group_size: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    has_labels: bool
    # (n, C) int8: what each post-processing stage did to a cell (explorer.core.post
    # CODES; 0 untouched), None when no stage is on
    post: np.ndarray | None = None

    @property
    def metrics(self) -> Metrics | None:
        if not self.has_labels:
            return None
        return Metrics(float(self.f1.mean()), float(self.precision.mean()),
                       float(self.recall.mean()), len(self.f1))

    def metrics_tuple(self) -> tuple[float, float, float]:
        """(mean F1, mean P, mean R); NaN without labels."""
        m = self.metrics
        return (m.f1, m.precision, m.recall) if m else (np.nan, np.nan, np.nan)


def _stage_cache_bytes() -> int:
    try:
        mb = float(os.environ.get("EXPLORER_STAGE_CACHE_MB", STAGE_CACHE_MB))
    except ValueError:
        mb = STAGE_CACHE_MB
    return int(max(mb, 0) * (1 << 20))


class Engine:
    """All matching on one scope: of a bundle (`Engine(bundle, scope)`) or of any
    ScopeData (`Engine.from_data`, with `bundle` None)."""

    def __init__(self, bundle: Bundle, scope: str) -> None:
        self._setup(scope_data(bundle, scope), bundle)

    @classmethod
    def from_data(cls, data: ScopeData) -> Engine:
        engine = cls.__new__(cls)
        engine._setup(data, None)
        return engine

    def _setup(self, data: ScopeData, bundle: Bundle | None) -> None:
        self.bundle = bundle
        self.data = data
        self.graph: ScopeGraph = data.graph
        self.scope = self.graph.scope
        self.rows = self.graph.rows
        self.has_labels = data.labels is not None
        n = self.graph.n
        self.labels = (np.arange(n, dtype=np.int64) if data.labels is None
                       else np.asarray(data.labels, np.int64))
        if len(self.labels) != n:
            raise ValueError(f"scope {self.scope}: {len(self.labels)} labels for {n} rows")
        _, inverse, counts = np.unique(self.labels, return_inverse=True, return_counts=True)
        self.group_size = counts[inverse].astype(np.int64)
        self._labels32: np.ndarray | None = None  # see true_mask
        self._true0 = self.true_mask(self.graph.cand)
        self._stages: OrderedDict[tuple, Stage] = OrderedDict()
        self._spaces: dict[str, Space] = {}
        # called between the steps of an INB stage (each modality's blend, its re-scoring
        # or re-search): the app's worker answers waiting query clicks there, and may
        # raise to abandon a superseded computation (nothing half-computed is cached)
        self.checkpoint: Callable[[], None] | None = None
        self._graph_conflicts: np.ndarray | None = None
        self._derived: dict[str, np.ndarray] = {}  # a derived modality's scores, once
        self._blended: dict[tuple[str, float], np.ndarray] = {}  # see blended_sims

    @property
    def n(self) -> int:
        return self.graph.n

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.graph.modalities

    # -- building blocks --------------------------------------------------------------
    def true_mask(self, cand: np.ndarray) -> np.ndarray:
        """Pairs of one label group (padding: never). Labels as int32 with a -1 sentinel
        read at padding: one gather and one compare over the (n, C) array."""
        if self._labels32 is None:
            self._labels32 = np.append(self.labels, -1).astype(np.int32)
        lab = self._labels32
        out = np.empty(cand.shape, bool)

        def run(lo: int) -> None:  # blocks on threads: 1.0 s -> 0.3 s at 1M rows
            hi = min(lo + BLOCK_ROWS, len(cand))
            np.equal(lab[cand[lo:hi]], lab[lo:hi, None], out=out[lo:hi])

        in_threads(run, range(0, len(cand), BLOCK_ROWS))
        return out

    def conflicts(self, cand: np.ndarray) -> np.ndarray:
        """Pairs whose titles name different amounts of one dimension (never column 0)."""
        if self.data.conflicts is None:
            raise ConfigError(f"scope {self.scope}: no titles to read amounts from: the unit "
                              "filter is not available")
        glob = np.where(cand >= 0, self.rows[np.maximum(cand, 0)], -1)
        out = self.data.conflicts(np.broadcast_to(self.rows[:, None], cand.shape), glob)
        out[:, 0] = False
        return out

    @property
    def graph_conflicts(self) -> np.ndarray:
        """`conflicts` of the scope's candidate graph, computed once."""
        if self._graph_conflicts is None:
            self._graph_conflicts = self.conflicts(self.graph.cand)
        return self._graph_conflicts

    def space(self, name: str) -> Space:
        """The scope's embeddings of one modality, for INB and exact re-search. A derived
        modality (a classifier's probability) has no embedding: its space is the identity
        (each posting its own axis), so one INB step makes a posting the score-weighted
        sum of its predicted neighbours and a pair's new similarity the cosine of the two
        neighbourhoods, which is INB over the classifier's predicted neighbours."""
        if name not in self._spaces:
            if name in self._derived:
                eye = sparse.identity(self.n, dtype=np.float32, format="csr")
                self._spaces[name] = SparseSpace(eye)
            elif self.data.spaces is None:
                raise ConfigError(f"scope {self.scope}: no embeddings: INB is not available")
            else:
                self._spaces[name] = self.data.spaces(name)
        return self._spaces[name]

    def blended_sims(self, modality: str, threshold: float) -> np.ndarray:
        """(n, C): every candidate pair of the graph scored in `modality`'s space after one
        INB step over its own top-K list thresholded at `threshold` (no Min2), -inf at
        padding; computed once per (modality, threshold). The learned classifier's
        INB-blended similarity feature (explorer.core.pair_model)."""
        key = (modality, float(threshold))
        if key not in self._blended:
            cfg = MatchConfig("single", (modality,), (float(threshold),))
            st = self.stage(cfg)
            pred, _ = select(cfg, st, cfg.thresholds, None)
            space = self.space(modality).blend(blend_weights(st, pred))
            self._blended[key] = self._rescore(space, self.graph.cand)
        return self._blended[key]

    def sims(self, modality: str) -> np.ndarray:
        """The (n, C) similarity of a modality of the graph, or a derived one's scores."""
        return self._derived[modality] if modality in self._derived else \
            self.graph.sims[modality]

    def _check(self, cfg: MatchConfig) -> None:
        if cfg.spec.derived:
            name = cfg.modalities[0]
            if name not in self._derived:
                if self.data.derive is None:
                    raise ConfigError(f"scope {self.scope}: no models: the {cfg.mode} mode "
                                      "needs a bundle with one (explorer learn)")
                self._derived[name] = self.data.derive(self, name)
            return
        for m in cfg.modalities:
            if m not in self.modalities:
                raise ConfigError(f"modality {m!r} is not in this bundle "
                                  f"(it has: {', '.join(self.modalities)})")

    # -- stages ---------------------------------------------------------------------------
    @staticmethod
    def _score(cfg: MatchConfig, cand: np.ndarray, sims: dict[str, np.ndarray],
               topk: dict[str, np.ndarray] | None, conflict: np.ndarray | None
               ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """The mode's score of the pairs (explorer.core.modes), and per-modality masked
        scores for a mode thresholded per modality."""
        return cfg.spec.score(cfg, cand, sims, topk, conflict)

    def _stage0(self, cfg: MatchConfig) -> Stage:
        g = self.graph
        cand, true, sims = g.cand, self._true0, {m: self.sims(m) for m in cfg.modalities}
        conflict = self.graph_conflicts if cfg.units else None
        topk = None
        if cfg.spec.columns == "own":  # keep only the modality's own top-K columns
            flat = _own_cells(g.topk, g.modalities.index(cfg.modalities[0]))
            cand, true = _take(g.cand, flat, -1), _take(true, flat, False)
            sims = {m: _take(v, flat, NEG) for m, v in sims.items()}
            conflict = None if conflict is None else _take(conflict, flat, False)
        elif cfg.spec.columns == "each":
            topk = {m: g.topk_mask(m) for m in cfg.modalities}
        score, masked = self._score(cfg, cand, sims, topk, conflict)
        return Stage(cand, true, sims, score, masked, conflict)

    def _blend_stage(self, cfg: MatchConfig, prev: Stage, pred: np.ndarray) -> Stage:
        w = blend_weights(prev, pred)
        base = prev.spaces or {m: self.space(m) for m in cfg.modalities}
        spaces = {}
        for m in cfg.modalities:
            self.yield_point()
            spaces[m] = base[m].blend(w)
        if cfg.inb_exact:
            k = self.data.k
            knn = {}
            for m in cfg.modalities:
                self.yield_point()
                knn[m] = spaces[m].topk(k)[0]
            g = build_graph(self.scope, self.rows, spaces, knn)
            cand, sims = g.cand, g.sims
            true = self.true_mask(cand)
            conflict = self.conflicts(cand) if cfg.units else None
        else:
            cand, true, conflict = prev.cand, prev.true, prev.conflict
            sims = {m: self._rescore(spaces[m], cand) for m in cfg.modalities}
        score, masked = self._score(cfg, cand, sims, None, conflict)
        return Stage(cand, true, sims, score, masked, conflict, spaces)

    def _rescore(self, space: Space, cand: np.ndarray) -> np.ndarray:
        """Every (row, candidate) pair of `cand` scored in `space`, 1 for the query itself;
        in blocks of rows, yielding between them."""
        out = np.empty(cand.shape, np.float32)
        for start in range(0, len(cand), RESCORE_ROWS):
            self.yield_point()
            rows = np.arange(start, min(start + RESCORE_ROWS, len(cand)))
            out[rows] = space.sims(rows, cand[rows])
        out[:, 0] = 1.0
        return out

    def yield_point(self) -> None:
        """Call the checkpoint hook (if any); engine work done inside the hook does not
        call it again."""
        hook, self.checkpoint = self.checkpoint, None
        try:
            if hook is not None:
                hook()
        finally:
            self.checkpoint = hook

    @staticmethod
    def _stage_key(cfg: MatchConfig, last: int) -> tuple:
        key = (cfg.mode, cfg.modalities, cfg.fusion_weights, cfg.units)
        if last > 0:
            key += (cfg.thresholds, cfg.min2, cfg.inb[: last - 1], cfg.inb_exact)
        return key

    def is_cached(self, cfg: MatchConfig, upto: int | None = None) -> bool:
        """True when stage `upto` (default the last) is cached: evaluating cfg is then only
        a re-threshold (milliseconds), with no blending or re-search."""
        last = len(cfg.inb) if upto is None else upto
        return self._stage_key(cfg, last) in self._stages

    def stage(self, cfg: MatchConfig, upto: int | None = None) -> Stage:
        """Scores of stage `upto` (0 = before INB; default the last) of a configuration."""
        self._check(cfg)
        last = len(cfg.inb) if upto is None else upto
        key = self._stage_key(cfg, last)
        if key in self._stages:
            self._stages.move_to_end(key)
            return self._stages[key]
        if last == 0:
            st = self._stage0(cfg)
        else:
            prev = self.stage(cfg, last - 1)
            t, m2 = self._stage_params(cfg, last - 1)
            pred, _ = select(cfg, prev, t, m2)
            st = self._blend_stage(cfg, prev, pred)
        self._stages[key] = st
        budget = _stage_cache_bytes()
        while len(self._stages) > 1 and (len(self._stages) > STAGE_CACHE or sum(
                self.stage_bytes(s) for s in self._stages.values()) > budget):
            self._stages.popitem(last=False)
        return st

    def stage_bytes(self, st: Stage) -> int:
        """Bytes of the arrays a cached stage holds beyond the scope's graph (shared by all
        stages), its blended embeddings included."""
        shared = {id(self.graph.cand), id(self._true0), *map(id, self.graph.sims.values())}
        arrays = [st.cand, st.true, st.score, st.conflict, *(st.masked or ()),
                  *st.sims.values()]
        arrays += _arrays_in(list(st.cache.values()))  # sweep events, Min2 picks
        own = {id(a): a for a in arrays if a is not None and id(a) not in shared}
        total = sum(a.nbytes for a in own.values())
        for space in (st.spaces or {}).values():
            total += sum(getattr(space, name).nbytes for name in ("emb", "words")
                         if hasattr(space, name))
            mat = getattr(space, "mat", None)
            if mat is not None:
                total += mat.data.nbytes + mat.indices.nbytes + mat.indptr.nbytes
        return total

    @staticmethod
    def _stage_params(cfg: MatchConfig, s: int) -> tuple[tuple[float, ...], tuple | None]:
        if s == 0:
            return cfg.thresholds, cfg.min2
        inb = cfg.inb[s - 1]
        return (inb.threshold,), (None if inb.min2 is None else (inb.min2,))

    # -- evaluation -----------------------------------------------------------------------
    def evaluate(self, cfg: MatchConfig) -> Evaluation:
        st = self.stage(cfg)
        t, m2 = self._stage_params(cfg, len(cfg.inb))
        code = np.zeros(st.cand.shape, np.int8) if cfg.post.active else None
        pred, min2_col = select(cfg, st, t, m2, mutual=cfg.post.mutual, code=code)
        if code is not None:
            pred = post.apply_post(cfg.post, pred, st.cand, st.score, code)
        n_pred, tp = row_counts(pred, st.true)
        p, r, f = query_metrics(tp, n_pred, self.group_size)
        return Evaluation(cfg, st, pred, min2_col, n_pred, tp, self.group_size, p, r, f,
                          self.has_labels, code)

    def describe(self) -> dict[str, Any]:
        return {"scope": self.scope, "n_queries": self.n, "candidates": self.graph.cand.shape[1],
                "modalities": list(self.modalities), "has_labels": self.has_labels}


def _arrays_in(value: Any) -> list[np.ndarray]:
    """The numpy arrays inside a cached value: an array, a tuple or list of them, or a
    dataclass holding them (sweep.Events), at any depth."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, tuple | list):
        return [a for v in value for a in _arrays_in(v)]
    if hasattr(value, "__dataclass_fields__"):
        return [a for name in value.__dataclass_fields__ for a in _arrays_in(getattr(value, name))]
    return []


def row_counts(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the predicted cells and the predicted true ones (int64), in blocks of rows
    on threads (what every slider move pays: 2 passes over (n, C) at 1M)."""
    n = len(pred)
    n_pred, tp = np.empty(n, np.int64), np.empty(n, np.int64)

    def run(lo: int) -> None:
        # einsum sums short rows faster than .sum(axis=1), and the product of the two
        # masks in the same pass (no pred & true temporary)
        p = pred[lo:lo + BLOCK_ROWS].view(np.uint8)
        t = true[lo:lo + len(p)].view(np.uint8)
        n_pred[lo:lo + len(p)] = np.einsum("ij->i", p, dtype=np.int32)
        tp[lo:lo + len(p)] = np.einsum("ij,ij->i", p, t, dtype=np.int32)

    in_threads(run, range(0, n, BLOCK_ROWS))
    return n_pred, tp


def blend_weights(st: Stage, pred: np.ndarray) -> sparse.csr_matrix:
    """INB's (n, n) weights: w_ij = score of the predicted pair (i, j), w_ii = 1."""
    n = len(pred)
    rows, cols = np.nonzero(pred)
    weights = np.where(cols == 0, 1.0, st.score[rows, cols]).astype(np.float32)
    return sparse.csr_matrix((weights, (rows, st.cand[rows, cols])), shape=(n, n))


def _own_cells(topk: np.ndarray, bit: int) -> np.ndarray:
    """Per row, the flat indices (row * C + column) of the cells whose top-K bit `bit` is
    set in the (n, C) `topk`, in column order, padded with -1 to the widest row's count
    (int32 while n * C allows). In blocks of rows on threads: at a million rows the whole-
    array version spent 1.8 s of the app's start in page faults of its int64 temporaries."""
    n, c = topk.shape
    flag = np.uint8(1 << bit)
    counts = np.empty(n, np.int64)

    def count(lo: int) -> None:
        own = (topk[lo:lo + BLOCK_ROWS] & flag) != 0
        counts[lo:lo + len(own)] = np.einsum("ij->i", own.view(np.uint8), dtype=np.int64)

    starts = range(0, n, BLOCK_ROWS)
    in_threads(count, starts)
    width = int(counts.max()) if n else 0
    out = np.empty((n, width), np.int32 if n * c < np.iinfo(np.int32).max else np.int64)

    def fill(lo: int) -> None:
        r, col = np.nonzero(topk[lo:lo + BLOCK_ROWS] & flag)  # row-major: each row in order
        cells = (r + lo).astype(out.dtype) * c + col
        block = out[lo:lo + BLOCK_ROWS]
        if len(cells) == block.size:  # every row holds `width` cells (a full top-K list)
            block[:] = cells.reshape(block.shape)
        else:
            block.fill(-1)
            block[np.arange(width) < counts[lo:lo + len(block), None]] = cells

    in_threads(fill, starts)
    return out


def _take(arr: np.ndarray, cells: np.ndarray, fill) -> np.ndarray:
    """arr's values at the flat indices `cells` (fill where a cell is -1), gathered in
    blocks of rows on threads."""
    flat = np.asarray(arr).ravel()
    out = np.empty(cells.shape, flat.dtype)

    def run(lo: int) -> None:
        block = cells[lo:lo + BLOCK_ROWS]
        np.take(flat, np.maximum(block, 0), out=out[lo:lo + len(block)])
        if block.size and block.min() < 0:
            out[lo:lo + len(block)][block < 0] = fill

    in_threads(run, range(0, len(cells), BLOCK_ROWS))
    return out


def union_min2_pick(st: Stage, min2: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """A union's Min2 pick: per query the column with the best margin over its modality's
    Min2 threshold, and that margin (>= 0: the pick passes). Cached per Min2 setting."""
    key = ("union min2", tuple(min2))
    if key not in st.cache:
        margin = np.maximum.reduce([s[:, 1:] - np.float32(t) for s, t in zip(
            st.masked, min2, strict=True)])
        col = np.argmax(margin, axis=1)
        val = margin[np.arange(len(col)), col]
        st.cache = {k: v for k, v in st.cache.items() if k[0] != "union min2"}
        st.cache[key] = (col + 1, val)
    return st.cache[key]


def select(cfg: MatchConfig, st: Stage, thresholds: tuple[float, ...],
           min2: tuple[float, ...] | None, *, mutual: float | None = None,
           code: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Threshold a stage, drop the pairs not scored back at least `mutual` (if given;
    marked in `code`) and apply Min2. Returns (pred mask, Min2 column or -1)."""
    if st.masked is None:
        pred = st.score >= np.float32(thresholds[0])
    else:
        pred = st.masked[0] >= np.float32(thresholds[0])
        for s, t in zip(st.masked[1:], thresholds[1:], strict=True):
            pred |= s >= np.float32(t)
    pred[:, 0] = True
    if mutual is not None:
        if "reverse" not in st.cache:
            st.cache["reverse"] = post.reverse_scores(st.cand, st.score)
        post.mutual_filter(pred, st.cache["reverse"], mutual, code)
    min2_col = np.full(len(pred), -1, np.int64)
    if min2 is None or pred.shape[1] < 2:
        return pred, min2_col
    lonely = ~pred[:, 1:].any(axis=1)
    if st.masked is None:
        col, val = st.best_other()
        add = lonely & (val >= np.float32(min2[0]))
    else:
        col, margin = union_min2_pick(st, min2)
        add = lonely & (margin >= 0)
    rows = np.flatnonzero(add)
    pred[rows, col[rows]] = True
    min2_col[rows] = col[rows]
    if code is not None:  # a pair the mutual filter dropped may come back as Min2's pick
        code[rows, col[rows]] = post.KEPT
    return pred, min2_col


def require_labels(engine: Engine) -> None:
    if not engine.has_labels:
        raise BundleError("this bundle has no label_group: metrics need labels")
