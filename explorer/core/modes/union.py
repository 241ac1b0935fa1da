"""Union: a pair is predicted when any modality's own top-K list holds it at or above that
modality's threshold (one threshold, and one Min2 threshold, per modality)."""

from __future__ import annotations

import numpy as np

from explorer.core.modes.base import NEG, Mode, excluded


def _score(cfg, cand, sims, topk, conflict):
    out = excluded(cand, conflict)
    masked = [np.where(topk[m] & ~out, sims[m], NEG) for m in cfg.modalities]
    return np.maximum.reduce(masked), masked


MODE = Mode("union", fusion=True, per_modality=True, weighted=False, blends=False,
            columns="each", words="union", choice="union (each on its own threshold)",
            score=_score)
