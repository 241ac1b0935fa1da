"""Prob fusion: 1 - prod(1 - s_m) over the modalities' similarities clipped to [0, 1] as
probabilities (a + b - ab for two), one threshold."""

from __future__ import annotations

import numpy as np

from explorer.core.modes.base import NEG, Mode, excluded, finite_or_zero


def _score(cfg, cand, sims, topk, conflict):
    keep = np.ones(cand.shape, np.float32)
    for m in cfg.modalities:
        keep *= 1 - np.clip(finite_or_zero(sims[m]), 0, 1)
    return np.where(excluded(cand, conflict), NEG, 1 - keep).astype(np.float32), None


MODE = Mode("prob", fusion=True, per_modality=False, weighted=False, blends=True,
            columns="all", words="prob fusion", choice="prob (a + b - ab)", score=_score)
