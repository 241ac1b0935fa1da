"""Confused groups: the pairs of label groups the predictions join.

One false-positive pair is a model error; many between the same two groups are a pattern
worth one look: either a hard case (the same picture in two pack sizes, which the unit
filter exists for) or two label groups that are one product (a labelling error; the
Shopee labels have such). This lists, per unordered pair of label groups, how completely
the predictions join them, so the analyst judges the pattern once instead of pair by pair.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from explorer.core.engine import Engine, Evaluation
from explorer.core.highlight import describe_conflicts
from explorer.core.titles import decoded_titles, raw_titles

__all__ = ["confused_groups"]


def confused_groups(engine: Engine, ev: Evaluation, n: int | None = 100) -> pd.DataFrame:
    """Up to `n` (None: all) pairs of label groups joined by false positives, the most
    completely joined first. Columns: row and neighbour (scope rows of the pair's strongest
    false positive, for jumping to it), label_group, neighbour_label_group, group_size,
    neighbour_group_size, fp_pairs (predicted (query, posting) pairs across the two groups,
    both directions), coverage (fp_pairs / (2 x size x size): 1.0 when every posting of
    each group predicts every posting of the other), mean_score, score (the strongest),
    posting_id, title, neighbour_id, neighbour_title of that strongest pair (titles
    decoded: explorer.core.titles), amounts (the quantities its titles disagree on, ""
    when none: then a labelling error is the likelier story), and title_raw and
    neighbour_title_raw (the titles as stored)."""
    columns = ["row", "neighbour", "label_group", "neighbour_label_group", "group_size",
               "neighbour_group_size", "fp_pairs", "coverage", "mean_score", "score",
               "posting_id", "title", "neighbour_id", "neighbour_title", "amounts",
               "title_raw", "neighbour_title_raw"]
    if not ev.has_labels:
        return pd.DataFrame(columns=columns)
    st = ev.stage
    q, c = np.nonzero(ev.pred & ~st.true)
    if not len(q):
        return pd.DataFrame(columns=columns)
    nb = st.cand[q, c]
    score = st.score[q, c].astype(np.float64)
    labels = engine.labels
    lo, hi = np.minimum(labels[q], labels[nb]), np.maximum(labels[q], labels[nb])
    key = lo * (np.int64(labels.max()) + 1) + hi
    order = np.argsort(key, kind="stable")  # by group pair, file order within
    key, q, nb, score = key[order], q[order], nb[order], score[order]
    first = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    counts = np.diff(np.r_[first, len(key)])
    mean = np.add.reduceat(score, first) / counts
    # each group pair's strongest false positive: the first pair reaching its maximum
    segment = np.repeat(np.arange(len(first)), counts)
    hit = np.flatnonzero(score == np.maximum.reduceat(score, first)[segment])
    strongest = hit[np.r_[True, segment[hit][1:] != segment[hit][:-1]]]
    size_q, size_nb = engine.group_size[q[strongest]], engine.group_size[nb[strongest]]
    coverage = counts / (2.0 * size_q * size_nb)
    top = np.lexsort((-counts, -coverage))[:n]  # most complete, then most pairs
    qs, ns = q[strongest][top], nb[strongest][top]
    items = engine.bundle.items
    ga, gb = engine.rows[qs], engine.rows[ns]
    a, b = items.iloc[ga], items.iloc[gb]
    shown, raw = decoded_titles(engine.bundle), raw_titles(engine.bundle)
    titles_a, titles_b = shown[ga], shown[gb]
    return pd.DataFrame({
        "row": qs, "neighbour": ns,
        "label_group": a["label_group"].to_numpy(),
        "neighbour_label_group": b["label_group"].to_numpy(),
        "group_size": size_q[top], "neighbour_group_size": size_nb[top],
        "fp_pairs": counts[top], "coverage": coverage[top], "mean_score": mean[top],
        "score": score[strongest][top],
        "posting_id": a["posting_id"].to_numpy(), "title": titles_a,
        "neighbour_id": b["posting_id"].to_numpy(), "neighbour_title": titles_b,
        "amounts": ["; ".join(describe_conflicts(str(x), str(y)))
                    for x, y in zip(titles_a, titles_b, strict=True)],
        "title_raw": raw[ga], "neighbour_title_raw": raw[gb],
    }, columns=columns)
