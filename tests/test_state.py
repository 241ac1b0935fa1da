"""The viewer state and the settings document (explorer.core.state), without a screen."""

from __future__ import annotations

import json

import pytest

from explorer.core.config import ConfigError, MatchConfig
from explorer.core.state import SettingsDoc, ViewerState, parse_settings, read_settings

SCOPES = ("all", "fold0", "fold1")
MODS = ("tfidf", "phash")
TFIDF = MatchConfig("single", ("tfidf",), (0.5,))
SUM = MatchConfig("sum", ("tfidf", "phash"), (0.6,), weights=(0.7, 0.3))


def test_updates_notify_once_with_what_changed():
    state = ViewerState(SCOPES, MODS, "fold0", TFIDF)
    seen = []
    state.subscribe(seen.append)
    assert state.update(query=3) == {"query"}
    assert state.update(config=SUM) == {"config"}
    assert state.update(config=SUM) == frozenset()  # nothing changed: nobody is told
    assert state.update(scope="all") == {"scope", "query"}  # a new scope clears the query
    assert state.query is None
    assert seen == [{"query"}, {"config"}, {"scope", "query"}]


def test_invalid_updates_change_nothing():
    state = ViewerState(SCOPES, MODS, "fold0", TFIDF)
    seen = []
    state.subscribe(seen.append)
    with pytest.raises(ConfigError, match="fold7"):
        state.update(scope="fold7", config=SUM)
    with pytest.raises(ConfigError, match="clip"):
        state.update(pinned=MatchConfig("single", ("clip",), (0.5,)))
    with pytest.raises(TypeError):
        state.update(threshold=0.4)
    assert (state.scope, state.config, state.pinned, seen) == ("fold0", TFIDF, None, [])


def test_the_document_round_trips_through_json(tmp_path):
    state = ViewerState(SCOPES, MODS, "fold1", SUM, pinned=TFIDF)
    path = tmp_path / "s.json"
    path.write_text(state.document("b.bundle").to_json(), encoding="utf-8")
    doc = read_settings(path)
    assert doc == SettingsDoc(SUM, "fold1", TFIDF, "b.bundle")
    other = ViewerState(SCOPES, MODS, "fold0", TFIDF)
    assert other.apply(doc, str(path)) == {"scope", "config", "pinned"}
    assert (other.scope, other.config, other.pinned) == ("fold1", SUM, TFIDF)


def test_a_bare_configuration_is_a_document():
    doc = parse_settings(SUM.to_dict(), "x")
    assert doc == SettingsDoc(SUM)
    report = {"scope": "fold0", "tuned_on": "fold1", "config": SUM.to_dict(), "metrics": {}}
    assert parse_settings(report, "x") == SettingsDoc(SUM, "fold0")


@pytest.mark.parametrize("data, part", [
    ([1, 2], "JSON object"), ("tfidf", "JSON object"), (None, "JSON object"),
    ({"scope": "fold0"}, "config"), ({"config": [1]}, "config"),
    ({"config": SUM.to_dict(), "pinned": "tfidf"}, "pinned"),
    ({"config": SUM.to_dict(), "scope": ["fold0"]}, "scope"),
    ({"config": {"mode": "tfidf"}}, "where.json"),
])
def test_malformed_documents_are_one_line(data, part):
    with pytest.raises(ConfigError, match=part) as info:
        parse_settings(data, "where.json")
    assert "\n" not in str(info.value) and str(info.value).startswith("where.json")


def test_document_check_names_what_the_bundle_lacks():
    doc = SettingsDoc(SUM, "fold3")
    with pytest.raises(ConfigError, match="fold3"):
        doc.check(SCOPES, MODS, "s.json")
    with pytest.raises(ConfigError, match="phash"):
        SettingsDoc(SUM).check(SCOPES, ("tfidf",), "s.json")


def test_non_finite_numbers_in_a_file_are_refused(tmp_path):
    path = tmp_path / "s.json"
    for constant in ("NaN", "Infinity", "-Infinity"):
        path.write_text(json.dumps({"config": {"mode": "tfidf", "thresholds": [0.5]}})
                        .replace("0.5", constant))
        with pytest.raises(ConfigError, match=constant):
            read_settings(path)
