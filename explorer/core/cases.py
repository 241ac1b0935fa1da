"""Error cases behind the mean metrics: the worst queries, the strongest false-positive
pairs and the closest missed true pairs. Vectorised over the whole scope. Titles are
decoded for reading (explorer.core.titles), the stored ones in title_raw columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from explorer.core.engine import Engine, Evaluation
from explorer.core.titles import decoded_titles, raw_titles


def _top(score: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n largest values, largest first, ties in index order."""
    n = min(n, len(score))
    if n == 0:
        return np.zeros(0, np.int64)
    # ties keep their order (by query, then candidate): the same list every time
    return np.argsort(-score, kind="stable")[:n]


def worst_queries(engine: Engine, ev: Evaluation, n: int = 100) -> pd.DataFrame:
    """Lowest-F1 queries; among equal F1 the larger true groups first."""
    order = np.lexsort((-ev.group_size, ev.f1))[:n]
    at = engine.rows[order]
    items = engine.bundle.items.iloc[at]
    return pd.DataFrame({
        "row": order, "posting_id": items["posting_id"].to_numpy(),
        "title": decoded_titles(engine.bundle)[at], "group_size": ev.group_size[order],
        "n_pred": ev.n_pred[order], "f1": ev.f1[order], "precision": ev.precision[order],
        "recall": ev.recall[order], "title_raw": raw_titles(engine.bundle)[at],
    })


def _pairs(engine: Engine, ev: Evaluation, mask: np.ndarray, n: int,
           kind: str) -> pd.DataFrame:
    st = ev.stage
    q, c = np.nonzero(mask)
    score = st.score[q, c]
    # only the strongest pairs can be listed: keep the directed pairs scoring at least the
    # 2n-th best (each unordered pair has at most two directions), doubling the cut until
    # n distinct pairs are in; sorting all of them took 0.4 s at 100,000 postings
    m = 2 * n
    while m < len(score):
        cut = np.partition(score, len(score) - m)[len(score) - m]
        sub = np.flatnonzero(score >= cut)
        lo = np.minimum(q[sub], st.cand[q[sub], c[sub]]).astype(np.int64)
        hi = np.maximum(q[sub], st.cand[q[sub], c[sub]])
        if len(np.unique(lo * len(ev.f1) + hi)) >= n:
            q, c, score = q[sub], c[sub], score[sub]
            break
        m *= 2
    nb = st.cand[q, c]
    # each unordered pair once, from the side that scores it higher: candidate lists are
    # directed (b in a's top-K, not always a in b's) and Min2 / INB act per query, so a
    # pair may be an error from one side only
    order = np.argsort(-score, kind="stable")
    key = np.minimum(q, nb)[order].astype(np.int64) * len(ev.f1) + np.maximum(q, nb)[order]
    keep = order[np.sort(np.unique(key, return_index=True)[1])]
    q, c, nb, score = q[keep], c[keep], nb[keep], score[keep]
    pick = _top(score, n)
    q, c, nb, score = q[pick], c[pick], nb[pick], score[pick]
    ids = engine.bundle.items["posting_id"]
    ga, gb = engine.rows[q], engine.rows[nb]
    shown, raw = decoded_titles(engine.bundle), raw_titles(engine.bundle)
    out = pd.DataFrame({
        "row": q, "neighbour": nb, "posting_id": ids.iloc[ga].to_numpy(),
        "neighbour_id": ids.iloc[gb].to_numpy(),
        "score": score, "title": shown[ga], "neighbour_title": shown[gb],
    })
    for m, sims in st.sims.items():
        out[f"sim_{m}"] = sims[q, c]
    out["title_raw"], out["neighbour_title_raw"] = raw[ga], raw[gb]
    out.insert(0, "kind", kind)
    return out


def false_positives(engine: Engine, ev: Evaluation, n: int = 100) -> pd.DataFrame:
    """Predicted pairs of different products, highest score first."""
    return _pairs(engine, ev, ev.pred & ~ev.stage.true, n, "false positive")


def missed_pairs(engine: Engine, ev: Evaluation, n: int = 100) -> pd.DataFrame:
    """True pairs among the candidates that were not predicted, closest (highest score)
    first; pairs removed by the unit filter have score -inf and come last."""
    return _pairs(engine, ev, ~ev.pred & ev.stage.true & (ev.stage.cand >= 0), n, "missed")
