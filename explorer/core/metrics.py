"""The study's row-wise metric. Per query with true set X and predicted set Y (both hold
the query): P = |X∩Y| / |Y|, R = |X∩Y| / |X|, F1 = 2 |X∩Y| / (|X| + |Y|). Means are taken
over queries (mean F1 is not the F1 of mean P and mean R)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Metrics:
    f1: float
    precision: float
    recall: float
    n_queries: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def delta(self, before: Metrics) -> Metrics:
        return Metrics(self.f1 - before.f1, self.precision - before.precision,
                       self.recall - before.recall, self.n_queries)


def query_metrics(tp: np.ndarray, n_pred: np.ndarray, n_true: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-query (precision, recall, F1) from counts; any shape, broadcasting."""
    tp = np.asarray(tp, np.float64)
    return tp / n_pred, tp / n_true, 2.0 * tp / (np.asarray(n_true) + n_pred)


def set_metrics(true: set, pred: set) -> tuple[float, float, float]:
    """Reference definition on explicit sets (used by tests and single-query views)."""
    inter = len(true & pred)
    return inter / len(pred), inter / len(true), 2 * inter / (len(true) + len(pred))
