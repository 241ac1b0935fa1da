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
probabilities are out-of-fold evidence only on scopes its model did not train on, or
everywhere for a cross-fitted model (`explorer learn --cross-fit`): the `in_fold` column
says when they are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from explorer.core.confusion import joined_group_pairs
from explorer.core.engine import Engine, Evaluation
from explorer.core.highlight import describe_conflicts
from explorer.core.titles import decoded_titles

__all__ = ["COLUMNS", "audit", "clipped", "evidence_stage", "label_parts", "posting_findings",
           "score_against", "split_findings"]

# members: the scope rows a fix would relabel, space-separated (a split's second part, a
# merge's smaller group, the posting itself): what marking a finding marks
COLUMNS = ["kind", "score", "label_group", "other_label_group", "group_size",
           "other_group_size", "row", "other_row", "members", "posting_id", "title",
           "detail", "in_fold"]


def _text(rows: np.ndarray) -> str:
    return " ".join(map(str, rows.tolist()))


def label_parts(engine: Engine, ev: Evaluation) -> np.ndarray:
    """Each posting's part: connected components of the predicted pairs of one label group
    (true positives), both directions."""
    q, c = np.nonzero(ev.pred & ev.stage.true)
    keep = c > 0
    q, other = q[keep], ev.stage.cand[q[keep], c[keep]]
    graph = sparse.coo_matrix((np.ones(len(q), np.int8), (q, other)),
                              shape=(engine.n, engine.n))
    return connected_components(graph, directed=True, connection="weak")[1]


def clipped(score: np.ndarray) -> np.ndarray:
    return np.clip(np.where(np.isfinite(score), score, 0.0), 0.0, 1.0)


def evidence_stage(engine: Engine, ev: Evaluation):
    """The stage whose scores weigh the findings: the configuration's own scores before
    INB (after a blend, two parts that share no neighbour score exactly 0, which says
    nothing), unless an exact INB re-search changed the candidates."""
    cfg = ev.config
    if cfg.inb and not cfg.inb_exact:
        return engine.stage(cfg, 0)
    return ev.stage


# Findings are found as numbers first (one row each: kind, score, label, other_label, row,
# other_row, members_by ("part" | "label" | "row") and members_key, the detail's numbers x,
# y, z and a split's part sizes), ranked, cut, and only then described (names, titles,
# members, words): at a million postings there are 1.5 million joined group pairs.
RAW = ["kind", "score", "label", "other_label", "row", "other_row", "members_by",
       "members_key", "x", "y", "z", "sizes"]


def _raw_split(engine: Engine, ev: Evaluation, part: np.ndarray) -> pd.DataFrame:
    labels = engine.labels
    frame = pd.DataFrame({"label": labels, "part": part})
    sizes = frame.groupby(["label", "part"]).size().rename("size").reset_index()
    big = sizes[sizes["size"] >= 2]
    groups = big.groupby("label").size()
    groups = groups[groups >= 2].index.to_numpy()
    if not len(groups):
        return pd.DataFrame(columns=RAW)
    # the mean clipped score between different parts of a group, over every ordered pair
    st = evidence_stage(engine, ev)
    q, col = np.nonzero(st.true)
    other = st.cand[q, col]
    cross = (col > 0) & (part[q] != part[other])
    total = np.bincount(labels[q[cross]], weights=clipped(st.score[q[cross], col[cross]]),
                        minlength=int(labels.max()) + 1)
    size = np.bincount(labels, minlength=len(total))
    sq = np.bincount(sizes["label"], weights=sizes["size"] ** 2, minlength=len(total))
    cross_pairs = size.astype(np.float64) ** 2 - sq  # ordered pairs across parts
    # per group its parts largest first (ties: the part of the lower first row), in one
    # sort instead of a scan of every part per group
    first = frame.reset_index().groupby(["label", "part"])["index"].min().rename("first")
    parts = sizes.join(first, on=["label", "part"])
    parts = parts[parts["label"].isin(groups)].sort_values(
        ["label", "size", "first"], ascending=[True, False, True], kind="stable")
    counts = parts.groupby("label", sort=True)["size"].agg(
        lambda x: " + ".join(map(str, x.tolist())))
    top = parts.groupby("label", sort=True).head(2)
    a, b = top.iloc[0::2], top.iloc[1::2]
    g = a["label"].to_numpy(np.int64)
    mean = np.divide(total[g], cross_pairs[g], out=np.zeros(len(g)), where=cross_pairs[g] > 0)
    return pd.DataFrame({
        "kind": "split", "score": 1.0 - mean, "label": g, "other_label": g,
        "row": a["first"].to_numpy(np.int64), "other_row": b["first"].to_numpy(np.int64),
        "members_by": "part", "members_key": b["part"].to_numpy(np.int64), "x": mean,
        "y": 0.0, "z": 0.0, "sizes": counts.loc[g].to_numpy()}, columns=RAW)


