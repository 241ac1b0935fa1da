"""Model selection: mean row-wise F1 of fold-1 embeddings, with the cosine threshold tuned
on fold 1 itself, exactly as the explorer's engine scores a single modality (top-K within
the fold, the query included in its own set, the study's metric)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.core.graph import build_graph
from explorer.core.spaces import DenseSpace
from explorer.core.sweep import Events, events, sweep_events
from explorer.core.tune import COARSE

K = 50  # neighbours per posting, as `precompute build`


@dataclass(frozen=True)
class Selection:
    f1: float
    threshold: float  # cosine similarity (the study writes 1 - this as a distance)


def tuned_f1(emb: np.ndarray, groups: np.ndarray, k: int = K,
             present: np.ndarray | None = None) -> Selection:
    """Best mean F1 over cosine thresholds (0.01 grid, then 0.001 around the best) of
    unit rows `emb` of ONE scope whose true groups are `groups`; rows without an
    embedding (`present` False) predict only themselves."""
    space = DenseSpace(emb, present=present)
    idx, _ = space.topk(k)
    graph = build_graph("select", np.arange(len(emb)), {"m": space}, {"m": idx})
    groups = np.asarray(groups)
    _, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    true = (graph.cand >= 0) & (groups[np.maximum(graph.cand, 0)] == groups[:, None])
    score = np.where(graph.topk_mask("m"), graph.sims["m"], np.float32(-np.inf))
    ev = events(score[:, 1:], true[:, 1:], counts[inverse])
    coarse = _best(ev, counts[inverse], COARSE)
    fine = np.round(np.arange(coarse.threshold - 0.01, coarse.threshold + 0.01 + 1e-9, 0.001), 4)
    return _best(ev, counts[inverse], fine)


def _best(ev: Events, group_size: np.ndarray, values: np.ndarray) -> Selection:
    f1 = sweep_events(ev, values, group_size)[0]
    i = int(np.argmax(f1))
    return Selection(float(f1[i]), float(values[i]))
