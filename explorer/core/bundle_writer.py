"""Writing an index bundle (the schema is `explorer.core.bundle`): into a temporary sibling
folder, renamed into place only when everything is written."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from explorer.core.bundle import ITEM_COLUMNS, ITEMS, MANIFEST, BundleError, Manifest


class BundleWriter:
    """Writes a bundle into a temporary sibling folder; `commit` renames it into place.

    Used as a context manager: an exception (or Ctrl-C) removes the temporary folder, so
    a failed build never leaves a half-written bundle behind."""

    def __init__(self, out: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        self.out = Path(out)
        if self.out.exists() and not overwrite:
            raise BundleError(f"{self.out}: already exists (pass --force to replace it)")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.", dir=self.out.parent))
        self.overwrite = overwrite
        self._committed = False

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self._committed:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def save_array(self, rel: str, arr: np.ndarray) -> str:
        path = self.tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.ascontiguousarray(arr), allow_pickle=False)
        return rel

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
        old = None
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.out, old)
        os.replace(self.tmp, self.out)
        self._committed = True
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out


def knn_paths(scope: str, modality: str) -> dict[str, str]:
    base = f"scopes/{scope}/knn.{modality}"
    return {"idx": f"{base}.idx.npy", "sim": f"{base}.sim.npy"}


def graph_paths(scope: str, modalities: list[str]) -> dict[str, Any]:
    base = f"scopes/{scope}/graph"
    return {"cand": f"{base}.cand.npy", "topk": f"{base}.topk.npy",
            "sims": {m: f"{base}.sim.{m}.npy" for m in modalities}}
