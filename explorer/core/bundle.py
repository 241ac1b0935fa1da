"""Index bundle v1: the folder `precompute build` writes and the explorer reads.

This module is the single source of the schema (docs/bundle.md describes it for people).
Layout, all paths relative to the bundle folder and listed in manifest.json:

    manifest.json
    items.parquet                      row order is the global index
    modalities/<name>/...              embeddings (dense .npy, per-scope CSR, packed bits)
    scopes/<scope>/knn.<name>.idx.npy  (n, K) int32 global rows, query first, -1 padding
    scopes/<scope>/knn.<name>.sim.npy  (n, K) float32, non-increasing
    scopes/<scope>/graph.*.npy         candidate union of every modality's top-K with the
                                       exact similarity of each pair in every modality

Nothing in a bundle is ever unpickled or executed: arrays are read with
`allow_pickle=False` and the manifest is JSON. Every file is reached through
`bundle_file`, which refuses names and links that leave the folder and anything that is
not a regular file (a FIFO or a device would block the reader). `Bundle.open` checks the
manifest's structure, the items table and every array, so a damaged or hostile bundle is
refused in one line and an opened one cannot give wrong numbers through bad content.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

import numpy as np
import pandas as pd

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
ITEMS = "items.parquet"
ITEM_COLUMNS = ("posting_id", "image", "title", "label_group", "image_phash", "fold")
KINDS = ("image", "text", "fused")
ENCODERS = ("timm", "sentence-transformers", "transformers", "tfidf", "phash", "fused")
THUMBNAILS = {"data": "thumbnails/thumbs.bin", "offsets": "thumbnails/offsets.npy"}
STORAGES = ("dense", "sparse", "bits")
NORM_TOLERANCE = 1e-2
# the dot product of two rows that each pass the NORM_TOLERANCE check
COSINE_TOLERANCE = (1 + NORM_TOLERANCE) ** 2 - 1 + 1e-4
SCORE_TOLERANCE = 1e-5  # float32 rounding of a similarity (sort order, 1 - hamming / 64)
MAX_MODALITIES = 8  # graph.topk holds one bit per modality in a uint8
MAX_MANIFEST_BYTES = 64 << 20  # a real manifest is a few kB; reading more is a hostile file
MODALITY_NAME = re.compile(r"[A-Za-z0-9_.+-]+")
FOLD_SCOPE = re.compile(r"fold(0|[1-9][0-9]*)")


class BundleError(Exception):
    """A bundle that cannot be used; the message is one line naming the file and problem."""


@dataclass(frozen=True)
class Modality:
    """One similarity signal. `storage` says how its embeddings are kept:
    dense: one (N, d) float32/float16 array of L2-normalised rows, similarity = dot;
    sparse: one CSR matrix per scope (TF-IDF is fitted per scope), similarity = dot;
    bits: (N, 8) uint8 packed 64-bit hashes, similarity = 1 - hamming / 64.
    """

    name: str
    kind: str
    encoder: str
    model: str
    dim: int
    storage: str
    files: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind, "encoder": self.encoder, "model": self.model,
            "dim": self.dim, "storage": self.storage, "files": self.files, "params": self.params,
        }


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    n_items: int
    k: int
    scopes: tuple[str, ...]
    modalities: tuple[Modality, ...]
    dataset: dict[str, Any]
    split: dict[str, Any]
    created: str
    libraries: dict[str, str]
    graphs: dict[str, dict[str, Any]]
    extra: dict[str, Any] = field(default_factory=dict)

    def modality(self, name: str) -> Modality:
        for m in self.modalities:
            if m.name == name:
                return m
        known = ", ".join(m.name for m in self.modalities)
        raise BundleError(f"no modality named {name!r} in this bundle (it has: {known})")

    @property
    def has_labels(self) -> bool:
        return bool(self.dataset.get("has_labels", False))

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version, "n_items": self.n_items, "k": self.k,
            "scopes": list(self.scopes), "modalities": [m.to_json() for m in self.modalities],
            "dataset": self.dataset, "split": self.split, "created": self.created,
            "libraries": self.libraries, "graphs": self.graphs, **self.extra,
        }


def scope_names(n_splits: int) -> tuple[str, ...]:
    return ("all", *(f"fold{k}" for k in range(n_splits)))


def scope_fold(scope: str) -> int | None:
    """The fold a scope name stands for: None for `all`, K for `foldK` (K in ASCII digits,
    no leading zero, so that no two names mean one fold)."""
    if scope == "all":
        return None
    match = FOLD_SCOPE.fullmatch(scope) if isinstance(scope, str) else None
    if match is None:
        raise BundleError(f"unknown scope {scope!r} (expected 'all' or 'fold0'..'fold4')")
    return int(match.group(1))


def scope_rows(folds: np.ndarray, scope: str) -> np.ndarray:
    """Global row indices of a scope, ascending: every row for `all`, else one fold's."""
    fold = scope_fold(scope)
    if fold is None:
        return np.arange(len(folds), dtype=np.int64)
    return np.flatnonzero(folds == fold)