def _raw_posting(engine: Engine, ev: Evaluation) -> pd.DataFrame:
    st, labels, n = ev.stage, engine.labels, engine.n
    pred = ev.pred.copy()
    pred[:, 0] = False
    q, col = np.nonzero(pred)
    other = st.cand[q, col]
    # predicted pairs inside a posting's own group, both ways
    own = st.true[q, col]
    inside = np.bincount(q[own], minlength=n) + np.bincount(other[own], minlength=n)
    lonely = (inside == 0) & (engine.group_size > 1)
    # accepted by another group: predicted pairs between the posting and that group
    fp = ~own
    p = np.concatenate([q[fp], other[fp]])
    h = np.concatenate([labels[other[fp]], labels[q[fp]]])
    keep = lonely[p]
    if not keep.any():
        return pd.DataFrame(columns=RAW)
    pairs = pd.DataFrame({"p": p[keep], "h": h[keep]}).value_counts().rename("n").reset_index()
    size = np.bincount(labels, minlength=int(labels.max()) + 1)
    pairs["accept"] = pairs["n"] / (2.0 * size[pairs["h"]])
    pairs = pairs.sort_values(["p", "accept"], ascending=[True, False],
                              kind="stable").drop_duplicates("p")
    # its mean clipped score to its own group (pairs outside the candidates count 0)
    base = evidence_stage(engine, ev)
    rq, rc = np.nonzero(base.true)
    inner = rc > 0
    own_sum = np.bincount(rq[inner], weights=clipped(base.score[rq[inner], rc[inner]]),
                          minlength=n)
    own_mean = own_sum / np.maximum(engine.group_size - 1, 1)
    row = pairs["p"].to_numpy(np.int64)
    other_label = pairs["h"].to_numpy(np.int64)
    score = pairs["accept"].to_numpy(float) - own_mean[row]
    take = score > 0
    uniq, first = np.unique(labels, return_index=True)
    anchor = np.full(len(size), -1, np.int64)
    anchor[uniq] = first
    row, other_label = row[take], other_label[take]
    return pd.DataFrame({
        "kind": "posting", "score": np.minimum(score[take], 1.0), "label": labels[row],
        "other_label": other_label, "row": row, "other_row": anchor[other_label],
        "members_by": "row", "members_key": row, "x": own_mean[row],
        "y": pairs["n"].to_numpy(float)[take], "z": pairs["accept"].to_numpy(float)[take],
        "sizes": ""}, columns=RAW)


def _raw_merge(engine: Engine, ev: Evaluation) -> pd.DataFrame:
    joined = joined_group_pairs(engine, ev, None)
    if joined is None:
        return pd.DataFrame(columns=RAW)
    qs, ns, counts, coverage, mean, _ = joined
    labels = engine.labels
    smaller = np.where(engine.group_size[ns] < engine.group_size[qs], labels[ns], labels[qs])
    return pd.DataFrame({
        "kind": "merge", "score": coverage.astype(float), "label": labels[qs],
        "other_label": labels[ns], "row": qs, "other_row": ns, "members_by": "label",
        "members_key": smaller, "x": counts.astype(float), "y": mean, "z": 0.0,
        "sizes": ""}, columns=RAW)


def _rows_of(keys: np.ndarray):
    """key -> its rows, ascending, by one sort and two binary searches per key."""
    order = np.argsort(keys, kind="stable")
    ranked = keys[order]
    return lambda key: order[np.searchsorted(ranked, key):np.searchsorted(ranked, key, "right")]


