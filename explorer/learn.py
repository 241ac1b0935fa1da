"""`explorer learn BUNDLE [--train fold2,fold3,fold4] [--select fold1] [--name NAME] [--blend]`:
train the pair classifier (explorer.core.pair_model) on the train scopes, early-stopped on
the select scope, and store it inside the bundle as models/NAME/{model.txt,model.json}.

The folder is written beside its place and renamed into it, so a bundle never holds half
a model; an existing models/NAME is replaced only with --force and only when it holds
nothing but a model this command wrote (never anything else). Fold 0 is never read."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import tempfile
import time
from pathlib import Path

from explorer.core.bundle import Bundle
from explorer.core.config import ConfigError, MatchConfig
from explorer.core.engine import Engine
from explorer.core.modes.learned import DEFAULT_MODEL
from explorer.core.pair_model import META_FILE, MODEL_FILE, MODELS, TEST_SCOPE, train_model
from explorer.core.tune import tune

_NAME = re.compile(r"[A-Za-z0-9_.+-]{1,64}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="explorer learn", description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", type=Path)
    p.add_argument("--train", default="fold2,fold3,fold4",
                   help="comma-separated train scopes (default fold2,fold3,fold4)")
    p.add_argument("--select", default="fold1", help="early-stopping scope (default fold1)")
    p.add_argument("--name", default=DEFAULT_MODEL,
                   help=f"the model's name (default {DEFAULT_MODEL})")
    p.add_argument("--rounds", type=int, default=2000, help="at most this many trees")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blend", action="store_true",
                   help="add each modality's INB-blended similarity as a feature (one INB "
                   "step over its own list, at the threshold tuned on the first train scope)")
    p.add_argument("--force", action="store_true",
                   help="replace a model of that name this command wrote before")
    return p


def learn(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    if not _NAME.fullmatch(args.name) or args.name.startswith("."):
        raise ConfigError(f"--name {args.name!r}: letters, digits and _ . + - only")
    if not 1 <= args.rounds <= 100_000:
        raise ConfigError(f"--rounds {args.rounds}: between 1 and 100000")
    train = [s.strip() for s in args.train.split(",") if s.strip()]
    _check_scopes(train, args.select)
    target = _target(args.bundle / MODELS / args.name, args.force)
    bundle = Bundle.open(args.bundle)
    if not bundle.manifest.has_labels:
        raise ConfigError(f"{args.bundle}: learning needs labels: this bundle has no "
                          "label_group")
    for scope in (*train, args.select):
        if scope not in bundle.manifest.scopes:
            raise ConfigError(f"scope {scope!r} is not in this bundle (it has: "
                              f"{', '.join(bundle.manifest.scopes)})")
    start = time.perf_counter()
    engines = [Engine(bundle, s) for s in train]
    blend = {}
    if args.blend:  # each modality's own threshold, tuned on a train scope (never fold 0)
        for m in bundle.manifest.modalities:
            cfg = tune(engines[0], MatchConfig("single", (m.name,), (0.5,)))
            blend[m.name] = cfg.thresholds[0]
    model = train_model(engines, Engine(bundle, args.select),
                        str(bundle.manifest.dataset.get("sha256", "")), rounds=args.rounds,
                        seed=args.seed, blend=blend)
    _store(model, target)
    print(f"explorer learn: {target} ({model.best_iteration} trees, "
          f"{len(model.features)} features, train {','.join(train)}, select {args.select}, "
          f"{time.perf_counter() - start:.0f} s)")
    return 0


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
    wrote."""
    parent = path.parent
    if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
        raise ConfigError(f"{parent}: not a folder; refusing to write a model there")
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise ConfigError(f"{path}: not a model folder; refusing to replace it")
    if path.exists():
        if not force:
            raise ConfigError(f"{path} exists: give --force to replace it, or another --name")
        found = {p.name for p in path.iterdir()}
        if not found <= {MODEL_FILE, META_FILE} or any(
                (path / n).is_symlink() or not (path / n).is_file() for n in found):
            raise ConfigError(f"{path} holds files explorer learn did not write; refusing "
                              "to replace it")
    return path


def _store(model, target: Path) -> None:
    """Write the model into a new folder beside `target`, then rename it into place; an
    old model (checked again now) is moved aside first and removed last. Only the two
    files this command writes are ever deleted, and a folder only when that empties it."""
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
    """Delete model.txt and model.json (regular files only) and the folder if that empties
    it; anything else found there is left in place."""
    for name in (MODEL_FILE, META_FILE):
        f = folder / name
        if f.is_file() and not f.is_symlink():
            f.unlink()
    _remove_empty(folder)


def _remove_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # absent, or not empty: left as it is
        folder.rmdir()