# --------------------------------------------------------------------------- files


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__


def bundle_file(root: Path, real_root: Path, rel: Any) -> Path:
    """The real path of the file that `rel` names in the bundle at `root` (whose real path
    is `real_root`), checked before anything opens it: a relative name without '..', whose
    real path (every link followed) stays inside the bundle, naming a regular file (a
    FIFO, socket or device would block the reader or never end). Raises BundleError."""
    if not isinstance(rel, str) or not rel or any(ord(c) < 32 for c in rel):
        raise BundleError(f"{root}: {rel!r} is not a file name")
    pure = PurePosixPath(rel)
    if pure.is_absolute() or ".." in pure.parts:
        raise BundleError(f"{root}: file name {rel!r} points outside the bundle")
    shown = root / pure
    try:
        real = Path(os.path.realpath(shown))
        if not real.is_relative_to(real_root):
            raise BundleError(f"{shown}: a link that points outside the bundle (to {real})")
        mode = os.stat(real).st_mode
    except (FileNotFoundError, NotADirectoryError):
        raise BundleError(f"{shown}: missing file") from None
    except (OSError, ValueError) as exc:  # a link loop, a name too long, no permission
        raise BundleError(f"{shown}: unreadable ({_one_line(exc)})") from None
    if not stat.S_ISREG(mode):
        raise BundleError(f"{shown}: not a regular file")
    return real


# --------------------------------------------------------------------------- manifest

_WANT = {"int": "an integer", "str": "a string", "name": "a non-empty string",
         "file": "a file name (string)", "dict": "an object", "list": "a list",
         "bool": "true or false"}


def _is(value: Any, kind: str) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind in ("name", "file"):
        return isinstance(value, str) and value != ""
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
        raise BundleError(f"{shown}: unreadable manifest ({_one_line(exc)})") from None


def read_manifest(folder: str | os.PathLike[str]) -> Manifest:
    """The checked manifest of the bundle folder `folder` (no other file is read)."""
    return _parse_manifest(Path(folder) / MANIFEST)


def _parse_manifest(manifest: Path) -> Manifest:
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
    f.get(files, "present", f"{label}.files.present", "file", optional=True)
    dim = f.get(m, "dim", f"{label}.dim", "int")
    if dim < 1:
        f.fail(f"{label}.dim", f"{dim} is not positive")
    return Modality(
        name=name, kind=f.choice(m, "kind", f"{label}.kind", KINDS),
        encoder=f.choice(m, "encoder", f"{label}.encoder", ENCODERS),
        model=f.get(m, "model", f"{label}.model", "str"), dim=dim, storage=storage,
        files=dict(files),
        params=dict(f.get(m, "params", f"{label}.params", "dict", optional=True) or {}),
    )


# --------------------------------------------------------------------------- bundle


