"""The cross-modal space (issue 12): a posting's title against another's picture, both
ways, searched exactly and approximately, blended by INB, and its rows without a picture."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from explorer.core import ann
from explorer.core.spaces import cross_space


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def by_hand(t: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(t_i . v_j + v_i . t_j) / 2 for every pair, pair by pair."""
    n = len(t)
    out = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            out[i, j] = (float(t[i] @ v[j]) + float(v[i] @ t[j])) / 2
    return out


def test_sims_are_title_against_picture_both_ways_and_symmetric():
    t, v = unit_rows(30, 6, 1), unit_rows(30, 6, 2)
    space = cross_space(t, v)
    want = by_hand(t, v)
    cols = np.tile(np.arange(30), (30, 1))
    got = space.sims(np.arange(30), cols)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(got, got.T, atol=1e-6)
    assert np.all(np.abs(got) <= 1 + 1e-6)


def test_exact_topk_is_brute_force_with_the_query_first():
    t, v = unit_rows(50, 8, 3), unit_rows(50, 8, 4)
    idx, sim = cross_space(t, v).topk(7)
    want = by_hand(t, v)
    assert idx[:, 0].tolist() == list(range(50)) and np.all(sim[:, 0] == 1.0)
    for i in range(50):
        others = sorted((j for j in range(50) if j != i), key=lambda j: (-want[i, j], j))
        assert idx[i, 1:].tolist() == others[:6]
        np.testing.assert_allclose(sim[i, 1:], want[i, idx[i, 1:]], atol=1e-6)


def test_a_posting_without_a_picture_is_nobodys_neighbour():
    t, v = unit_rows(40, 5, 5), unit_rows(40, 5, 6)
    present = np.ones(40, bool)
    present[[3, 17]] = False
    space = cross_space(t, v, present)
    idx, _ = space.topk(10)
    assert not np.isin(idx[:, 1:], [3, 17]).any()
    assert idx[3].tolist() == [3] + [-1] * 9
    s = space.sims(np.array([0, 3]), np.array([[0, 3, 4], [3, 0, 4]]))
    assert np.isneginf(s[0, 1]) and np.isneginf(s[1, 1:]).all() and np.isfinite(s[0, 2])


def test_inb_blends_both_sides_and_stays_symmetric():
    """One INB step: new query side = normalised w @ [t, v], new base = w @ [v, t]; the
    new score of (i, j) equals that of (j, i)."""
    t, v = unit_rows(20, 4, 7), unit_rows(20, 4, 8)
    rng = np.random.default_rng(9)
    w = sparse.random(20, 20, density=0.2, random_state=rng, dtype=np.float32).tocsr()
    w = (w + sparse.identity(20, dtype=np.float32, format="csr")).tocsr()
    blended = cross_space(t, v).blend(w)
    q = np.concatenate([t, v], 1) / np.sqrt(2)
    b = np.concatenate([v, t], 1) / np.sqrt(2)
    wq, wb = w @ q, w @ b
    wq /= np.linalg.norm(wq, axis=1, keepdims=True)
    wb /= np.linalg.norm(wb, axis=1, keepdims=True)
    cols = np.tile(np.arange(20), (20, 1))
    got = blended.sims(np.arange(20), cols)
    np.testing.assert_allclose(got, wq @ wb.T, atol=1e-5)
    np.testing.assert_allclose(got, got.T, atol=1e-5)


def test_approximate_search_scores_exactly_and_measures_its_recall(monkeypatch):
    monkeypatch.setattr(ann, "MIN_ROWS", 100)
    t, v = unit_rows(1500, 16, 10), unit_rows(1500, 16, 11)
    space = cross_space(t, v)
    idx, sim, record = ann.search_topk(space, 10, "approx")
    assert record["method"] == "ivf" and 0 <= record["recall"] <= 1
    ok = idx >= 0
    rows = np.broadcast_to(np.arange(1500)[:, None], idx.shape)
    want = np.einsum("ij,ij->i", t[rows[ok]], v[idx[ok]]) / 2 + \
        np.einsum("ij,ij->i", v[rows[ok]], t[idx[ok]]) / 2
    got = sim[ok]
    self_col = (idx == rows)[ok]
    np.testing.assert_allclose(got[~self_col], want[~self_col], atol=1e-5)
    exact, _ = cross_space(t, v).topk(10)
    found = np.mean([len(set(a[1:]) & set(b[1:])) / 9 for a, b in zip(idx, exact, strict=True)])
    assert abs(found - record["recall"]) < 0.1
