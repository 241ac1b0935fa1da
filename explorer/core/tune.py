"""Choosing thresholds (and, for `best`, the whole configuration) by mean F1 on one scope,
to apply them to another, as the study did (tune on fold 1, report on fold 0).

Thresholds are searched on a 0.01 grid and refined on a 0.001 grid around the best,
with the vectorised sweeps; Min2 is searched jointly with its main threshold. INB stages
are tuned greedily, each with the stages before it fixed: re-searching thresholds after
blending is what keeps INB from collapsing (the study's TF-IDF INB run fell to 0.649
because it did not).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from explorer.core import modes
from explorer.core.config import THRESHOLD_RANGE, ConfigError, InbStage, MatchConfig, Post
from explorer.core.engine import Engine, Stage
from explorer.core.post_tuning import add_post, tune_post
from explorer.core.sweep import min2_gain, stage_events, sweep, sweep_events, with_param

COARSE = np.round(np.arange(0.0, 1.0 + 1e-9, 0.01), 4)
ROUNDS = 3


@dataclass
class Tuned:
    config: MatchConfig
    f1: float


def _refine(best: float, step: float = 0.01) -> np.ndarray:
    """The fine grid around `best`, inside the thresholds' range (a best of 1.0 must not
    propose 1.001, which MatchConfig refuses)."""
    values = np.round(np.arange(best - step, best + step + 1e-9, step / 10), 4)
    lo, hi = THRESHOLD_RANGE
    return values[(values >= lo) & (values <= hi)]


def _looser(t: float) -> float:
    """Min2's starting threshold: 0.1 looser than the threshold, inside the range."""
    return max(t - 0.1, THRESHOLD_RANGE[0])


