"""Image files of a dataset: where they are and how they are decoded (PIL only, no torch).

`image_paths` is the one place a row's `image` name becomes a file, and never one outside
the image folder. `load_rgb` (embeddings, thumbnails) and `load_stored` (perceptual hash)
turn any file a scraped catalogue may hold into an image or a one-line reason; one bad
file never raises. PIL's two process-wide knobs (truncated loading and the
decompression-bomb warning) are only touched for the duration of a call and restored."""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, JpegImagePlugin

_JPEG_FORMATS = ("JPEG", "MPO")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_WHITE = (255, 255, 255)
_WARN_ROWS = 10  # rejected names warned about one by one; then a count

log = logging.getLogger(__name__)

# catch_warnings() swaps a process-wide filter list: serialise our (cheap, header-only)
# Image.open calls so concurrent threads cannot restore each other's filters wrongly.
_open_lock = threading.Lock()
# Refcount for the truncated-load flag: the last concurrent user restores the old value.
_flag_lock = threading.Lock()
_flag_users = 0
_flag_saved = False


class _Skip(Exception):
    """Internal: the file cannot be used; the message is the reason."""


@contextmanager
def _truncated_ok() -> Iterator[None]:
    global _flag_users, _flag_saved
    with _flag_lock:
        if _flag_users == 0:
            _flag_saved = ImageFile.LOAD_TRUNCATED_IMAGES
            ImageFile.LOAD_TRUNCATED_IMAGES = True
        _flag_users += 1
    try:
        yield
    finally:
        with _flag_lock:
            _flag_users -= 1
            if _flag_users == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = _flag_saved


def _open(path: Path) -> Image.Image:
    """Image.open without PIL's bomb warning; our own max_pixels policy applies instead."""
    with _open_lock, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except Image.DecompressionBombError as exc:
            with path.open("rb") as fh:
                is_jpeg = fh.read(3) == b"\xff\xd8\xff"
            if not is_jpeg:
                raise _Skip(f"too large: {exc}") from None
    # A JPEG can still be decoded at 1/2..1/8 scale: open it without PIL's size check.
    return JpegImagePlugin.JpegImageFile(path)