class Bundle:
    """A validated, opened bundle. Arrays are memory-mapped and read lazily but checked
    when the bundle is opened, so later reads cannot fail on content."""

    def __init__(self, root: Path, manifest: Manifest, items: pd.DataFrame) -> None:
        self.root = root
        self.real_root = Path(os.path.realpath(root))
        self.manifest = manifest
        self.items = items
        self._cache: dict[str, Any] = {}
        # values derived from the bundle and shared by every engine over it (label codes,
        # title quantities); filled lazily by their owners
        self.derived: dict[str, Any] = {}

    # -- construction ---------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, validate: bool = True) -> Bundle:
        """Open and (by default) validate a bundle; BundleError, one line, when it is
        damaged: see docs/bundle.md, "Validation on open"."""
        root = Path(path)
        if not root.is_dir():
            raise BundleError(f"{root}: not a folder")
        manifest = _parse_manifest(root / MANIFEST)
        items = _read_items(root, Path(os.path.realpath(root)), manifest)
        bundle = cls(root, manifest, items)
        if validate:
            bundle.validate()
        return bundle

    # -- paths and arrays -------------------------------------------------------------
    def path(self, rel: str) -> Path:
        """The checked real path of a file the manifest names (see `bundle_file`)."""
        return bundle_file(self.root, self.real_root, rel)

    def _where(self, rel: str) -> Path:
        """How messages name a file of the bundle."""
        return self.root / rel

    def array(self, rel: str) -> np.ndarray:
        if rel not in self._cache:
            real = self.path(rel)
            try:
                arr = np.load(real, mmap_mode="r", allow_pickle=False)
            except Exception as exc:  # numpy raises many types for a damaged file
                raise BundleError(f"{self._where(rel)}: unreadable array ({_one_line(exc)})"
                                  ) from None
            if not isinstance(arr, np.ndarray):  # a .npz archive under a .npy name
                getattr(arr, "close", lambda: None)()
                raise BundleError(f"{self._where(rel)}: not a .npy array")
            self._cache[rel] = arr
        return self._cache[rel]

    @property
    def n_items(self) -> int:
        return self.manifest.n_items

    @property
    def folds(self) -> np.ndarray:
        return self.items["fold"].to_numpy()

    def scope_rows(self, scope: str) -> np.ndarray:
        if scope not in self.manifest.scopes:
            raise BundleError(f"scope {scope!r} is not in this bundle ({self.manifest.scopes})")
        return scope_rows(self.folds, scope)

    def knn(self, scope: str, modality: str) -> tuple[np.ndarray, np.ndarray]:
        self.scope_rows(scope)  # an unknown scope is a BundleError
        files = self.manifest.modality(modality).files["knn"][scope]
        return self.array(files["idx"]), self.array(files["sim"])

    def graph_files(self, scope: str) -> dict[str, Any]:
        if scope not in self.manifest.scopes:
            raise BundleError(f"{self.root}: no candidate graph for scope {scope!r}")
        return self.manifest.graphs[scope]

    # -- validation -------------------------------------------------------------------
    def validate(self) -> None:
        """Check every array against the format (docs/bundle.md); BundleError otherwise.
        Vectorised: linear in the size of the arrays (a sort of each top-K row aside)."""
        m = self.manifest
        present = {mod.name: self._present_rows(mod) for mod in m.modalities}
        for scope in m.scopes:
            rows = self.scope_rows(scope)
            if len(rows) == 0:
                raise BundleError(f"{self.root}: scope {scope!r} has no rows")
            inside = _membership(self.folds, scope, self.n_items)
            lists = {mod.name: self._check_knn(mod, scope, rows, inside, present[mod.name])
                     for mod in m.modalities}
            self._check_graph(scope, rows, inside, lists, present)
        for mod in m.modalities:
            self._validate_embeddings(mod)
        if self.has_thumbnails:
            self._validate_thumbnails()

    def _check_knn(self, mod: Modality, scope: str, rows: np.ndarray, inside: np.ndarray,
                   present: np.ndarray | None) -> np.ndarray:
        """Check one top-K list; returns each row's neighbours after the query, sorted
        (-1 padding first), for the graph's bit check."""
        files = mod.files["knn"][scope]
        where, sim_where = self._where(files["idx"]), self._where(files["sim"])
        width = min(self.manifest.k, len(rows))
        idx = _check_index_array(where, self.array(files["idx"]), rows, inside,
                                 (len(rows), width))
        sim = self.array(files["sim"])
        _check_shape(sim_where, sim, idx.shape, np.float32)
        sim = np.asarray(sim)
        valid = idx >= 0
        _check_range(sim_where, sim, valid, mod)
        off = np.abs(sim[:, 0] - 1) > SCORE_TOLERANCE
        if off.any():
            b = int(np.flatnonzero(off)[0])
            raise BundleError(f"{sim_where}: row {b}: the query's own similarity is "
                              f"{sim[b, 0]:.6g}, not 1")
        later = np.where(valid[:, 2:], sim[:, 2:], -np.inf)
        if np.any(later > sim[:, 1:-1] + SCORE_TOLERANCE):
            raise BundleError(f"{sim_where}: similarities are not sorted best first")
        neighbours = _check_no_repeats(where, idx, rows)
        if present is not None:
            others = idx[:, 1:]
            absent = (others >= 0) & (~present[np.maximum(others, 0)]
                                      | ~present[rows][:, None])
            if absent.any():
                b = int(np.flatnonzero(absent.any(axis=1))[0])
                raise BundleError(f"{where}: row {b}: a neighbour pair where a posting has "
                                  "no embedding (such postings are nobody's neighbour)")
        return neighbours

    def _check_graph(self, scope: str, rows: np.ndarray, inside: np.ndarray,
                     lists: dict[str, np.ndarray], present: dict[str, np.ndarray | None]
                     ) -> None:
        g = self.graph_files(scope)
        where = self._where(g["cand"])
        cand = _check_index_array(where, self.array(g["cand"]), rows, inside, (len(rows), None))
        valid = cand >= 0
        _check_no_repeats(where, cand, rows, ascending=True)
        topk_where = self._where(g["topk"])
        topk = self.array(g["topk"])
        _check_shape(topk_where, topk, cand.shape, np.uint8)
        _check_topk_bits(topk_where, np.asarray(topk), cand, lists)
        for mod in self.manifest.modalities:
            rel = g["sims"][mod.name]
            sims = self.array(rel)
            _check_shape(self._where(rel), sims, cand.shape, np.float32)
            _check_scores(self._where(rel), np.asarray(sims), cand, valid, rows,
                          present[mod.name], mod)

    def _validate_embeddings(self, mod: Modality) -> None:
        files = mod.files["embeddings"]
        if mod.storage == "dense":
            arr = self.array(files)
            _check_shape(self._where(files), arr, (self.n_items, mod.dim), None)
            if arr.dtype not in (np.float32, np.float16):
                raise BundleError(f"{self._where(files)}: dtype {arr.dtype}, "
                                  "expected float32/16")
            _check_unit_rows(self._where(files), arr, self._present_rows(mod))
        elif mod.storage == "bits":
            arr = self.array(files)
            _check_shape(self._where(files), arr, (self.n_items, 8), np.uint8)
        else:
            for scope in self.manifest.scopes:
                self._check_csr(mod, scope, files[scope])

    def _present_rows(self, mod: Modality) -> np.ndarray | None:
        """Rows that have an embedding (None: all). Skipped rows are zero vectors."""
        rel = mod.files.get("present")
        if rel is None:
            return None
        arr = self.array(rel)
        _check_shape(self._where(rel), arr, (self.n_items,), np.bool_)
        return np.asarray(arr)

    def present(self, modality: str) -> np.ndarray | None:
        """Rows with an embedding in `modality` (None: every row)."""
        return self._present_rows(self.manifest.modality(modality))

    # -- thumbnails -------------------------------------------------------------------
    @property
    def has_thumbnails(self) -> bool:
        return "thumbnails" in self.manifest.extra

    def thumbnail(self, row: int) -> bytes | None:
        """The posting's small JPEG (about 192 px on the long side), read lazily from the
        bundle's one thumbnail file; None when the bundle or the posting has none, or when
        the file, checked when the bundle opened, can no longer be read."""
        if not self.has_thumbnails:
            return None
        files = self.manifest.extra["thumbnails"]
        offsets = self.array(files["offsets"])
        start, stop = int(offsets[row]), int(offsets[row + 1])
        if stop <= start:
            return None
        try:
            with open(self.path(files["data"]), "rb") as fh:
                fh.seek(start)
                return fh.read(stop - start)
        except (BundleError, OSError):
            return None

    def _validate_thumbnails(self) -> None:
        files = self.manifest.extra["thumbnails"]
        where = self._where(files["offsets"])
        offsets = self.array(files["offsets"])
        _check_shape(where, offsets, (self.n_items + 1,), np.int64)
        offsets = np.asarray(offsets)
        data = self.path(files["data"])
        if offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] != data.stat().st_size:
            raise BundleError(f"{where}: thumbnail offsets do not match "
                              f"{PurePosixPath(files['data']).name}")

    def _check_csr(self, mod: Modality, scope: str, files: dict[str, Any]) -> None:
        n = len(self.scope_rows(scope))
        wheres = {k: self._where(files[k]) for k in ("data", "indices", "indptr")}
        data, indices, indptr = (self.array(files[k]) for k in ("data", "indices", "indptr"))
        _check_shape(wheres["data"], data, (None,), np.float32)
        _check_shape(wheres["indices"], indices, (None,), np.int32)
        _check_shape(wheres["indptr"], indptr, (n + 1,), np.int64)
        data, indices, indptr = np.asarray(data), np.asarray(indices), np.asarray(indptr)
        where = wheres["indptr"]
        if indptr[0] != 0 or indptr[-1] != len(data):
            raise BundleError(f"{where}: CSR row pointer does not match {n} rows of {scope!r}")
        if np.any(np.diff(indptr) < 0) or len(indices) != len(data):
            raise BundleError(f"{where}: CSR row pointer is not monotone or lengths differ")
        n_features = files.get("n_features", mod.dim)
        if len(indices) and (indices.min() < 0 or indices.max() >= n_features):
            raise BundleError(f"{wheres['indices']}: column index out of range "
                              f"0..{n_features - 1}")
        # a column twice in a row would be summed by scipy but not by the norm check
        step = np.diff(indices)
        inner = np.ones(len(step), bool)
        starts = indptr[1:-1]
        inner[starts[(starts > 0) & (starts < len(indices))] - 1] = False
        repeat = inner & (step <= 0)
        if repeat.any():
            b = int(np.searchsorted(indptr, np.flatnonzero(repeat)[0] + 1, side="right") - 1)
            raise BundleError(f"{wheres['indices']}: row {b} of {scope!r}: column indices not "
                              "strictly ascending (a column twice or out of order)")
        _check_finite(wheres["data"], data, None)
        norms = np.sqrt(np.add.reduceat(np.square(data, dtype=np.float64), indptr[:-1])
                        if len(data) else np.zeros(n))
        norms[np.diff(indptr) == 0] = 0.0
        bad = (np.abs(norms - 1) > NORM_TOLERANCE) & (norms != 0)
        if bad.any():
            raise BundleError(
                f"{wheres['data']}: row {int(np.flatnonzero(bad)[0])} of {scope!r} "
                "is not L2-normalised"
            )

    def sparse(self, modality: str, scope: str):  # -> scipy.sparse.csr_matrix
        from scipy import sparse

        mod = self.manifest.modality(modality)
        f = mod.files["embeddings"][scope]
        n = len(self.scope_rows(scope))
        return sparse.csr_matrix(
            (self.array(f["data"]), self.array(f["indices"]), self.array(f["indptr"])),
            shape=(n, int(f.get("n_features", mod.dim))),
        )


