"""Embedding spaces: exact top-K against brute force, skipped rows, hash expansion, and
the candidate union."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from explorer.core.graph import union_candidates
from explorer.core.spaces import BitSpace, DenseSpace, SparseSpace


def unit_rows(n: int, d: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def brute_topk(sims: np.ndarray, k: int) -> list[list[int]]:
    out = []
    for i, row in enumerate(sims):
        others = sorted((j for j in range(len(row)) if j != i), key=lambda j: (-row[j], j))
        out.append([i, *others[: k - 1]])
    return out


def test_dense_topk_is_exact_with_the_query_first():
    emb = unit_rows(60, 8)
    emb[5] = emb[4]  # an exact duplicate must not push the query out of first place
    idx, sim = DenseSpace(emb).topk(6)
    full = emb @ emb.T
    assert idx[:, 0].tolist() == list(range(60))
    assert np.all(sim[:, 0] == 1.0)
    for i in range(60):
        assert set(idx[i, 1:]) == set(brute_topk(full, 6)[i][1:]) or i in (4, 5)
        np.testing.assert_allclose(sim[i, 1:], full[i, idx[i, 1:]], atol=1e-6)
    assert idx[4, 1] == 5 and idx[5, 1] == 4


def test_dense_skipped_rows_are_nobodys_neighbour():
    emb = unit_rows(30, 6, seed=1)
    present = np.ones(30, bool)
    present[[3, 7]] = False
    emb[~present] = 0
    sp = DenseSpace(emb, present=present)
    idx, sim = sp.topk(5)
    assert not np.isin(idx[present][:, 1:], [3, 7]).any()
    assert idx[3].tolist() == [3, -1, -1, -1, -1] and sim[3, 0] == 1.0
    assert np.all(np.isneginf(sim[3, 1:]))
    got = sp.sims(np.array([0, 3]), np.array([[0, 3, 1], [3, 0, -1]]))
    assert np.isneginf(got[0, 1]) and np.isneginf(got[1, 1]) and np.isneginf(got[1, 2])
    assert got[0, 2] == pytest.approx(float(emb[0] @ emb[1]), abs=1e-6)


def test_sparse_topk_matches_brute_force():
    rng = np.random.default_rng(2)
    mat = sparse.random(40, 25, density=0.2, random_state=3, format="csr", dtype=np.float32)
    mat.data[:] = rng.random(mat.nnz).astype(np.float32)
    norms = np.sqrt(np.asarray(mat.multiply(mat).sum(1)).ravel())
    mat = sparse.diags(1 / np.where(norms > 0, norms, 1)) @ mat
    sp = SparseSpace(mat)
    idx, sim = sp.topk(5)
    full = (mat @ mat.T).toarray()
    for i in range(40):
        np.testing.assert_allclose(sim[i, 1:], full[i, idx[i, 1:]], atol=1e-6)
        assert sim[i, 4] >= np.sort(np.delete(full[i], idx[i]))[-1] - 1e-6
    cols = idx[:, ::-1].copy()
    np.testing.assert_allclose(sp.sims(np.arange(40), cols)[:, :-1],
                               np.take_along_axis(full, cols, 1)[:, :-1], atol=1e-6)


def test_bits_and_their_dense_expansion_agree():
    words = np.random.default_rng(4).integers(0, 2**63, 25, dtype=np.int64).astype(np.uint64)
    bits = words.astype(">u8").view(np.uint8).reshape(-1, 8)
    bs = BitSpace(bits)
    cols = np.tile(np.arange(25), (25, 1))
    expect = 1 - np.array([[bin(int(a) ^ int(b)).count("1") for b in words] for a in words]) / 64
    np.testing.assert_allclose(bs.sims(np.arange(25), cols), expect, atol=1e-6)
    np.testing.assert_allclose(bs.as_dense().sims(np.arange(25), cols), expect, atol=1e-6)


def test_union_candidates_merges_and_marks_membership():
    a = np.array([[0, 2, 3], [1, 0, -1], [2, 0, 1], [3, 2, 0]])
    b = np.array([[0, 3, 1], [1, 3, 2], [2, 2, 3], [3, 1, -1]])  # row 2 lists itself twice
    cand, topk = union_candidates([a, b])
    assert cand[:, 0].tolist() == [0, 1, 2, 3]
    assert sorted(cand[0][cand[0] >= 0]) == [0, 1, 2, 3]
    row0 = dict(zip(cand[0].tolist(), topk[0].tolist(), strict=True))
    assert row0 == {0: 3, 2: 1, 3: 3, 1: 2}
    assert sorted(cand[1][cand[1] >= 0]) == [0, 1, 2, 3]
    assert sorted(cand[3][cand[3] >= 0]) == [0, 1, 2, 3]
    assert (topk[cand < 0] == 0).all()


@pytest.mark.parametrize("threads,block", [("1", 1 << 22), ("3", 16 * 57), ("2", 1)])
def test_brute_force_search_does_not_depend_on_blocks_or_threads(monkeypatch, threads, block):
    """Small blocks and several threads give exactly the one-block, one-thread lists."""
    from explorer.core import spaces

    rng = np.random.default_rng(5)
    mat = sparse.random(300, 40, density=0.1, random_state=6, format="csr", dtype=np.float32)
    mat.data[:] = rng.integers(1, 4, mat.nnz)  # few distinct values: many ties
    words = rng.integers(0, 2**8, 300).astype(np.uint64)  # 8 bits used: many equal distances
    bits = words.astype(">u8").view(np.uint8).reshape(-1, 8)
    monkeypatch.setenv("EXPLORER_THREADS", "1")
    monkeypatch.setattr(spaces, "BLOCK_SCORES", 1 << 22)
    expect = [SparseSpace(mat).topk(12), BitSpace(bits).topk(12)]
    monkeypatch.setenv("EXPLORER_THREADS", threads)
    monkeypatch.setattr(spaces, "BLOCK_SCORES", block)  # 1: blocks of 16 rows
    for (ei, es), (gi, gs) in zip(expect, [SparseSpace(mat).topk(12), BitSpace(bits).topk(12)],
                                  strict=True):
        assert np.array_equal(ei, gi) and np.array_equal(es, gs)


def test_a_failing_block_fails_the_search(monkeypatch):
    from explorer.core import spaces

    monkeypatch.setenv("EXPLORER_THREADS", "2")
    monkeypatch.setattr(spaces, "BLOCK_SCORES", 1)

    def scores(q):
        if q[0] >= 32:
            raise MemoryError("block too large")
        return np.zeros((len(q), 64), np.float32)

    with pytest.raises(MemoryError, match="block too large"):
        spaces.blocked_topk(64, 5, scores)


def test_select_topk_in_place_gives_the_copying_result():
    from explorer.core.spaces import select_topk

    rng = np.random.default_rng(7)
    block = rng.integers(0, 5, (40, 90)).astype(np.float32) / 4  # many ties
    q = np.arange(40) * 2
    expect = select_topk(block, q, 9, np.ones(40, np.float32))
    got = select_topk(block.copy(), q, 9, np.ones(40, np.float32), overwrite=True)
    assert all(np.array_equal(e, g) for e, g in zip(expect, got, strict=True))
    assert expect[0][:, 0].tolist() == q.tolist()


def test_hash_topk_similarities_are_exact():
    words = np.random.default_rng(8).integers(0, 2**63, 50, dtype=np.int64).astype(np.uint64)
    bits = words.astype(">u8").view(np.uint8).reshape(-1, 8)
    idx, sim = BitSpace(bits).topk(7)
    ham = np.array([[bin(int(words[i]) ^ int(words[j])).count("1") for j in r] for i, r in
                    enumerate(idx)])
    assert np.array_equal(sim[:, 1:], (1 - ham / 64).astype(np.float32)[:, 1:])


# ------------------------------------------ INB blending and the exact re-search after it


def _blend_weights(n: int, seed: int, empty: tuple[int, ...] = ()) -> sparse.csr_matrix:
    """INB-shaped weights: 1 on the diagonal, a few neighbours weighted in (0.3, 1); the
    rows `empty` have no weight at all."""
    rng = np.random.default_rng(seed)
    w = np.eye(n)
    for i in range(n):
        nb = rng.choice(np.delete(np.arange(n), i), 3, replace=False)
        w[i, nb] = rng.uniform(0.3, 1.0, 3)
    w[list(empty)] = 0
    return sparse.csr_matrix(w.astype(np.float32))


def _unit64(x: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, n, out=np.zeros_like(x), where=n > 0)


def _check_topk(space, expect_sims: np.ndarray, k: int) -> None:
    """space.topk(k) against a full sort of `expect_sims`, which has no near-tie at any
    row's k-th place (checked: otherwise float32 rounding could pick either)."""
    others = np.sort(np.where(np.eye(len(expect_sims), dtype=bool), -np.inf, expect_sims),
                     axis=1)[:, ::-1]
    assert (others[:, k - 2] - others[:, k - 1]).min() > 1e-5
    idx, sim = space.topk(k)
    assert [list(r) for r in idx] == brute_topk(expect_sims, k)
    np.testing.assert_allclose(sim[:, 1:], np.take_along_axis(expect_sims, idx, 1)[:, 1:],
                               atol=1e-5)


