"""Embedding spaces of one scope: exact pair similarities, exact top-K and INB blending.

Rows are local to the scope (0..n-1). Every space answers the same three questions, so the
graph builder, INB and the exact re-search treat dense vectors, TF-IDF and hashes alike:

- `sims(queries, cols)`: similarity of query b to each cols[b, :] (-1 = padding -> -inf);
- `topk(k)`: each row's k most similar rows, the row itself first;
- `blend(weights)`: the INB step, new_i = sum_j w_ij e_j re-normalised, as a new space.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import numpy as np
from scipy import sparse

PAIR_CHUNK = 1 << 16  # pairs per block for the sparse and hash gathers (one thread each)
# scores per (queries x n) block of the brute-force searches: 16 MB of float32, so a block
# and select_topk's copies stay well inside each worker's cache of freed heap memory
BLOCK_SCORES = 1 << 22
MAX_THREADS = 8


class Space(Protocol):
    n: int

    def sims(self, queries: np.ndarray, cols: np.ndarray) -> np.ndarray: ...
    def topk(self, k: int) -> tuple[np.ndarray, np.ndarray]: ...
    def blend(self, weights: sparse.csr_matrix) -> Space: ...


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _pairwise(queries: np.ndarray, cols: np.ndarray, fn) -> np.ndarray:
    """Apply fn(r, c) -> float32 to the valid (query, col) pairs in flat chunks, so
    temporaries stay bounded, on `search_threads()` threads (scipy's sparse kernels and
    numpy's ufuncs release the GIL); padding (-1) gets -inf."""
    cols = np.asarray(cols)
    rows = np.broadcast_to(np.asarray(queries)[:, None], cols.shape)
    valid = cols >= 0
    r, c = rows[valid], cols[valid]
    vals = np.empty(r.shape, np.float32)

    def run(s: int) -> None:
        vals[s:s + PAIR_CHUNK] = fn(r[s:s + PAIR_CHUNK], c[s:s + PAIR_CHUNK])

    in_threads(run, range(0, len(r), PAIR_CHUNK))
    out = np.full(cols.shape, -np.inf, np.float32)
    out[valid] = vals
    return out


def select_topk(scores: np.ndarray, queries: np.ndarray, k: int, self_sims: np.ndarray,
                *, overwrite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns of a (b, n) score block, query first, ties broken by lower index.

    `queries` are the local rows the block belongs to; their own column is forced to the
    front with `self_sims` (1: a posting is always its own first, perfect match, even when
    exact duplicates tie with it or its title is empty). With `overwrite` a float32 block
    is used as the work array (no copy of a block nobody reads again)."""
    b, n = scores.shape
    k = min(k, n)
    if overwrite and scores.dtype == np.float32:
        work = scores
    else:
        work = scores.astype(np.float32, copy=True)
    work[np.arange(b), queries] = np.inf
    np.negative(work, out=work)  # the k largest are the k smallest of the negation
    if k < n:
        part = np.argpartition(work, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), (b, n)).copy()
    vals = -np.take_along_axis(work, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    sim = np.take_along_axis(vals, order, axis=1)
    sim[:, 0] = self_sims
    return idx.astype(np.int64), sim.astype(np.float32)


def search_threads() -> int:
    """Workers of the brute-force searches: the CPUs this process may use (at most 8), or
    $EXPLORER_THREADS."""
    env = os.environ.get("EXPLORER_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_THREADS, cpus or 1))


_POOL: dict[str, ThreadPoolExecutor | int] = {}
_POOL_LOCK = threading.Lock()
_in_pool = threading.local()


def _pool(workers: int) -> ThreadPoolExecutor:
    """One pool for the process, made again when the thread count changes: starting
    threads for every call cost 1.3 s of a 13 s INB iteration (245 re-scoring blocks)."""
    with _POOL_LOCK:
        if _POOL.get("workers") != workers:
            old = _POOL.get("pool")
            _POOL["pool"] = ThreadPoolExecutor(workers, thread_name_prefix="explorer-core",
                                               initializer=_mark_pool_thread)
            _POOL["workers"] = workers
            if isinstance(old, ThreadPoolExecutor):
                old.shutdown(wait=False)
        return _POOL["pool"]  # type: ignore[return-value]


def _mark_pool_thread() -> None:
    _in_pool.active = True


def in_threads(run: Callable[[int], None], starts: range) -> None:
    """run(start) for every start, on up to `search_threads()` threads of a shared pool
    (in this thread when one suffices, or when called from a pool thread: a nested wait
    on the pool could deadlock it); a worker's exception is raised here."""
    workers = min(search_threads(), len(starts))
    if workers > 1 and not getattr(_in_pool, "active", False):
        # list(): waits for every start and re-raises a worker's exception here
        list(_pool(search_threads()).map(run, starts))
    else:
        for start in starts:
            run(start)


def blocked_topk(n: int, k: int, scores: Callable[[np.ndarray], np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of every row by brute force: `scores(queries)` gives the (b, n) block of
    the query rows `queries`; blocks are searched in parallel threads (numpy and scipy
    release the GIL in the heavy loops). Rows are independent, so the result does not
    depend on the block size or the number of threads."""
    k = min(k, n)
    idx = np.empty((n, k), np.int64)
    sim = np.empty((n, k), np.float32)
    rows = max(16, BLOCK_SCORES // max(n, 1))
    starts = range(0, n, rows)

    def run(start: int) -> None:
        q = np.arange(start, min(start + rows, n))
        idx[q], sim[q] = select_topk(scores(q), q, k, np.ones(len(q), np.float32),
                                     overwrite=True)

    in_threads(run, starts)
    return idx, sim


SPARSE_BLOCK_ROWS = 1 << 15  # query rows per sparse top-n product


def sparse_topk(mat: sparse.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k lists of a CSR matrix's rows against each other by dot product, in
    `select_topk`'s format, from sparse_dot_topn's C++ product that keeps only each row's
    best values (no dense (b, n) block: the work is the product's own, sum over terms of
    their document frequency squared, and memory is O(n k)). Only positive dots are
    neighbours; the query comes first with similarity 1; a tie at the k-th value keeps an
    arbitrary one of the tied rows, as `select_topk`'s partition does."""
    from sparse_dot_topn import sp_matmul_topn

    n = mat.shape[0]
    k = min(k, n)
    idx = np.full((n, k), -1, np.int64)
    sim = np.full((n, k), -np.inf, np.float32)
    idx[:, 0], sim[:, 0] = np.arange(n), 1.0
    if k < 2:
        return idx, sim
    t = mat.T.tocsr()
    threads = search_threads()
    for lo in range(0, n, SPARSE_BLOCK_ROWS):
        hi = min(lo + SPARSE_BLOCK_ROWS, n)
        # k best others, plus the row itself when it is among them
        got = sp_matmul_topn(mat[lo:hi], t, top_n=k, threshold=0.0,
                             n_threads=threads if threads > 1 else None)
        got.sum_duplicates()
        counts = np.diff(got.indptr)
        rows = np.repeat(np.arange(lo, hi), counts)
        cols = got.indices.astype(np.int64)
        vals = got.data.astype(np.float32)
        other = cols != rows
        rows, cols, vals = rows[other], cols[other], vals[other]
        order = np.lexsort((cols, -vals, rows))  # per row: decreasing value, lower index
        rows, cols, vals = rows[order], cols[order], vals[order]
        start = np.searchsorted(rows, np.arange(lo, hi))
        pos = np.arange(len(rows)) - start[rows - lo] + 1
        keep = pos < k
        idx[rows[keep], pos[keep]] = cols[keep]
        sim[rows[keep], pos[keep]] = vals[keep]
    return idx, sim


def _force_self_first(idx: np.ndarray, sim: np.ndarray, queries: np.ndarray,
                      self_sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Make each row start with its query, for search results that may have tied it away."""
    is_self = idx == queries[:, None]
    pos = np.argsort(~is_self, axis=1, kind="stable")
    idx, sim = np.take_along_axis(idx, pos, 1), np.take_along_axis(sim, pos, 1)
    lost = ~is_self.any(axis=1)
    idx[lost, 1:], sim[lost, 1:] = idx[lost, :-1], sim[lost, :-1]
    idx[:, 0], sim[:, 0] = queries, self_sims
    return idx, sim


class DenseSpace:
    """L2-normalised float rows; similarity = dot, or (1 + dot) / 2 when `affine` (the
    +-1/8 expansion of a 64-bit hash, whose dot is 1 - 2 h / 64).

    `query` (optional, the shape of `emb`) makes the space asymmetric: query row i is
    scored against the others' `emb` rows, sim(i, j) = query_i . emb_j (a cross-modal
    space, `cross_space`); without it both sides are `emb`.

    `present` marks rows that have an embedding (an image that could not be decoded has
    none): the others are zero rows, are never anyone's neighbour, and have similarity
    -inf to everything but themselves."""

    def __init__(self, emb: np.ndarray, *, affine: bool = False, use_gpu: bool = False,
                 present: np.ndarray | None = None, query: np.ndarray | None = None) -> None:
        self.emb = np.ascontiguousarray(emb, dtype=np.float32)
        self.query = self.emb if query is None else np.ascontiguousarray(query, np.float32)
        if self.query.shape != self.emb.shape:
            raise ValueError(f"query rows {self.query.shape} and rows {self.emb.shape} differ")
        self.n = len(self.emb)
        self.affine = affine
        self.use_gpu = use_gpu
        self.present = None if present is None or np.all(present) else np.asarray(present,
                                                                                   bool)

    def _map(self, dots: np.ndarray) -> np.ndarray:
        return (1.0 + dots) * 0.5 if self.affine else dots

    def sims(self, queries: np.ndarray, cols: np.ndarray) -> np.ndarray:
        import faiss  # faiss computes the gathered dots in C++ with no (b, C, d) temporary

        queries = np.asarray(queries)
        whole = len(queries) == self.n and np.array_equal(queries, np.arange(self.n))
        q = self.query if whole else np.ascontiguousarray(self.query[queries])
        ids = np.ascontiguousarray(cols, dtype=np.int64)
        out = np.empty(ids.shape, np.float32)
        if out.size:
            faiss.fvec_inner_products_by_idx(
                faiss.swig_ptr(out), faiss.swig_ptr(q), faiss.swig_ptr(self.emb),
                faiss.swig_ptr(ids), self.emb.shape[1], ids.shape[0], ids.shape[1])
        out[ids < 0] = -np.inf
        out = np.where(ids >= 0, self._map(out), out).astype(np.float32, copy=False)
        if self.present is not None:
            absent = ~self.present[np.maximum(ids, 0)] | ~self.present[queries][:, None]
            out[absent & (ids >= 0) & (ids != queries[:, None])] = -np.inf
        return out

    def topk(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        from explorer.core.faiss_search import search_ip

        k = min(k, self.n)
        rows = np.arange(self.n) if self.present is None else np.flatnonzero(self.present)
        idx = np.full((self.n, k), -1, np.int64)
        sim = np.full((self.n, k), -np.inf, np.float32)
        kk = min(k, len(rows))
        if kk:
            s, i = search_ip(self.query[rows], self.emb[rows], kk, use_gpu=self.use_gpu)
            i, s = _force_self_first(i.astype(np.int64), self._map(s), np.arange(len(rows)),
                                     np.ones(len(rows)))
            idx[rows, :kk] = np.where(i >= 0, rows[np.maximum(i, 0)], -1)
            sim[rows, :kk] = np.where(i >= 0, s, -np.inf)
        idx[:, 0], sim[:, 0] = np.arange(self.n), 1.0  # absent rows: only themselves
        return idx, sim

    def blend(self, weights: sparse.csr_matrix) -> DenseSpace:
        emb = _normalise_rows(np.asarray(weights @ self.emb, dtype=np.float32))
        query = None if self.query is self.emb else \
            _normalise_rows(np.asarray(weights @ self.query, dtype=np.float32))
        return DenseSpace(emb, affine=self.affine, use_gpu=self.use_gpu,
                          present=np.linalg.norm(emb, axis=1) > 0, query=query)


def cross_space(text: np.ndarray, image: np.ndarray, present: np.ndarray | None = None,
                *, use_gpu: bool = False) -> DenseSpace:
    """The cross-modal space of unit title rows `text` and picture rows `image` (one
    learned space): sim(i, j) = (t_i . v_j + v_i . t_j) / 2, the title of each posting
    against the picture of the other, both ways, so the score is symmetric and in [-1, 1].
    It is the dot of query [t, v] / sqrt 2 with [v, t] / sqrt 2, so faiss searches it
    and an INB step blends both sides with the same weights (their norms are equal: the
    two halves are swapped), which keeps it symmetric. `present`: rows with a picture;
    the others are nobody's neighbour, as in any dense space."""
    t = np.asarray(text, np.float32)
    v = np.asarray(image, np.float32)
    if t.shape != v.shape:
        raise ValueError(f"text rows {t.shape} and picture rows {v.shape} differ")
    half = np.float32(np.sqrt(0.5))
    query = np.concatenate([t, v], axis=1) * half
    base = np.concatenate([v, t], axis=1) * half
    if present is not None:  # no picture: no cross-modal embedding at all
        query[~present] = 0
        base[~present] = 0
    return DenseSpace(base, use_gpu=use_gpu, present=present, query=query)


class SparseSpace:
    """CSR rows (TF-IDF, L2-normalised or empty); similarity = dot."""

    def __init__(self, mat: sparse.csr_matrix) -> None:
        self.mat = sparse.csr_matrix(mat, dtype=np.float32)
        self.n = self.mat.shape[0]

    def sims(self, queries: np.ndarray, cols: np.ndarray) -> np.ndarray:
        m = self.mat
        return _pairwise(queries, cols,
                         lambda r, c: np.asarray(m[r].multiply(m[c]).sum(axis=1)).ravel())

    def topk(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k of every row among the rows sharing a term with it (similarity > 0;
        a row that shares no term is no neighbour: -1 padding, not a tie at 0)."""
        return sparse_topk(self.mat, k)

    def blend(self, weights: sparse.csr_matrix) -> SparseSpace:
        out = sparse.csr_matrix(weights @ self.mat, dtype=np.float32)
        per_row = np.diff(out.indptr)
        row = np.repeat(np.arange(out.shape[0]), per_row)
        norms = np.sqrt(np.bincount(row, weights=np.square(out.data, dtype=np.float64),
                                    minlength=out.shape[0]))
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        out.data *= np.repeat(inv.astype(np.float32), per_row)  # rows scaled in place
        out.eliminate_zeros()  # rows of norm 0 (empty titles) stay empty
        return SparseSpace(out)


class BitSpace:
    """64-bit perceptual hashes; similarity = 1 - hamming / 64.

    `present` marks rows that have a hash (an image that could not be hashed has none):
    as in DenseSpace, the others are never anyone's neighbour and have similarity -inf to
    everything but themselves."""

    def __init__(self, bits: np.ndarray, *, present: np.ndarray | None = None) -> None:
        packed = np.ascontiguousarray(bits, dtype=np.uint8).reshape(-1, 8)
        self.words = packed.view(">u8").ravel().astype(np.uint64)
        self.n = len(self.words)
        self.present = None if present is None or np.all(present) else np.asarray(present,
                                                                                   bool)

    def sims(self, queries: np.ndarray, cols: np.ndarray) -> np.ndarray:
        w = self.words
        out = _pairwise(queries, cols,
                        lambda r, c: 1.0 - np.bitwise_count(w[r] ^ w[c]) / np.float32(64))
        if self.present is not None:
            queries, cols = np.asarray(queries), np.asarray(cols)
            absent = ~self.present[np.maximum(cols, 0)] | ~self.present[queries][:, None]
            out[absent & (cols >= 0) & (cols != queries[:, None])] = -np.inf
        return out

    def topk(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        w = self.words
        present = self.present

        def block(q: np.ndarray) -> np.ndarray:
            sim = np.bitwise_count(w[q, None] ^ w[None, :]).astype(np.float32)
            sim *= np.float32(-1 / 64)  # exact: 1 - h/64 for h = 0..64, in place
            sim += np.float32(1)
            if present is not None:
                sim[:, ~present] = -np.inf
                sim[~present[q]] = -np.inf  # select_topk still puts the query itself first
            return sim

        idx, sim = blocked_topk(self.n, k, block)
        if present is not None:  # no neighbour at all: padding, as DenseSpace pads
            none = np.isneginf(sim)
            idx[none] = -1
        return idx, sim

    def as_dense(self) -> DenseSpace:
        """+-1/8 vectors: unit length, and (1 + dot) / 2 reproduces 1 - hamming / 64;
        absent rows are zero rows."""
        unpacked = np.unpackbits(self.words.astype(">u8").view(np.uint8).reshape(-1, 8), axis=1)
        emb = (unpacked.astype(np.float32) * 2 - 1) / 8
        if self.present is not None:
            emb[~self.present] = 0
        return DenseSpace(emb, affine=True, present=self.present)

    def blend(self, weights: sparse.csr_matrix) -> DenseSpace:
        return self.as_dense().blend(weights)