# --------------------------------------------------------------------------- items


def _read_items(root: Path, real_root: Path, manifest: Manifest) -> pd.DataFrame:
    path = root / ITEMS
    real = bundle_file(root, real_root, ITEMS)
    try:
        items = pd.read_parquet(real)
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise BundleError(f"{path}: unreadable items table ({type(exc).__name__})") from None
    missing = [c for c in ITEM_COLUMNS if c not in items.columns]
    if missing:
        raise BundleError(f"{path}: missing column(s) {', '.join(missing)}")
    if len(items) != manifest.n_items:
        raise BundleError(
            f"{path}: {len(items)} rows but the manifest says n_items = {manifest.n_items}"
        )
    items = items.reset_index(drop=True)
    _check_posting_ids(path, items["posting_id"])
    items["fold"] = _checked_folds(path, items, manifest)
    if manifest.has_labels:
        _check_labels(path, items)
    return items


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_posting_ids(path: Path, ids: pd.Series) -> None:
    values = ids.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(ids, skipna=False) == "string":  # pandas' str dtype: NaN
        bad = (ids.isna() | (ids.str.len() == 0)).to_numpy()
    else:
        bad = np.fromiter((not isinstance(v, str) or not v for v in values), bool, len(values))
    if bad.any():
        r = _first(bad)
        raise BundleError(f"{path}: row {r}: posting_id must be a non-empty string, "
                          f"got {values[r]!r}")
    if ids.duplicated().any():
        raise BundleError(f"{path}: duplicate posting_id {ids[ids.duplicated()].iloc[0]!r}")


