"""Exact inner-product search with faiss: on every GPU faiss sees when asked and
available (the faiss-gpu extra), else on the CPU. Both are exact (flat index)."""

from __future__ import annotations

import numpy as np

QUERY_BATCH = 16384


def gpu_count() -> int:
    import faiss

    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


def search_ip(queries: np.ndarray, base: np.ndarray, k: int, *,
              use_gpu: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, indices), each (len(queries), k), best first."""
    import faiss

    base = np.ascontiguousarray(base, dtype=np.float32)
    index = faiss.IndexFlatIP(base.shape[1])
    if use_gpu and gpu_count() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    index.add(base)
    sims = np.empty((len(queries), k), np.float32)
    idx = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), QUERY_BATCH):
        q = np.ascontiguousarray(queries[s:s + QUERY_BATCH], dtype=np.float32)
        sims[s:s + len(q)], idx[s:s + len(q)] = index.search(q, k)
    return sims, idx