def _reduce(im: Image.Image, max_pixels: int, reduce_to: int | None) -> None:
    """Shrink a JPEG while decoding (DCT scaling); anything else over max_pixels is skipped."""
    w, h = im.size
    can_draft = im.format in _JPEG_FORMATS
    factor = 1
    if w * h > max_pixels and can_draft:
        factor = next((k for k in (2, 4, 8) if math.ceil(w / k) * math.ceil(h / k) <= max_pixels),
                      8)
    if reduce_to and can_draft:  # a smaller target: the largest scale that keeps reduce_to px
        while factor < 8 and max(w, h) // (factor * 2) >= reduce_to:
            factor *= 2
    if factor > 1:
        im.draft(None, (max(1, w // factor), max(1, h // factor)))
    if im.size[0] * im.size[1] > max_pixels:
        raise _Skip(f"too large: {w}x{h} px > max_pixels {max_pixels}")


def _load(im: Image.Image) -> None:
    try:
        im.load()
    except OSError as exc:
        if "truncated" not in str(exc) and "broken data stream" not in str(exc):
            raise
        with _truncated_ok():  # keep what was decoded; the rest is filled grey
            im.load()


def _deep_to_8bit(im: Image.Image) -> Image.Image:
    """16/32-bit integer and float greyscale: scale to 8 bits (PIL's convert would clip)."""
    a = np.asarray(im).astype(np.float64)
    top = float(a.max()) if a.size else 0.0
    # floats in 0..1 stretch; integers up to 255 stay; anything larger is taken as 16-bit
    scale = 255.0 if im.mode == "F" and top <= 1.0 else 1.0 if top <= 255 else 255.0 / 65535.0
    return Image.fromarray(np.clip(np.rint(a * scale), 0, 255).astype(np.uint8), "L")


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode == "RGB":
        return im.copy()  # detach from the file handle
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in _ALPHA_MODES:
        rgba = im.convert("RGBA")
        out = Image.new("RGB", rgba.size, _WHITE)
        out.paste(rgba, mask=rgba.getchannel("A"))  # transparent = white background
        return out
    if im.mode.startswith(("I", "F")):
        im = _deep_to_8bit(im)
    return im.convert("RGB")


def _decode(path: Path | None, max_pixels: int, reduce_to: int | None,
            finish: Callable[[Image.Image], Image.Image]) -> tuple[Image.Image | None, str | None]:
    if path is None:
        return None, "no image"
    path = Path(path)
    try:
        if not path.is_file():
            return None, "missing" if not path.exists() else "corrupt: not a regular file"
        im = _open(path)
        with im:
            _reduce(im, max_pixels, reduce_to)
            _load(im)
            return finish(im), None
    except _Skip as exc:
        return None, str(exc)
    except Exception as exc:  # every decoder failure, MemoryError included, is a skip
        msg = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
        return None, f"truncated: {msg}" if "truncated" in msg.lower() else f"corrupt: {msg}"


def _upright_rgb(im: Image.Image) -> Image.Image:
    with suppress(Exception):  # malformed EXIF: keep the stored orientation
        im = ImageOps.exif_transpose(im) or im
    return _to_rgb(im)


def load_rgb(path: Path | None, *, max_pixels: int = 100_000_000,
             reduce_to: int | None = None) -> tuple[Image.Image | None, str | None]:
    """(RGB image, None) or (None, reason). `reduce_to` lets JPEGs decode at a reduced scale
    as long as the long side stays >= reduce_to px (for thumbnails)."""
    return _decode(path, max_pixels, reduce_to, _upright_rgb)


def load_stored(path: Path | None, *, max_pixels: int = 100_000_000
                ) -> tuple[Image.Image | None, str | None]:
    """(image, None) or (None, reason): the pixels as stored, in the file's own mode and
    orientation (what imagehash hashed for the Shopee table's image_phash), with the same
    protection against huge, truncated and corrupt files as `load_rgb`."""
    return _decode(path, max_pixels, None, lambda im: im.copy())


@dataclass
class ImagePaths:
    """The image file of every row, or None (with the reason in `rejected`) when its name
    is empty or leads outside the image folder."""

    paths: list[Path | None]
    rejected: dict[int, str] = field(default_factory=dict)


def image_paths(folder: Path, names: Iterable[object]) -> ImagePaths:
    """Join each row's `image` name under `folder`: the one place image paths are made.

    A name that resolves outside the folder (absolute, `..`, a symbolic link pointing out)
    is rejected with a warning, so a dataset can never make us read other files; symbolic
    links that stay inside are followed. Returned paths are resolved."""
    root = Path(folder).resolve()
    paths: list[Path | None] = []
    rejected: dict[int, str] = {}
    for row, name in enumerate(names):
        path, why = _inside(root, name)
        paths.append(path)
        if why is not None:
            rejected[row] = why
            if len(rejected) <= _WARN_ROWS:
                log.warning("image row %d skipped: %s", row, why)
    if len(rejected) > _WARN_ROWS:
        log.warning("%d image names skipped in all (%s)", len(rejected), root)
    return ImagePaths(paths, rejected)


def _inside(root: Path, name: object) -> tuple[Path | None, str | None]:
    if not isinstance(name, str) or not name.strip():
        return None, "no image name"
    if "\x00" in name:
        return None, f"image name {name!r} holds a NUL byte"
    try:
        path = (root / name).resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a name the OS refuses
        return None, f"image name {name!r} cannot be resolved ({type(exc).__name__})"
    if root not in path.parents:
        return None, f"image name {name!r} leads outside the image folder {root}"
    return path, None
