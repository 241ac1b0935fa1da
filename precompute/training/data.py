"""The study's split for training: folds 2-4 train, fold 1 selects the epoch, fold 0 (test)
is never read past the fold assignment. Labels are encoded 0..C-1 over the train rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from precompute.dataset import Dataset, csv_line, read_dataset
from precompute.errors import InputError
from precompute.split import ROLES, assign_folds

log = logging.getLogger(__name__)

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
    left_out: int = 0         # train-fold postings alone in their group, not trained on

    @property
    def n_classes(self) -> int:
        return int(self.train_labels.max()) + 1

    @property
    def sha256(self) -> str:
        return self.data.sha256


def load_split(csv: str | Path) -> TrainSplit:
    """Read and check the table: labels present, every fold used has rows. A posting alone
    in its label group cannot teach what 'same' means: in folds 2-4 it is left out of
    training (counted, with a warning naming the first); in fold 1 it stays, a query whose
    right answer is itself."""
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
    alone = np.bincount(codes)[codes] == 1
    in_train = np.isin(folds, TRAIN_FOLDS)
    single = np.flatnonzero(in_train & alone)
    if len(single):
        r = int(single[0])
        log.warning("%s: %d postings of folds 2-4 are alone in their label_group and are not "
                    "trained on (the first: line %d, label_group %s)", data.csv, len(single),
                    csv_line(r), labels.iloc[r])
    train_rows = np.flatnonzero(in_train & ~alone)
    if len(np.unique(codes[train_rows])) < 2:
        raise InputError(f"{data.csv}: folds 2-4 hold fewer than 2 label groups with two or "
                         "more postings; training needs pairs of the same product")
    valid_rows = np.flatnonzero(folds == VALID_FOLD)
    train_labels = np.unique(codes[train_rows], return_inverse=True)[1].astype(np.int64)
    return TrainSplit(data, folds, train_rows, valid_rows, train_labels, codes[valid_rows],
                      left_out=len(single))
