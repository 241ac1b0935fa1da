"""Approximate neighbour search (explorer/core/ann.py) against brute force in numpy: recall,
exact similarities, the top-K format's promises, the fallback to exact on tiny data, and
the manifest record of each search through a real build and Bundle.open."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import synthetic_table
from scipy import sparse

from explorer.core import ann
from explorer.core.bundle import Bundle, BundleError
from explorer.core.spaces import BitSpace, DenseSpace, SparseSpace

K = 20


def brute_force(scores: np.ndarray, k: int) -> np.ndarray:
    """Each row's k-th best similarity to another row (-inf when it has fewer than k)."""
    s = scores.astype(np.float64).copy()
    np.fill_diagonal(s, -np.inf)
    return -np.sort(-s, axis=1)[:, k - 1]


def check_lists(idx: np.ndarray, sim: np.ndarray, scores: np.ndarray,
                present: np.ndarray | None = None) -> None:
    """docs/bundle.md's promises, and every similarity the exact one of its pair."""
    n = len(idx)
    assert np.array_equal(idx[:, 0], np.arange(n)) and np.all(sim[:, 0] == 1)
    valid = idx >= 0
    assert not np.any(np.diff(valid.astype(int), axis=1) > 0)  # padding only at the end
    assert np.all(np.isneginf(sim[~valid]))
    for i in range(n):
        row, vals = idx[i, valid[i]], sim[i, valid[i]]
        assert len(set(row.tolist())) == len(row)  # no repeats, query not twice
        np.testing.assert_allclose(vals[1:], scores[i, row[1:]], atol=1e-4)
        assert np.all(np.isfinite(vals))
        # decreasing similarity, ties by lower index
        order = np.lexsort((row[1:], -vals[1:]))
        assert np.array_equal(order, np.arange(len(row) - 1))
        if present is not None:
            assert present[row[1:]].all() and (present[i] or len(row) == 1)


def recall(idx: np.ndarray, sim: np.ndarray, scores: np.ndarray, k: int,
           rows: np.ndarray) -> float:
    """Share of the true top-(k-1) others found; a tie with the true k-th counts."""
    kth = brute_force(scores, k - 1)[rows]
    found = ((idx[rows, 1:] >= 0) & (sim[rows, 1:] >= kth[:, None] - 1e-5)).sum(axis=1)
    return float(np.minimum(found, k - 1).sum() / ((k - 1) * len(rows)))


def check_tuned_search(idx: np.ndarray, sim: np.ndarray, rec: dict, scores: np.ndarray,
                       present: np.ndarray, method: str) -> None:
    """An nprobe-tuned search: the format, absent rows alone, recall >= 0.97 on the rows
    present, and the recorded recall within 0.02 of it."""
    scores[:, ~present] = -np.inf
    check_lists(idx, sim, scores, present)
    assert np.all(idx[~present, 1:] == -1)
    got = recall(idx, sim, scores, K, np.flatnonzero(present))
    assert got >= 0.97
    assert rec["method"] == method and rec["params"]["nprobe"] <= rec["params"]["nlist"]
    assert rec["recall_queries"] == 2000 and abs(rec["recall"] - got) < 0.02


def clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n // 20, d))
    x = centres[rng.integers(0, len(centres), n)] + 0.6 * rng.normal(size=(n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_dense_ivf_recall_and_format():
    x = clustered(3000, 48)
    present = np.random.default_rng(1).random(3000) > 0.05
    x[~present] = 0
    idx, sim, rec = ann.search_topk(DenseSpace(x, present=present), K, "approx")
    scores = x @ x.T
    check_tuned_search(idx, sim, rec, scores, present, "ivf")


def word_rows(n: int, vocab: int, seed: int) -> sparse.csr_matrix:
    """L2-normalised binary rows: a group's 4 words and 3 random ones per row, and some
    empty rows (a title of stop words only)."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n // 6, n)
    words = [np.unique(np.r_[(groups[i] * 7 + np.arange(4)) % vocab, rng.integers(0, vocab, 3)])
             if i % 97 else np.array([], np.int64) for i in range(n)]
    mat = sparse.csr_matrix((np.ones(sum(map(len, words)), np.float32),
                             np.concatenate(words),
                             np.r_[0, np.cumsum([len(w) for w in words])]), shape=(n, vocab))
    norms = np.sqrt(np.asarray(mat.sum(axis=1)).ravel())
    mat = sparse.diags(np.divide(1, norms, out=np.zeros_like(norms), where=norms > 0)) @ mat
    return sparse.csr_matrix(mat, dtype=np.float32)


def test_sparse_search_is_exact_at_every_size():
    """TF-IDF lists: the exact top-K among rows sharing a word (similarity > 0), padding
    after them; `approx` searches exactly too and says so."""
    mat = word_rows(2500, 800, seed=2)
    idx, sim, rec = ann.search_topk(SparseSpace(mat), K, "approx")
    scores = (mat @ mat.T).toarray()
    check_lists(idx, sim, scores)
    positive = scores > 0
    np.fill_diagonal(positive, False)
    full = np.flatnonzero(positive.sum(axis=1) >= K - 1)
    assert recall(idx, sim, scores, K, full) == 1.0
    listed = (idx[:, 1:] >= 0).sum(axis=1)
    assert np.array_equal(listed, np.minimum(positive.sum(axis=1), K - 1))
    assert np.all(sim[:, 1:][idx[:, 1:] >= 0] > 0)
    assert rec == {"method": "exact", "note": ann.SPARSE_NOTE, "seconds": rec["seconds"]}
    want_idx, want_sim = SparseSpace(mat).topk(K)
    assert np.array_equal(idx, want_idx) and np.array_equal(sim, want_sim)


def test_binary_ivf_recall_and_absent_hashes():
    rng = np.random.default_rng(4)
    n = 3000
    base = rng.integers(0, 256, (n // 3, 8), dtype=np.uint8)
    flips = np.packbits(rng.random((n, 64)) < 0.06, axis=1)
    bits = base[rng.integers(0, len(base), n)] ^ flips
    present = rng.random(n) > 0.05
    idx, sim, rec = ann.search_topk(BitSpace(bits, present=present), K, "approx")
    unpacked = np.unpackbits(bits, axis=1).astype(np.int32)
    ham = (unpacked[:, None, :] != unpacked[None, :, :]).sum(axis=2)
    scores = (1 - ham / 64).astype(np.float32)
    check_tuned_search(idx, sim, rec, scores, present, "binary-ivf")


def test_tiny_data_falls_back_to_exact_with_a_note():
    x = clustered(300, 16)
    space = DenseSpace(x)
    idx, sim, rec = ann.search_topk(space, K, "approx")
    want_idx, want_sim = space.topk(K)
    assert rec["method"] == "exact" and "300 rows" in rec["note"]
    assert np.array_equal(idx, want_idx) and np.array_equal(sim, want_sim)
    assert "note" not in ann.search_topk(space, K, "exact")[2]


def test_auto_is_exact_below_the_threshold():
    assert ann.resolve("auto", ann.AUTO_MIN_ROWS - 1) == ("exact", "")
    assert ann.resolve("auto", ann.AUTO_MIN_ROWS)[0] == "approx"
    assert ann.resolve("approx", ann.MIN_ROWS)[0] == "approx"
    with pytest.raises(ValueError, match="--search 'fast'"):
        ann.resolve("fast", 10)


@pytest.fixture(scope="module")
def approx_bundle(tmp_path_factory):
    from precompute.build import BuildOptions, build

    root = tmp_path_factory.mktemp("ann")
    csv = root / "train.csv"
    synthetic_table(n_groups=400, seed=5).to_csv(csv, index=False)  # ~1,270 rows
    return build(BuildOptions(csv=csv, out=root / "a.bundle", k=K, progress=False,
                              search="approx"))


def test_build_records_each_search_and_the_bundle_opens(approx_bundle):
    b = Bundle.open(approx_bundle)  # the loader's checks of every list pass
    for m in b.manifest.modalities:
        search = m.params["search"]
        assert set(search) == set(b.manifest.scopes)
        if m.name == "tfidf":
            assert search["all"] == {"method": "exact", "note": ann.SPARSE_NOTE,
                                     "seconds": search["all"]["seconds"]}
        else:
            assert search["all"]["method"] == "binary-ivf"
            assert 0.9 <= search["all"]["recall"] <= 1
        for fold in ("fold0", "fold1"):  # about 250 rows: too few for an index
            assert search[fold]["method"] == "exact" and "searched exactly" in search[fold][
                "note"]


@pytest.mark.parametrize("bad, field", [
    ({"method": 3}, "params.search.all.method"),
    ({"method": "ivf", "recall": 1.5}, "params.search.all.recall"),
    ({"method": "ivf", "recall": "high"}, "params.search.all.recall"),
    ({"method": "ivf", "recall_queries": 2.5}, "params.search.all.recall_queries"),
    ([], "params.search.all"),
])
def test_a_bad_search_record_is_refused_in_one_line(approx_bundle, tmp_path, bad, field):
    import shutil

    copy = tmp_path / "b.bundle"
    shutil.copytree(approx_bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["modalities"][0]["params"]["search"]["all"] = bad
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError) as info:
        Bundle.open(copy)
    assert f"modalities[0].{field}" in str(info.value) and "\n" not in str(info.value)
