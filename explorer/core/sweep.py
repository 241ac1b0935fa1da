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

from dataclasses import dataclass

import numpy as np

from explorer.core.config import InbStage, MatchConfig
from explorer.core.engine import Engine, Stage, select
from explorer.core.metrics import query_metrics


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
    delta: np.ndarray     # (3, E) float64: change of F1, P, R of the pair's query
    base: np.ndarray      # (3,) mean F1, P, R with no finite pair admitted
    row_max: np.ndarray   # (n,) best score of a query's pairs (+inf when one is fixed)
    n: int


def events(eff: np.ndarray, true: np.ndarray, group_size: np.ndarray) -> Events:
    """Events of (n, m) pair scores (the query's own column excluded); +inf marks pairs
    admitted regardless of the threshold, -inf pairs never admitted."""
    n = len(eff)
    order = np.argsort(-eff, axis=1)  # any order among ties gives the same sums
    s = np.take_along_axis(eff, order, axis=1)
    t = np.take_along_axis(true, order, axis=1)
    tp_before = np.cumsum(t, axis=1, dtype=np.int32)
    tp_before -= t
    fixed = s == np.inf
    n_fixed = fixed.sum(axis=1)
    p0, r0, f0 = query_metrics(1 + (t & fixed).sum(axis=1), 1 + n_fixed, group_size)
    # before admitting sorted column p, the query predicts itself and the p pairs ranked
    # above it (fixed ones sort first), tp of them true
    live = np.isfinite(s)
    gs = np.broadcast_to(group_size.astype(np.float64)[:, None], s.shape)[live]
    cnt = np.broadcast_to(np.arange(1.0, s.shape[1] + 1), s.shape)[live]
    tp = tp_before[live] + 1.0
    te = t[live].astype(np.float64)
    delta = np.stack([2 * (tp + te) / (gs + cnt + 1) - 2 * tp / (gs + cnt),
                      (tp + te) / (cnt + 1) - tp / cnt, te / gs])
    row_max = s[:, 0] if s.shape[1] else np.full(n, -np.inf, np.float32)
    return Events(s[live], delta, np.array([f0.mean(), p0.mean(), r0.mean()]), row_max, n)


def _bins_desc(values_desc: np.ndarray, x: np.ndarray) -> np.ndarray:
    """How many of the decreasing `values_desc` are > x, for every x."""
    return np.searchsorted(-values_desc, -x, side="left")


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
    j = _bins_desc(vd, ev.score)  # the event is admitted at vd[k] for every k >= j
    out = np.stack([np.cumsum(np.bincount(j, weights=ev.delta[i], minlength=T + 1))[:T]
                    for i in range(3)]) / ev.n + ev.base[:, None]
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


def stage_events(st: Stage, group_size: np.ndarray) -> Events:
    """The cached events of a non-union stage's own score."""
    if st.cache.get("events") is None:
        st.cache["events"] = events(st.score[:, 1:], st.true[:, 1:], group_size)
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
    Final-stage thresholds are swept at once; Min2 of a union and earlier INB stages
    (whose value changes what later stages blend) are evaluated value by value, each
    evaluation vectorised over queries."""
    values = np.asarray(values, np.float32)
    last = len(cfg.inb)
    stage_no, name, mod = _parse_param(cfg, param)
    if stage_no < last:
        return _sweep_by_evaluation(engine, cfg, param, values)
    st = engine.stage(cfg)
    gs = engine.group_size
    thresholds, min2 = engine._stage_params(cfg, last)
    if name == "threshold":
        if st.masked is None:
            ev = stage_events(st, gs)
            return Sweep(param, values, *sweep_events(ev, values, gs, _pick(st, min2)))
        i = cfg.modalities.index(mod)
        fixed = np.zeros(st.score.shape, bool)
        for j, (s, t) in enumerate(zip(st.masked, thresholds, strict=True)):
            if j != i:
                fixed |= s >= np.float32(t)
        eff = np.where(fixed, np.float32(np.inf), st.masked[i])[:, 1:]
        ev = events(eff, st.true[:, 1:], gs)
        return Sweep(param, values, *sweep_events(ev, values, gs, _union_pick(st, min2)))
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
    margin = np.maximum.reduce([s[:, 1:] - np.float32(t) for s, t in zip(
        st.masked, min2, strict=True)])
    col = np.argmax(margin, axis=1)
    rows = np.arange(len(col))
    return margin[rows, col] >= 0, st.true[:, 1:][rows, col]


def _parse_param(cfg: MatchConfig, param: str) -> tuple[int, str, str | None]:
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
    union = cfg.mode == "union" and stage == 0
    if union and mod not in cfg.modalities:
        raise ValueError(f"sweep: {param!r}: a union names the modality, e.g. {name}:"
                         f"{cfg.modalities[0]}")
    if name == "min2" and _stage_min2(cfg, stage) is None:
        raise ValueError(f"sweep: {param!r}: Min2 is off")
    return stage, name, (mod or None)


def _stage_min2(cfg: MatchConfig, stage: int):
    return cfg.min2 if stage == 0 else cfg.inb[stage - 1].min2


def with_param(cfg: MatchConfig, param: str, value: float) -> MatchConfig:
    stage, name, mod = _parse_param(cfg, param)
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
    out = np.array([engine.evaluate(with_param(cfg, param, float(v))).metrics_tuple()
                    for v in values])
    return Sweep(param, values, out[:, 0], out[:, 1], out[:, 2])
