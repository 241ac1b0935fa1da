"""Headless evaluation: the numbers the app shows, for one configuration on one scope,
optionally tuned on another scope. Used by `explorer evaluate` and the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from explorer.core.bundle import Bundle
from explorer.core.config import THRESHOLD_RANGE, ConfigError, MatchConfig
from explorer.core.engine import Engine, Evaluation
from explorer.core.pair_model import learned_modalities
from explorer.core.sweep import sweep, with_param
from explorer.core.tune import best, tune

RECOMPUTES = 21
SWEEP_POINTS = 100


@dataclass
class Report:
    scope: str
    tuned_on: str | None
    config: MatchConfig
    evaluation: Evaluation
    engine: Engine
    timing_ms: dict[str, float | None] = field(default_factory=dict)
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        m = self.evaluation.metrics
        metrics: dict[str, Any] = (m.to_dict() if m else
                                   {"f1": None, "precision": None, "recall": None,
                                    "n_queries": len(self.evaluation.f1),
                                    "note": "no labels"})
        out = {"scope": self.scope, "tuned_on": self.tuned_on, "config": self.config.to_dict(),
               "metrics": metrics, "timing_ms": self.timing_ms}
        if self.candidates:
            out["best_candidates"] = self.candidates
        return out


def last_threshold_param(cfg: MatchConfig) -> str:
    if cfg.inb:
        return f"inb{len(cfg.inb)}.threshold"
    return f"threshold:{cfg.modalities[0]}" if cfg.spec.per_modality else "threshold"


def _last_threshold(cfg: MatchConfig) -> float:
    return cfg.inb[-1].threshold if cfg.inb else cfg.thresholds[0]


def time_engine(engine: Engine, cfg: MatchConfig) -> dict[str, float | None]:
    """Median ms of a full recompute after a threshold change (>= 20 runs), of a
    100-point sweep of the last threshold, and of one INB iteration (when cfg has INB)."""
    param = last_threshold_param(cfg)
    t0 = _last_threshold(cfg)
    engine.evaluate(cfg)  # stage computed and cached, as after the first slider move
    times = []
    lo, hi = THRESHOLD_RANGE  # a threshold at an end of its range moves inwards only
    for v in np.linspace(max(t0 - 0.05, lo), min(t0 + 0.05, hi), RECOMPUTES):
        start = time.perf_counter()
        ev = engine.evaluate(with_param(cfg, param, float(v)))
        _ = ev.metrics
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    sweep(engine, cfg, param, np.linspace(0.0, 1.0, SWEEP_POINTS))
    sweep_ms = (time.perf_counter() - start) * 1e3
    inb_ms = None
    if cfg.inb:
        fresh = Engine(engine.bundle, engine.scope)
        fresh.stage(cfg, len(cfg.inb) - 1)
        start = time.perf_counter()
        fresh.stage(cfg)
        inb_ms = (time.perf_counter() - start) * 1e3
    return {"recompute_median": float(np.median(times)) * 1e3, "sweep": sweep_ms,
            "inb_iteration": inb_ms}


def run(bundle: Bundle, *, scope: str, cfg: MatchConfig | None, tune_on: str | None,
        fixed: set[str] | None = None, search_best: bool = False, modalities=None,
        timing: bool = True, progress: Callable[[str], None] | None = None) -> Report:
    """Evaluate `cfg` on `scope`. With `tune_on`, thresholds not in `fixed` are tuned on
    that scope first; with `search_best`, the whole configuration is searched there."""
    engine = Engine(bundle, scope)
    candidates: list[dict[str, Any]] = []
    if search_best:
        tuner = Engine(bundle, tune_on) if tune_on and tune_on != scope else engine
        mods = modalities or engine.modalities
        results = best(tuner, mods, exact=bool(cfg and cfg.inb_exact), progress=progress,
                       derived=learned_modalities(bundle))
        cfg = results[0].config
        candidates = [{"config": r.config.to_dict(), "tuned_f1": r.f1} for r in results[:10]]
        tune_on = tuner.scope
    elif cfg is None:
        raise ConfigError("give --mode (and thresholds or --tune-on), --settings or --best")
    elif tune_on:
        cfg = tune(Engine(bundle, tune_on) if tune_on != scope else engine, cfg,
                   fixed=fixed or set())
    ev = engine.evaluate(cfg)
    timings = time_engine(engine, cfg) if timing else {}
    return Report(scope, tune_on, cfg, ev, engine, timings, candidates)
