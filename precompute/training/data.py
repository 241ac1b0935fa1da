"""The study's split for training: folds 2-4 train, fold 1 selects the epoch, fold 0 (test)
is never read past the fold assignment. Labels are encoded 0..C-1 over the train rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from precompute.dataset import Dataset, _line, read_dataset
from precompute.errors import InputError
from precompute.split import ROLES, assign_folds

TRAIN_FOLDS = tuple(ROLES["train"])
VALID_FOLD = ROLES["valid"]


@dataclass
class TrainSplit:
    data: Dataset
    folds: np.ndarray        # (N,) fold of every row
    train_rows: np.ndarray   # rows of folds 2-4, file order
    valid_rows: np.ndarray   # rows of fold 1, file order
    train_labels: np.ndarray  # (len(train_rows),) int64 class 0..C-1
    valid_groups: np.ndarray  # (len(valid_rows),) int64 group codes (for the metric)

    @property
    def n_classes(self) -> int:
        return int(self.train_labels.max()) + 1

    @property
    def sha256(self) -> str:
        return self.data.sha256


def load_split(csv: str | Path) -> TrainSplit:
    """Read and check the table: labels present, every fold used has rows, every train
    class has at least two postings (one posting cannot teach what 'same' means)."""
    data = read_dataset(csv)
    if not data.has_labels:
        raise InputError(f"{data.csv}: label_group column missing; training needs labels")
    labels = data.table["label_group"]
    folds = assign_folds(labels, source=str(data.csv))
    for fold in (*TRAIN_FOLDS, VALID_FOLD):
        if not (folds == fold).any():
            raise InputError(f"{data.csv}: fold {fold} has no rows")
    codes, _ = labels.factorize()
    codes = np.asarray(codes, np.int64)
    sizes = np.bincount(codes)
    single = np.flatnonzero(sizes[codes] == 1)
    if len(single):
        r = int(single[0])
        raise InputError(f"{data.csv}: line {_line(r)}: label_group {labels.iloc[r]} has "
                         f"only this posting ({len(single)} groups have one); training needs "
                         "two or more per group")
    train_rows = np.flatnonzero(np.isin(folds, TRAIN_FOLDS))
    valid_rows = np.flatnonzero(folds == VALID_FOLD)
    train_labels = np.unique(codes[train_rows], return_inverse=True)[1].astype(np.int64)
    return TrainSplit(data, folds, train_rows, valid_rows, train_labels, codes[valid_rows])
