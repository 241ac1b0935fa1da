"""Index bundle v1: the folder `precompute build` writes and the explorer reads.

This package is the single source of the schema (docs/bundle.md describes it for people):
`schema` (names, types, scopes), `files` (reaching a file safely), `manifest` (reading
manifest.json), `items` (the items table), `checks` (array checks), `loader` (`Bundle`),
`writer` (`BundleWriter`) and `target` (where a build may write).
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

from explorer.core.bundle.files import bundle_file
from explorer.core.bundle.loader import Bundle
from explorer.core.bundle.manifest import read_manifest
from explorer.core.bundle.schema import (
    COSINE_TOLERANCE,
    ENCODERS,
    FOLD_SCOPE,
    ITEM_COLUMNS,
    ITEMS,
    KINDS,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    MAX_MODALITIES,
    MODALITY_NAME,
    NORM_TOLERANCE,
    SCHEMA_VERSION,
    SCORE_TOLERANCE,
    STORAGES,
    THUMBNAILS,
    BundleError,
    Manifest,
    Modality,
    scope_fold,
    scope_names,
    scope_rows,
)

__all__ = [
    "COSINE_TOLERANCE",
    "ENCODERS",
    "FOLD_SCOPE",
    "ITEMS",
    "ITEM_COLUMNS",
    "KINDS",
    "MANIFEST",
    "MAX_MANIFEST_BYTES",
    "MAX_MODALITIES",
    "MODALITY_NAME",
    "NORM_TOLERANCE",
    "SCHEMA_VERSION",
    "SCORE_TOLERANCE",
    "STORAGES",
    "THUMBNAILS",
    "Bundle",
    "BundleError",
    "Manifest",
    "Modality",
    "bundle_file",
    "read_manifest",
    "scope_fold",
    "scope_names",
    "scope_rows",
]
