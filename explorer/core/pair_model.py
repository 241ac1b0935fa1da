"""A learned pair classifier (issue 11): LightGBM gradient-boosted trees over the pair
features (explorer.core.pair_features), trained on the candidate pairs of train scopes and
early-stopped on a selection scope, kept as LightGBM's own text format plus a JSON record
of its features, the dataset it was trained on and the scopes it saw. Nothing is
unpickled: a model file is parsed by LightGBM's text reader, and one that does not parse,
comes from another dataset or names features this scope lacks is refused in one line.

Fold 0 is the test fold of the study's protocol: training never reads it, except for a
cross-fitted model (explorer.core.cross_fit), each of whose per-fold models never reads its
own fold instead; `bundle_scorer` loads either kind."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from explorer.core.atomic_write import write_atomic
from explorer.core.config import ConfigError
from explorer.core.cross_fit import (
    CROSS_FIT_FILE,
    CrossFitModel,
    check_held_out,
    fold_plan,
    read_record,
)
from explorer.core.model_files import (
    FORMAT,
    META_FILE,
    MODEL_FILE,
    parses_apart,
    read_checked,
)
from explorer.core.pair_features import (
    BLENDED,
    PairFeatures,
    Scope,
    feature_names,
    pair_features,
    with_blended,
    without_modalities,
)
from explorer.core.spaces import search_threads

__all__ = ["PairModel", "bundle_model", "bundle_models", "bundle_scorer", "learned_modalities",
           "learned_scores", "load_cross_fit", "load_model", "load_models", "train_cross_fit",
           "train_model"]

TEST_SCOPE = "fold0"
MODELS = "models"
# pairs predicted at a time: ~0.5 s of LightGBM on 2 cores, the longest a superseded first
# view of the learned mode runs on before it can stop
PREDICT_PAIRS = 1 << 16
PARAMS = {"objective": "binary", "learning_rate": 0.05, "num_leaves": 63,
          "min_data_in_leaf": 20, "feature_fraction": 0.9, "bagging_fraction": 0.8,
          "bagging_freq": 1, "deterministic": True, "force_row_wise": True,
          "verbosity": -1}


@dataclass(frozen=True)
class PairModel:
    booster: Any                        # lightgbm.Booster
    features: tuple[str, ...]
    dataset_sha256: str
    train_scopes: tuple[str, ...]
    select_scope: str
    best_iteration: int
    # modality -> the threshold of its INB-blended similarity feature (`m.blend_sim`,
    # pair_features.with_blended); empty: the model reads no such feature
    blend: dict[str, float] = field(default_factory=dict)

    def probabilities(self, features: PairFeatures) -> np.ndarray:
        """The classifier's probability that each pair is one product."""
        missing = [f for f in self.features if f not in features.names]
        if missing:
            raise ConfigError(f"the model needs feature(s) {', '.join(missing)} that this "
                              "scope does not have")
        x = features.values[:, [features.names.index(f) for f in self.features]]
        return np.asarray(self.booster.predict(x, num_iteration=self.best_iteration,
                                               num_threads=search_threads()), np.float32)

    def save(self, folder: Path) -> None:
        """model.txt and model.json in an existing folder (each written atomically)."""
        text = self.booster.model_to_string(num_iteration=self.best_iteration).encode()
        meta = {"format": FORMAT, "features": list(self.features),
                "model_sha256": hashlib.sha256(text).hexdigest(),
                "dataset_sha256": self.dataset_sha256, "train": list(self.train_scopes),
                "select": self.select_scope, "best_iteration": self.best_iteration,
                "blend": self.blend}
        write_atomic(folder / MODEL_FILE, lambda f: f.write(text))
        write_atomic(folder / META_FILE, lambda f: f.write(json.dumps(meta, indent=1)
                                                           .encode("utf-8")))