def _checked_folds(path: Path, items: pd.DataFrame, manifest: Manifest) -> np.ndarray:
    """The fold column as integers: 0..n_splits-1 with labels, -1 without (scope rows
    come from it)."""
    col = items["fold"]
    if not pd.api.types.is_integer_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
        raise BundleError(f"{path}: fold column has dtype {col.dtype}, expected integers")
    if col.isna().any():  # a nullable integer column
        r = _first(col.isna().to_numpy())
        raise BundleError(f"{path}: row {r} (posting_id {items['posting_id'][r]!r}): "
                          "fold is missing")
    folds = col.to_numpy(dtype=np.int64)
    if manifest.has_labels:
        n_splits = manifest.split["n_splits"]
        bad, want = (folds < 0) | (folds >= n_splits), f"0..{n_splits - 1}"
    else:
        bad, want = folds != -1, "-1 (the bundle has no labels)"
    if bad.any():
        r = _first(bad)
        raise BundleError(f"{path}: row {r} (posting_id {items['posting_id'][r]!r}): "
                          f"fold {folds[r]}, expected {want}")
    return folds if isinstance(col.dtype, pd.api.extensions.ExtensionDtype) else col.to_numpy()


def _check_labels(path: Path, items: pd.DataFrame) -> None:
    """With has_labels every row has a label_group (an integer or a string), and each
    group lies in one fold (the split is grouped by label)."""
    labels = items["label_group"]
    missing = labels.isna().to_numpy()
    if missing.any():
        r = _first(missing)
        raise BundleError(f"{path}: row {r} (posting_id {items['posting_id'][r]!r}): "
                          "label_group is missing, but the manifest says has_labels")
    kind = pd.api.types.infer_dtype(labels, skipna=False)
    if kind not in ("integer", "string"):
        raise BundleError(f"{path}: label_group holds {kind} values, expected integers or "
                          "strings")
    pairs = pd.DataFrame({"label": labels, "fold": items["fold"]}).drop_duplicates()
    spread = pairs["label"].duplicated().to_numpy()
    if spread.any():
        label = pairs["label"].iloc[_first(spread)]
        raise BundleError(f"{path}: label_group {label!r} lies in more than one fold (the "
                          "split keeps each group in one fold)")


