"""Titles reach every table a person reads decoded (explorer.core.titles), with the stored
title beside them: the query list (and its search), the neighbour tiles' frame, the
error-case lists and both CSV exports that carry titles. Over a bundle whose titles are
stored as in the real table (tests/escaped_titles.py)."""

from __future__ import annotations

import numpy as np
import pytest
from escaped_titles import ESCAPED, build_escaped_bundle

from explorer.core.bundle import Bundle
from explorer.core.config import MatchConfig
from explorer.core.confusion import confused_groups
from explorer.core.error_pairs import error_pairs
from explorer.core.explain import explain_query
from explorer.core.queries import search_mask, sort_order
from explorer.core.session import Session
from explorer.core.titles import normalise_title
from explorer.core.views import CASE_LISTS, scope_view

LOOSE = MatchConfig("single", ("tfidf",), (0.2,))  # many errors, escaped rows among them


@pytest.fixture(scope="module")
def escaped(tmp_path_factory):
    path, rows = build_escaped_bundle(tmp_path_factory.mktemp("escaped"))
    session = Session(Bundle.open(path))
    return session.compute("all", LOOSE), rows


def stored(snap) -> np.ndarray:
    return snap.engine.bundle.items["title"].to_numpy(object)[snap.engine.rows]


def test_query_list_shows_decoded_titles(escaped):
    snap, rows = escaped
    table = scope_view(snap, with_cases=False).table
    for key, (raw, shown) in ESCAPED.items():
        assert table.title[rows[key]] == shown and table.title_raw[rows[key]] == raw
    assert list(table.title_raw) == list(stored(snap))
    # sorted as read: "✨Hideem..." is no longer among the "\x..." titles at the start
    order = sort_order(table, np.arange(len(table)), "title")
    want = sorted(range(len(table)), key=lambda i: table.title[i].lower())
    assert [table.title[i] for i in order] == [table.title[i] for i in want]


@pytest.mark.parametrize(("text", "keys"), [
    ("✨", {0, 1, 2}),            # only in the decoded titles
    ("& lotion", {1}),           # decoded entity
    ('"asli"', {2}),             # twice-escaped entity, decoded
    ("&amp;", {0, 1, 2}),        # only in the stored titles
    (r"\xe2\x9c\xa8Hideem", {0}),  # the stored escapes
    ("b'Sabun", {2}),            # the stored bytes repr
])
def test_search_matches_the_decoded_and_the_stored_title(escaped, text, keys):
    snap, rows = escaped
    table = scope_view(snap, with_cases=False).table
    hits = set(np.flatnonzero(search_mask(table, text)).tolist())
    assert hits == {rows[k] for k in keys}


def test_tiles_frame_has_both_titles(escaped):
    snap, rows = escaped
    frame = explain_query(snap.engine, snap.evaluation, rows[1], near_misses=3)
    assert frame["title"].iloc[0] == ESCAPED[1][1]
    assert frame["title_raw"].iloc[0] == ESCAPED[1][0]
    other = frame.index[frame["row"] == rows[2]]
    assert len(other) and frame.loc[other[0], "title"] == ESCAPED[2][1]
    assert frame["title_raw"].tolist() == list(stored(snap)[frame["row"].to_numpy()])


def check_titles(frame, snap, pairs=True) -> None:
    raw = stored(snap)
    assert frame["title_raw"].tolist() == list(raw[frame["row"].to_numpy()])
    assert frame["title"].tolist() == [normalise_title(t) for t in frame["title_raw"]]
    if pairs:
        assert frame["neighbour_title_raw"].tolist() == list(
            raw[frame["neighbour"].to_numpy()])
        assert frame["neighbour_title"].tolist() == [
            normalise_title(t) for t in frame["neighbour_title_raw"]]


@pytest.mark.parametrize("kind", list(CASE_LISTS))
def test_error_case_lists_show_decoded_titles(escaped, kind):
    snap, _ = escaped
    frame = scope_view(snap, cases=10**6, with_cases=False).case(kind)  # every case
    assert len(frame)
    check_titles(frame, snap, pairs=kind != "worst")
    titles = set(frame["title"])
    if kind != "confused":
        titles |= set(frame.get("neighbour_title", []))
    assert titles & {shown for _, shown in ESCAPED.values()}  # an escaped row is there


def test_error_pairs_export_carries_both_titles(escaped):
    snap, rows = escaped
    table = error_pairs(snap.engine, snap.evaluation)
    ids = snap.engine.bundle.items["posting_id"].to_numpy(object)
    table = table.assign(row=[int(np.flatnonzero(ids == p)[0]) for p in table["posting_id"]],
                         neighbour=[int(np.flatnonzero(ids == p)[0])
                                    for p in table["neighbour_id"]])
    check_titles(table, snap)
    mine = table[table["posting_id"] == ids[rows[0]]]
    assert len(mine) and (mine["title"] == ESCAPED[0][1]).all()
    assert (mine["title_raw"] == ESCAPED[0][0]).all()


def test_confused_groups_export_carries_both_titles(escaped):
    snap, _ = escaped
    table = confused_groups(snap.engine, snap.evaluation, n=None)
    assert len(table)
    check_titles(table, snap)
    assert list(table.columns[-2:]) == ["title_raw", "neighbour_title_raw"]


@pytest.mark.parametrize("mode", ["sum", "prob"])
def test_tiles_name_a_fusion_in_words(escaped, mode):
    snap, rows = escaped
    engine = snap.engine
    weights = (0.5, 0.25) if mode == "sum" else None
    ev = engine.evaluate(MatchConfig(mode, ("tfidf", "phash"), (0.3,), weights=weights))
    frame = explain_query(engine, ev, rows[1])
    admitted = set(frame["admitted_by"][frame["status"].isin(["TP", "FP"])])
    assert admitted == {f"{mode} fusion"}
