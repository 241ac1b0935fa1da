"""What a matching mode is: the rules the configuration checks, which candidate pairs its
stage 0 reads, how it scores them, and how it reads in words. The engine, the sweeps,
tuning, the explanations and the CLI ask these properties instead of a mode's name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

NEG = np.float32(-np.inf)

# stage 0's candidate pairs: a single modality's own top-K list ("own"), each modality's
# own top-K list, scored apart ("each"), or every pair of the graph's union ("all")
COLUMNS = ("own", "each", "all")

# score(cfg, cand, sims, topk, conflict) -> (score, per-modality masked scores or None):
# cand (n, C) with -1 padding, sims {modality: (n, C) similarity, -inf at padding},
# topk {modality: (n, C) bool own-list mask} for "each" modes, conflict (n, C) bool or None
Scorer = Callable[[Any, np.ndarray, dict, dict | None, np.ndarray | None],
                  tuple[np.ndarray, list[np.ndarray] | None]]


@dataclass(frozen=True)
class Mode:
    name: str
    fusion: bool            # two or more modalities (else exactly one)
    per_modality: bool      # one threshold (and Min2 threshold) per modality
    weighted: bool          # takes fusion weights
    blends: bool            # INB may follow (it blends one embedding space)
    columns: str            # see COLUMNS
    words: str              # what its threshold cuts ("": the modality's own name)
    choice: str             # how the app's mode list shows a fusion ("": one per modality)
    score: Scorer
    # the weight vectors `best` tries for r modalities (weighted modes), else [None]
    weight_grid: Callable[[int], list[tuple[float, ...] | None]] = lambda r: [None]
    # its one modality is derived by the engine ("NAME:model", e.g. learned:pairs), not
    # one of the bundle's: not offered per bundle modality, nor tried by `best` yet
    derived: bool = False

    def __post_init__(self) -> None:
        if self.columns not in COLUMNS:
            raise ValueError(f"mode {self.name}: columns must be one of {COLUMNS}")

    def n_thresholds(self, n_modalities: int) -> int:
        return n_modalities if self.per_modality else 1

    @property
    def own_thresholds(self) -> bool:
        """Its thresholds cut each modality's own similarity (a single modality, a union),
        not a fused score: the app remembers them per modality."""
        return not self.fusion or self.per_modality

    def threshold_words(self, modalities: tuple[str, ...]) -> str:
        """What one threshold of this mode cuts, e.g. "tfidf" or "sum fusion"."""
        return self.words or modalities[0]


def excluded(cand: np.ndarray, conflict: np.ndarray | None) -> np.ndarray:
    """Pairs no mode may predict: padding, and those the unit filter removed."""
    pad = cand < 0
    return pad if conflict is None else pad | conflict


def finite_or_zero(sims: np.ndarray) -> np.ndarray:
    """A fusion counts a modality with no embedding for a posting (-inf) as 0."""
    return np.where(np.isfinite(sims), sims, 0)