def _best_of(values: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    i = int(np.nanargmax(scores))
    return float(values[i]), float(scores[i])


def threshold_min2_grid(st: Stage, group_size: np.ndarray, t_values: np.ndarray,
                        m_values: np.ndarray) -> np.ndarray:
    """Mean F1 for every (threshold, Min2 threshold) pair of a non-union stage: (T, M).
    A query gets its Min2 pick at (t, m) when its best pair scores in [m, t)."""
    t_values = np.asarray(t_values, np.float32)
    m_values = np.asarray(m_values, np.float32)
    f, _, _ = sweep_events(stage_events(st, group_size), t_values, group_size)
    col, best = st.best_other()
    gain = min2_gain(group_size, st.true[np.arange(len(col)), col])[0]
    t_order, m_order = np.argsort(-t_values, kind="stable"), np.argsort(-m_values,
                                                                        kind="stable")
    T, M = len(t_values), len(m_values)
    b = np.searchsorted(-t_values[t_order], -best, side="left")  # lonely at t_k, k < b
    c = np.searchsorted(-m_values[m_order], -best, side="left")  # passes m_j, j >= c
    hist = np.bincount(b * (M + 1) + c, weights=gain, minlength=(T + 1) * (M + 1))
    hist = hist.reshape(T + 1, M + 1)
    bonus = np.cumsum(np.cumsum(hist[::-1], axis=0)[::-1][1:], axis=1)[:, :M]
    grid = np.empty((T, M))
    grid[np.ix_(t_order, m_order)] = bonus / len(group_size)
    return f[:, None] + grid


def _sweep_best(engine: Engine, cfg: MatchConfig, param: str, values: np.ndarray,
                limit: float | None = None) -> MatchConfig:
    """Coarse-to-fine search of one parameter; `limit` caps the values (Min2 <= main)."""
    for _ in range(2):
        if limit is not None:  # a main threshold below the grid leaves Min2 only itself
            values = values[values <= limit + 1e-9]
            values = values if len(values) else np.array([limit])
        value, _ = _best_of(values, sweep(engine, cfg, param, values).f1)
        cfg = with_param(cfg, param, value)
        values = _refine(value)
    return cfg


def _tune_last_single(engine: Engine, cfg: MatchConfig, fixed: frozenset = frozenset()
                      ) -> MatchConfig:
    """Tune the last stage's threshold (and Min2 if on) of a non-union configuration;
    parameters named in `fixed` keep their values."""
    last = len(cfg.inb)
    prefix = f"inb{last}." if last else ""
    t_param, m_param = prefix + "threshold", prefix + "min2"
    use_min2 = (cfg.min2 if last == 0 else cfg.inb[-1].min2) is not None
    tune_t = t_param not in fixed
    tune_m = use_min2 and m_param not in fixed
    if tune_t and tune_m:
        st, gs = engine.stage(cfg), engine.group_size
        grid = threshold_min2_grid(st, gs, COARSE, COARSE)
        i, j = np.unravel_index(int(np.argmax(grid)), grid.shape)
        tf, mf = _refine(COARSE[i]), _refine(COARSE[j])
        grid = threshold_min2_grid(st, gs, tf, mf)
        i, j = np.unravel_index(int(np.argmax(grid)), grid.shape)
        cfg = with_param(cfg, t_param, float(tf[i]))
        return with_param(cfg, m_param, float(mf[j]))
    if tune_t:
        cfg = _sweep_best(engine, cfg, t_param, COARSE)
    if tune_m:
        main = cfg.inb[-1].threshold if last else cfg.thresholds[0]
        cfg = _sweep_best(engine, cfg, m_param, COARSE, limit=main)
    return cfg


def _tune_union(engine: Engine, cfg: MatchConfig, fixed: frozenset = frozenset()
                ) -> MatchConfig:
    """Coordinate ascent: each modality's threshold in turn with the others fixed."""
    for _ in range(ROUNDS):
        before = cfg
        for i, m in enumerate(cfg.modalities):
            if "threshold" not in fixed:
                cfg = _sweep_best(engine, cfg, f"threshold:{m}", COARSE)
            if cfg.min2 is not None and "min2" not in fixed:
                cfg = _sweep_best(engine, cfg, f"min2:{m}", COARSE, limit=cfg.thresholds[i])
        if cfg == before:
            break
    return cfg


def tune_stage0(engine: Engine, cfg: MatchConfig, fixed: frozenset = frozenset()
                ) -> MatchConfig:
    base = cfg.replace(inb=())
    if cfg.spec.per_modality:
        if cfg.min2 is not None and "min2" not in fixed:
            base = base.replace(min2=tuple(_looser(t) for t in base.thresholds))
        return _tune_union(engine, base, fixed)
    return _tune_last_single(engine, base, fixed)


def tune(engine: Engine, cfg: MatchConfig, fixed: set[str] | frozenset = frozenset()
         ) -> MatchConfig:
    """Every threshold of `cfg` not named in `fixed` ("threshold", "min2",
    "inb<k>.threshold", "inb<k>.min2", and the post-processing stages "mutual", "merge",
    "chisel") tuned for mean F1 on the engine's scope, stage by stage, post-processing last
    (explorer.core.post_tuning); the structure (mode, weights, Min2 on/off, INB depth,
    units, which post-processing stages are on) is kept."""
    fixed = frozenset(fixed)
    out = tune_stage0(engine, cfg.replace(post=Post()), fixed)
    for stage in cfg.inb:
        out = out.replace(inb=(*out.inb, stage))
        out = _tune_last_single(engine, out, fixed)
    return tune_post(engine, out.replace(post=cfg.post), fixed)


def tune_chain(engine: Engine, cfg: MatchConfig, depth: int) -> list[Tuned]:
    """Tune `cfg` without INB, then add and tune INB stages one at a time up to `depth`;
    one result per depth (0..depth)."""
    cur = tune_stage0(engine, cfg.replace(inb=(), post=Post()))
    out = [Tuned(cur, engine.evaluate(cur).metrics.f1)]
    if not cfg.spec.blends:
        return out
    for _ in range(depth):
        cur = cur.replace(inb=(*cur.inb, InbStage(0.5, None if cur.min2 is None else 0.4)))
        cur = _tune_last_single(engine, cur)
        out.append(Tuned(cur, engine.evaluate(cur).metrics.f1))
    return out


def candidate_modes(modalities: Iterable[str], derived: Iterable[str] = ()
                    ) -> list[MatchConfig]:
    """Every mode `best` tries, in the registry's order (explorer.core.modes): each
    modality alone under every one-modality mode, then for every subset of two or more
    each fusion, a weighted one once per vector of its weight grid; then each derived
    modality (`learned:NAME`, a model of the bundle) under its mode."""
    mods = tuple(modalities)
    out = [MatchConfig(mode.name, (m,), (0.5,))
           for mode in modes.MODES.values() if not mode.fusion and not mode.derived
           for m in mods]
    for r in range(2, len(mods) + 1):
        for sub in itertools.combinations(mods, r):
            for mode in modes.fusions():
                out.extend(MatchConfig(mode.name, sub, (0.5,) * mode.n_thresholds(r),
                                       weights=w) for w in mode.weight_grid(r))
    for name in derived:
        mode = modes.find(name.partition(":")[0])
        if mode is None or not mode.derived:
            raise ConfigError(f"{name}: not a derived modality (expected e.g. learned:NAME)")
        out.append(MatchConfig(mode.name, (name,), (0.5,)))
    return out


def best(engine: Engine, modalities: Iterable[str], *, max_inb: int = 3,
         units: Iterable[bool] = (False, True), min2: Iterable[bool] = (False, True),
         exact: bool = False, progress: Callable[[str], None] | None = None,
         derived: Iterable[str] = (), post: bool = True) -> list[Tuned]:
    """Search mode, fusion weights, Min2, INB depth (0..max_inb) and the unit filter for
    the best mean F1 on the engine's scope. Returns every tried configuration, best first.
    Sum weights are chosen without INB; then the best weights of each modality subset, per
    (Min2, units), get INB (so a larger set of modalities never does worse than a subset).
    `derived` adds modalities the engine derives (`learned:NAME`: the bundle's models).
    With `post`, the winner then tries each graph post-processing stage in turn
    (explorer.core.post_tuning.add_post)."""
    results: list[Tuned] = []
    derived = tuple(derived)
    units, min2 = tuple(units), tuple(min2)
    for u, m2 in itertools.product(units, min2):
        best_sum: dict[tuple[str, ...], Tuned] = {}
        for cfg in candidate_modes(modalities, derived):
            cfg = cfg.replace(units=u, inb_exact=exact,
                              min2=(tuple(_looser(t) for t in cfg.thresholds) if m2 else None))
            if progress:
                progress(f"{cfg.label} units={u} min2={m2}")
            if cfg.spec.weighted:  # weights chosen without INB, INB on the best below
                t = tune_chain(engine, cfg, 0)[0]
                results.append(t)
                top = best_sum.get(cfg.modalities)
                if top is None or t.f1 > top.f1:
                    best_sum[cfg.modalities] = t
                continue
            results.extend(tune_chain(engine, cfg, max_inb))
        if max_inb:
            for top in best_sum.values():
                results.extend(tune_chain(engine, top.config, max_inb)[1:])
    results.sort(key=lambda t: -t.f1)
    if post and results:
        top = results[0]
        results.extend(Tuned(c, f) for c, f in add_post(engine, top.config, top.f1, progress))
        results.sort(key=lambda t: -t.f1)
    return results