def test_sparse_blend_and_its_exact_search_match_numpy():
    """TF-IDF INB: new_i = sum_j w_ij x_j, L2-normalised (an empty row stays empty), then
    the top-K of the blended rows, against dense numpy in float64."""
    rng = np.random.default_rng(11)
    mat = sparse.random(50, 30, density=0.25, random_state=12, format="csr", dtype=np.float32)
    mat.data[:] = rng.random(mat.nnz).astype(np.float32)
    mat = sparse.csr_matrix(_unit64(mat.toarray()).astype(np.float32))
    w = _blend_weights(50, 13, empty=(7,))  # blended from nothing: no embedding
    blended = SparseSpace(mat).blend(w)
    expect = _unit64(w.toarray().astype(np.float64) @ mat.toarray().astype(np.float64))
    np.testing.assert_allclose(blended.mat.toarray(), expect, atol=1e-6)
    assert blended.mat[7].nnz == 0
    keep = np.delete(np.arange(50), 7)
    sims = expect @ expect.T
    _check_topk(SparseSpace(blended.mat[keep]), sims[np.ix_(keep, keep)], 6)


def test_hash_blend_is_the_signed_bit_average():
    """A hash blends as its +-1/8 expansion: new_i = normalised sum_j w_ij v_j, and the
    similarity stays (1 + dot) / 2, so re-searching it is exact like the others."""
    words = np.random.default_rng(14).integers(0, 2**63, 40, dtype=np.int64).astype(np.uint64)
    bits = words.astype(">u8").view(np.uint8).reshape(-1, 8)
    v = (np.unpackbits(bits, axis=1).astype(np.float64) * 2 - 1) / 8
    w = _blend_weights(40, 15)
    b = _unit64(w.toarray().astype(np.float64) @ v)
    expect = (1 + b @ b.T) / 2
    blended = BitSpace(bits).blend(w)
    cols = np.tile(np.arange(40), (40, 1))
    np.testing.assert_allclose(blended.sims(np.arange(40), cols), expect, atol=1e-6)
    _check_topk(blended, expect, 6)


