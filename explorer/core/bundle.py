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
`allow_pickle=False`, the manifest is JSON and file names are checked to stay inside.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

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


def scope_rows(folds: np.ndarray, scope: str) -> np.ndarray:
    """Global row indices of a scope, ascending: every row for `all`, else one fold's."""
    if scope == "all":
        return np.arange(len(folds), dtype=np.int64)
    if not scope.startswith("fold") or not scope[4:].isdigit():
        raise BundleError(f"unknown scope {scope!r} (expected 'all' or 'fold0'..'fold4')")
    return np.flatnonzero(folds == int(scope[4:]))


# --------------------------------------------------------------------------- reading


def _parse_manifest(path: Path) -> Manifest:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path.parent}: not a bundle (no {MANIFEST})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: unreadable manifest ({exc})") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{path}: manifest is not a JSON object")
    version = raw.get("schema_version")
    if not isinstance(version, int):
        raise BundleError(f"{path}: schema_version missing or not an integer")
    if version > SCHEMA_VERSION:
        raise BundleError(
            f"{path}: schema_version {version} is newer than this explorer supports "
            f"({SCHEMA_VERSION}); upgrade the explorer"
        )
    try:
        modalities = tuple(
            Modality(
                name=str(m["name"]), kind=str(m["kind"]), encoder=str(m["encoder"]),
                model=str(m["model"]), dim=int(m["dim"]), storage=str(m["storage"]),
                files=dict(m.get("files", {})), params=dict(m.get("params", {})),
            )
            for m in raw["modalities"]
        )
        known = {"schema_version", "n_items", "k", "scopes", "modalities", "dataset", "split",
                 "created", "libraries", "graphs"}
        manifest = Manifest(
            schema_version=version, n_items=int(raw["n_items"]), k=int(raw["k"]),
            scopes=tuple(str(s) for s in raw["scopes"]), modalities=modalities,
            dataset=dict(raw["dataset"]), split=dict(raw["split"]), created=str(raw["created"]),
            libraries=dict(raw.get("libraries", {})), graphs=dict(raw["graphs"]),
            extra={k: v for k, v in raw.items() if k not in known},
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{path}: manifest field missing or malformed: {exc}") from None
    for m in manifest.modalities:
        if m.kind not in KINDS:
            raise BundleError(f"{path}: modality {m.name!r}: kind {m.kind!r} not in {KINDS}")
        if m.encoder not in ENCODERS:
            raise BundleError(f"{path}: modality {m.name!r}: unknown encoder {m.encoder!r}")
        if m.storage not in STORAGES:
            raise BundleError(f"{path}: modality {m.name!r}: unknown storage {m.storage!r}")
    if len({m.name for m in manifest.modalities}) != len(manifest.modalities):
        raise BundleError(f"{path}: duplicate modality names")
    if manifest.n_items <= 0 or manifest.k <= 0:
        raise BundleError(f"{path}: n_items and k must be positive")
    return manifest


class Bundle:
    """A validated, opened bundle. Arrays are memory-mapped and read lazily but checked
    when the bundle is opened, so later reads cannot fail on content."""

    def __init__(self, root: Path, manifest: Manifest, items: pd.DataFrame) -> None:
        self.root = root
        self.manifest = manifest
        self.items = items
        self._cache: dict[str, Any] = {}
        # values derived from the bundle and shared by every engine over it (label codes,
        # title quantities); filled lazily by their owners
        self.derived: dict[str, Any] = {}

    # -- construction ---------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, validate: bool = True) -> Bundle:
        root = Path(path)
        if not root.is_dir():
            raise BundleError(f"{root}: not a folder")
        manifest = _parse_manifest(root / MANIFEST)
        items = _read_items(root, manifest)
        bundle = cls(root, manifest, items)
        if validate:
            bundle.validate()
        return bundle

    # -- paths and arrays -------------------------------------------------------------
    def path(self, rel: str) -> Path:
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts or not rel:
            raise BundleError(f"{self.root}: file name {rel!r} points outside the bundle")
        return self.root / pure

    def array(self, rel: str) -> np.ndarray:
        if rel not in self._cache:
            p = self.path(rel)
            try:
                self._cache[rel] = np.load(p, mmap_mode="r", allow_pickle=False)
            except FileNotFoundError:
                raise BundleError(f"{p}: missing file") from None
            except (OSError, ValueError) as exc:
                raise BundleError(f"{p}: unreadable array ({exc})") from None
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
        files = self.manifest.modality(modality).files["knn"][scope]
        return self.array(files["idx"]), self.array(files["sim"])

    def graph_files(self, scope: str) -> dict[str, Any]:
        try:
            return self.manifest.graphs[scope]
        except KeyError:
            raise BundleError(f"{self.root}: no candidate graph for scope {scope!r}") from None

    # -- validation -------------------------------------------------------------------
    def validate(self) -> None:
        m = self.manifest
        folds = self.folds
        for scope in m.scopes:
            rows = self.scope_rows(scope)
            n = len(rows)
            if n == 0:
                raise BundleError(f"{self.root}: scope {scope!r} has no rows")
            inside = _membership(folds, scope, self.n_items)
            for mod in m.modalities:
                try:
                    files = mod.files["knn"][scope]
                except (KeyError, TypeError):
                    raise BundleError(
                        f"{self.root}: modality {mod.name!r} lists no neighbours for {scope!r}"
                    ) from None
                idx, sim = self.array(files["idx"]), self.array(files["sim"])
                _check_knn(self.path(files["idx"]), idx, sim, rows, inside, m.k)
            g = self.graph_files(scope)
            cand = self.array(g["cand"])
            _check_index_array(self.path(g["cand"]), cand, rows, inside, (n, None))
            topk = self.array(g["topk"])
            _check_shape(self.path(g["topk"]), topk, cand.shape, np.uint8)
            for mod in m.modalities:
                rel = g["sims"].get(mod.name) if isinstance(g.get("sims"), dict) else None
                if rel is None:
                    raise BundleError(f"{self.root}: graph of {scope!r} lacks {mod.name!r}")
                sims = self.array(rel)
                _check_shape(self.path(rel), sims, cand.shape, np.float32)
                _check_scores(self.path(rel), sims, cand >= 0)
        for mod in m.modalities:
            self._validate_embeddings(mod)
        if self.has_thumbnails:
            self._validate_thumbnails()

    def _validate_embeddings(self, mod: Modality) -> None:
        files = mod.files.get("embeddings")
        if files is None:
            raise BundleError(f"{self.root}: modality {mod.name!r} lists no embeddings")
        if mod.storage == "dense":
            arr = self.array(files)
            _check_shape(self.path(files), arr, (self.n_items, mod.dim), None)
            if arr.dtype not in (np.float32, np.float16):
                raise BundleError(f"{self.path(files)}: dtype {arr.dtype}, expected float32/16")
            _check_unit_rows(self.path(files), arr, self._present_rows(mod))
        elif mod.storage == "bits":
            arr = self.array(files)
            _check_shape(self.path(files), arr, (self.n_items, 8), np.uint8)
        else:
            for scope in self.manifest.scopes:
                csr = files.get(scope)
                if csr is None:
                    raise BundleError(f"{self.root}: {mod.name!r} has no matrix for {scope!r}")
                self._check_csr(mod, scope, csr)

    def _present_rows(self, mod: Modality) -> np.ndarray | None:
        """Rows that have an embedding (None: all). Skipped rows are zero vectors."""
        rel = mod.files.get("present")
        if rel is None:
            return None
        arr = self.array(rel)
        _check_shape(self.path(rel), arr, (self.n_items,), np.bool_)
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
        bundle's one thumbnail file; None when the bundle or the posting has none."""
        if not self.has_thumbnails:
            return None
        files = self.manifest.extra["thumbnails"]
        offsets = self.array(files["offsets"])
        start, stop = int(offsets[row]), int(offsets[row + 1])
        if stop <= start:
            return None
        with open(self.path(files["data"]), "rb") as fh:
            fh.seek(start)
            return fh.read(stop - start)

    def _validate_thumbnails(self) -> None:
        files = self.manifest.extra["thumbnails"]
        offsets = self.array(files["offsets"])
        where = self.path(files["offsets"])
        _check_shape(where, offsets, (self.n_items + 1,), np.int64)
        data = self.path(files["data"])
        if not data.is_file():
            raise BundleError(f"{data}: missing file")
        if offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] != data.stat().st_size:
            raise BundleError(f"{where}: thumbnail offsets do not match {data.name}")

    def _check_csr(self, mod: Modality, scope: str, files: dict[str, str]) -> None:
        n = len(self.scope_rows(scope))
        data, indices, indptr = (self.array(files[k]) for k in ("data", "indices", "indptr"))
        where = self.path(files["indptr"])
        if indptr.shape != (n + 1,) or indptr[0] != 0 or indptr[-1] != len(data):
            raise BundleError(f"{where}: CSR row pointer does not match {n} rows of {scope!r}")
        if np.any(np.diff(indptr) < 0) or len(indices) != len(data):
            raise BundleError(f"{where}: CSR row pointer is not monotone or lengths differ")
        if len(indices) and (indices.min() < 0 or indices.max() >= mod.dim):
            raise BundleError(f"{self.path(files['indices'])}: column index out of range")
        _check_finite(self.path(files["data"]), data, None)
        norms = np.sqrt(np.add.reduceat(np.square(data, dtype=np.float64), indptr[:-1])
                        if len(data) else np.zeros(n))
        norms[np.diff(indptr) == 0] = 0.0
        bad = (np.abs(norms - 1) > NORM_TOLERANCE) & (norms != 0)
        if bad.any():
            raise BundleError(
                f"{self.path(files['data'])}: row {int(np.flatnonzero(bad)[0])} of {scope!r} "
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


def _read_items(root: Path, manifest: Manifest) -> pd.DataFrame:
    path = root / ITEMS
    try:
        items = pd.read_parquet(path)
    except FileNotFoundError:
        raise BundleError(f"{path}: missing file") from None
    except Exception as exc:  # pyarrow raises many types for a damaged file
        raise BundleError(f"{path}: unreadable items table ({type(exc).__name__})") from None
    missing = [c for c in ITEM_COLUMNS if c not in items.columns]
    if missing:
        raise BundleError(f"{path}: missing column(s) {', '.join(missing)}")
    if len(items) != manifest.n_items:
        raise BundleError(
            f"{path}: {len(items)} rows but the manifest says n_items = {manifest.n_items}"
        )
    if items["posting_id"].duplicated().any():
        dup = items["posting_id"][items["posting_id"].duplicated()].iloc[0]
        raise BundleError(f"{path}: duplicate posting_id {dup!r}")
    return items.reset_index(drop=True)


def _membership(folds: np.ndarray, scope: str, n_items: int) -> np.ndarray:
    if scope == "all":
        return np.ones(n_items, dtype=bool)
    return folds == int(scope[4:])


def _check_shape(where: Path, arr: np.ndarray, shape: tuple, dtype: Any) -> None:
    ok = len(arr.shape) == len(shape) and all(s is None or a == s for a, s in zip(
        arr.shape, shape, strict=True))
    if not ok:
        raise BundleError(f"{where}: shape {arr.shape}, expected {shape}")
    if dtype is not None and arr.dtype != dtype:
        raise BundleError(f"{where}: dtype {arr.dtype}, expected {np.dtype(dtype)}")


def _check_scores(where: Path, arr: np.ndarray, mask: np.ndarray) -> None:
    """Similarities of real pairs: finite, or -inf where a posting has no embedding in
    that modality (an image that could not be decoded)."""
    vals = arr[mask]
    if np.isnan(vals).any() or np.isposinf(vals).any():
        raise BundleError(f"{where}: contains NaN or +infinite values")


def _check_finite(where: Path, arr: np.ndarray, mask: np.ndarray | None) -> None:
    vals = arr if mask is None else arr[mask]
    if not np.isfinite(vals).all():
        raise BundleError(f"{where}: contains NaN or infinite values")


def _check_index_array(where: Path, idx: np.ndarray, rows: np.ndarray, inside: np.ndarray,
                       shape: tuple) -> None:
    _check_shape(where, idx, shape, np.int32)
    n_items = len(inside)
    if idx.min(initial=0) < -1 or idx.max(initial=0) >= n_items:
        raise BundleError(f"{where}: neighbour index out of range 0..{n_items - 1}")
    valid = idx >= 0
    if not inside[idx[valid]].all():
        raise BundleError(f"{where}: neighbour outside its scope")
    if idx.shape[1] == 0 or not np.array_equal(idx[:, 0], rows):
        raise BundleError(f"{where}: the first neighbour of each query must be the query")


def _check_knn(where: Path, idx: np.ndarray, sim: np.ndarray, rows: np.ndarray,
               inside: np.ndarray, k: int) -> None:
    width = min(k, len(rows))
    _check_index_array(where, idx, rows, inside, (len(rows), width))
    sim_where = where.with_name(where.name.replace(".idx.", ".sim."))
    _check_shape(sim_where, sim, idx.shape, np.float32)
    valid = idx >= 0
    _check_finite(sim_where, sim, valid)
    later = np.where(valid[:, 2:], sim[:, 2:], -np.inf)
    if np.any(later > sim[:, 1:-1] + 1e-5):
        raise BundleError(f"{sim_where}: similarities are not sorted best first")


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
