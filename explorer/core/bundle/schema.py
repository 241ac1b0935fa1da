"""The bundle schema: file names, the manifest's types, scopes and the one error type.
The package docstring (explorer/core/bundle/__init__.py) describes the layout."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
ITEMS = "items.parquet"
ITEM_COLUMNS = ("posting_id", "image", "title", "label_group", "image_phash", "fold")
KINDS = ("image", "text", "fused", "cross")
ENCODERS = ("timm", "sentence-transformers", "transformers", "tfidf", "phash", "fused",
            "crossmodal")
THUMBNAILS = {"data": "thumbnails/thumbs.bin", "offsets": "thumbnails/offsets.npy"}
STORAGES = ("dense", "sparse", "bits", "cross")
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
    bits: (N, 8) uint8 packed 64-bit hashes, similarity = 1 - hamming / 64;
    cross: two (N, d) arrays of unit rows in one learned space, the pictures' (`embeddings`)
    and the titles' (`text`), similarity = (t_i . v_j + v_i . t_j) / 2.
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
    def cross_modalities(self) -> list[str]:
        """Names of the cross-modal modalities (storage "cross"), in manifest order."""
        return [m.name for m in self.modalities if m.storage == "cross"]

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
