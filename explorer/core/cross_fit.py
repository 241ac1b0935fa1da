"""Cross-fitted pair classifiers (`explorer learn --cross-fit`): one model per fold k of the
bundle's split, trained on every other fold but fold k+1 (mod n), early-stopped on fold
k+1, never reading fold k. Stored as models/NAME/cross_fit.json (this record: which folds
have a model) and models/NAME/foldK/{model.txt,model.json}, each a plain model that
never read fold K (explorer.core.pair_model trains and loads them: train_cross_fit,
load_cross_fit; this module is their layout, plan and choice of model per posting).

Scoring: a query posting's candidate pairs are scored by the model of the posting's own
fold, the one that never saw its labels. On scope `all` every posting's probabilities are
therefore out-of-fold (the label audit's evidence, explorer.core.audit); on a fold scope
foldK every posting is of fold K, so only model k scores and fold-K figures are those of a
model that never read fold K. Model 0 is trained as the default `explorer learn` trains
(folds 2-4, stopped on fold 1), so its fold-0 probabilities equal a plain model's.

What cross-fitting cannot keep honest: models 1..n-1 read fold 0's labels, so a threshold
or configuration chosen on fold 1 (scored by model 1) carries fold 0's labels into it.
Fold-0 figures of the study's protocol (select on fold 1, report on fold 0) come from a
plain model; a cross-fitted one is for out-of-fold evidence on the whole table."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from explorer.core.atomic_write import write_atomic
from explorer.core.config import ConfigError

if TYPE_CHECKING:  # pair_model loads and trains them: it imports this module, never back
    from explorer.core.pair_model import PairModel

__all__ = ["CROSS_FIT_FILE", "FOLD_DIR", "CrossFitModel", "check_held_out", "fold_plan",
           "read_record"]

FORMAT = 1
CROSS_FIT_FILE = "cross_fit.json"
FOLD_DIR = re.compile(r"fold(0|[1-9][0-9]*)")  # a fold scope's name, as the bundle spells it
MIN_SPLITS = 3  # a fold held out, one to stop on, at least one to train on


@dataclass(frozen=True)
class CrossFitModel:
    """Per held-out fold scope ("fold0", ...) the model that never read it."""

    models: dict[str, PairModel]

    @property
    def features(self) -> tuple[str, ...]:
        """Every feature one of its models reads."""
        return tuple(dict.fromkeys(f for m in self.models.values() for f in m.features))

    def by_fold(self, folds: np.ndarray) -> list[tuple[PairModel, np.ndarray]]:
        """Which model scores which queries, given each query's fold: (model, mask over the
        queries) per fold present, ascending. One line when a fold has no model."""
        out = []
        for k in np.unique(folds).tolist():
            scope = f"fold{k}"
            if scope not in self.models:
                raise ConfigError(f"the cross-fitted model has no model for {scope} (it has "
                                  f"{', '.join(self.models)}): postings of that fold "
                                  "cannot be scored out of fold")
            out.append((self.models[scope], folds == k))
        return out

    def save(self, folder: Path) -> None:
        """foldK/{model.txt,model.json} per model and the record, in an existing folder;
        the record last, so a folder with one holds every fold's model."""
        for scope, model in self.models.items():
            (folder / scope).mkdir()
            model.save(folder / scope)
        record = {"format": FORMAT, "held_out": list(self.models),
                  "rule": "model of fold k: trained on the other folds but k+1 (mod n), "
                          "early-stopped on fold k+1 (mod n); scores queries of fold k"}
        write_atomic(folder / CROSS_FIT_FILE,
                     lambda f: f.write(json.dumps(record, indent=1).encode("utf-8")))


def fold_plan(n_splits: int) -> list[tuple[str, list[str], str]]:
    """(held-out fold, train folds ascending, select fold) per fold k: select k+1 mod n,
    train the rest. Fold 0's entry is the default `explorer learn` (train 2..n-1, select
    1), so model 0 is the plain model."""
    if n_splits < MIN_SPLITS:
        raise ConfigError(f"cross-fitting needs at least {MIN_SPLITS} folds (a held-out, a "
                          f"select and a train fold); this bundle has {n_splits}")
    plan = []
    for k in range(n_splits):
        select = (k + 1) % n_splits
        train = [f"fold{j}" for j in range(n_splits) if j not in (k, select)]
        plan.append((f"fold{k}", train, f"fold{select}"))
    return plan


def read_record(path: Path) -> tuple[str, ...]:
    """The held-out folds a cross-fit record lists, checked; one line naming the file and
    the field when it is unreadable or malformed."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: unreadable cross-fit record ({type(exc).__name__})"
                          ) from None
    if not isinstance(record, dict):
        raise ConfigError(f"{path}: not a JSON object")
    if record.get("format") != FORMAT:
        raise ConfigError(f"{path}: cross-fit format {record.get('format')!r}, this "
                          f"explorer reads {FORMAT}")
    held = record.get("held_out")
    if not (isinstance(held, list) and held and len(set(map(str, held))) == len(held)
            and all(isinstance(s, str) and FOLD_DIR.fullmatch(s) for s in held)):
        raise ConfigError(f"{path}: field held_out is missing or not a list of distinct "
                          "fold scopes")
    return tuple(held)


def check_held_out(folder: Path, models: dict[str, PairModel]) -> CrossFitModel:
    """The cross-fitted model of these fold models (held-out fold -> model, loaded from
    folder/foldK); one line when a fold's model read the fold it is held out from."""
    for scope, model in models.items():
        if scope in (*model.train_scopes, model.select_scope):
            raise ConfigError(f"{folder / scope}: this fold's model read {scope}, the fold "
                              "it must never read")
    return CrossFitModel(dict(models))
