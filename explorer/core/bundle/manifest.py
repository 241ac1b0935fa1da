"""Reading manifest.json: every field the explorer uses, type-checked, with errors that
name the field's path (`modalities[0].files.knn.fold0.idx: expected ...`)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any, NoReturn

from explorer.core.bundle.files import bundle_file, one_line
from explorer.core.bundle.schema import (
    ENCODERS,
    KINDS,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_MODALITIES,
    MODALITY_NAME,
    SCHEMA_VERSION,
    STORAGES,
    BundleError,
    Manifest,
    Modality,
    scope_fold,
)

_WANT = {"int": "an integer", "str": "a string", "name": "a non-empty string",
         "file": "a file name (string)", "dict": "an object", "list": "a list",
         "bool": "true or false", "number": "a number"}


def _is(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind in ("name", "file"):
        return isinstance(value, str) and value != ""
    if kind == "number":  # finite: json.loads reads NaN and Infinity too
        return (isinstance(value, int | float) and not isinstance(value, bool)
                and math.isfinite(value))
    return isinstance(value, {"dict": dict, "list": list, "bool": bool}[kind])


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Fields:
    """Typed reads of manifest fields: a missing or mistyped one is refused in one line
    naming the file and the field's path (e.g. modalities[0].files.knn.fold0.idx)."""

    def __init__(self, where: Path) -> None:
        self.where = where

    def fail(self, label: str, problem: str) -> NoReturn:
        raise BundleError(f"{self.where}: {label}: {problem}")

    def get(self, obj: dict, key: str, label: str, kind: str, *,
            optional: bool = False) -> Any:
        if key not in obj:
            if optional:
                return None
            self.fail(label, "missing")
        value = obj[key]
        if not _is(value, kind):
            self.fail(label, f"expected {_WANT[kind]}, got {_show(value)}")
        return value

    def choice(self, obj: dict, key: str, label: str, allowed: tuple[str, ...]) -> str:
        value = self.get(obj, key, label, "str")
        if value not in allowed:
            self.fail(label, f"{value!r} is not one of {', '.join(allowed)}")
        return value