def model_inputs(modalities: tuple[str, ...]) -> tuple[str, ...]:
    """Every feature a model may read on a scope of these modalities."""
    return (*feature_names(modalities), *(f"{m}.{BLENDED}" for m in modalities))


# scope -> its pair features (no blended column) and whether each pair is one product:
# what a caller training several models on the same scopes passes to compute them once
PairCache = dict[str, tuple[PairFeatures, np.ndarray]]


def _labelled_pairs(engine: Scope, blend: dict[str, float], held_out: str,
                    cache: PairCache | None) -> tuple[PairFeatures, np.ndarray]:
    """The scope's pair features and whether each pair is one product."""
    if not engine.has_labels:
        raise ConfigError(f"learning needs labels: scope {engine.scope} has no label_group")
    if engine.scope == held_out:
        raise ConfigError(f"{TEST_SCOPE} is the test fold: learning never reads it"
                          if held_out == TEST_SCOPE else
                          f"{held_out} is this model's held-out fold: it never reads it")
    if cache is not None and engine.scope in cache:
        f, y = cache[engine.scope]
    else:
        f = pair_features(engine)
        y = engine.true_mask(engine.graph.cand)[f.rows, f.cols]
        if cache is not None:
            cache[engine.scope] = (f, y)
    return with_blended(engine, f, blend), y


def train_model(train: list[Scope], select: Scope, dataset_sha256: str, *,
                rounds: int = 2000, patience: int = 50, seed: int = 0,
                blend: dict[str, float] | None = None, held_out: str = TEST_SCOPE,
                cache: PairCache | None = None, leave_out: tuple[str, ...] = ()
                ) -> PairModel:
    """A classifier of the train scopes' candidate pairs, early-stopped on the select
    scope's (log loss); one line when a scope has no labels, is the `held_out` scope (fold
    0, the test fold, unless a cross-fit names another), or a train scope has no pair of
    one product among its candidates. `blend` (modality -> threshold) adds each modality's
    INB-blended similarity feature; `cache` keeps each scope's features for the next
    model trained on it; the features of the modalities `leave_out` are not used
    (`in_sample_modalities`: their similarities on the train scopes are in-sample)."""
    blend = {m: t for m, t in (blend or {}).items() if m not in leave_out}
    lgb = _lightgbm()
    if not train:
        raise ConfigError("learning needs at least one train scope")
    parts = []
    for engine in train:
        f, y = _labelled_pairs(engine, blend, held_out, cache)
        f = without_modalities(f, leave_out)
        if not y.any():
            raise ConfigError(f"train scope {engine.scope} has no candidate pair of one "
                              "product: nothing to learn from")
        parts.append((f, y))
    fs, ys = _labelled_pairs(select, blend, held_out, cache)
    fs = without_modalities(fs, leave_out)
    names = parts[0][0].names
    params = {**PARAMS, "seed": seed, "num_threads": search_threads()}
    data = lgb.Dataset(np.concatenate([f.values for f, _ in parts]),
                       np.concatenate([y for _, y in parts]).astype(np.float32),
                       feature_name=list(names), free_raw_data=True)
    valid = lgb.Dataset(fs.values, ys.astype(np.float32), reference=data)
    booster = lgb.train(params, data, num_boost_round=rounds, valid_sets=[valid],
                        callbacks=[lgb.early_stopping(patience, verbose=False)])
    return PairModel(booster, tuple(names), dataset_sha256,
                     tuple(e.scope for e in train), select.scope,
                     int(booster.best_iteration or booster.current_iteration()), blend)


def load_model(folder: Path, dataset_sha256: str, available: tuple[str, ...]) -> PairModel:
    """The model saved in `folder` (see `load_models`)."""
    return load_models([folder], dataset_sha256, available)[0]


