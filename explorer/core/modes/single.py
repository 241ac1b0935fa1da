"""One modality: a pair is predicted when it is in the modality's own top-K list and its
similarity reaches the threshold."""

from __future__ import annotations

import numpy as np

from explorer.core.modes.base import NEG, Mode, excluded


def _score(cfg, cand, sims, topk, conflict):
    sim = sims[cfg.modalities[0]]
    if conflict is None:
        # the similarities are the score as they are: -inf at padding already (the
        # bundle's checks, the engine's gather, the re-scoring's), no (n, C) copy to make
        return sim, None
    return np.where(excluded(cand, conflict), NEG, sim), None


MODE = Mode("single", fusion=False, per_modality=False, weighted=False, blends=True,
            columns="own", words="", choice="", score=_score)
