"""Tuning the graph post-processing stages (explorer.core.post) for mean F1 on one scope.

The thresholds are tuned first without post-processing (explorer.core.tune); then each
stage that is on, in the order the engine applies them (mutual, merge, chisel), is
searched on a grid with the stages before it fixed at their tuned values and the stages
after it off. Every point is a full evaluation (a re-threshold of the cached stage, then
the stages), milliseconds at a fold of the real table, a union-find pass more for merge.
`add_post` is what `best` does with its winner: add each stage in turn and keep it only
when it raises the tuned F1."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from explorer.core.config import MatchConfig, Post

__all__ = ["MUTUAL_GRID", "add_post", "tune_post"]

# Grids kept small: each point is a whole evaluation, and a merge point is a union-find
# pass over every predicted pair (~1 s a million pairs), which `best` pays at scale too.
MUTUAL_GRID = np.round(np.arange(0.0, 1.0 + 1e-9, 0.05), 4)
MERGE_TARGETS = (2.0, 3.0, 4.0, 5.0, 6.0, 8.0)
MERGE_SIZES = (10, 51)  # 51: the largest label group of the real table
CHISEL_SIZES = (2, 3, 5, 8, 12, 20, 35, 50)
CHISEL_GRID = np.round(np.arange(0.5, 1.0 + 1e-9, 0.05), 4)
STAGES = ("mutual", "merge", "chisel")


def _f1(engine, cfg: MatchConfig) -> float:
    return engine.evaluate(cfg).metrics.f1


def _best(engine, cfg: MatchConfig, stage: str, values: list) -> tuple[MatchConfig, float]:
    """The value of `stage` (its post field) with the best F1, the first one on ties."""
    tried = [cfg.replace(post=_with(cfg.post, stage, v)) for v in values]
    scores = [_f1(engine, c) for c in tried]
    i = int(np.argmax(scores))
    return tried[i], scores[i]


def _with(post: Post, stage: str, value) -> Post:
    return Post(**{**{s: getattr(post, s) for s in STAGES}, stage: value})


def _grid(stage: str, around: object | None = None) -> list:
    if stage == "mutual":
        if around is None:
            return [float(v) for v in MUTUAL_GRID]
        fine = np.round(np.arange(around - 0.05, around + 0.05 + 1e-9, 0.01), 4)
        return [float(v) for v in fine if -1.0 <= v <= 1.0]
    if stage == "merge":
        return [(t, s) for t in MERGE_TARGETS for s in MERGE_SIZES]
    return [(s, float(t)) for s in CHISEL_SIZES for t in CHISEL_GRID]


def tune_stage(engine, cfg: MatchConfig, stage: str) -> tuple[MatchConfig, float]:
    """`stage` of cfg.post searched on its grid (mutual refined to 0.01), the stages after
    it in the order off, the ones before kept."""
    after = STAGES[STAGES.index(stage) + 1:]
    post = cfg.post
    for s in after:
        post = _with(post, s, None)
    cfg = cfg.replace(post=post)
    cfg, f1 = _best(engine, cfg, stage, _grid(stage))
    if stage == "mutual":
        cfg, f1 = _best(engine, cfg, stage, _grid(stage, cfg.post.mutual))
    return cfg, f1


def tune_post(engine, cfg: MatchConfig, fixed: frozenset = frozenset()) -> MatchConfig:
    """Every stage of cfg.post that is on and not named in `fixed` tuned in order."""
    want = cfg.post
    out = cfg.replace(post=Post())
    for stage in STAGES:
        if getattr(want, stage) is None:
            continue
        if stage in fixed:
            out = out.replace(post=_with(out.post, stage, getattr(want, stage)))
        else:
            out, _ = tune_stage(engine, out.replace(post=_with(out.post, stage,
                                                                getattr(want, stage))), stage)
    return out


def add_post(engine, cfg: MatchConfig, f1: float,
             progress: Callable[[str], None] | None = None) -> list[tuple[MatchConfig, float]]:
    """Each stage added to `cfg` in order, tuned; kept when it raises F1 above the best so
    far. Returns every tried configuration with its F1."""
    out = []
    best, best_f1 = cfg, f1
    for stage in STAGES:
        if progress:
            progress(f"{cfg.label} + {stage}")
        tried, score = tune_stage(engine, best, stage)
        out.append((tried, score))
        if score > best_f1:
            best, best_f1 = tried, score
    return out
