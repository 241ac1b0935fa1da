"""Threshold sweeps: mean P / R / F1 at many values of one parameter at once.

The trick (faiss contrib/evaluation.py's): bin every candidate's score against the sorted
threshold values once (`searchsorted`), count per query and bin with one `bincount`, and a
reversed cumulative sum gives each query's predicted and true-positive counts at every
threshold. Cost O(N*C log T + N*T), no Python loop over queries or thresholds.
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


def counts_at(eff: np.ndarray, true: np.ndarray, values: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """For (n, m) scores of candidate pairs (-inf never passes, +inf always does) and
    thresholds sorted in DEcreasing order, the (n, T) number of pairs with score >=
    values[k], and how many of those are true pairs."""
    n, T = len(eff), len(values)
    # bin j = how many thresholds lie above the score: the pair passes values[j:]
    j = np.searchsorted(-values, -eff, side="left").astype(np.int32)
    j += (np.arange(n, dtype=np.int32) * np.int32(T + 1))[:, None]
    hist = np.bincount(j.ravel(), minlength=n * (T + 1)).reshape(n, T + 1)
    thist = np.bincount(j[true], minlength=n * (T + 1)).reshape(n, T + 1)
    count = np.cumsum(hist, axis=1, out=hist)[:, :T]
    tcount = np.cumsum(thist, axis=1, out=thist)[:, :T]
    return count, tcount


def metrics_from_counts(others: np.ndarray, tp_others: np.ndarray, group_size: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean (F1, P, R) per column, the query itself counted as a true prediction."""
    tp = tp_others + 1.0
    n_pred = others + 1.0
    gs = group_size.astype(np.float64)[:, None]
    f = (2.0 * tp / (n_pred + gs)).mean(axis=0)
    p = (tp / n_pred).mean(axis=0)
    r = (tp / gs).mean(axis=0)
    return f, p, r


def min2_gain(group_size: np.ndarray, best_true: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per query, the change of (F1, P, R) when Min2 adds its pick to a lonely query."""
    t = best_true.astype(np.float64)
    p0, r0, f0 = query_metrics(1, 1, group_size)
    p1, r1, f1 = query_metrics(1 + t, 2, group_size)
    return f1 - f0, p1 - p0, r1 - r0


def threshold_sweep(st: Stage, group_size: np.ndarray, values: np.ndarray,
                    fixed: np.ndarray | None = None, swept: np.ndarray | None = None,
                    min2_pick: tuple[np.ndarray, np.ndarray] | None = None,
                    param: str = "threshold") -> Sweep:
    """Sweep one threshold of the final stage.

    `swept` is the score compared with the threshold (default the stage score); `fixed`
    marks pairs admitted regardless (the other sides of a union). `min2_pick` =
    (passes Min2, pick is true) per query, added when a query predicts nothing else."""
    values = np.asarray(values, np.float32)
    order = np.argsort(-values, kind="stable")
    sv = values[order]
    eff = (st.score if swept is None else swept)[:, 1:]
    if fixed is not None:
        eff = np.where(fixed[:, 1:], np.float32(np.inf), eff)
    count, tcount = counts_at(eff, st.true[:, 1:], sv)
    f, p, r = metrics_from_counts(count, tcount, group_size)
    if min2_pick is not None:
        passes, best_true = min2_pick
        add = (count == 0) & passes[:, None]
        gf, gp, gr = min2_gain(group_size, best_true)
        n = len(group_size)
        f = f + (add * gf[:, None]).sum(0) / n
        p = p + (add * gp[:, None]).sum(0) / n
        r = r + (add * gr[:, None]).sum(0) / n
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return Sweep(param, values, f[inv], p[inv], r[inv])


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
            return threshold_sweep(st, gs, values, min2_pick=_pick(st, min2), param=param)
        i = cfg.modalities.index(mod)
        fixed = np.zeros(st.score.shape, bool)
        for j, (s, t) in enumerate(zip(st.masked, thresholds, strict=True)):
            if j != i:
                fixed |= s >= np.float32(t)
        return threshold_sweep(st, gs, values, fixed=fixed, swept=st.masked[i],
                               min2_pick=_union_pick(st, min2), param=param)
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