def _detail(r) -> str:
    if r.kind == "split":
        return f"parts of {r.sizes} postings; mean score between parts {r.x:.3f}"
    if r.kind == "merge":
        return f"{int(r.x)} predicted pairs between the groups, mean score {r.y:.3f}"
    return (f"its own group does not match it (mean score {r.x:.3f}); {int(r.y)} predicted "
            f"pairs with the other group ({r.z:.0%} of them both ways)")


def _describe(engine: Engine, ev: Evaluation, raw: pd.DataFrame,
              part: np.ndarray | None) -> pd.DataFrame:
    """The COLUMNS of raw findings: names, sizes, members, the row's posting and title,
    the detail in words (a merge's with the amounts its titles disagree on)."""
    if raw.empty:
        return pd.DataFrame(columns=COLUMNS)
    size = np.bincount(engine.labels)
    names = _label_names(engine)
    rows = raw["row"].to_numpy(np.int64)
    other = raw["other_row"].to_numpy(np.int64)
    label, other_label = (raw[c].to_numpy(np.int64) for c in ("label", "other_label"))
    by = {"label": _rows_of(engine.labels),
          "part": _rows_of(part) if part is not None else None}
    members = [str(int(k)) if how == "row" else _text(by[how](int(k)))
               for how, k in zip(raw["members_by"], raw["members_key"], strict=True)]
    titles = _titles(engine)
    details = []
    for r, a, b in zip(raw.itertuples(index=False), rows, other, strict=True):
        text = _detail(r)
        if r.kind == "merge":
            amounts = "; ".join(describe_conflicts(str(titles[a]), str(titles[b])))
            text += f"; amounts differ: {amounts}" if amounts else ""
        details.append(text)
    return pd.DataFrame({
        "kind": raw["kind"].to_numpy(), "score": raw["score"].to_numpy(float),
        "label_group": names[label], "other_label_group": names[other_label],
        "group_size": size[label], "other_group_size": size[other_label],
        "row": rows, "other_row": other, "members": members,
        "posting_id": _posting_ids(engine)[rows], "title": titles[rows],
        "detail": details, "in_fold": _in_fold(engine, ev)}, columns=COLUMNS)


def split_findings(engine: Engine, ev: Evaluation) -> pd.DataFrame:
    """Label groups that fall apart into parts of two or more postings (see the module
    docstring), one row each: the two largest parts' first postings as row / other_row."""
    part = label_parts(engine, ev)
    return _describe(engine, ev, _raw_split(engine, ev, part), part)


def posting_findings(engine: Engine, ev: Evaluation) -> pd.DataFrame:
    """Postings their own group rejects and another group accepts (see the module
    docstring), one row each, with that other group."""
    return _describe(engine, ev, _raw_posting(engine, ev), None)


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
    """True when the scores are a plain learned model's on a scope it was trained or
    early-stopped on, or on `all` (in-fold evidence: it learned these very labels). False
    for a cross-fitted model on any scope (explorer.core.cross_fit): each posting's pairs
    are scored by the model that never read its fold's labels."""
    cfg = ev.config
    if not cfg.spec.derived or engine.bundle is None:
        return False
    from explorer.core.pair_model import PairModel, bundle_scorer, model_inputs

    name = cfg.modalities[0].partition(":")[2]
    model = bundle_scorer(engine.bundle, name, model_inputs(engine.graph.modalities))
    if not isinstance(model, PairModel):
        return False
    seen = {*model.train_scopes, model.select_scope}
    return engine.scope in seen or engine.scope == "all"


def audit(engine: Engine, ev: Evaluation, n: int | None = None) -> pd.DataFrame:
    """The three lists in one, by decreasing score (ties: split, merge, posting), at most
    `n` rows (None: all); empty without labels."""
    if not ev.has_labels:
        return pd.DataFrame(columns=COLUMNS)
    part = label_parts(engine, ev)
    raw = [f for f in (_raw_split(engine, ev, part), _raw_merge(engine, ev),
                       _raw_posting(engine, ev)) if not f.empty]
    if not raw:
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(raw, ignore_index=True)
    order = {"split": 0, "merge": 1, "posting": 2}
    out = out.assign(_k=out["kind"].map(order)).sort_values(
        ["score", "_k"], ascending=[False, True], kind="stable").drop(columns="_k")
    out = out if n is None else out.head(n)
    return _describe(engine, ev, out.reset_index(drop=True), part)


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
