"""Provenance of one query's matches, for the neighbour grid and error analysis.

Every predicted neighbour says which modality or rule admitted it; every missed true
match says why it was missed: removed by the unit filter, below the threshold (and by how
much), or outside the top-K candidates (then its similarity is computed directly)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from explorer.core import post
from explorer.core.engine import Engine, Evaluation
from explorer.core.titles import decoded_titles, raw_titles
from explorer.core.wording import mode_words


def _admitted_by(ev: Evaluation, q: int, cols: np.ndarray) -> list[str]:
    cfg, st = ev.config, ev.stage
    stage = f"INB {len(cfg.inb)}" if cfg.inb else None
    out = []
    thresholds = cfg.inb[-1].threshold if cfg.inb else cfg.thresholds
    code = ev.post[q] if ev.post is not None else None
    for c in cols:
        if c == 0:
            out.append("query")
        elif code is not None and code[c] in post.ADDED:
            out.append(post.CODES[int(code[c])])
        elif c == ev.min2_col[q]:
            out.append("Min2" + (f" ({stage})" if stage else ""))
        elif stage:
            out.append(stage)
        elif cfg.spec.per_modality:
            sides = [m for m, s, t in zip(cfg.modalities, st.masked, thresholds, strict=True)
                     if s[q, c] >= np.float32(t)]
            out.append(f"{mode_words(cfg)}: " + "+".join(sides))
        else:  # its modality, or "sum fusion", not the settings' "sum:tfidf,phash:0.5,0.25"
            out.append(mode_words(cfg))
    return out


UNIT, BELOW, OUTSIDE = "removed by the unit filter", "below threshold", "outside top-K"


def miss_reasons(ev: Evaluation, q: np.ndarray, c: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Why the candidate pairs (query q, column c) are not predicted, and how far below
    the threshold they scored (NaN when not measurable): removed by the unit filter or by
    a post-processing stage (explorer.core.post), below threshold, or outside top-K (a
    single modality's pair found only by another one). A union reports the side that came
    closest among its own top-K."""
    cfg, st = ev.config, ev.stage
    if st.masked is not None:
        gap = np.stack([np.where(np.isfinite(s[q, c]), np.float32(t) - s[q, c], np.inf)
                        for s, t in zip(st.masked, cfg.thresholds, strict=True)]).min(axis=0)
    else:
        t = cfg.inb[-1].threshold if cfg.inb else cfg.thresholds[0]
        score = st.score[q, c]
        gap = np.where(np.isfinite(score), np.float32(t) - score, np.inf)
    reason = np.where(np.isfinite(gap), BELOW, OUTSIDE).astype(object)
    if st.conflict is not None:
        unit = st.conflict[q, c]
        reason[unit] = UNIT
        gap = np.where(unit, np.inf, gap)
    if ev.post is not None:  # above the threshold, then removed by a post-processing stage
        code = ev.post[q, c]
        for value in post.REMOVED:
            hit = code == value
            reason[hit] = post.CODES[value]
            gap = np.where(hit, np.inf, gap)
    return reason, np.where(np.isfinite(gap), gap, np.nan)


def explain_query(engine: Engine, ev: Evaluation, q: int, near_misses: int = 0
                  ) -> pd.DataFrame:
    """One row per predicted neighbour (score order), then per missed true match, then up
    to `near_misses` highest-scoring wrong candidates below the threshold. Columns: row
    (scope-local), posting_id, title (decoded: explorer.core.titles), title_raw (as
    stored), status (query / TP / FP / missed / near miss; a bundle without labels says
    "match" for every prediction and "near miss" below), score, sim_<modality> for each
    modality of the bundle, admitted_by, reason, gap (how far below the threshold)."""
    st = ev.stage
    cand = st.cand[q]
    valid = cand >= 0
    pred = ev.pred[q] & valid
    true = st.true[q] & valid
    order = np.argsort(-np.where(valid, st.score[q], -np.inf), kind="stable")
    pcols = [c for c in order if pred[c]]
    pcols = [0, *[c for c in pcols if c != 0]]
    mcols = [c for c in order if true[c] and not pred[c]]
    ncols = [c for c in order if valid[c] and not pred[c] and not true[c]][:near_misses]
    rows = [int(cand[c]) for c in pcols + mcols + ncols]
    # without labels a prediction is neither right nor wrong: "match"
    judged = engine.has_labels
    status = (["query"] + [("TP" if true[c] else "FP") if judged else "match"
                           for c in pcols[1:]]
              + ["missed"] * len(mcols) + ["near miss"] * len(ncols))
    admitted = _admitted_by(ev, q, np.array(pcols)) + [""] * (len(mcols) + len(ncols))
    unpicked = np.array(mcols + ncols, np.int64)
    why, gap = miss_reasons(ev, np.full(len(unpicked), q), unpicked)
    reasons = [""] * len(pcols) + why.tolist()
    gaps = [np.nan] * len(pcols) + gap.tolist()
    scores = [float(st.score[q, c]) for c in pcols + mcols + ncols]

    # true matches that never became candidates: outside every top-K list
    labels = engine.labels
    outside = np.setdiff1d(np.flatnonzero(labels == labels[q]), cand[valid])
    rows += outside.tolist()
    status += ["missed"] * len(outside)
    admitted += [""] * len(outside)
    reasons += [OUTSIDE] * len(outside)
    gaps += [np.nan] * len(outside)
    scores += [np.nan] * len(outside)

    glob = engine.rows[rows]
    items = engine.bundle.items.iloc[glob]
    out = pd.DataFrame({
        "row": rows, "posting_id": items["posting_id"].to_numpy(),
        "title": decoded_titles(engine.bundle)[glob],
        "title_raw": raw_titles(engine.bundle)[glob], "status": status, "score": scores,
        "admitted_by": admitted, "reason": reasons, "gap": gaps,
    })
    arr = np.array(rows, np.int64)
    for m in engine.modalities:
        out[f"sim_{m}"] = _sims(engine, q, arr, m) if len(arr) else []
    return out


def _sims(engine: Engine, q: int, rows: np.ndarray, modality: str) -> np.ndarray:
    """Original (pre-INB) similarity of the query to each row, from the graph where the
    pair is a candidate and from the embeddings otherwise."""
    g = engine.graph
    out = np.full(len(rows), np.nan, np.float32)
    pos = {int(c): i for i, c in enumerate(g.cand[q]) if c >= 0}
    missing = []
    for k, r in enumerate(rows):
        i = pos.get(int(r))
        if i is None:
            missing.append(k)
        else:
            out[k] = g.sims[modality][q, i]
    if missing:
        out[missing] = engine.space(modality).sims(np.array([q]), rows[missing][None, :])[0]
    return out