def _membership(folds: np.ndarray, scope: str, n_items: int) -> np.ndarray:
    fold = scope_fold(scope)
    if fold is None:
        return np.ones(n_items, dtype=bool)
    return folds == fold


# --------------------------------------------------------------------------- array checks


def _check_shape(where: Path, arr: np.ndarray, shape: tuple, dtype: Any) -> None:
    ok = len(arr.shape) == len(shape) and all(s is None or a == s for a, s in zip(
        arr.shape, shape, strict=True))
    if not ok:
        raise BundleError(f"{where}: shape {arr.shape}, expected {shape}")
    if dtype is not None and arr.dtype != dtype:
        raise BundleError(f"{where}: dtype {arr.dtype}, expected {np.dtype(dtype)}")


def _score_range(mod: Modality) -> tuple[float, float, str]:
    if mod.storage == "bits":
        return -SCORE_TOLERANCE, 1 + SCORE_TOLERANCE, "1 - hamming / 64"
    return -1 - COSINE_TOLERANCE, 1 + COSINE_TOLERANCE, "a cosine"


def _check_range(where: Path, sim: np.ndarray, mask: np.ndarray, mod: Modality,
                 allowed: np.ndarray | None = None) -> None:
    """Similarities of the pairs in `mask` finite and in the modality's range, except -inf
    where `allowed` holds. Elementwise masks: no copy of the selected values."""
    lo, hi, what = _score_range(mod)
    bad = mask & ~((sim >= lo) & (sim <= hi))  # NaN and infinities fail both comparisons
    if allowed is not None:
        bad &= ~allowed
    if bad.any():
        b, c = np.argwhere(bad)[0]
        value = sim[b, c]
        if not np.isfinite(value):
            raise BundleError(f"{where}: row {b}: contains NaN or infinite values ({value})")
        raise BundleError(f"{where}: row {b}: similarity {value:.6g} out of range "
                          f"[{lo:.4g}, {hi:.4g}] of {what}")