def load_models(folders: list[Path], dataset_sha256: str, available: tuple[str, ...]
                ) -> list[PairModel]:
    """The models saved in `folders`, each refused in one line naming the file when its
    record is malformed, it was trained on another dataset, it needs features that
    `available` lacks, its text changed since it was saved, or LightGBM cannot parse it
    (in one child process first: a tampered file is never run, only parsed, and cannot
    crash this one)."""
    lgb = _lightgbm()
    read = [read_checked(folder, dataset_sha256, available) for folder in folders]
    parses_apart(*(folder / MODEL_FILE for folder in folders))
    models = []
    for folder, (meta, data) in zip(folders, read, strict=True):
        model_path = folder / MODEL_FILE
        try:
            booster = lgb.Booster(model_str=data.decode("utf-8"))
        except (UnicodeDecodeError, lgb.basic.LightGBMError) as exc:
            raise ConfigError(f"{model_path}: not a LightGBM model ({type(exc).__name__})"
                              ) from None
        if tuple(booster.feature_name()) != tuple(meta["features"]):
            raise ConfigError(f"{model_path}: its features differ from {META_FILE}'s")
        models.append(PairModel(booster, tuple(meta["features"]), meta["dataset_sha256"],
                                tuple(meta["train"]), meta["select"], meta["best_iteration"],
                                dict(meta.get("blend", {}))))
    return models


def load_cross_fit(folder: Path, dataset_sha256: str, available: tuple[str, ...]
                   ) -> CrossFitModel:
    """The cross-fitted model in `folder` (explorer.core.cross_fit): each fold's model
    checked as `load_models` checks one (one child parses them all), and none that read
    the fold it is held out from."""
    held = read_record(folder / CROSS_FIT_FILE)
    models = load_models([folder / s for s in held], dataset_sha256, available)
    return check_held_out(folder, dict(zip(held, models, strict=True)))


def in_sample_modalities(manifest: Any, scopes: Iterable[str]) -> dict[str, list[str]]:
    """The modalities whose own model learned from the labels of some of `scopes`
    (`params.trained_on` in the manifest: a cross-modal model's train folds on this very
    dataset), with those scopes: on them its similarities are in-sample, higher than on a
    fold it never saw, so a classifier trained there learns to trust them too much."""
    wanted = set(scopes)
    out = {}
    for m in manifest.modalities:
        seen = m.params.get("trained_on")
        if isinstance(seen, list):
            hit = sorted(wanted & {s for s in seen if isinstance(s, str)})
            if hit:
                out[m.name] = hit
    return out


def select_loss(model: PairModel) -> float:
    """The binary log loss on its select scope of a model just trained (NaN for one read
    from a file: LightGBM does not keep it there)."""
    score = getattr(model.booster, "best_score", None) or {}
    return float(score.get("valid_0", {}).get("binary_logloss", float("nan")))


def train_cross_fit(scopes: dict[str, Scope], dataset_sha256: str, *, rounds: int = 2000,
                    seed: int = 0,
                    blend_of: Callable[[Scope], dict[str, float]] | None = None,
                    done: Callable[[str, PairModel], None] | None = None,
                    leave_out: tuple[str, ...] = (),
                    cache: PairCache | None = None,
                    known: dict[str, PairModel] | None = None) -> CrossFitModel:
    """One model per fold of `scopes` (fold scope name -> its engine, every fold of the
    split) by explorer.core.cross_fit.fold_plan, each never reading its held-out fold;
    each scope's features are computed once for all models. `blend_of(scope)` gives a
    model's blended-similarity thresholds from its first train scope (None: no blended
    feature); `done(held_out, model)` is called after each model. `known`: models
    already trained with these settings, by held-out fold, used as they are when their
    train and select scopes are that fold's plan (fold 0's is the plain model's)."""
    cache = {} if cache is None else cache
    models = {}
    for held_out, train, select in fold_plan(len(scopes)):
        missing = [s for s in (held_out, *train, select) if s not in scopes]
        if missing:
            raise ConfigError(f"cross-fitting needs every fold scope; missing "
                              f"{', '.join(missing)}")
        engines = [scopes[s] for s in train]
        ready = (known or {}).get(held_out)
        if ready is not None and ready.train_scopes == tuple(train) \
                and ready.select_scope == select:
            models[held_out] = ready
        else:
            models[held_out] = train_model(
                engines, scopes[select], dataset_sha256, rounds=rounds, seed=seed,
                blend=blend_of(engines[0]) if blend_of is not None else {},
                held_out=held_out, cache=cache, leave_out=leave_out)
        if done is not None:
            done(held_out, models[held_out])
    return CrossFitModel(models)


