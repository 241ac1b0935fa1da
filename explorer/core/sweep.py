"""Threshold sweeps: mean P / R / F1 at many values of one threshold at once.

Lowering a threshold admits pairs one at a time, and each admission changes its query's
F1 / P / R by an amount that depends only on how many pairs (and true pairs) of that
query score higher. So every candidate pair becomes an *event* with a score and three
deltas (computed once per stage from a per-row sort, and cached); the mean metric at a
threshold t is the base value plus the sum of the deltas of events scoring >= t, which is
one `searchsorted` and weighted `bincount` over the events and a cumulative sum over the
thresholds. No (N x T) array, no Python loop over queries or thresholds. Ties are exact:
a threshold never separates equal scores, and the deltas of a tied run telescope.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from explorer.core.config import InbStage, MatchConfig
from explorer.core.engine import Engine, Stage, select, union_min2_pick
from explorer.core.metrics import query_metrics
from explorer.core.spaces import in_threads, search_threads


@dataclass
class Sweep:
    param: str
    values: np.ndarray
    f1: np.ndarray
    precision: np.ndarray
    recall: np.ndarray

    @property
    def best(self) -> int:
        return int(np.argmax(self.f1))


@dataclass
class Events:
    """Per-pair admissions of one (n, m) score array, see the module docstring."""

    score: np.ndarray     # (E,) float32, the finite scores
    delta: tuple[np.ndarray, ...]  # 3 x (E,): change of F1, P, R of the pair's query
    base: np.ndarray      # (3,) mean F1, P, R with no finite pair admitted
    row_max: np.ndarray   # (n,) best score of a query's pairs (+inf when one is fixed)
    n: int


EVENT_BLOCK_ROWS = 8192  # rows whose events are computed at a time: the (b, m) temporaries
# stay in cache, where whole (n, m) arrays cost page faults that dominated at 1M rows


def events(eff: np.ndarray, true: np.ndarray, group_size: np.ndarray,
           between: Callable[[], None] | None = None) -> Events:
    """Events of (n, m) pair scores (the query's own column excluded); +inf marks pairs
    admitted regardless of the threshold, -inf pairs never admitted.

    Deltas are float32 (summed in float64): sweep means agree with `Engine.evaluate` to
    about 1e-6, ample for plotting and for choosing thresholds; reported metrics always
    come from `evaluate`. Rows are independent: computed in blocks on `search_threads()`
    threads, concatenated in row order (the result does not depend on either);
    `between()` is called between batches of blocks (the engine's checkpoint: a job may
    stop there)."""
    n = len(eff)
    starts = range(0, n, EVENT_BLOCK_ROWS)
    parts: dict[int, tuple] = {}

    def run(lo: int) -> None:
        hi = min(lo + EVENT_BLOCK_ROWS, n)
        parts[lo] = _events_block(eff[lo:hi], true[lo:hi], group_size[lo:hi])

    batch = search_threads()  # one block a thread between checks: ~10 ms at 1M rows
    for first in range(0, len(starts), batch):
        if between is not None and first:
            between()
        in_threads(run, starts[first:first + batch])
    blocks = [parts[lo] for lo in starts]
    if not blocks:
        empty = np.zeros(0, np.float32)
        return Events(empty, (empty, empty, empty), np.zeros(3), empty, 0)
    score = np.concatenate([b[0] for b in blocks])
    delta = tuple(np.concatenate([b[1][i] for b in blocks]) for i in range(3))
    base = np.sum([b[2] for b in blocks], axis=0) / n
    row_max = np.concatenate([b[3] for b in blocks])
    return Events(score, delta, base, row_max, n)


def _events_block(eff: np.ndarray, true: np.ndarray, group_size: np.ndarray
                  ) -> tuple[np.ndarray, tuple[np.ndarray, ...], np.ndarray, np.ndarray]:
    """(scores, deltas, sums of the base F1 / P / R, row maxima) of a block of rows."""
    n = len(eff)
    order = np.argsort(-eff, axis=1)  # any order among ties gives the same sums
    s = np.take_along_axis(eff, order, axis=1)
    t = np.take_along_axis(true, order, axis=1)
    row_max = s[:, 0].copy() if s.shape[1] else np.full(n, -np.inf, np.float32)
    # never-admitted pairs sort last: drop the columns that hold only those
    width = int((s > -np.inf).sum(axis=1).max()) if s.size else 0
    s, t = s[:, :width], t[:, :width]
    tp_before = np.cumsum(t, axis=1, dtype=np.int32)
    tp_before -= t
    if width and np.isposinf(s[:, 0]).any():  # rows are sorted: fixed pairs lead
        fixed = s == np.inf
        n_fixed, tp_fixed = fixed.sum(axis=1), (t & fixed).sum(axis=1)
    else:
        n_fixed = tp_fixed = np.zeros(n, np.int64)
    p0, r0, f0 = query_metrics(1 + tp_fixed, 1 + n_fixed, group_size)
    # before admitting sorted column p, the query predicts itself and the p pairs ranked
    # above it (fixed ones sort first), tp of them true
    gs = group_size.astype(np.float32)[:, None]
    cnt = np.arange(1, width + 1, dtype=np.float32)[None, :]
    den = gs + cnt
    before = tp_before.astype(np.float32)
    before += 1
    after = before + t
    d_f1 = np.divide(after, den + 1)
    d_f1 -= np.divide(before, den, out=den)
    d_f1 *= 2
    d_p = np.divide(after, cnt + 1, out=after)
    d_p -= np.divide(before, cnt, out=before)
    d_r = np.divide(t, gs, dtype=np.float32)
    if width and np.isfinite(s[:, 0]).all() and np.isfinite(s[:, -1]).all():  # sorted rows
        score, delta = s.ravel(), (d_f1.ravel(), d_p.ravel(), d_r.ravel())
    else:
        live = np.isfinite(s)
        score, delta = s[live], (d_f1[live], d_p[live], d_r[live])
    return score, delta, np.array([f0.sum(), p0.sum(), r0.sum()]), row_max


def _bins_desc(values_desc: np.ndarray, x: np.ndarray) -> np.ndarray:
    """How many of the decreasing `values_desc` are > x, for every x. A uniform grid
    (the usual case) is binned arithmetically, then corrected by one comparison on each
    side, which makes it exact; other grids use searchsorted."""
    T = len(values_desc)
    step = (values_desc[0] - values_desc[-1]) / (T - 1) if T > 1 else 0.0
    if T < 3 or step <= 0 or not np.allclose(np.diff(values_desc), -step, rtol=1e-4,
                                             atol=0):
        return np.searchsorted(-values_desc, -x, side="left")
    y = np.subtract(values_desc[0], x, dtype=np.float32)
    y /= np.float32(step)
    np.ceil(y, out=y)
    np.clip(y, 0, T, out=y)
    j = y.astype(np.intp)
    # exact: j is right iff values[j-1] > x (or j == 0) and values[j] <= x (or j == T);
    # NaN at both ends makes the j == 0 and j == T comparisons false
    padded = np.concatenate([[np.nan], values_desc, [np.nan]]).astype(np.float32)
    j -= padded[:-1][j] <= x   # values[j-1]
    j += padded[1:][j] > x     # values[j]
    return j


def sweep_events(ev: Events, values: np.ndarray, group_size: np.ndarray,
                 min2_pick: tuple[np.ndarray, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (F1, P, R) at each threshold of `values` (any order).

    `min2_pick` = (the query's Min2 pick passes, the pick is true): the pick is added to
    queries that admit nothing else, i.e. whose best pair scores below the threshold."""
    values = np.asarray(values, np.float32)
    order = np.argsort(-values, kind="stable")
    vd = values[order]
    T = len(vd)
    out = np.cumsum(_binned_deltas(ev, vd), axis=1)[:, :T] / ev.n + ev.base[:, None]
    if min2_pick is not None:
        passes, best_true = min2_pick
        gain = np.stack(min2_gain(group_size, best_true))[:, passes]
        b = _bins_desc(vd, ev.row_max[passes])  # lonely at vd[k] for every k < b
        for i in range(3):
            out[i] += np.cumsum(np.bincount(b, weights=gain[i], minlength=T + 1)[::-1]
                                )[::-1][1:] / ev.n
    res = np.empty_like(out)
    res[:, order] = out
    return res[0], res[1], res[2]


SWEEP_CHUNK = 1 << 22  # events binned at a time (bounded float64 temporaries)


def _binned_deltas(ev: Events, values_desc: np.ndarray) -> np.ndarray:
    """(3, T + 1) sums of the F1 / P / R deltas of the events first admitted at each of
    the decreasing `values_desc` (an event is admitted at values_desc[k] for every k >= its
    bin); chunks of events binned on threads, their sums added."""
    T = len(values_desc)
    starts = range(0, len(ev.score), SWEEP_CHUNK)
    sums: dict[int, np.ndarray] = {}

    def run(lo: int) -> None:
        j = _bins_desc(values_desc, ev.score[lo:lo + SWEEP_CHUNK])
        sums[lo] = np.stack([np.bincount(j, weights=d[lo:lo + SWEEP_CHUNK], minlength=T + 1)
                             for d in ev.delta])

    in_threads(run, starts)
    return np.sum([sums[lo] for lo in starts], axis=0) if sums else np.zeros((3, T + 1))


def stage_events(st: Stage, group_size: np.ndarray,
                 between: Callable[[], None] | None = None) -> Events:
    """The cached events of a non-union stage's own score."""
    if st.cache.get("events") is None:
        st.cache["events"] = events(st.score[:, 1:], st.true[:, 1:], group_size, between)
    return st.cache["events"]


def min2_gain(group_size: np.ndarray, best_true: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per query, the change of (F1, P, R) when Min2 adds its pick to a lonely query."""
    t = best_true.astype(np.float64)
    p0, r0, f0 = query_metrics(1, 1, group_size)
    p1, r1, f1 = query_metrics(1 + t, 2, group_size)
    return f1 - f0, p1 - p0, r1 - r0


def sweep(engine: Engine, cfg: MatchConfig, param: str, values: np.ndarray) -> Sweep:
    """Mean metrics of `cfg` with one parameter set to each of `values`.

    param: "threshold" (single, sum, prob), "threshold:<modality>" (union), "min2",
    "min2:<modality>" (union), or "inb<s>.threshold" / "inb<s>.min2" (s = 1..len(inb)).
    Final-stage thresholds are swept at once; Min2 of a union, earlier INB stages (whose
    value changes what later stages blend) and any configuration with post-processing
    are evaluated value by value, each
    evaluation vectorised over queries."""
    values = np.asarray(values, np.float32)
    last = len(cfg.inb)
    stage_no, name, mod = parse_param(cfg, param)
    if stage_no < last or cfg.post.active:  # post-processing reads whole selections
        return _sweep_by_evaluation(engine, cfg, param, values)
    st = engine.stage(cfg)
    gs = engine.group_size
    thresholds, min2 = engine._stage_params(cfg, last)
    if name == "threshold":
        if st.masked is None:
            ev = stage_events(st, gs, engine.yield_point)
            return Sweep(param, values, *sweep_events(ev, values, gs, _pick(st, min2)))
        i = cfg.modalities.index(mod)
        others = tuple(t for j, t in enumerate(thresholds) if j != i)
        key = ("union events", i, others)
        if key not in st.cache:
            fixed = np.zeros(st.score.shape, bool)
            for j, (s, t) in enumerate(zip(st.masked, thresholds, strict=True)):
                if j != i:
                    fixed |= s >= np.float32(t)
            eff = np.where(fixed, np.float32(np.inf), st.masked[i])[:, 1:]
            st.cache = {k: v for k, v in st.cache.items() if k[0] != "union events"}
            st.cache[key] = events(eff, st.true[:, 1:], gs, engine.yield_point)
        return Sweep(param, values, *sweep_events(st.cache[key], values, gs,
                                                  _union_pick(st, min2)))
    if st.masked is not None:  # a union's Min2 pick depends on the value itself
        return _sweep_by_evaluation(engine, cfg, param, values)
    base, _ = select(cfg, st, thresholds, None)
    lonely = ~base[:, 1:].any(axis=1)
    col, val = st.best_other()
    best_true = st.true[np.arange(len(col)), col]
    p0, r0, f0 = query_metrics(np.count_nonzero(base & st.true, 1), np.count_nonzero(base, 1),
                               gs)
    add = lonely[:, None] & (val[:, None] >= values[None, :])
    gf, gp, gr = min2_gain(gs, best_true)
    n = len(gs)
    return Sweep(param, values, f0.mean() + (add * gf[:, None]).sum(0) / n,
                 p0.mean() + (add * gp[:, None]).sum(0) / n,
                 r0.mean() + (add * gr[:, None]).sum(0) / n)


def _pick(st: Stage, min2: tuple[float, ...] | None):
    if min2 is None:
        return None
    col, val = st.best_other()
    return val >= np.float32(min2[0]), st.true[np.arange(len(col)), col]


def _union_pick(st: Stage, min2: tuple[float, ...] | None):
    if min2 is None:
        return None
    col, val = union_min2_pick(st, min2)
    return val >= 0, st.true[np.arange(len(col)), col]


def parse_param(cfg: MatchConfig, param: str) -> tuple[int, str, str | None]:
    stage = len(cfg.inb)
    text = param
    if param.startswith("inb"):
        head, _, text = param.partition(".")
        if not head[3:].isdigit() or not 1 <= int(head[3:]) <= len(cfg.inb):
            raise ValueError(f"sweep: {param!r}: no such INB stage")
        stage = int(head[3:])
    name, _, mod = text.partition(":")
    if name not in ("threshold", "min2"):
        raise ValueError(f"sweep: unknown parameter {param!r}")
    union = cfg.spec.per_modality and stage == 0
    if union and mod not in cfg.modalities:
        raise ValueError(f"sweep: {param!r}: a union names the modality, e.g. {name}:"
                         f"{cfg.modalities[0]}")
    if name == "min2" and _stage_min2(cfg, stage) is None:
        raise ValueError(f"sweep: {param!r}: Min2 is off")
    return stage, name, (mod or None)


def _stage_min2(cfg: MatchConfig, stage: int):
    return cfg.min2 if stage == 0 else cfg.inb[stage - 1].min2


def with_param(cfg: MatchConfig, param: str, value: float) -> MatchConfig:
    stage, name, mod = parse_param(cfg, param)
    if stage > 0:
        inb = list(cfg.inb)
        s = inb[stage - 1]
        inb[stage - 1] = InbStage(value, s.min2) if name == "threshold" else \
            InbStage(s.threshold, value)
        return cfg.replace(inb=tuple(inb))
    current = list(cfg.thresholds if name == "threshold" else cfg.min2)
    current[cfg.modalities.index(mod) if mod else 0] = value
    return cfg.replace(**{"thresholds" if name == "threshold" else "min2": tuple(current)})


def _sweep_by_evaluation(engine: Engine, cfg: MatchConfig, param: str,
                         values: np.ndarray) -> Sweep:
    def point(v: float) -> tuple[float, float, float]:
        engine.yield_point()  # a whole evaluation each (post-processing: a merge pass)
        return engine.evaluate(with_param(cfg, param, v)).metrics_tuple()

    out = np.array([point(float(v)) for v in values])
    return Sweep(param, values, out[:, 0], out[:, 1], out[:, 2])
