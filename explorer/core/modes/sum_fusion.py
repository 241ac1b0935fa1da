"""Sum fusion: the weighted mean of the modalities' similarities (the study's metric-layer
fusion; equal to the cosine of the weight-scaled concatenation), one threshold."""

from __future__ import annotations

import itertools

import numpy as np

from explorer.core.modes.base import NEG, Mode, excluded, finite_or_zero


def _score(cfg, cand, sims, topk, conflict):
    w = np.asarray(cfg.fusion_weights, np.float32)
    w = w / w.sum()
    score = sum(finite_or_zero(sims[m]) * w[i] for i, m in enumerate(cfg.modalities))
    return np.where(excluded(cand, conflict), NEG, score).astype(np.float32), None


def weight_grid(n: int, step: float = 0.1) -> list[tuple[float, ...]]:
    """Weight vectors on the simplex (all positive) for n modalities; equal weights past 3."""
    if n > 3:
        return [(1.0,) * n]
    ticks = np.round(np.arange(step, 1.0, step), 4)
    return [tuple(float(x) for x in (*w, round(1 - sum(w), 4)))
            for w in itertools.product(ticks, repeat=n - 1) if 1 - sum(w) > 1e-9]


MODE = Mode("sum", fusion=True, per_modality=False, weighted=True, blends=True,
            columns="all", words="sum fusion", choice="sum (weighted mean of cosines)",
            score=_score, weight_grid=weight_grid)
