"""Learned: the pair classifier's probability (explorer.core.pair_model) thresholded like
a similarity. Its one "modality" is the model, `learned:NAME` (the bundle's
models/NAME), which the engine derives once per scope for every candidate pair of the
graph's union: the classifier scores them all, not one modality's list."""

from __future__ import annotations

import numpy as np

from explorer.core.modes.base import NEG, Mode, excluded

DEFAULT_MODEL = "pairs"  # what `explorer learn` names a model by default


def _score(cfg, cand, sims, topk, conflict):
    prob = sims[cfg.modalities[0]]
    return (prob if conflict is None else np.where(excluded(cand, conflict), NEG, prob)), None


MODE = Mode("learned", fusion=False, per_modality=False, weighted=False, blends=False,
            columns="all", words="", choice="", score=_score, derived=True)