def _model_files(bundle: Any, name: str) -> tuple[bool, list[Path]]:
    """Whether models/NAME is cross-fitted, and its files, each checked to be a regular
    file inside the bundle: a plain model's record and text, or a cross-fitted model's
    record (cross_fit.json) followed by every fold model's two. BundleError or ConfigError
    when one is missing."""
    from explorer.core.bundle.files import bundle_file

    def one(rel: str) -> Path:
        return bundle_file(bundle.root, bundle.real_root, f"{MODELS}/{name}/{rel}")

    record = bundle.root / MODELS / name / CROSS_FIT_FILE
    if not (record.exists() or record.is_symlink()):
        return False, [one(META_FILE), one(MODEL_FILE)]
    held_out = read_record(one(CROSS_FIT_FILE))
    return True, [one(CROSS_FIT_FILE), *(one(f"{s}/{f}") for s in held_out
                                         for f in (META_FILE, MODEL_FILE))]


def bundle_models(bundle: Any) -> list[str]:
    """Names of the models stored in the bundle (models/NAME holding a plain model's two
    files, or a cross-fitted model's record and every fold model's two, each a regular file
    inside the bundle), sorted."""
    from explorer.core.bundle import BundleError

    folder = bundle.root / MODELS
    if folder.is_symlink() or not folder.is_dir():
        return []
    names = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith(".") or not child.is_dir() or child.is_symlink():
            continue  # a model being written (.NAME.*) or anything else
        try:
            _model_files(bundle, child.name)
        except (BundleError, ConfigError):
            continue
        names.append(child.name)
    return names


def learned_modalities(bundle: Any) -> list[str]:
    """The derived modalities of the bundle's models, plain or cross-fitted
    (`learned:NAME`), which `--best` and the app's Best search also try."""
    return [f"learned:{name}" for name in bundle_models(bundle)]


def bundle_scorer(bundle: Any, name: str, available: tuple[str, ...]
                  ) -> PairModel | CrossFitModel:
    """The bundle's model models/NAME: a PairModel, or a cross-fitted one
    (explorer.core.cross_fit.CrossFitModel), inside the bundle, of its dataset, needing
    only `available` features; kept in `bundle.derived` and loaded again only when its
    files change (loading parses each file in a child process first, about a second).
    One line when there is no such model or it does not fit."""
    from explorer.core.bundle import BundleError

    try:
        crossed, files = _model_files(bundle, name)
        stamp = tuple((s.st_mtime_ns, s.st_size, s.st_ino) for s in map(Path.stat, files))
    except (BundleError, OSError, ConfigError) as exc:
        raise ConfigError(f"no model {name!r} in this bundle ({exc}): train one with "
                          f"explorer learn --name {name}") from None
    key = f"pair_model:{name}"
    cached = bundle.derived.get(key)
    if cached is not None and cached[0] == stamp:
        scorer = cached[1]
        missing = [f for f in scorer.features if f not in available]
        if missing:
            raise ConfigError(f"{files[0]}: the model needs feature(s) "
                              f"{', '.join(missing)} that this bundle does not have")
        return scorer
    sha = str(bundle.manifest.dataset.get("sha256", ""))
    scorer = (load_cross_fit if crossed else load_model)(files[0].parent, sha, available)
    bundle.derived[key] = (stamp, scorer)
    return scorer


