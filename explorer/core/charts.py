"""The data behind the app's plots: a threshold curve (mean P / R / F1 against the active
threshold), the per-query F1 histogram and mean F1 by true group size. No Qt here; the
widgets in explorer/gui/plots.py only draw these."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from explorer.core.config import MatchConfig
from explorer.core.engine import Engine, require_labels
from explorer.core.evaluate import last_threshold_param
from explorer.core.sweep import parse_param, sweep
from explorer.core.wording import param_label

GRID_STEP = 0.01

# (label, smallest size, largest size); a group size counts the query itself
SIZE_BUCKETS: tuple[tuple[str, int, float], ...] = (
    ("1", 1, 1), ("2", 2, 2), ("3", 3, 3), ("4", 4, 4), ("5-9", 5, 9), ("10-19", 10, 19),
    ("20-49", 20, 49), ("50+", 50, np.inf),
)


@dataclass(frozen=True)
class Curve:
    """Mean F1 / P / R of a configuration at each value of one parameter (values sorted
    increasing); `current` is the configuration's own value, `best` the value of highest
    mean F1 (the lowest such value on a tie)."""

    param: str
    values: np.ndarray
    f1: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    current: float
    best: float
    label: str = ""  # the parameter in words (param_label), for the axis

    @property
    def best_f1(self) -> float:
        return float(self.f1[int(np.argmax(self.f1))])

    def at(self, value: float) -> tuple[float, float, float]:
        """(F1, P, R) at `value`, exact on a grid point, linearly interpolated between."""
        f1, p, r = (float(np.interp(value, self.values, y))
                    for y in (self.f1, self.precision, self.recall))
        return f1, p, r


def param_value(cfg: MatchConfig, param: str) -> float:
    """The value `cfg` gives a sweep parameter (see `explorer.core.sweep.sweep`)."""
    stage, name, mod = parse_param(cfg, param)
    if stage > 0:
        s = cfg.inb[stage - 1]
        value = s.threshold if name == "threshold" else s.min2
    else:
        values = cfg.thresholds if name == "threshold" else cfg.min2
        assert values is not None  # parse_param rejects "min2" when Min2 is off
        value = values[cfg.modalities.index(mod) if mod else 0]
    assert value is not None
    return float(value)


def default_grid(current: float, step: float = GRID_STEP) -> np.ndarray:
    """Every value current + k * step (integer k) in [min(0, current), max(1, current)],
    as float32 (the precision the engine compares at): a uniform grid through the current
    value, which `sweep` bins arithmetically (a grid with one extra point falls back to a
    binary search, about 2.5x slower at 34k postings)."""
    lo, hi = min(0.0, current), max(1.0, current)
    k = np.arange(np.ceil((lo - current) / step - 1e-9), np.floor((hi - current) / step + 1e-9)
                  + 1)
    grid = np.round(current + k * step, 7)  # 0.3 - 30 * 0.01 is 0, not 5.6e-17
    grid[k == 0] = current
    return grid.astype(np.float32)


def threshold_curve(engine: Engine, cfg: MatchConfig, param: str | None = None,
                    values: np.ndarray | None = None) -> Curve:
    """Sweep `param` (default: the last-acting threshold, `last_threshold_param`) of `cfg`
    over `values` (sorted and deduplicated; default: `default_grid(current value)`)."""
    require_labels(engine)
    param = param or last_threshold_param(cfg)
    current = param_value(cfg, param)
    values = default_grid(current) if values is None else np.unique(
        np.asarray(values, np.float32))
    if not len(values):
        raise ValueError("threshold_curve: no values to sweep")
    s = sweep(engine, cfg, param, values)
    return Curve(param, s.values, s.f1, s.precision, s.recall, current,
                 float(s.values[s.best]), param_label(param, cfg))


def f1_histogram(f1: np.ndarray, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Counts of per-query F1 in `bins` equal bins over [0, 1]: (edges (bins + 1,),
    counts (bins,)). Each bin is [lo, hi) except the last, [lo, 1], so F1 = 1 falls in it.
    NaN (no labels) is left out."""
    if bins < 1:
        raise ValueError("f1_histogram: bins must be >= 1")
    f1 = np.asarray(f1, np.float64)
    f1 = np.clip(f1[~np.isnan(f1)], 0.0, 1.0)
    # bin k is [k / bins, (k + 1) / bins): binned arithmetically with a tolerance, so an
    # F1 equal to an edge in exact arithmetic (0.6 with 5 bins) lands above it, which
    # comparing against float edges (np.histogram) does not guarantee
    k = np.minimum(np.floor(f1 * bins + 1e-9).astype(np.int64), bins - 1)
    return np.linspace(0.0, 1.0, bins + 1), np.bincount(k, minlength=bins).astype(np.int64)


@dataclass(frozen=True)
class SizeTable:
    """Mean F1 by true group size bucket, non-empty buckets only, smallest first."""

    labels: tuple[str, ...]
    n_queries: np.ndarray   # (B,) int
    mean_f1: np.ndarray     # (B,) float

    def __len__(self) -> int:
        return len(self.labels)


def f1_by_group_size(f1: np.ndarray, group_size: np.ndarray) -> SizeTable:
    """Per-query F1 grouped by the query's true group size (the query included) into
    1, 2, 3, 4, 5-9, 10-19, 20-49, 50+; NaN F1 (no labels) is left out."""
    f1 = np.asarray(f1, np.float64)
    size = np.asarray(group_size)
    if f1.shape != size.shape:
        raise ValueError("f1_by_group_size: f1 and group_size differ in shape")
    keep = ~np.isnan(f1)
    if not keep.all():
        f1, size = f1[keep], size[keep]
    # one pass: each query's bucket (buckets are contiguous from 1 up), then two bincounts
    los = np.array([lo for _, lo, _ in SIZE_BUCKETS])
    top = int(los[-1])  # sizes from the last bucket's start up share its bucket
    of_size = np.searchsorted(los, np.arange(top + 1), side="right") - 1
    bucket = of_size[np.minimum(size, top)]
    counts = np.bincount(bucket, minlength=len(los))
    sums = np.bincount(bucket, weights=f1, minlength=len(los))
    live = np.flatnonzero(counts)
    return SizeTable(tuple(SIZE_BUCKETS[i][0] for i in live), counts[live].astype(np.int64),
                     sums[live] / counts[live])