def _check_scores(where: Path, sims: np.ndarray, cand: np.ndarray, valid: np.ndarray,
                  rows: np.ndarray, present: np.ndarray | None, mod: Modality) -> None:
    """A graph's similarities of real pairs: in range, the query's own 1, and -inf exactly
    where a posting of the pair has no embedding in that modality (an image that could not
    be decoded): a fusion counts -inf as 0, so a finite value there would be used."""
    neg = valid & np.isneginf(sims)
    if present is None:
        if neg.any():
            b = _first(neg.any(axis=1))
            raise BundleError(f"{where}: row {b}: -inf for a pair whose postings both have "
                              f"an embedding in {mod.name!r}")
    else:
        absent = valid & (~present[rows][:, None] | ~present[np.maximum(cand, 0)])
        absent[:, 0] = False
        if (neg & ~absent).any():
            b = _first((neg & ~absent).any(axis=1))
            raise BundleError(f"{where}: row {b}: -inf for a pair whose postings both have "
                              f"an embedding in {mod.name!r}")
        if (absent & ~neg).any():
            b = _first((absent & ~neg).any(axis=1))
            raise BundleError(f"{where}: row {b}: a finite similarity for a posting without "
                              f"an embedding in {mod.name!r} (must be -inf)")
    _check_range(where, sims, valid, mod, allowed=neg)
    low = sims[:, 0] < 1 - SCORE_TOLERANCE
    if low.any():
        b = _first(low)
        raise BundleError(f"{where}: row {b}: the query's own similarity is "
                          f"{sims[b, 0]:.6g}, not 1")


def _check_finite(where: Path, arr: np.ndarray, mask: np.ndarray | None) -> None:
    vals = arr if mask is None else arr[mask]
    if not np.isfinite(vals).all():
        raise BundleError(f"{where}: contains NaN or infinite values")


def _check_index_array(where: Path, idx: np.ndarray, rows: np.ndarray, inside: np.ndarray,
                       shape: tuple) -> np.ndarray:
    """Global rows of the scope, the query first, -1 padding only at the end of a row;
    returns the array read into memory."""
    _check_shape(where, idx, shape, np.int32)
    idx = np.asarray(idx)
    n_items = len(inside)
    if idx.min(initial=0) < -1 or idx.max(initial=0) >= n_items:
        raise BundleError(f"{where}: neighbour index out of range 0..{n_items - 1}")
    valid = idx >= 0
    if not inside.all() and not (inside[np.maximum(idx, 0)] | ~valid).all():
        raise BundleError(f"{where}: neighbour outside its scope")
    if idx.shape[1] == 0 or not np.array_equal(idx[:, 0], rows):
        raise BundleError(f"{where}: the first neighbour of each query must be the query")
    gap = valid[:, 1:] & ~valid[:, :-1]
    if gap.any():
        raise BundleError(f"{where}: row {_first(gap.any(axis=1))}: -1 padding before a "
                          "neighbour (padding only ends a row)")
    return idx


