"""What an engine computes on (`ScopeData`), and how a bundle's scope provides it: the
candidate graph, the label codes, the unit filter over the titles as shown, the embedding
spaces for INB, the titles, and the scores of derived modalities (the bundle's learned
classifiers). Kept apart from the engine, so that a training step can build an engine
over a selection of its own (`Engine.from_data`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from explorer.core.bundle import Bundle
from explorer.core.graph import ScopeGraph, load_graph
from explorer.core.spaces import BitSpace, DenseSpace, Space, SparseSpace, cross_space
from explorer.core.titles import decoded_titles

__all__ = ["ScopeData", "label_codes", "quantity_table", "scope_data"]


def label_codes(bundle: Bundle) -> np.ndarray | None:
    if "label_codes" not in bundle.derived:
        labels = bundle.items["label_group"]
        has = bundle.manifest.has_labels and labels.notna().all()
        codes = np.asarray(labels.factorize()[0], np.int64) if has else None
        bundle.derived["label_codes"] = codes
    return bundle.derived["label_codes"]


def quantity_table(bundle: Bundle):
    if "quantities" not in bundle.derived:
        from explorer.core.units import QuantityTable

        # the titles as shown (escapes and entities decoded), so the filter and the pair
        # view's "different amounts" read the same amounts
        titles = decoded_titles(bundle).tolist()
        bundle.derived["quantities"] = QuantityTable.from_titles(titles)
    return bundle.derived["quantities"]



@dataclass
class ScopeData:
    """What an engine computes on, bundle or not: a scope's candidate graph, each of its
    postings' label code (None: no labels), the unit conflicts of (query, candidate) pairs
    of global rows (None: no unit filter), each modality's embedding space (None: no INB),
    K, the width of an exact INB re-search, and the titles. `scope_data` reads them from a
    bundle; a training step can build them for a selection of its own."""

    graph: ScopeGraph
    labels: np.ndarray | None
    conflicts: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    spaces: Callable[[str], Space] | None = None
    k: int = 50
    # the titles as shown, indexed by global row (a TextColumn), made on first use
    titles: Callable[[], Any] | None = None
    # (engine, "learned:NAME") -> the (n, C) scores of a derived modality (a model's)
    derive: Callable[[Any, str], np.ndarray] | None = None


def scope_data(bundle: Bundle, scope: str) -> ScopeData:
    """A bundle scope's ScopeData: its graph (checked, memory-mapped), labels, the unit
    filter over its titles as shown, and its modalities' embeddings."""
    graph = load_graph(bundle, scope)
    codes = label_codes(bundle)
    return ScopeData(graph, None if codes is None else codes[graph.rows],
                     lambda rows, cols: quantity_table(bundle).conflicts(rows, cols),
                     lambda name: _bundle_space(bundle, scope, graph.rows, name),
                     bundle.manifest.k, lambda: decoded_titles(bundle),
                     lambda engine, name: _derived_scores(bundle, engine, name))


def _derived_scores(bundle: Bundle, engine: Any, name: str) -> np.ndarray:
    from explorer.core.pair_model import learned_scores  # LightGBM only when asked for

    return learned_scores(bundle, engine, name)


def _bundle_space(bundle: Bundle, scope: str, rows: np.ndarray, name: str) -> Space:
    mod = bundle.manifest.modality(name)
    # rows without an embedding (an image that could not be read) must stay nobody's
    # neighbour through INB and exact re-search too
    present = bundle.present(name)
    present = None if present is None else np.asarray(present)[rows]
    if mod.storage == "sparse":
        return SparseSpace(bundle.sparse(name, scope))
    if mod.storage == "bits":
        return BitSpace(np.asarray(bundle.embeddings(name))[rows], present=present)
    if mod.storage == "cross":
        return cross_space(np.asarray(bundle.text_embeddings(name))[rows],
                           np.asarray(bundle.embeddings(name))[rows], present)
    return DenseSpace(np.asarray(bundle.embeddings(name))[rows], present=present)
