"""Label audit (issue 12): where the labels, not the matcher, look wrong.

Computed from one evaluation (a configuration on a scope), so the evidence is whatever
score the analyst trusts most (a fusion, or the learned classifier's probability):

- **split**: a label group whose members fall apart into two or more parts under the
  configuration (single linkage over its predicted pairs inside the group: agglomerative
  clustering at the configuration's threshold) with at least two postings in each of two
  parts; score = 1 - the mean score between its parts (a pair outside the candidates
  counts 0, scores clipped to [0, 1]; the scores before INB): 1.0 when nothing links
  the parts.
- **merge**: two label groups the predictions join (explorer.core.confusion); score = the
  coverage, 1.0 when every posting of each predicts every posting of the other.
- **posting**: a posting no member of its own group predicts (nor it them) that another
  group accepts; score = the share of that group's (query, posting) pairs with it that
  are predicted, both ways, minus its mean score to its own group: near 1 when the other
  group takes it whole and its own group scores it near 0.

All three scores lie in [0, 1], so one list ranks them together. A learned mode's
probabilities are out-of-fold evidence only on scopes its model did not train on: the
`in_fold` column says when they are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from explorer.core.confusion import joined_group_pairs
from explorer.core.engine import Engine, Evaluation
from explorer.core.highlight import describe_conflicts
from explorer.core.titles import decoded_titles

__all__ = ["COLUMNS", "audit", "posting_findings", "score_against", "split_findings"]

# members: the scope rows a fix would relabel, space-separated (a split's second part, a
# merge's smaller group, the posting itself): what marking a finding marks
COLUMNS = ["kind", "score", "label_group", "other_label_group", "group_size",
           "other_group_size", "row", "other_row", "members", "posting_id", "title",
           "detail", "in_fold"]


def _rows_by(keys: np.ndarray) -> dict[int, np.ndarray]:
    """key -> the rows holding it, ascending (one sort, not a scan per key)."""
    order = np.argsort(keys, kind="stable")
    uniq, starts = np.unique(keys[order], return_index=True)
    return dict(zip(uniq.tolist(), np.split(order, starts[1:]), strict=True))


def _text(rows: np.ndarray) -> str:
    return " ".join(map(str, rows.tolist()))


def _parts(engine: Engine, ev: Evaluation) -> np.ndarray:
    """Each posting's part: connected components of the predicted pairs of one label group
    (true positives), both directions."""
    q, c = np.nonzero(ev.pred & ev.stage.true)
    keep = c > 0
    q, other = q[keep], ev.stage.cand[q[keep], c[keep]]
    graph = sparse.coo_matrix((np.ones(len(q), np.int8), (q, other)),
                              shape=(engine.n, engine.n))
    return connected_components(graph, directed=True, connection="weak")[1]


def _clipped(score: np.ndarray) -> np.ndarray:
    return np.clip(np.where(np.isfinite(score), score, 0.0), 0.0, 1.0)


def _evidence(engine: Engine, ev: Evaluation):
    """The stage whose scores weigh the findings: the configuration's own scores before
    INB (after a blend, two parts that share no neighbour score exactly 0, which says
    nothing), unless an exact INB re-search changed the candidates."""
    cfg = ev.config
    if cfg.inb and not cfg.inb_exact:
        return engine.stage(cfg, 0)
    return ev.stage


def split_findings(engine: Engine, ev: Evaluation) -> pd.DataFrame:
    """Label groups that fall apart into parts of two or more postings (see the module
    docstring), one row each: the two largest parts' first postings as row / other_row."""
    labels, part = engine.labels, _parts(engine, ev)
    frame = pd.DataFrame({"label": labels, "part": part})
    sizes = frame.groupby(["label", "part"]).size().rename("size").reset_index()
    big = sizes[sizes["size"] >= 2]
    groups = big.groupby("label").size()
    groups = groups[groups >= 2].index.to_numpy()
    if not len(groups):
        return pd.DataFrame(columns=COLUMNS)
    # the mean clipped score between different parts of a group, over every ordered pair
    st = _evidence(engine, ev)
    q, col = np.nonzero(st.true)
    other = st.cand[q, col]
    cross = (col > 0) & (part[q] != part[other])
    total = np.bincount(labels[q[cross]], weights=_clipped(st.score[q[cross], col[cross]]),
                        minlength=int(labels.max()) + 1)
    size = np.bincount(labels, minlength=len(total))
    sq = np.bincount(sizes["label"], weights=sizes["size"] ** 2, minlength=len(total))
    cross_pairs = size.astype(np.float64) ** 2 - sq  # ordered pairs across parts
    rows = []
    first = frame.reset_index().groupby(["label", "part"])["index"].min()
    by_part = _rows_by(part)
    for g in groups:
        parts = big[big["label"] == g].sort_values("size", ascending=False)
        a, b = parts.iloc[0], parts.iloc[1]
        mean = total[g] / cross_pairs[g] if cross_pairs[g] else 0.0
        counts = " + ".join(str(int(s)) for s in sizes[sizes["label"] == g]
                            .sort_values("size", ascending=False)["size"])
        rows.append({"kind": "split", "score": 1.0 - mean, "label": g,
                     "other_label": g, "row": int(first[(g, a["part"])]),
                     "other_row": int(first[(g, b["part"])]),
                     "members": _text(by_part[int(b["part"])]),
                     "detail": f"parts of {counts} postings; mean score between parts "
                               f"{mean:.3f}"})
    return _finish(engine, ev, pd.DataFrame(rows))


