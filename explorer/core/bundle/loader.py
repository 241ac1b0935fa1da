"""`Bundle`: an opened, validated bundle (arrays memory-mapped and checked before use).

`Bundle.open` checks everything at once by default (what `explorer evaluate` does). With
`lazy=True` (the app) it checks the manifest, the items table and the thumbnails' offsets,
and each scope's arrays and each modality's embeddings the first time they are asked for
(`graph_files`, `knn`, `sparse`, `embeddings`): a million-posting bundle opens in about a
second and a scope never shown is never read. Either way no array reaches a caller
unchecked, so bad content is a one-line BundleError, never a wrong number."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from explorer.core.bundle.checks import (
    check_finite,
    check_index_array,
    check_no_repeats,
    check_range,
    check_scores,
    check_shape,
    check_topk_bits,
    check_unit_rows,
)
from explorer.core.bundle.files import bundle_file, one_line
from explorer.core.bundle.items import membership, read_items
from explorer.core.bundle.manifest import parse_manifest
from explorer.core.bundle.schema import (
    MANIFEST,
    NORM_TOLERANCE,
    SCORE_TOLERANCE,
    BundleError,
    Manifest,
    Modality,
    scope_rows,
)
from explorer.core.bundle.stamps import bundle_identity, is_stamped, stamp


class Bundle:
    """A validated, opened bundle. Arrays are memory-mapped and read lazily but checked
    when the bundle is opened, so later reads cannot fail on content."""

    def __init__(self, root: Path, manifest: Manifest, items: pd.DataFrame) -> None:
        self.root = root
        self.real_root = Path(os.path.realpath(root))
        self.manifest = manifest
        self.items = items
        self._cache: dict[str, Any] = {}
        self._checked: set[str] = set()  # "scope:NAME", "embeddings:NAME" done so far
        self._identity: str | None = None  # for check stamps (explorer.core.bundle.stamps)
        # values derived from the bundle and shared by every engine over it (label codes,
        # title quantities); filled lazily by their owners
        self.derived: dict[str, Any] = {}

    # -- construction ---------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, validate: bool = True,
             lazy: bool = False) -> Bundle:
        """Open and (by default) validate a bundle; BundleError, one line, when it is
        damaged: see docs/bundle.md, "Validation on open". `lazy`: check each scope and
        modality when first used instead (see the module docstring)."""
        root = Path(path)
        if not root.is_dir():
            raise BundleError(f"{root}: not a folder")
        manifest = parse_manifest(root / MANIFEST)
        items = read_items(root, Path(os.path.realpath(root)), manifest)
        bundle = cls(root, manifest, items)
        if validate:
            bundle._identity = bundle_identity(bundle.real_root,
                                               bundle.path(MANIFEST).read_bytes())
        if not validate:
            bundle._checked.update(bundle._parts())
        elif lazy:
            bundle._check_common()
        else:
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
                raise BundleError(f"{self._where(rel)}: unreadable array ({one_line(exc)})"
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
        self._ensure(f"scope:{scope}")
        files = self.manifest.modality(modality).files["knn"][scope]
        return self.array(files["idx"]), self.array(files["sim"])

    def graph_files(self, scope: str) -> dict[str, Any]:
        """The file names of a scope's candidate graph, its arrays checked."""
        files = self._graph_files(scope)
        self._ensure(f"scope:{scope}")
        return files

    def _graph_files(self, scope: str) -> dict[str, Any]:
        if scope not in self.manifest.scopes:
            raise BundleError(f"{self.root}: no candidate graph for scope {scope!r}")
        return self.manifest.graphs[scope]

    def embeddings(self, modality: str) -> np.ndarray:
        """The (n_items, ...) dense or bits embeddings of a modality, checked."""
        mod = self.manifest.modality(modality)
        if mod.storage == "sparse":
            raise BundleError(f"{modality!r} is kept per scope: use sparse(modality, scope)")
        self._ensure(f"embeddings:{modality}")
        return self.array(mod.files["embeddings"])

    def text_embeddings(self, modality: str) -> np.ndarray:
        """The (n_items, d) title side of a cross-modal modality, checked."""
        mod = self.manifest.modality(modality)
        if mod.storage != "cross":
            raise BundleError(f"{modality!r} is not a cross-modal modality")
        self._ensure(f"embeddings:{modality}")
        return self.array(mod.files["text"])

    def tower_arrays(self, modality: str) -> dict[str, np.ndarray]:
        """The arrays a cross-modal modality keeps to embed typed text (its text head),
        by name; their meaning is `params.towers`' (precompute's to read)."""
        mod = self.manifest.modality(modality)
        return {key: np.asarray(self.array(rel))
                for key, rel in mod.files.get("tower", {}).items()}

    # -- validation -------------------------------------------------------------------
    def validate(self) -> None:
        """Check every array against the format (docs/bundle.md); BundleError otherwise.
        Vectorised: linear in the size of the arrays (a sort of each top-K row aside)."""
        self._check_common()
        for part in self._parts():
            self._ensure(part)

    def _parts(self) -> list[str]:
        m = self.manifest
        return [*(f"scope:{s}" for s in m.scopes),
                *(f"embeddings:{mod.name}" for mod in m.modalities if mod.storage != "sparse")]

    def _check_common(self) -> None:
        """What every use needs: each scope has rows, the presence masks, the thumbnails."""
        for scope in self.manifest.scopes:
            if len(self.scope_rows(scope)) == 0:
                raise BundleError(f"{self.root}: scope {scope!r} has no rows")
        for mod in self.manifest.modalities:
            self._present_rows(mod)
        if self.has_thumbnails:
            self._validate_thumbnails()

    def _ensure(self, part: str) -> None:
        """Check one part ("scope:NAME" or "embeddings:NAME") unless it was checked."""
        if part in self._checked:
            return
        if not is_stamped(self._identity, part):  # checked before, these very files
            kind, name = part.split(":", 1)
            if kind == "scope":
                self._check_scope(name)
            else:
                self._validate_embeddings(self.manifest.modality(name))
            stamp(self._identity, part)
        self._checked.add(part)

    def _check_scope(self, scope: str) -> None:
        m = self.manifest
        rows = self.scope_rows(scope)
        inside = membership(self.folds, scope, self.n_items)
        present = {mod.name: self._present_rows(mod) for mod in m.modalities}
        lists = {mod.name: self._check_knn(mod, scope, rows, inside, present[mod.name])
                 for mod in m.modalities}
        self._check_graph(scope, rows, inside, lists, present)
        for mod in m.modalities:
            if mod.storage == "sparse":
                self._check_csr(mod, scope, mod.files["embeddings"][scope])

    def _check_knn(self, mod: Modality, scope: str, rows: np.ndarray, inside: np.ndarray,
                   present: np.ndarray | None) -> np.ndarray:
        """Check one top-K list; returns each row's neighbours after the query, sorted
        (-1 padding first), for the graph's bit check."""
        files = mod.files["knn"][scope]
        where, sim_where = self._where(files["idx"]), self._where(files["sim"])
        width = min(self.manifest.k, len(rows))
        idx = check_index_array(where, self.array(files["idx"]), rows, inside,
                                 (len(rows), width))
        sim = self.array(files["sim"])
        check_shape(sim_where, sim, idx.shape, np.float32)
        sim = np.asarray(sim)
        valid = idx >= 0
        check_range(sim_where, sim, valid, mod)
        off = np.abs(sim[:, 0] - 1) > SCORE_TOLERANCE
        if off.any():
            b = int(np.flatnonzero(off)[0])
            raise BundleError(f"{sim_where}: row {b}: the query's own similarity is "
                              f"{sim[b, 0]:.6g}, not 1")
        later = np.where(valid[:, 2:], sim[:, 2:], -np.inf)
        if np.any(later > sim[:, 1:-1] + SCORE_TOLERANCE):
            raise BundleError(f"{sim_where}: similarities are not sorted best first")
        neighbours = check_no_repeats(where, idx, rows)
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
        g = self._graph_files(scope)
        where = self._where(g["cand"])
        cand = check_index_array(where, self.array(g["cand"]), rows, inside, (len(rows), None))
        valid = cand >= 0
        check_no_repeats(where, cand, rows, ascending=True)
        topk_where = self._where(g["topk"])
        topk = self.array(g["topk"])
        check_shape(topk_where, topk, cand.shape, np.uint8)
        check_topk_bits(topk_where, np.asarray(topk), cand, lists)
        for mod in self.manifest.modalities:
            rel = g["sims"][mod.name]
            sims = self.array(rel)
            check_shape(self._where(rel), sims, cand.shape, np.float32)
            check_scores(self._where(rel), np.asarray(sims), cand, valid, rows,
                          present[mod.name], mod)

    def _validate_embeddings(self, mod: Modality) -> None:
        files = mod.files["embeddings"]
        if mod.storage in ("dense", "cross"):
            sides = [files] + ([mod.files["text"]] if mod.storage == "cross" else [])
            for rel in sides:  # a cross-modal title side: every row has one (present: None)
                arr = self.array(rel)
                check_shape(self._where(rel), arr, (self.n_items, mod.dim), None)
                if arr.dtype not in (np.float32, np.float16):
                    raise BundleError(f"{self._where(rel)}: dtype {arr.dtype}, "
                                      "expected float32/16")
                check_unit_rows(self._where(rel), arr,
                                self._present_rows(mod) if rel == files else None)
        elif mod.storage == "bits":
            arr = self.array(files)
            check_shape(self._where(files), arr, (self.n_items, 8), np.uint8)
        # sparse matrices are per scope: checked with their scope

    def _present_rows(self, mod: Modality) -> np.ndarray | None:
        """Rows that have an embedding (None: all). Skipped rows are zero vectors."""
        rel = mod.files.get("present")
        if rel is None:
            return None
        arr = self.array(rel)
        check_shape(self._where(rel), arr, (self.n_items,), np.bool_)
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
        check_shape(where, offsets, (self.n_items + 1,), np.int64)
        offsets = np.asarray(offsets)
        data = self.path(files["data"])
        if offsets[0] != 0 or np.any(np.diff(offsets) < 0) or offsets[-1] != data.stat().st_size:
            raise BundleError(f"{where}: thumbnail offsets do not match "
                              f"{PurePosixPath(files['data']).name}")

    def _check_csr(self, mod: Modality, scope: str, files: dict[str, Any]) -> None:
        n = len(self.scope_rows(scope))
        wheres = {k: self._where(files[k]) for k in ("data", "indices", "indptr")}
        data, indices, indptr = (self.array(files[k]) for k in ("data", "indices", "indptr"))
        check_shape(wheres["data"], data, (None,), np.float32)
        check_shape(wheres["indices"], indices, (None,), np.int32)
        check_shape(wheres["indptr"], indptr, (n + 1,), np.int64)
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
        check_finite(wheres["data"], data, None)
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
        self._ensure(f"scope:{scope}")
        f = mod.files["embeddings"][scope]
        n = len(self.scope_rows(scope))
        return sparse.csr_matrix(
            (self.array(f["data"]), self.array(f["indices"]), self.array(f["indptr"])),
            shape=(n, int(f.get("n_features", mod.dim))),
        )
