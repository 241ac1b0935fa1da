"""Find pictures by words: the postings of a scope whose pictures best fit a typed text.

A cross-modal modality keeps every posting's picture as a unit row in the space its text
tower maps titles into (precompute.crossmodal_towers), so a typed text's unit vector `t`
scores picture `v_j` by the cosine `t . v_j`. :func:`search_pictures` ranks the rows of a
scope that have a picture by that score, best first, ties by the lower bundle row, in
blocks (a million 256-d float16 rows never become one float32 copy). The text's vector
comes from the bundle's own text tower, run in a child process of the precompute
environment (explorer.text_query_client): this module only does the arithmetic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.core.bundle import BundleError

__all__ = ["BLOCK", "PictureHits", "search_bundle", "search_pictures"]

BLOCK = 65536  # picture rows scored at a time


@dataclass(frozen=True)
class PictureHits:
    """Bundle rows (int64) and their cosine to the text (float32), best first."""

    rows: np.ndarray
    scores: np.ndarray


def _best(scores: np.ndarray, rows: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """The `top` best (score descending, row ascending) of `scores` / `rows`, in order."""
    if len(scores) > top:
        kth = np.partition(scores, len(scores) - top)[len(scores) - top]  # top-th largest
        above = np.flatnonzero(scores > kth)
        ties = np.flatnonzero(scores == kth)
        # only as many of the tied rows as fill the list, the lowest rows first
        ties = ties[np.argsort(rows[ties], kind="stable")[:top - len(above)]]
        keep = np.concatenate([above, ties])
        scores, rows = scores[keep], rows[keep]
    order = np.lexsort((rows, -scores))
    return scores[order], rows[order]


def search_pictures(text: np.ndarray, pictures: np.ndarray, rows: np.ndarray,
                    present: np.ndarray | None = None, top: int = 20, *,
                    block: int = BLOCK) -> PictureHits:
    """The at most `top` rows of `rows` (bundle rows) whose picture fits `text` best.

    `text`: the typed text's unit vector (d,); `pictures`: every bundle row's picture as
    a unit row (n, d), float32 or float16 (a memory map is read block by block);
    `present`: (n,) bool, False where the posting has no picture (those rows are never
    returned; None: every row has one). Scores are `text . picture` in float32; equal
    scores rank the lower bundle row first. ValueError when the shapes disagree or the
    text is not finite."""
    t = np.asarray(text, np.float32)
    if t.ndim != 1 or pictures.ndim != 2 or t.shape[0] != pictures.shape[1]:
        raise ValueError(f"a text vector of shape {t.shape} against pictures of shape "
                         f"{pictures.shape}")
    if not np.isfinite(t).all():
        raise ValueError("the text vector is not finite")
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    rows = np.asarray(rows, np.int64)
    if present is not None:
        rows = rows[np.asarray(present, bool)[rows]]
    best_s, best_r = np.empty(0, np.float32), np.empty(0, np.int64)
    for start in range(0, len(rows), block):
        part = rows[start:start + block]
        scores = np.asarray(pictures[part], np.float32) @ t
        best_s, best_r = _best(np.concatenate([best_s, scores]),
                               np.concatenate([best_r, part]), top)
    return PictureHits(best_r, best_s)


def search_bundle(bundle: Any, modality: str, scope: str, text: np.ndarray,
                  top: int = 20) -> PictureHits:
    """:func:`search_pictures` over a scope of a bundle's cross-modal `modality` (its
    pictures checked by the bundle when first read); BundleError for an unknown scope
    or a modality that is not cross-modal."""
    if modality not in bundle.manifest.cross_modalities:
        raise BundleError(f"{modality!r} is not a cross-modal modality of this bundle")
    return search_pictures(text, bundle.embeddings(modality), bundle.scope_rows(scope),
                           bundle.present(modality), top)
