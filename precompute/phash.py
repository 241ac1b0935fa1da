"""The perceptual hash signal: from the CSV's image_phash column, or computed from the
images with imagehash (the same 64-bit DCT hash the Shopee table carries)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from precompute.dataset import phash_bits
from precompute.errors import InputError


def compute_phashes(images: Path, names: pd.Series, *, progress: bool = True) -> pd.Series:
    import imagehash
    from PIL import Image, UnidentifiedImageError

    out = []
    for name in tqdm(names, desc="phash", unit="img", disable=not progress):
        path = images / name
        try:
            with Image.open(path) as img:
                out.append(str(imagehash.phash(img)))
        except (OSError, UnidentifiedImageError) as exc:
            raise InputError(f"{path}: cannot compute its phash ({exc})") from None
    return pd.Series(out, index=names.index)


def phash_column(table: pd.DataFrame, images: Path | None, source: Path, *,
                 progress: bool = True) -> tuple[np.ndarray, pd.Series]:
    """(n, 8) packed bits and the hex column, computing missing hashes from images."""
    hexes = table["image_phash"]
    todo = (hexes == "").to_numpy()
    if todo.any():
        if images is None:
            line = int(np.flatnonzero(todo)[0]) + 2
            raise InputError(f"{source}: line {line}: image_phash is absent or empty and no "
                             "--images folder was given to compute it from")
        hexes = hexes.copy()
        hexes[todo] = compute_phashes(images, table.loc[todo, "image"], progress=progress)
    return phash_bits(hexes), hexes
