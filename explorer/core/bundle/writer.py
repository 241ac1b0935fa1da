"""Writing an index bundle (the schema is `explorer.core.bundle`): into a temporary sibling
folder, renamed into place only when everything is written."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from explorer.core.bundle import target as T
from explorer.core.bundle.schema import ITEM_COLUMNS, ITEMS, MANIFEST, Manifest


class BundleWriter:
    """Writes a bundle into a temporary sibling folder; `commit` renames it into place.

    Used as a context manager: an exception (or Ctrl-C) removes the temporary folder, so
    a failed build never leaves a half-written bundle behind. From construction to exit
    the target is locked (`.NAME.lock`), so a second build of it is refused. Only a bundle
    is ever replaced (with `overwrite`), never one that holds a `protect`ed input, and
    that is checked again at the commit, for whatever appeared there during the build.
    Temporary folders of builds of the same target that were killed are removed first
    (see explorer.core.bundle.target)."""

    def __init__(self, out: str | os.PathLike[str], *, overwrite: bool = False,
                 protect: Sequence[str | os.PathLike[str]] = ()) -> None:
        self.out = Path(out)
        self.overwrite = overwrite
        self.protect = tuple(Path(p) for p in protect)
        self._committed = False
        T.check_target(self.out, overwrite=overwrite, protect=self.protect)
        self._made = _make_parents(self.out.parent)
        self._lock = T.TargetLock(self.out)
        try:
            self._lock.acquire()
            # checked again under the lock: another build may have committed meanwhile
            T.check_target(self.out, overwrite=overwrite, protect=self.protect)
            T.remove_stale_temporaries(self.out)
            self.tmp = T.make_temporary(self.out)
        except BaseException:
            self._lock.release()
            _remove_empty(self._made)
            raise

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def close(self) -> None:
        """Remove the temporary folder unless committed, and release the target."""
        if not self._committed:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self._lock.release()
        if not self._committed:
            _remove_empty(self._made)

    def save_array(self, rel: str, arr: np.ndarray) -> str:
        path = self.tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.ascontiguousarray(arr), allow_pickle=False)
        return rel

    def open_array(self, rel: str, shape: tuple[int, ...], dtype: np.dtype | type) -> np.memmap:
        """A new zero-filled `.npy` inside the temporary folder, memory-mapped for writing:
        filled as it is computed instead of held in memory, and removed with the folder when
        the build fails. The caller flushes it when done."""
        path = self.tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)

    def save_bytes(self, rel: str, data: bytes) -> str:
        path = self.tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return rel

    def save_items(self, items: pd.DataFrame) -> None:
        missing = [c for c in ITEM_COLUMNS if c not in items.columns]
        if missing:
            raise ValueError(f"items table lacks {missing}")
        items.reset_index(drop=True).to_parquet(self.tmp / ITEMS, index=False)

    def commit(self, manifest: Manifest) -> Path:
        text = json.dumps(manifest.to_json(), indent=2, sort_keys=False, allow_nan=False)
        (self.tmp / MANIFEST).write_text(text + "\n", encoding="utf-8")
        # whatever is at the target now (it may have appeared during the build) must be
        # a bundle we may replace
        T.check_target(self.out, overwrite=self.overwrite, protect=self.protect)
        trash = None
        if self.out.exists():
            trash = T.make_temporary(self.out)  # marked: removed later if we die here
            try:
                os.replace(self.out, trash / "replaced")
            except OSError:
                shutil.rmtree(trash, ignore_errors=True)
                raise
        (self.tmp / T.MARKER).unlink()
        try:
            os.replace(self.tmp, self.out)
        except OSError:
            if trash is not None:  # put the old bundle back
                os.replace(trash / "replaced", self.out)
                shutil.rmtree(trash, ignore_errors=True)
            raise
        self._committed = True
        if trash is not None:
            shutil.rmtree(trash, ignore_errors=True)
        return self.out


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it created (deepest last)."""
    missing = []
    for p in (folder, *folder.parents):
        if p.exists() or p.is_symlink():
            break
        missing.append(p)
    folder.mkdir(parents=True, exist_ok=True)
    return missing[::-1]


def _remove_empty(folders: list[Path]) -> None:
    """Undo _make_parents after a failed build: only folders that are still empty."""
    for p in reversed(folders):
        try:
            p.rmdir()
        except OSError:
            return


def knn_paths(scope: str, modality: str) -> dict[str, str]:
    base = f"scopes/{scope}/knn.{modality}"
    return {"idx": f"{base}.idx.npy", "sim": f"{base}.sim.npy"}


def graph_paths(scope: str, modalities: list[str]) -> dict[str, Any]:
    base = f"scopes/{scope}/graph"
    return {"cand": f"{base}.cand.npy", "topk": f"{base}.topk.npy",
            "sims": {m: f"{base}.sim.{m}.npy" for m in modalities}}
