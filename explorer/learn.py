"""`explorer learn BUNDLE [--train fold2,fold3,fold4] [--select fold1] [--name NAME] [--blend]`:
train the pair classifier (explorer.core.pair_model) on the train scopes, early-stopped on
the select scope, and store it inside the bundle as models/NAME/{model.txt,model.json}.
`explorer learn BUNDLE --cross-fit [--name NAME] [--blend]`: one model per fold k instead,
trained on every other fold but k+1 (mod n), early-stopped on fold k+1, never reading fold
k, stored as models/NAME/cross_fit.json and models/NAME/foldK/ (explorer.core.cross_fit):
the learned mode then scores each posting by the model of its own fold, so every
probability on scope `all` is out-of-fold, and on foldK only model k scores.

The folder is written beside its place and renamed into it, so a bundle never holds half
a model; an existing models/NAME is replaced only with --force and only when it holds
nothing but a model this command wrote, plain or cross-fitted (never anything else).
Fold 0 is never read, except by a cross-fit's models of the other folds."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from explorer.core.bundle import Bundle
from explorer.core.config import ConfigError, MatchConfig
from explorer.core.cross_fit import CROSS_FIT_FILE, FOLD_DIR, fold_plan
from explorer.core.engine import Engine
from explorer.core.modes.learned import DEFAULT_MODEL
from explorer.core.pair_model import (
    META_FILE,
    MODEL_FILE,
    MODELS,
    TEST_SCOPE,
    PairCache,
    PairModel,
    in_sample_modalities,
    select_loss,
    train_cross_fit,
    train_model,
)
from explorer.core.tune import tune

_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,64}")
IN_SAMPLE = ("choose", "keep", "drop")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="explorer learn", description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--train", help="comma-separated train scopes (default fold2,fold3,fold4)")
    p.add_argument("--select", help="early-stopping scope (default fold1)")
    p.add_argument("--cross-fit", action="store_true",
                   help="one model per fold k, never reading fold k (trained on the other "
                   "folds but k+1, stopped on k+1): out-of-fold scores on scope all")
    p.add_argument("--name", default=DEFAULT_MODEL,
                   help=f"the model's name (default {DEFAULT_MODEL})")
    p.add_argument("--rounds", type=int, default=2000, help="at most this many trees")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blend", action="store_true",
                   help="add each modality's INB-blended similarity as a feature (one INB "
                   "step over its own list, at the threshold tuned on the first train scope)")
    p.add_argument("--in-sample", choices=IN_SAMPLE, default="choose",
                   help="a modality whose own model was trained on the classifier's train "
                   "or select scopes (params.trained_on): keep its features, drop them, or "
                   "choose (default: train both ways, keep the lower log loss on the "
                   "select scope, which those models never trained on)")
    p.add_argument("--force", action="store_true",
                   help="replace a model of that name this command wrote before")
    return p


def learn(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if not _NAME.fullmatch(args.name) or args.name.startswith("."):
        raise ConfigError(f"--name {args.name!r}: letters, digits and _ . + - only")
    if not 1 <= args.rounds <= 100_000:
        raise ConfigError(f"--rounds {args.rounds}: between 1 and 100000")
    if args.cross_fit and (args.train is not None or args.select is not None):
        raise ConfigError("--cross-fit picks each fold model's train and select scopes "
                          "itself: drop --train and --select")
    train = [s.strip() for s in (args.train if args.train is not None
                                 else "fold2,fold3,fold4").split(",") if s.strip()]
    select = args.select if args.select is not None else "fold1"
    if not args.cross_fit:
        _check_scopes(train, select)
    target = _target(args.bundle / MODELS / args.name, args.force)
    bundle = Bundle.open(args.bundle)
    if not bundle.manifest.has_labels:
        raise ConfigError(f"{args.bundle}: learning needs labels: this bundle has no "
                          "label_group")
    needed = ([held for held, _, _ in fold_plan(int(bundle.manifest.split["n_splits"]))]
              if args.cross_fit else [*train, select])
    for scope in needed:
        if scope not in bundle.manifest.scopes:
            raise ConfigError(f"scope {scope!r} is not in this bundle (it has: "
                              f"{', '.join(bundle.manifest.scopes)})")
    start = time.perf_counter()
    sha = str(bundle.manifest.dataset.get("sha256", ""))
    blend_of = _blend_tuner(bundle) if args.blend else None
    cache: PairCache = {}
    engines = {s: Engine(bundle, s) for s in needed}

    def plain(leave_out: tuple[str, ...]) -> PairModel:
        first = engines[train[0]]
        return train_model([engines[s] for s in train], engines[select], sha,
                           rounds=args.rounds, seed=args.seed,
                           blend=blend_of(first) if blend_of else {}, cache=cache,
                           leave_out=leave_out)

    leave_out, chosen = _in_sample(bundle, needed, args.in_sample, plain)
    if args.cross_fit:
        def done(held: str, m: PairModel) -> None:
            print(f"explorer learn: model of {held}: {m.best_iteration} trees, train "
                  f"{','.join(m.train_scopes)}, select {m.select_scope} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)

        model = train_cross_fit(engines, sha, rounds=args.rounds, seed=args.seed,
                                blend_of=blend_of, done=done, leave_out=leave_out,
                                cache=cache,  # the in-sample choice's model is fold 0's
                                known={TEST_SCOPE: chosen} if chosen is not None else None)
        what = f"cross-fitted over {', '.join(model.models)}"
    else:
        model = chosen if chosen is not None else plain(leave_out)
        what = (f"{model.best_iteration} trees, {len(model.features)} features, train "
                f"{','.join(train)}, select {select}")
    _store(model, target)
    print(f"explorer learn: {target} ({what}, {time.perf_counter() - start:.0f} s)")
    return 0


def _in_sample(bundle: Bundle, scopes: list[str], how: str,
               plain: Callable[[tuple[str, ...]], PairModel]
               ) -> tuple[tuple[str, ...], PairModel | None]:
    """The modalities to leave out of the classifier, among those whose own model was
    trained on labels of a scope the classifier learns or stops on (their similarities are
    in-sample there, higher than on postings that model never saw, so a classifier trained
    there may trust them too much: pair_model.in_sample_modalities). `how`: keep, drop,
    or choose: `plain(leave_out)` trains the (train, select) model both ways and the lower
    log loss on the select scope decides; that model is returned too (None otherwise).
    Each decision is one printed line."""
    found = in_sample_modalities(bundle.manifest, scopes)
    if not found:
        return (), None
    names = ", ".join(f"{m} (trained on {','.join(seen)})" for m, seen in found.items())
    if how != "choose":
        print(f"explorer learn: in-sample modality {names}: "
              f"{'kept' if how == 'keep' else 'left out'} (--in-sample {how})", flush=True)
        return (() if how == "keep" else tuple(found)), None
    kept, dropped = plain(()), plain(tuple(found))
    loss_kept, loss_dropped = select_loss(kept), select_loss(dropped)
    keep = loss_kept < loss_dropped
    print(f"explorer learn: in-sample modality {names}: select-scope log loss "
          f"{loss_kept:.5f} with it, {loss_dropped:.5f} without: "
          f"{'kept' if keep else 'left out'} (--in-sample keep / drop decide)", flush=True)
    return (() if keep else tuple(found)), (kept if keep else dropped)


def _blend_tuner(bundle: Bundle) -> Callable[[Engine], dict[str, float]]:
    """scope -> each modality's single-mode threshold tuned on it (a model's first train
    scope, never the fold it is held out from), once per scope."""
    tuned: dict[str, dict[str, float]] = {}

    def blend_of(engine: Engine) -> dict[str, float]:
        if engine.scope not in tuned:
            tuned[engine.scope] = {
                m.name: tune(engine, MatchConfig("single", (m.name,), (0.5,))).thresholds[0]
                for m in bundle.manifest.modalities}
        return tuned[engine.scope]
    return blend_of


def _check_scopes(train: list[str], select: str) -> None:
    if not train:
        raise ConfigError("--train names no scope")
    if TEST_SCOPE in train or select == TEST_SCOPE:
        raise ConfigError(f"{TEST_SCOPE} is the test fold: explorer learn never reads it")
    if select in train:
        raise ConfigError(f"--select {select} is also a train scope: early stopping needs "
                          "a scope the trees did not see")
    if len(set(train)) != len(train):
        raise ConfigError("--train names a scope twice")


def _target(path: Path, force: bool) -> Path:
    """models/NAME, checked before any work (and again just before the swap: training
    takes a while): absent, or (with --force) a folder holding only a model this command
    wrote, plain or cross-fitted."""
    parent = path.parent
    if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
        raise ConfigError(f"{parent}: not a folder; refusing to write a model there")
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ConfigError(f"{path}: not a model folder; refusing to replace it")
    if path.exists():
        if not force:
            raise ConfigError(f"{path} exists: give --force to replace it, or another --name")
        if not _ours(path):
            raise ConfigError(f"{path} holds files explorer learn did not write; refusing "
                              "to replace it")
    return path


def _ours(path: Path) -> bool:
    """Whether the folder holds nothing but what this command writes: model.txt,
    model.json, cross_fit.json (regular files) and foldK folders holding only the first
    two."""
    for p in path.iterdir():
        if p.is_symlink():
            return False
        if p.is_dir() and FOLD_DIR.fullmatch(p.name):
            if any(q.name not in (MODEL_FILE, META_FILE) or q.is_symlink() or not q.is_file()
                   for q in p.iterdir()):
                return False
        elif p.name not in (MODEL_FILE, META_FILE, CROSS_FIT_FILE) or not p.is_file():
            return False
    return True


def _store(model, target: Path) -> None:
    """Write the model (a PairModel or a CrossFitModel: its `save(folder)`) into a new
    folder beside `target`, then rename it into place; an old model (checked again now) is
    moved aside first and removed last. Only the files this command writes are ever
    deleted, and a folder only when that empties it."""
    target.parent.mkdir(exist_ok=True)
    _target(target, force=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    aside = None
    try:
        model.save(work)
        os.chmod(work, 0o755)
        if target.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
            os.rename(target, aside / target.name)
        os.rename(work, target)
    except BaseException:
        _remove_model(work)
        if aside is not None and (aside / target.name).exists() and not target.exists():
            os.rename(aside / target.name, target)  # put the previous model back
        raise
    finally:
        if aside is not None:
            _remove_model(aside / target.name)
            _remove_empty(aside)


def _remove_model(folder: Path) -> None:
    """Delete the files this command writes (regular files only: model.txt, model.json,
    cross_fit.json, and the first two in foldK folders) and each folder that this empties;
    anything else found there is left in place."""
    if folder.is_symlink() or not folder.is_dir():
        return
    _remove_files(folder, (CROSS_FIT_FILE, MODEL_FILE, META_FILE))
    for sub in folder.iterdir():
        if FOLD_DIR.fullmatch(sub.name) and sub.is_dir() and not sub.is_symlink():
            _remove_files(sub, (MODEL_FILE, META_FILE))
            _remove_empty(sub)
    _remove_empty(folder)


def _remove_files(folder: Path, names: tuple[str, ...]) -> None:
    for name in names:
        f = folder / name
        if f.is_file() and not f.is_symlink():
            f.unlink()


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # absent, or not empty: left as it is
        folder.rmdir()
