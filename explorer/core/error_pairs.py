"""Every error behind the mean F1, one row per (query, other posting), for review outside
the app (label noise hunting, hand-labelled audits).

The metric is row-wise, so the errors are directed: query q's false positives are the
postings it predicts from other label groups, its misses the postings of its own group it
does not predict. Per query, the false positives number n_pred - tp and the misses
group_size - tp, so the table reconciles exactly with the per-query metrics. A miss says
why: removed by the unit filter, below the threshold (with the gap) or outside the top-K
candidates (no score: the pair was never searched).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from explorer.core.engine import Engine, Evaluation
from explorer.core.explain import OUTSIDE, miss_reasons
from explorer.core.titles import decoded_titles, raw_titles

__all__ = ["error_pairs"]

FP, MISSED = "false positive", "missed"


def _outside_candidates(engine: Engine, ev: Evaluation) -> tuple[np.ndarray, np.ndarray]:
    """(query, other) scope rows of true pairs that are not among the query's candidates."""
    labels = engine.labels
    order = np.argsort(labels, kind="stable")
    starts = np.flatnonzero(np.r_[True, labels[order][1:] != labels[order][:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    q_parts, r_parts = [], []
    for size in np.unique(sizes[sizes > 1]):  # one vectorised block per group size
        members = order[starts[sizes == size][:, None] + np.arange(size)]  # (groups, size)
        q_parts.append(np.repeat(members, size, axis=1).ravel())
        r_parts.append(np.tile(members, (1, size)).ravel())
    if not q_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    q, r = np.concatenate(q_parts), np.concatenate(r_parts)
    q, r = q[q != r], r[q != r]
    n = np.int64(engine.n)
    kq, kc = np.nonzero(ev.stage.true & (ev.stage.cand >= 0))  # true pairs searched
    known = kq.astype(np.int64) * n + ev.stage.cand[kq, kc]
    outside = ~np.isin(q.astype(np.int64) * n + r, known)
    return q[outside], r[outside]


def error_pairs(engine: Engine, ev: Evaluation) -> pd.DataFrame:
    """Columns: kind (false positive / missed), posting_id, neighbour_id, label_group,
    neighbour_label_group, score (NaN outside the candidates), reason and gap (misses),
    sim_<modality> for each modality of the graph (NaN outside the candidates), title and
    neighbour_title (decoded: explorer.core.titles), query_f1, title_raw and
    neighbour_title_raw (as stored). False positives first, strongest first; then misses,
    closest first. Raises ValueError for a bundle without labels (no errors to list)."""
    if not ev.has_labels:
        raise ValueError("error pairs need labels, and this bundle has no label_group")
    st = ev.stage
    fq, fc = np.nonzero(ev.pred & ~st.true)
    mq, mc = np.nonzero(~ev.pred & st.true & (st.cand >= 0))
    oq, orow = _outside_candidates(engine, ev)
    reason, gap = miss_reasons(ev, mq, mc)
    q = np.concatenate([fq, mq, oq])
    other = np.concatenate([st.cand[fq, fc], st.cand[mq, mc], orow])
    inside = np.r_[np.ones(len(fq) + len(mq), bool), np.zeros(len(oq), bool)]
    cq, cc = np.r_[fq, mq], np.r_[fc, mc]

    def in_candidates(values: np.ndarray) -> np.ndarray:
        out = np.full(len(q), np.nan, np.float64)
        out[inside] = values[cq, cc]
        return np.where(np.isfinite(out), out, np.nan)  # -inf (filtered, unsearched): none

    items = engine.bundle.items
    ga, gb = engine.rows[q], engine.rows[other]
    a, b = items.iloc[ga], items.iloc[gb]
    out = pd.DataFrame({
        "kind": np.r_[np.full(len(fq), FP, object), np.full(len(mq) + len(oq), MISSED,
                                                             object)],
        "posting_id": a["posting_id"].to_numpy(), "neighbour_id": b["posting_id"].to_numpy(),
        "label_group": a["label_group"].to_numpy(),
        "neighbour_label_group": b["label_group"].to_numpy(),
        "score": in_candidates(st.score),
        "reason": np.r_[np.full(len(fq), "", object), reason,
                        np.full(len(oq), OUTSIDE, object)],
        "gap": np.r_[np.full(len(fq), np.nan), gap, np.full(len(oq), np.nan)],
    })
    for m, sims in st.sims.items():
        out[f"sim_{m}"] = in_candidates(sims)
    shown, raw = decoded_titles(engine.bundle), raw_titles(engine.bundle)
    out["title"], out["neighbour_title"] = shown[ga], shown[gb]
    out["query_f1"] = ev.f1[q]
    out["title_raw"], out["neighbour_title_raw"] = raw[ga], raw[gb]
    fp = out["kind"] == FP
    key = np.where(fp, -out["score"].fillna(-np.inf), out["gap"].fillna(np.inf))
    order = np.lexsort((key, ~fp.to_numpy()))
    return out.iloc[order].reset_index(drop=True)