def posting_findings(engine: Engine, ev: Evaluation) -> pd.DataFrame:
    """Postings their own group rejects and another group accepts (see the module
    docstring), one row each, with that other group."""
    st, labels = ev.stage, engine.labels
    pred, true = ev.pred.copy(), st.true
    pred[:, 0] = False
    cand = st.cand
    q, col = np.nonzero(pred)
    other = cand[q, col]
    # predicted pairs inside a posting's own group, both ways
    inside = np.zeros(engine.n, np.int64)
    own = true[q, col]
    np.add.at(inside, q[own], 1)
    np.add.at(inside, other[own], 1)
    lonely = (inside == 0) & (engine.group_size > 1)
    # accepted by another group: predicted pairs between the posting and that group
    fp = ~own
    p = np.concatenate([q[fp], other[fp]])
    h = np.concatenate([labels[other[fp]], labels[q[fp]]])
    keep = lonely[p]
    if not keep.any():
        return pd.DataFrame(columns=COLUMNS)
    pairs = pd.DataFrame({"p": p[keep], "h": h[keep]}).value_counts().rename("n").reset_index()
    size = np.bincount(labels, minlength=int(labels.max()) + 1)
    pairs["accept"] = pairs["n"] / (2.0 * size[pairs["h"]])
    pairs = pairs.sort_values(["p", "accept"], ascending=[True, False]).drop_duplicates("p")
    # its mean clipped score to its own group (pairs outside the candidates count 0)
    base = _evidence(engine, ev)
    rq, rc = np.nonzero(base.true)
    inner = rc > 0
    own_sum = np.bincount(rq[inner], weights=_clipped(base.score[rq[inner], rc[inner]]),
                          minlength=engine.n)
    own_mean = own_sum / np.maximum(engine.group_size - 1, 1)
    rows = []
    for r in pairs.itertuples(index=False):
        score = float(r.accept - own_mean[r.p])
        if score <= 0:
            continue
        anchor = np.flatnonzero(labels == r.h)[0]
        rows.append({"kind": "posting", "score": min(score, 1.0), "label": labels[r.p],
                     "other_label": r.h, "row": int(r.p), "other_row": int(anchor),
                     "members": str(int(r.p)),
                     "detail": f"its own group does not match it (mean score "
                               f"{own_mean[r.p]:.3f}); {r.n} predicted pairs with the "
                               f"other group ({r.accept:.0%} of them both ways)"})
    return _finish(engine, ev, pd.DataFrame(rows))


def _merge_findings(engine: Engine, ev: Evaluation) -> pd.DataFrame:
    """Pairs of label groups the predictions join (confused groups) on the same scale."""
    joined = joined_group_pairs(engine, ev, None)
    if joined is None:
        return pd.DataFrame(columns=COLUMNS)
    qs, ns, counts, coverage, mean, _ = joined
    titles = _titles(engine)
    details = []
    for q, nb, k, m in zip(qs, ns, counts, mean, strict=True):
        amounts = "; ".join(describe_conflicts(str(titles[q]), str(titles[nb])))
        details.append(f"{int(k)} predicted pairs between the groups, mean score {m:.3f}"
                       + (f"; amounts differ: {amounts}" if amounts else ""))
    labels = engine.labels
    by_label = _rows_by(labels)
    smaller = np.where(engine.group_size[ns] < engine.group_size[qs], labels[ns], labels[qs])
    return _finish(engine, ev, pd.DataFrame({
        "kind": "merge", "score": coverage.astype(float), "label": labels[qs],
        "other_label": labels[ns], "row": qs, "other_row": ns,
        "members": [_text(by_label[g]) for g in smaller.tolist()], "detail": details}))


