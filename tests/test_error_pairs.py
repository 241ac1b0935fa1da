"""The error-pairs table reconciles with the per-query metrics and with explain_query."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from explorer.core.bundle import Bundle
from explorer.core.config import InbStage, MatchConfig
from explorer.core.engine import Engine
from explorer.core.error_pairs import error_pairs
from explorer.core.explain import explain_query

CONFIGS = [
    MatchConfig("single", ("tfidf",), (0.45,), min2=(0.3,)),
    MatchConfig("single", ("effnet",), (0.8,)),
    MatchConfig("union", ("tfidf", "phash"), (0.5, 0.85)),
    MatchConfig("sum", ("tfidf", "effnet"), (0.6,), min2=(0.5,), units=True),
    MatchConfig("single", ("tfidf",), (0.45,), inb=(InbStage(0.6),)),
]


@pytest.fixture(scope="module")
def engine(demo_bundle) -> Engine:
    """The demo: hard cases (pack sizes, different photos), so every kind of error occurs."""
    return Engine(Bundle.open(demo_bundle), "all")


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.label)
def test_counts_reconcile_with_the_metrics(engine, cfg):
    ev = engine.evaluate(cfg)
    table = error_pairs(engine, ev)
    ids = engine.bundle.items["posting_id"].to_numpy()[engine.rows]
    per = table.groupby(["posting_id", "kind"]).size().unstack(fill_value=0)
    per = per.reindex(ids, fill_value=0)
    fp = per.get("false positive", pd.Series(0, index=ids)).to_numpy()
    missed = per.get("missed", pd.Series(0, index=ids)).to_numpy()
    assert (fp == ev.n_pred - ev.tp).all()
    assert (missed == ev.group_size - ev.tp).all()
    assert missed.sum() > 0 and fp.sum() > 0  # the configurations do make both errors
    is_fp = table["kind"] == "false positive"
    assert (table.loc[is_fp, "label_group"] != table.loc[is_fp, "neighbour_label_group"]).all()
    assert (table.loc[~is_fp, "label_group"] == table.loc[~is_fp, "neighbour_label_group"]).all()
    assert list(table["kind"]) == sorted(table["kind"])  # false positives first
    assert table["score"].notna().any() and np.isfinite(table["score"].dropna()).all()
    assert table.loc[is_fp, "score"].is_monotonic_decreasing


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.label)
def test_miss_reasons_agree_with_explain_query(engine, cfg):
    ev = engine.evaluate(cfg)
    table = error_pairs(engine, ev)
    missed = table[table["kind"] == "missed"].set_index(["posting_id", "neighbour_id"])
    ids = engine.bundle.items["posting_id"].to_numpy()[engine.rows]
    seen = 0
    for q in range(engine.n):
        shown = explain_query(engine, ev, q)
        for _, row in shown[shown["status"] == "missed"].iterrows():
            mine = missed.loc[(ids[q], row["posting_id"])]
            assert mine["reason"] == row["reason"]
            assert np.isclose(mine["gap"], row["gap"], equal_nan=True, atol=1e-6)
            seen += 1
    assert seen == len(missed)  # every miss of the table is one explain_query shows


def test_a_bundle_without_labels_has_no_error_pairs(tmp_path):
    from conftest import synthetic_table

    from precompute.build import BuildOptions, build

    csv = tmp_path / "test.csv"
    synthetic_table(n_groups=10).drop(columns=["label_group"]).to_csv(csv, index=False)
    bundle = Bundle.open(build(BuildOptions(csv=csv, out=tmp_path / "b", k=5, progress=False)))
    engine = Engine(bundle, "all")
    with pytest.raises(ValueError, match="need labels"):
        error_pairs(engine, engine.evaluate(MatchConfig("single", ("tfidf",), (0.5,))))


def test_a_true_pair_the_unit_filter_removes(tmp_path):
    from conftest import synthetic_table

    from precompute.build import BuildOptions, build

    table = synthetic_table(n_groups=20)
    first = table.index[table["label_group"] == table["label_group"].iloc[0]]
    # the same product, one posting with another pack size: a true pair the filter drops
    table.loc[first[1], "title"] = re.sub(r"\d+ml", "2000ml", table.loc[first[0], "title"])
    csv = tmp_path / "train.csv"
    table.to_csv(csv, index=False)
    bundle = Bundle.open(build(BuildOptions(csv=csv, out=tmp_path / "b", k=10,
                                            progress=False)))
    engine = Engine(bundle, "all")
    ev = engine.evaluate(MatchConfig("single", ("tfidf",), (0.2,), units=True))
    pairs = error_pairs(engine, ev)
    ids = table["posting_id"]
    unit = pairs[(pairs["posting_id"] == ids[first[0]]) & (pairs["neighbour_id"] == ids[first[1]])]
    assert list(unit["reason"]) == ["removed by the unit filter"]
    assert unit["gap"].isna().all() and unit["score"].isna().all()
