"""The items table (items.parquet): posting ids, folds and labels checked on open."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from explorer.core.bundle.files import bundle_file
from explorer.core.bundle.schema import ITEM_COLUMNS, ITEMS, BundleError, Manifest, scope_fold


def read_items(root: Path, real_root: Path, manifest: Manifest) -> pd.DataFrame:
    path = root / ITEMS
    real = bundle_file(root, real_root, ITEMS)
    try:
        # one chunk per column: a row lookup (iloc) on a column of many chunks took 13 ms
        # at 1M rows (pyarrow's take over chunks), 0.2 ms on one; every query click and
        # error-case list does such lookups
        items = pq.read_table(real).combine_chunks().to_pandas()
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


def first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _check_posting_ids(path: Path, ids: pd.Series) -> None:
    values = ids.to_numpy(dtype=object)
    if pd.api.types.infer_dtype(ids, skipna=False) == "string":  # pandas' str dtype: NaN
        bad = (ids.isna() | (ids.str.len() == 0)).to_numpy()
    else:
        bad = np.fromiter((not isinstance(v, str) or not v for v in values), bool, len(values))
    if bad.any():
        r = first(bad)
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
        r = first(col.isna().to_numpy())
        raise BundleError(f"{path}: row {r} (posting_id {items['posting_id'][r]!r}): "
                          "fold is missing")
    folds = col.to_numpy(dtype=np.int64)
    if manifest.has_labels:
        n_splits = manifest.split["n_splits"]
        bad, want = (folds < 0) | (folds >= n_splits), f"0..{n_splits - 1}"
    else:
        bad, want = folds != -1, "-1 (the bundle has no labels)"
    if bad.any():
        r = first(bad)
        raise BundleError(f"{path}: row {r} (posting_id {items['posting_id'][r]!r}): "
                          f"fold {folds[r]}, expected {want}")
    return folds if isinstance(col.dtype, pd.api.extensions.ExtensionDtype) else col.to_numpy()


def _check_labels(path: Path, items: pd.DataFrame) -> None:
    """With has_labels every row has a label_group (an integer or a string), and each
    group lies in one fold (the split is grouped by label)."""
    labels = items["label_group"]
    missing = labels.isna().to_numpy()
    if missing.any():
        r = first(missing)
        raise BundleError(f"{path}: row {r} (posting_id {items['posting_id'][r]!r}): "
                          "label_group is missing, but the manifest says has_labels")
    kind = pd.api.types.infer_dtype(labels, skipna=False)
    if kind not in ("integer", "string"):
        raise BundleError(f"{path}: label_group holds {kind} values, expected integers or "
                          "strings")
    pairs = pd.DataFrame({"label": labels, "fold": items["fold"]}).drop_duplicates()
    spread = pairs["label"].duplicated().to_numpy()
    if spread.any():
        label = pairs["label"].iloc[first(spread)]
        raise BundleError(f"{path}: label_group {label!r} lies in more than one fold (the "
                          "split keeps each group in one fold)")


def membership(folds: np.ndarray, scope: str, n_items: int) -> np.ndarray:
    fold = scope_fold(scope)
    if fold is None:
        return np.ones(n_items, dtype=bool)
    return folds == fold
