"""The study's split: GroupKFold(5) over rows in file order, grouped by label_group.
Fold 0 is the test fold, fold 1 the validation fold, folds 2-4 train."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from precompute.errors import InputError

N_SPLITS = 5
ROLES = {"test": 0, "valid": 1, "train": [2, 3, 4]}


def assign_folds(labels: pd.Series, n_splits: int = N_SPLITS, source: str = "") -> np.ndarray:
    """Fold number of every row (int8). `source` names the file in error messages."""
    n_groups = labels.nunique()
    if n_groups < n_splits:
        where = f"{source}: " if source else ""
        raise InputError(f"{where}label_group: {n_groups} distinct groups, the {n_splits}-fold "
                         f"split needs at least {n_splits}")
    folds = np.full(len(labels), -1, np.int8)
    splitter = GroupKFold(n_splits=n_splits)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(labels)), groups=labels)):
        folds[test] = k
    return folds
