"""Reading and checking a dataset in Shopee format (posting_id, image, image_phash,
title, label_group). Every problem is reported as one line naming the file and row."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from precompute.errors import InputError

REQUIRED = ("posting_id", "image", "title")
OPTIONAL = ("image_phash", "label_group")
PHASH_RE = re.compile(r"^[0-9a-fA-F]{16}$")
HEADER_LINES = 1  # CSV line of row r is r + 2: one header line, lines counted from 1


@dataclass
class Dataset:
    csv: Path
    sha256: str
    table: pd.DataFrame  # posting_id, image, title, image_phash ("" = to compute), label_group

    @property
    def has_labels(self) -> bool:
        return "label_group" in self.table.columns

    def __len__(self) -> int:
        return len(self.table)


def csv_line(row: int) -> int:
    return row + HEADER_LINES + 1


def _decode(path: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(f"{path}: line {line} is not valid UTF-8 (byte {exc.start})") from None


def read_dataset(path: str | Path) -> Dataset:
    """Read and validate a Shopee-format CSV. Titles may be empty; image_phash and
    label_group may be absent (phash is then computed from images; no labels = test set)."""
    path = Path(path)
    if not path.is_file():  # a FIFO or a device would block the read, a folder mislead
        what = "does not exist" if not path.exists() else "is not a regular file"
        raise InputError(f"{path}: {what}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from None
    text = _decode(path, raw)
    if not text.strip():
        raise InputError(f"{path}: the file is empty")
    try:
        from io import StringIO

        df = pd.read_csv(StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing required column(s): {', '.join(missing)} "
                         f"(found: {', '.join(df.columns)})")
    if len(df) == 0:
        raise InputError(f"{path}: no data rows under the header")
    keep = [c for c in (*REQUIRED, *OPTIONAL) if c in df.columns]
    df = df[keep].copy()
    _check_ids(path, df)
    if "image_phash" in df.columns:
        df["image_phash"] = df["image_phash"].str.strip()
        _check_phash(path, df["image_phash"])
    else:
        df["image_phash"] = ""
    if "label_group" in df.columns:
        df["label_group"] = _labels(path, df["label_group"])
    return Dataset(path, hashlib.sha256(raw).hexdigest(), df.reset_index(drop=True))


def _check_ids(path: Path, df: pd.DataFrame) -> None:
    ids = df["posting_id"].str.strip()
    empty = np.flatnonzero((ids == "").to_numpy())
    if len(empty):
        raise InputError(f"{path}: line {csv_line(int(empty[0]))}: posting_id is empty")
    dup = ids.duplicated(keep="first").to_numpy()
    if dup.any():
        r = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero((ids == ids.iloc[r]).to_numpy())[0])
        raise InputError(f"{path}: line {csv_line(r)}: duplicate posting_id {ids.iloc[r]!r} "
                         f"(first on line {csv_line(first)})")
    df["posting_id"] = ids


def _check_phash(path: Path, col: pd.Series) -> None:
    """Each cell is 16 hex digits, or empty (then computed from the image)."""
    bad = ~(col.str.fullmatch(PHASH_RE) | (col.str.strip() == "")).to_numpy()
    if bad.any():
        r = int(np.flatnonzero(bad)[0])
        raise InputError(f"{path}: line {csv_line(r)}: image_phash {col.iloc[r]!r} is not "
                         "16 hexadecimal digits")


def _labels(path: Path, col: pd.Series) -> pd.Series:
    stripped = col.str.strip()
    empty = np.flatnonzero((stripped == "").to_numpy())
    if len(empty):
        raise InputError(f"{path}: line {csv_line(int(empty[0]))}: label_group is empty "
                         "(leave the column out for an unlabelled test set)")
    if stripped.str.fullmatch(r"-?\d{1,18}").all():
        return stripped.astype(np.int64)
    return stripped


def phash_bits(hexes: pd.Series) -> np.ndarray:
    """16-hex-digit hashes -> (n, 8) uint8, most significant byte first."""
    joined = "".join(hexes.str.lower())
    return np.frombuffer(bytes.fromhex(joined), np.uint8).reshape(-1, 8).copy()
