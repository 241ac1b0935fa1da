"""Perceptual hashes with absent rows (an image that could not be hashed): like a dense
modality's absent rows, they are never anyone's neighbour and score -inf with everything
but themselves, in exact search, pair similarities and the INB blend."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from explorer.core.spaces import BitSpace

N = 40


def hashes(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, 5, dtype=np.int64).astype(np.uint64)
    words = base[rng.integers(0, 5, N)] ^ (np.uint64(1) << rng.integers(0, 64, N).astype(
        np.uint64))
    return words


def packed(words: np.ndarray) -> np.ndarray:
    return words.astype(">u8").view(np.uint8).reshape(-1, 8)


def expected_sims(words: np.ndarray, present: np.ndarray) -> np.ndarray:
    """1 - hamming / 64 between present rows, -inf with an absent row, 1 on the diagonal."""
    out = np.full((N, N), -np.inf)
    for i in range(N):
        for j in range(N):
            if i == j:
                out[i, j] = 1.0
            elif present[i] and present[j]:
                out[i, j] = 1 - bin(int(words[i]) ^ int(words[j])).count("1") / 64
    return out


def test_absent_rows_score_minus_infinity():
    words = hashes()
    present = np.ones(N, bool)
    present[[3, 17, 30]] = False
    space = BitSpace(packed(words), present=present)
    cols = np.tile(np.arange(N), (N, 1))
    got = space.sims(np.arange(N), cols)
    want = expected_sims(words, present)
    assert np.array_equal(np.isneginf(got), np.isneginf(want))
    np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], atol=1e-6)


def test_absent_rows_are_nobodys_neighbour():
    words = hashes(1)
    present = np.ones(N, bool)
    absent = [0, 11, 25]
    present[absent] = False
    k = 10
    idx, sim = BitSpace(packed(words), present=present).topk(k)
    want = expected_sims(words, present)
    for q in range(N):
        listed = idx[q][idx[q] >= 0]
        assert listed[0] == q and sim[q, 0] == 1
        if q in absent:
            assert listed.tolist() == [q]
            assert np.isneginf(sim[q, 1:]).all()
        else:
            assert not np.isin(listed, absent).any()
            assert len(listed) == k
            # the k - 1 best others, by the independent similarity
            best = np.sort(np.delete(want[q], [q, *absent]))[::-1][:k - 1]
            np.testing.assert_allclose(sim[q, 1:], best, atol=1e-6)
            np.testing.assert_allclose(sim[q, 1:], want[q, listed[1:]], atol=1e-6)


def test_blend_keeps_absent_rows_absent():
    words = hashes(2)
    present = np.ones(N, bool)
    present[[5, 6]] = False
    space = BitSpace(packed(words), present=present)
    blended = space.blend(sparse.identity(N, format="csr", dtype=np.float32))
    assert blended.present is not None
    assert np.flatnonzero(~blended.present).tolist() == [5, 6]
    got = blended.sims(np.arange(N), np.tile(np.arange(N), (N, 1)))
    want = expected_sims(words, present)
    off = ~np.eye(N, dtype=bool)  # a row with itself: the graph forces 1 there anyway
    got, want = got[off], want[off]
    assert np.array_equal(np.isneginf(got), np.isneginf(want))
    np.testing.assert_allclose(got[np.isfinite(want)], want[np.isfinite(want)], atol=1e-5)


def test_all_present_is_the_plain_hash_space():
    words = hashes(3)
    a = BitSpace(packed(words), present=np.ones(N, bool)).topk(6)
    b = BitSpace(packed(words)).topk(6)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