def test_graph_does_not_depend_on_row_blocks_pair_chunks_or_threads(monkeypatch):
    """The candidate union, merged in row blocks, and every pair's similarity, computed in
    row blocks and pair chunks on threads, equal the one-block, one-thread graph."""
    from explorer.core import graph, spaces

    rng = np.random.default_rng(8)
    mat = sparse.random(200, 30, density=0.15, random_state=9, format="csr", dtype=np.float32)
    words = rng.integers(0, 2**12, 200).astype(np.uint64)
    space = {"tfidf": SparseSpace(mat),
             "phash": BitSpace(words.astype(">u8").view(np.uint8).reshape(-1, 8)),
             "dense": DenseSpace(unit_rows(200, 6))}
    knn = {m: s.topk(9)[0] for m, s in space.items()}
    rows = np.arange(200)
    monkeypatch.setenv("EXPLORER_THREADS", "1")
    want = graph.build_graph("all", rows, space, knn)
    monkeypatch.setenv("EXPLORER_THREADS", "3")
    monkeypatch.setattr(graph, "UNION_BLOCK_ROWS", 7)
    monkeypatch.setattr(graph, "SIMS_BLOCK_ROWS", 11)
    monkeypatch.setattr(spaces, "PAIR_CHUNK", 13)
    got = graph.build_graph("all", rows, space, knn)
    assert np.array_equal(got.cand, want.cand) and np.array_equal(got.topk, want.topk)
    for m in space:
        assert np.array_equal(got.sims[m], want.sims[m])
    assert want.cand.shape[1] > 9  # the modalities' lists differ: a real union


def test_in_threads_shares_one_pool_and_nests_without_deadlock(monkeypatch):
    """Every start runs once; the pool is kept between calls (no thread start per call);
    in_threads called inside a pool thread runs there instead of waiting on the pool."""
    import threading

    from explorer.core import spaces

    monkeypatch.setenv("EXPLORER_THREADS", "2")
    seen: list[tuple[int, int]] = []
    lock = threading.Lock()

    def inner(outer: int):
        def run(i: int) -> None:
            with lock:
                seen.append((outer, i))
        return run

    spaces.in_threads(lambda o: spaces.in_threads(inner(o), range(5)), range(4))
    assert sorted(seen) == [(o, i) for o in range(4) for i in range(5)]
    pool = spaces._pool(2)
    spaces.in_threads(lambda i: None, range(3))
    assert spaces._pool(2) is pool
    with pytest.raises(ZeroDivisionError):
        spaces.in_threads(lambda i: 1 // (i - 2), range(4))
