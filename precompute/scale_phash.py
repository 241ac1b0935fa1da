"""Perceptual hashes for the scale data: 64-bit phashes that agree within a label group the
way the real table's do (many exact or near copies, unrelated photos too) and that a few
groups share (a stock photo), without any picture.

Figures measured once on the real train.csv (34,250 rows, 11,014 groups, 28,735
distinct phashes; 83,751 within-group pairs, 200,000 random between-group pairs):
- per bit (most significant first, as the hex string reads) how often it is 1: BIT_P;
  between-group pairs then differ by 30.9 bits on average (std 4.3), never 0;
- within size-2 groups, the pair's Hamming distance: 0 in 10.6%, 1-2 in 4.2%, 3-5 in
  1.8%, 6-10 in 4.8%, 11-15 in 3.0%, 16-20 in 6.3%, 21-25 in 9.1%, and 26+ (an
  unrelated photo) in 60.2%: MUTATIONS;
- the share of a group's rows that repeat a hash of the group grows with its size: 5.3%
  of the rows of pairs, 13.6% at size 3, 20.3% at 4-5, 27.7% at 6-10, 32.4% at 11-20
  and 31.1% at 21-51: EXACT_COPY (per later posting: share x size / (size - 1));
- 147 phashes are shared by more than one group (468 rows, 1.4%).
"""

from __future__ import annotations

import numpy as np

BIT_P = np.array([
    1.0, 0.49, 0.76, 0.52, 0.65, 0.5, 0.61, 0.49, 0.63, 0.47, 0.41, 0.49, 0.46, 0.48, 0.48,
    0.49, 0.73, 0.49, 0.29, 0.47, 0.4, 0.48, 0.45, 0.47, 0.49, 0.48, 0.49, 0.48, 0.49, 0.49,
    0.49, 0.48, 0.63, 0.48, 0.38, 0.47, 0.48, 0.48, 0.48, 0.48, 0.46, 0.48, 0.51, 0.48, 0.49,
    0.47, 0.48, 0.47, 0.58, 0.47, 0.44, 0.47, 0.47, 0.48, 0.46, 0.47, 0.48, 0.48, 0.5, 0.48,
    0.48, 0.46, 0.46, 0.46])
# A later posting of a group repeats the hash of an earlier one (the same photo) with
# EXACT_COPY[size] (sizes from the key up to the next key), or else derives a photo from it:
# MUTATIONS = (min bits flipped, max bits flipped, share); None = an unrelated photo.
EXACT_COPY = {2: 0.106, 3: 0.204, 4: 0.26, 6: 0.32, 11: 0.35, 21: 0.32}
MUTATIONS: tuple[tuple[int | None, int | None, float], ...] = (
    (1, 2, 0.042), (3, 5, 0.018), (6, 10, 0.048), (11, 15, 0.030), (16, 20, 0.063),
    (21, 25, 0.091), (None, None, 0.602))
STOCK_PHOTO_SHARE = 0.2   # groups of a pack or stock family that show the family's photo
_CHUNK = 1 << 16


def fresh_hashes(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` unrelated photos' hashes (uint64), bits drawn with the real table's frequencies."""
    out = np.empty(n, dtype=np.uint64)
    for s in range(0, n, _CHUNK):
        m = min(_CHUNK, n - s)
        bits = rng.random((m, 64), dtype=np.float32) < BIT_P.astype(np.float32)
        out[s:s + m] = np.packbits(bits, axis=1).view(">u8").ravel()
    return out


def flip_bits(rng: np.random.Generator, hashes: np.ndarray, k: np.ndarray) -> np.ndarray:
    """`hashes` with k[i] distinct bits of row i flipped (never the top bit, which the
    real phash always sets)."""
    mask = np.zeros(len(hashes), dtype=np.uint64)
    count = np.zeros(len(hashes), dtype=np.int64)
    active = np.flatnonzero(count < k)
    while len(active):
        bit = np.left_shift(np.uint64(1), rng.integers(0, 63, len(active)).astype(np.uint64))
        new = (mask[active] & bit) == 0
        mask[active] |= bit
        count[active] += new
        active = active[count[active] < k[active]]
    return hashes ^ mask


def _mutate(rng: np.random.Generator, source: np.ndarray, p_exact: np.ndarray
            ) -> np.ndarray:
    shares = np.array([m[2] for m in MUTATIONS])
    kind = rng.choice(len(MUTATIONS), size=len(source), p=shares / shares.sum())
    kind[rng.random(len(source)) < p_exact] = -1   # an exact copy
    out = source.copy()
    for i, (lo, hi, _) in enumerate(MUTATIONS):
        rows = np.flatnonzero(kind == i)
        if not len(rows):
            continue
        if lo is None:
            out[rows] = fresh_hashes(rng, len(rows))
        else:
            out[rows] = flip_bits(rng, source[rows], rng.integers(lo, hi + 1, len(rows)))
    return out


def group_hashes(rng: np.random.Generator, sizes: np.ndarray, family: np.ndarray,
                 shares_photo: np.ndarray) -> np.ndarray:
    """One hash per posting, postings in group order (sizes[g] rows of group g in turn).

    The first posting of a group shows the group's photo: its family's (with
    STOCK_PHOTO_SHARE for groups where `shares_photo`) or its own; every later posting
    derives from a random earlier posting of its group (MUTATIONS)."""
    family_photo = fresh_hashes(rng, int(family.max()) + 1)
    base = fresh_hashes(rng, len(sizes))
    use = shares_photo & (rng.random(len(sizes)) < STOCK_PHOTO_SHARE)
    base[use] = family_photo[family[use]]
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    out = np.empty(int(sizes.sum()), dtype=np.uint64)
    out[starts] = base
    keys = np.array(list(EXACT_COPY))
    p_exact = np.array(list(EXACT_COPY.values()))[np.searchsorted(keys, sizes, "right") - 1]
    for j in range(1, int(sizes.max())):
        g = np.flatnonzero(sizes > j)
        source = starts[g] + (rng.random(len(g)) * j).astype(np.int64)
        out[starts[g] + j] = _mutate(rng, out[source], p_exact[g])
    return out
