"""A saved pair model's files (explorer.core.pair_model), checked before anything runs
them: the JSON record's fields, the dataset it was trained on, the features it needs, the
text's size and sha256, and a parse by LightGBM in a child process (its reader aborts the
whole process on some malformed files)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from explorer.core.config import ConfigError

__all__ = ["FORMAT", "META_FILE", "MODEL_FILE", "check_meta", "parses_apart", "read_checked"]

FORMAT = 1
MODEL_FILE, META_FILE = "model.txt", "model.json"
MAX_MODEL_BYTES = 256 << 20
PARSE_TIMEOUT_S = 120


def read_checked(folder: Path, dataset_sha256: str, available: tuple[str, ...]
                 ) -> tuple[dict, bytes]:
    """A saved model's checked record and the bytes of its text (not parsed yet)."""
    meta_path, model_path = folder / META_FILE, folder / MODEL_FILE
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{meta_path}: unreadable model record ({type(exc).__name__})"
                          ) from None
    check_meta(meta_path, meta)
    if meta["dataset_sha256"] != dataset_sha256:
        raise ConfigError(f"{meta_path}: the model was trained on another dataset "
                          f"(sha256 {meta['dataset_sha256'][:12]}…)")
    missing = [f for f in meta["features"] if f not in available]
    if missing:
        raise ConfigError(f"{meta_path}: the model needs feature(s) {', '.join(missing)} "
                          "that this bundle does not have")
    try:
        if model_path.stat().st_size > MAX_MODEL_BYTES:
            raise ConfigError(f"{model_path}: larger than {MAX_MODEL_BYTES >> 20} MiB")
        data = model_path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{model_path}: unreadable ({type(exc).__name__})") from None
    if hashlib.sha256(data).hexdigest() != meta["model_sha256"]:
        raise ConfigError(f"{model_path}: changed since it was saved (its sha256 is not "
                          f"the one {META_FILE} records)")
    return meta, data


def parses_apart(*paths: Path) -> None:
    """LightGBM's text reader aborts the whole process on some malformed files (a crash no
    exception can catch), so the files are parsed first in one short-lived child process
    (one start-up for a cross-fitted model's folds); the first that the child cannot load
    is refused in one line (the child names each file on stdout before parsing it)."""
    code = ("import sys, lightgbm\nfor p in sys.argv[1:]:\n"
            "    print(p, flush=True)\n    lightgbm.Booster(model_file=p)")
    args = [str(p) for p in paths]
    try:
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              timeout=PARSE_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{args[0] if len(args) == 1 else ', '.join(args)}: parsing took "
                          f"over {PARSE_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        started = proc.stdout.decode("utf-8", "replace").splitlines()
        bad = started[-1] if started and started[-1] in args else args[0]
        raise ConfigError(f"{bad}: not a LightGBM model (LightGBM cannot read it)")


def check_meta(path: Path, meta: object) -> None:
    def bad(field: str) -> ConfigError:
        return ConfigError(f"{path}: field {field} is missing or of the wrong type")

    if not isinstance(meta, dict):
        raise ConfigError(f"{path}: not a JSON object")
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{path}: model format {meta.get('format')!r}, this explorer "
                          f"reads {FORMAT}")
    if not (isinstance(meta.get("features"), list) and meta["features"]
            and all(isinstance(f, str) for f in meta["features"])):
        raise bad("features")
    for name in ("dataset_sha256", "model_sha256"):
        if not isinstance(meta.get(name), str):
            raise bad(name)
    if not (isinstance(meta.get("train"), list)
            and all(isinstance(s, str) for s in meta["train"])):
        raise bad("train")
    if not isinstance(meta.get("select"), str):
        raise bad("select")
    blend = meta.get("blend", {})
    if not (isinstance(blend, dict) and all(
            isinstance(m, str) and isinstance(t, int | float) and not isinstance(t, bool)
            and -1.0 <= t <= 1.0 for m, t in blend.items())):
        raise bad("blend")
    best = meta.get("best_iteration")
    if not isinstance(best, int) or isinstance(best, bool) or best < 1:
        raise bad("best_iteration")
