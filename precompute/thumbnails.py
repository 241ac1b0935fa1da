"""Small JPEG thumbnails of every posting's image, packed into one blob plus offsets so the
explorer can show a grid without the original image folder."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from precompute.images import load_rgb

_CHUNK = 256  # rows in flight at once: bounds memory to a few decoded images per worker


def _thumbnail(path: Path | None, size: int, quality: int) -> bytes:
    img, _reason = load_rgb(path, reduce_to=size)  # JPEGs decode at a reduced scale
    if img is None:
        return b""
    img.thumbnail((size, size), Image.Resampling.LANCZOS)  # never enlarges
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def make_thumbnails(paths: Sequence[Path | None], *, size: int = 192, quality: int = 85,
                    progress: bool = True, workers: int | None = None) -> tuple[bytes, np.ndarray]:
    """(blob, offsets): entry i is blob[offsets[i]:offsets[i+1]], empty when row i has no
    usable image. PIL decodes and encodes without the GIL, so threads give real speed-up."""
    workers = min(4, os.cpu_count() or 1) if workers is None else max(1, workers)
    out = io.BytesIO()
    offsets = np.zeros(len(paths) + 1, np.int64)
    with ThreadPoolExecutor(workers) as pool, tqdm(total=len(paths), desc="thumbnails",
                                                   unit="img", disable=not progress) as bar:
        for start in range(0, len(paths), _CHUNK):
            chunk = paths[start:start + _CHUNK]
            for i, jpeg in enumerate(pool.map(lambda p: _thumbnail(p, size, quality), chunk),
                                     start):
                out.write(jpeg)
                offsets[i + 1] = out.tell()
            bar.update(len(chunk))
    return out.getvalue(), offsets


def read_thumbnail(blob: bytes | memoryview, offsets: np.ndarray, i: int) -> bytes | None:
    start, end = int(offsets[i]), int(offsets[i + 1])
    return bytes(blob[start:end]) if end > start else None