def bundle_model(bundle: Any, name: str, available: tuple[str, ...],
                 row: int | None = None) -> PairModel:
    """The PairModel that scores the pairs of bundle row `row` as a query by models/NAME
    (`bundle_scorer`): the model itself, or for a cross-fitted one the model of the row's
    fold (the one that never read its labels). A cross-fitted model asked for without a
    row is one line, as is no such model or one that does not fit."""
    scorer = bundle_scorer(bundle, name, available)
    if isinstance(scorer, PairModel):
        return scorer
    if row is None:
        raise ConfigError(f"model {name!r} is cross-fitted (one model per fold): which one "
                          "scores a pair depends on its query's fold")
    return scorer.by_fold(bundle.folds[[row]])[0][0]


def learned_scores(bundle, engine: Scope, modality: str) -> np.ndarray:
    """The (n, C) scores of `learned:NAME` on the engine's scope: the probability of every
    candidate pair of the graph by the bundle's model models/NAME (1 for the query
    itself, -inf at padding); for a cross-fitted model, each query's pairs by the model of
    the query's fold (explorer.core.cross_fit). The features are computed once; one line
    when there is no such model or it does not fit. The engine's yield point is called
    between modalities' features and blocks of predictions, so the app may abandon a
    superseded first view of the mode."""
    name = modality.partition(":")[2]
    scorer = bundle_scorer(bundle, name, model_inputs(engine.graph.modalities))
    engine.yield_point()
    f = pair_features(engine, between=engine.yield_point)
    if isinstance(scorer, PairModel):
        return pair_scores(scorer, engine, with_blended(engine, f, scorer.blend),
                           between=engine.yield_point)
    scores = _unscored(engine)
    for model, queries in scorer.by_fold(bundle.folds[engine.rows]):
        take = np.flatnonzero(queries[f.rows])
        part = PairFeatures(f.rows[take], f.cols[take], f.names, f.values[take])
        predict_into(scores, model, with_blended(engine, part, model.blend),
                     engine.yield_point)
    return scores


def pair_scores(model: PairModel, engine: Scope, features: PairFeatures | None = None,
                between: Callable[[], None] | None = None) -> np.ndarray:
    """(n, C) scores of the scope's candidate graph by `model`: each pair's probability,
    1 for the query itself, -inf at padding; predicted in blocks of PREDICT_PAIRS pairs,
    `between` called after each."""
    f = with_blended(engine, pair_features(engine), model.blend) if features is None \
        else features
    scores = _unscored(engine)
    predict_into(scores, model, f, between)
    return scores


def _unscored(engine: Scope) -> np.ndarray:
    scores = np.full(engine.graph.cand.shape, -np.inf, np.float32)
    scores[:, 0] = 1.0
    return scores


def predict_into(scores: np.ndarray, model: PairModel, f: PairFeatures,
                 between: Callable[[], None] | None = None) -> None:
    """Write `model`'s probability of each pair of `f` into `scores` at (row, column), in
    blocks of PREDICT_PAIRS pairs, `between` called after each."""
    for lo in range(0, len(f.rows), PREDICT_PAIRS):
        part = PairFeatures(f.rows[lo:lo + PREDICT_PAIRS], f.cols[lo:lo + PREDICT_PAIRS],
                            f.names, f.values[lo:lo + PREDICT_PAIRS])
        scores[part.rows, part.cols] = model.probabilities(part)
        if between is not None:
            between()


def _lightgbm() -> Any:
    """LightGBM, imported when a model is trained or loaded (`explorer evaluate` and the
    app need not load it); a library that cannot load is one line saying why."""
    try:
        import lightgbm
    except (ImportError, OSError) as exc:  # OSError: its OpenMP runtime is missing
        raise ConfigError(f"LightGBM cannot be loaded ({exc}); on Linux it needs the "
                          "OpenMP runtime: apt install libgomp1") from None
    return lightgbm
