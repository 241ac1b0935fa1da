"""The perceptual hash signal: from the CSV's image_phash column, or computed from the
images with imagehash (the same 64-bit DCT hash the Shopee table carries).

An image that cannot be hashed (missing, corrupt, too large, outside the image folder)
is skipped with a warning, like in the neural image modalities: its row has no hash (an
empty image_phash, and `present` False), so it is nobody's neighbour."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from precompute.dataset import phash_bits
from precompute.errors import InputError
from precompute.images import ImagePaths, image_paths, load_stored

log = logging.getLogger(__name__)


@dataclass
class PhashColumn:
    hexes: pd.Series  # 16 hex digits, or "" where the row has no hash
    present: np.ndarray  # (n,) bool
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (row, reason)

    @property
    def bits(self) -> np.ndarray:
        """(n, 8) packed bits; zero rows where absent."""
        out = np.zeros((len(self.hexes), 8), np.uint8)
        out[self.present] = phash_bits(self.hexes[self.present])
        return out


def compute_phashes(images: Path, names: pd.Series, *, progress: bool = True) -> pd.Series:
    """The hash of each named image under the folder `images`, "" where it has none."""
    done, _ = hash_rows(image_paths(images, names), np.arange(len(names)), progress=progress)
    return pd.Series([done.get(r, "") for r in range(len(names))], index=names.index)


def hash_rows(images: ImagePaths, rows: np.ndarray, *, progress: bool = True
              ) -> tuple[dict[int, str], list[tuple[int, str]]]:
    """({row: hex} of the images that could be hashed, [(row, reason)] of the others)."""
    import imagehash

    done: dict[int, str] = {}
    skipped: list[tuple[int, str]] = []
    for row in tqdm(rows.tolist(), desc="phash", unit="img", disable=not progress):
        path = images.paths[row]
        img, why = load_stored(path)
        if img is None:
            why = images.rejected.get(row, why)
            skipped.append((row, why or "unknown"))
            if path is not None:  # image_paths already warned about rejected names
                log.warning("image row %d skipped: %s (%s)", row, path, why)
            continue
        with img:
            done[row] = str(imagehash.phash(img))
    return done, skipped


def phash_column(table: pd.DataFrame, images: ImagePaths | None, source: Path, *,
                 progress: bool = True) -> PhashColumn:
    """The hash of every row: the CSV's, or computed from its image when the cell is empty."""
    hexes = table["image_phash"].str.lower()
    todo = np.flatnonzero((hexes == "").to_numpy())
    present = np.ones(len(hexes), bool)
    skipped: list[tuple[int, str]] = []
    if len(todo):
        if images is None:
            line = int(todo[0]) + 2
            raise InputError(f"{source}: line {line}: image_phash is absent or empty and no "
                             "--images folder was given to compute it from")
        done, skipped = hash_rows(images, todo, progress=progress)
        hexes = hexes.copy()
        hexes.iloc[list(done)] = list(done.values())
        present[[r for r, _ in skipped]] = False
    return PhashColumn(hexes, present, skipped)