def _finish(engine: Engine, ev: Evaluation, frame: pd.DataFrame) -> pd.DataFrame:
    """Label names, sizes, the row's posting and title, in COLUMNS order."""
    if frame.empty:
        return pd.DataFrame(columns=COLUMNS)
    size = np.bincount(engine.labels)
    names = _label_names(engine)
    rows = frame["row"].to_numpy(np.int64)
    out = pd.DataFrame({
        "kind": frame["kind"].to_numpy(), "score": frame["score"].to_numpy(float),
        "label_group": names[frame["label"].to_numpy(np.int64)],
        "other_label_group": names[frame["other_label"].to_numpy(np.int64)],
        "group_size": size[frame["label"].to_numpy(np.int64)],
        "other_group_size": size[frame["other_label"].to_numpy(np.int64)],
        "row": rows, "other_row": frame["other_row"].to_numpy(np.int64),
        "members": frame["members"].to_numpy(),
        "posting_id": _posting_ids(engine)[rows],
        "title": _titles(engine)[rows] if len(rows) else [],
        "detail": frame["detail"].to_numpy(), "in_fold": _in_fold(engine, ev)})
    return out[COLUMNS]


def _label_names(engine: Engine) -> np.ndarray:
    """Each label code's name: the bundle's label_group values, else the codes."""
    codes = engine.labels
    if engine.bundle is None:
        return np.arange(int(codes.max()) + 1).astype(str)
    raw = engine.bundle.items["label_group"].to_numpy()[engine.rows]
    names = np.empty(int(codes.max()) + 1, object)
    names[codes] = raw.astype(str)
    return names


def _posting_ids(engine: Engine) -> np.ndarray:
    if engine.bundle is None:
        return np.arange(engine.n).astype(str)
    return engine.bundle.items["posting_id"].to_numpy()[engine.rows]


def _titles(engine: Engine):
    if engine.bundle is None:
        return np.full(engine.n, "", object)
    return decoded_titles(engine.bundle)[engine.rows]


def _in_fold(engine: Engine, ev: Evaluation) -> bool:
    """True when the scores are a learned model's on a scope it was trained or
    early-stopped on (in-fold evidence: it learned these very labels)."""
    cfg = ev.config
    if not cfg.spec.derived or engine.bundle is None:
        return False
    from explorer.core.pair_model import bundle_model, model_inputs

    name = cfg.modalities[0].partition(":")[2]
    model = bundle_model(engine.bundle, name, model_inputs(engine.graph.modalities))
    seen = {*model.train_scopes, model.select_scope}
    return engine.scope in seen or engine.scope == "all"


def audit(engine: Engine, ev: Evaluation, n: int | None = None) -> pd.DataFrame:
    """The three lists in one, by decreasing score (ties: split, merge, posting), at most
    `n` rows (None: all); empty without labels."""
    if not ev.has_labels:
        return pd.DataFrame(columns=COLUMNS)
    parts = [f for f in (split_findings(engine, ev), _merge_findings(engine, ev),
                         posting_findings(engine, ev)) if not f.empty]
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(parts, ignore_index=True)
    order = {"split": 0, "merge": 1, "posting": 2}
    out = out.assign(_k=out["kind"].map(order)).sort_values(
        ["score", "_k"], ascending=[False, True], kind="stable").drop(columns="_k")
    return out.reset_index(drop=True) if n is None else out.head(n).reset_index(drop=True)


def score_against(found: pd.DataFrame, truth: pd.DataFrame) -> tuple[float, float]:
    """(precision, recall) of audit findings against known label errors: `truth` has the
    columns posting_id, kind (split: one product under two labels; merged: two products
    under one label; moved: one posting under another product's label), true_label and
    given_label, one row per relabelled posting (precompute demo --label-errors writes
    it). A split finding is right when its label holds a merged error; a merge finding
    when its two labels are an error's true and given labels; a posting finding when its
    posting was relabelled. An error is found when a right finding names it."""
    errors = truth.astype(str).groupby(["kind", "true_label", "given_label"])[
        "posting_id"].apply(frozenset).reset_index()
    hit: set[int] = set()
    right = 0
    for f in found.itertuples(index=False):
        pair = {str(f.label_group), str(f.other_label_group)}
        names = [i for i, e in enumerate(errors.itertuples(index=False))
                 if (f.kind == "split" and e.kind == "merged"
                     and e.given_label == str(f.label_group))
                 or (f.kind == "merge" and {e.true_label, e.given_label} == pair)
                 or (f.kind == "posting" and str(f.posting_id) in e.posting_id)]
        right += bool(names)
        hit.update(names)
    return right / max(len(found), 1), len(hit) / max(len(errors), 1)