def _read_manifest_json(root: Path, real_root: Path) -> tuple[Path, Any]:
    shown = root / MANIFEST
    if not os.path.lexists(shown):
        raise BundleError(f"{root}: not a bundle (no {MANIFEST})")
    real = bundle_file(root, real_root, MANIFEST)
    try:
        size = os.stat(real).st_size
        if size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{shown}: {size} bytes, more than any manifest "
                              f"({MAX_MANIFEST_BYTES >> 20} MiB)")
        return shown, json.loads(real.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(f"{shown}: unreadable manifest ({one_line(exc)})") from None


def read_manifest(folder: str | os.PathLike[str]) -> Manifest:
    """The checked manifest of the bundle folder `folder` (no other file is read)."""
    return parse_manifest(Path(folder) / MANIFEST)


def parse_manifest(manifest: Path) -> Manifest:
    root = manifest.parent
    path, raw = _read_manifest_json(root, Path(os.path.realpath(root)))
    if not isinstance(raw, dict):
        raise BundleError(f"{path}: manifest is not a JSON object")
    f = _Fields(path)
    version = f.get(raw, "schema_version", "schema_version", "int")
    if version > SCHEMA_VERSION:
        raise BundleError(
            f"{path}: schema_version {version} is newer than this explorer supports "
            f"({SCHEMA_VERSION}); upgrade the explorer"
        )
    if version < 1:
        f.fail("schema_version", f"{version} is not a schema version")
    n_items = f.get(raw, "n_items", "n_items", "int")
    k = f.get(raw, "k", "k", "int")
    if n_items <= 0 or k <= 0:
        raise BundleError(f"{path}: n_items and k must be positive")
    dataset = f.get(raw, "dataset", "dataset", "dict")
    has_labels = f.get(dataset, "has_labels", "dataset.has_labels", "bool", optional=True)
    split = f.get(raw, "split", "split", "dict")
    n_splits = f.get(split, "n_splits", "split.n_splits", "int", optional=not has_labels)
    if has_labels and n_splits < 1:
        f.fail("split.n_splits", f"{n_splits}, but a bundle with labels is split into folds")
    scopes = _parse_scopes(f, raw, bool(has_labels), n_splits or 0)
    listed = f.get(raw, "modalities", "modalities", "list")
    if not listed:
        raise BundleError(f"{path}: manifest lists no modalities")
    if len(listed) > MAX_MODALITIES:
        f.fail("modalities", f"{len(listed)} modalities, at most {MAX_MODALITIES} are supported")
    modalities = tuple(_parse_modality(f, m, f"modalities[{i}]", scopes)
                       for i, m in enumerate(listed))
    names = [m.name for m in modalities]
    if len(set(names)) != len(names):
        raise BundleError(f"{path}: duplicate modality names")
    graphs = f.get(raw, "graphs", "graphs", "dict")
    for scope in scopes:
        g = f.get(graphs, scope, f"graphs.{scope}", "dict")
        f.get(g, "cand", f"graphs.{scope}.cand", "file")
        f.get(g, "topk", f"graphs.{scope}.topk", "file")
        sims = f.get(g, "sims", f"graphs.{scope}.sims", "dict")
        for name in names:
            f.get(sims, name, f"graphs.{scope}.sims.{name}", "file")
    if "thumbnails" in raw:
        thumbs = f.get(raw, "thumbnails", "thumbnails", "dict")
        f.get(thumbs, "data", "thumbnails.data", "file")
        f.get(thumbs, "offsets", "thumbnails.offsets", "file")
    known = {"schema_version", "n_items", "k", "scopes", "modalities", "dataset", "split",
             "created", "libraries", "graphs"}
    return Manifest(
        schema_version=version, n_items=n_items, k=k, scopes=scopes, modalities=modalities,
        dataset=dict(dataset), split=dict(split), created=f.get(raw, "created", "created", "str"),
        libraries=dict(f.get(raw, "libraries", "libraries", "dict", optional=True) or {}),
        graphs=dict(graphs), extra={key: v for key, v in raw.items() if key not in known},
    )


def _parse_scopes(f: _Fields, raw: dict, has_labels: bool, n_splits: int) -> tuple[str, ...]:
    scopes = f.get(raw, "scopes", "scopes", "list")
    if not scopes:
        f.fail("scopes", "lists no scope")
    for i, scope in enumerate(scopes):
        label = f"scopes[{i}]"
        if not isinstance(scope, str):
            f.fail(label, f"expected a string, got {_show(scope)}")
        try:
            fold = scope_fold(scope)
        except BundleError:
            f.fail(label, f"unknown scope {scope!r} (expected 'all' or 'fold0'..'fold4')")
        if fold is not None and not has_labels:
            f.fail(label, f"{scope!r}, but fold scopes need labels (dataset.has_labels)")
        if fold is not None and fold >= n_splits:
            f.fail(label, f"{scope!r}, but split.n_splits is {n_splits}")
    if len(set(scopes)) != len(scopes):
        f.fail("scopes", "lists a scope twice")
    return tuple(scopes)


def _parse_modality(f: _Fields, m: Any, label: str, scopes: tuple[str, ...]) -> Modality:
    if not isinstance(m, dict):
        f.fail(label, f"expected an object, got {_show(m)}")
    name = f.get(m, "name", f"{label}.name", "name")
    if not MODALITY_NAME.fullmatch(name):
        f.fail(f"{label}.name", f"{name!r} is not a modality name (letters, digits, _ . + -)")
    storage = f.choice(m, "storage", f"{label}.storage", STORAGES)
    files = f.get(m, "files", f"{label}.files", "dict")
    knn = f.get(files, "knn", f"{label}.files.knn", "dict")
    for scope in scopes:
        entry = f.get(knn, scope, f"{label}.files.knn.{scope}", "dict")
        for key in ("idx", "sim"):
            f.get(entry, key, f"{label}.files.knn.{scope}.{key}", "file")
    where = f"{label}.files.embeddings"
    if storage == "sparse":
        emb = f.get(files, "embeddings", where, "dict")
        for scope in scopes:
            entry = f.get(emb, scope, f"{where}.{scope}", "dict")
            for key in ("data", "indices", "indptr"):
                f.get(entry, key, f"{where}.{scope}.{key}", "file")
            n_features = f.get(entry, "n_features", f"{where}.{scope}.n_features", "int",
                               optional=True)
            if n_features is not None and n_features < 1:
                f.fail(f"{where}.{scope}.n_features", f"{n_features} is not positive")
    else:
        f.get(files, "embeddings", where, "file")
    if storage == "cross":  # the titles' side; the pictures' side is `embeddings`
        f.get(files, "text", f"{label}.files.text", "file")
        tower = f.get(files, "tower", f"{label}.files.tower", "dict", optional=True)
        for key in tower or {}:
            f.get(tower, key, f"{label}.files.tower.{key}", "file")
    f.get(files, "present", f"{label}.files.present", "file", optional=True)
    dim = f.get(m, "dim", f"{label}.dim", "int")
    if dim < 1:
        f.fail(f"{label}.dim", f"{dim} is not positive")
    return Modality(
        name=name, kind=f.choice(m, "kind", f"{label}.kind", KINDS),
        encoder=f.choice(m, "encoder", f"{label}.encoder", ENCODERS),
        model=f.get(m, "model", f"{label}.model", "str"), dim=dim, storage=storage,
        files=dict(files),
        params=_parse_params(f, m, label, scopes),
    )


def _parse_params(f: _Fields, m: dict, label: str, scopes: tuple[str, ...]) -> dict:
    """`params` is shown as is, but for `search`: per scope of this bundle, how its top-K
    was found ({method, params?, recall?, recall_queries?, seconds?, note?})."""
    params = dict(f.get(m, "params", f"{label}.params", "dict", optional=True) or {})
    search = f.get(params, "search", f"{label}.params.search", "dict", optional=True)
    for scope, rec in (search or {}).items():
        where = f"{label}.params.search.{scope}"
        if scope not in scopes:
            f.fail(where, f"{scope!r} is not a scope of this bundle")
        rec = f.get(search, scope, where, "dict")
        f.get(rec, "method", f"{where}.method", "name")
        f.get(rec, "params", f"{where}.params", "dict", optional=True)
        f.get(rec, "note", f"{where}.note", "str", optional=True)
        f.get(rec, "seconds", f"{where}.seconds", "number", optional=True)
        recall = f.get(rec, "recall", f"{where}.recall", "number", optional=True)
        if recall is not None and not 0 <= recall <= 1:
            f.fail(f"{where}.recall", f"{recall} is not in [0, 1]")
        queries = f.get(rec, "recall_queries", f"{where}.recall_queries", "int", optional=True)
        if queries is not None and queries < 0:
            f.fail(f"{where}.recall_queries", f"{queries} is negative")
    return params