def _check_no_repeats(where: Path, idx: np.ndarray, rows: np.ndarray, *,
                      ascending: bool = False) -> np.ndarray:
    """No posting twice in a row (a repeat would count twice in precision and recall).
    With `ascending` the entries after the query must be strictly ascending (the graph's
    order), else they are sorted per row. Returns the entries after the query, sorted per
    row (-1 padding first with a sort, last when ascending)."""
    rest = idx[:, 1:]
    again = rest == rows[:, None]
    if again.any():
        b = _first(again.any(axis=1))
        raise BundleError(f"{where}: row {b} lists its query (global row {rows[b]}) again")
    if ascending:
        bad = (rest[:, 1:] >= 0) & (rest[:, 1:] <= rest[:, :-1])
        if bad.any():
            b = _first(bad.any(axis=1))
            raise BundleError(f"{where}: row {b}: candidates after the query are not strictly "
                              "ascending (a posting listed twice, or out of order)")
        return rest
    ordered = np.sort(rest, axis=1)
    twice = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    if twice.any():
        b, c = np.argwhere(twice)[0]
        raise BundleError(f"{where}: row {b} lists global row {ordered[b, c + 1]} twice")
    return ordered


def _check_topk_bits(where: Path, topk: np.ndarray, cand: np.ndarray,
                     lists: dict[str, np.ndarray]) -> None:
    """Bit m of a candidate is set exactly when the pair is in modality m's top-K list, so
    the candidates are the union of the lists and a single modality uses its own list."""
    full = (1 << len(lists)) - 1
    if topk.max(initial=0) > full:
        raise BundleError(f"{where}: bits set beyond the bundle's {len(lists)} modalities")
    if (topk[:, 0] != full).any():
        b = _first(topk[:, 0] != full)
        raise BundleError(f"{where}: row {b}: the query must be in every modality's top-K")
    # a candidate is in some list, padding in none
    odd = (topk != 0) != (cand >= 0)
    if odd.any():
        b = _first(odd.any(axis=1))
        raise BundleError(f"{where}: row {b}: a candidate in no top-K list, or -1 padding "
                          "marked as in one")
    rest = cand[:, 1:]
    for m, (name, neighbours) in enumerate(lists.items()):
        mine = (topk[:, 1:] & np.uint8(1 << m)) != 0
        listed = neighbours >= 0
        counts = mine.sum(axis=1)
        differ = counts != listed.sum(axis=1)
        if not differ.any():
            # both sides are ascending per row with equal counts: compare them flat
            a, b = rest[mine], neighbours[listed]
            if not np.array_equal(a, b):
                at = _first(a != b)
                differ = np.zeros(len(counts), bool)
                differ[np.searchsorted(np.cumsum(counts), at, side="right")] = True
        if differ.any():
            raise BundleError(f"{where}: row {_first(differ)}: the bits of {name!r} do not "
                              f"match its top-K list")


def _check_unit_rows(where: Path, arr: np.ndarray, present: np.ndarray | None) -> None:
    step = 65536
    for start in range(0, len(arr), step):
        block = np.asarray(arr[start:start + step], dtype=np.float32)
        if not np.isfinite(block).all():
            raise BundleError(f"{where}: contains NaN or infinite values")
        norms = np.linalg.norm(block, axis=1)
        expect = np.ones(len(block), bool) if present is None else present[start:start + step]
        bad = np.where(expect, np.abs(norms - 1) > NORM_TOLERANCE, norms != 0)
        if bad.any():
            raise BundleError(
                f"{where}: row {start + int(np.flatnonzero(bad)[0])} is not L2-normalised"
            )
