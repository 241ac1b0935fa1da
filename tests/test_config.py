"""MatchConfig refuses numbers the scores cannot meet (NaN, infinities, far outside [-1, 1],
bools, strings) at every position, from Python and from settings JSON, with one line that
names the field; configurations at the edges of the ranges still evaluate."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.core import tune as tune_mod
from explorer.core.bundle import Bundle
from explorer.core.config import ConfigError, InbStage, MatchConfig, parse_mode
from explorer.core.engine import Engine
from explorer.core.sweep import with_param

BAD_NUMBERS = [float("nan"), float("inf"), float("-inf"), 1e9, -1e9, 1.5, -1.0001,
               True, False, "0.5", None, [0.5]]


def _at(position: str, bad):
    """A configuration valid everywhere except `bad` at `position`, and the field the
    error must name."""
    if position == "threshold":
        return lambda: MatchConfig("single", ("tfidf",), (bad,)), "threshold"
    if position == "union threshold":
        return (lambda: MatchConfig("union", ("tfidf", "phash"), (0.5, bad)),
                "threshold of phash")
    if position == "min2":
        return lambda: MatchConfig("sum", ("tfidf", "phash"), (0.5,), min2=(bad,)), \
            "Min2 threshold"
    if position == "union min2":
        return (lambda: MatchConfig("union", ("tfidf", "phash"), (0.5, 0.5), min2=(bad, 0.4)),
                "Min2 threshold of tfidf")
    if position == "inb threshold":
        return (lambda: MatchConfig("single", ("tfidf",), (0.5,),
                                    inb=(InbStage(0.6), InbStage(bad))),
                "INB iteration 2 threshold")
    if position == "inb min2":
        return (lambda: MatchConfig("prob", ("tfidf", "phash"), (0.5,),
                                    inb=(InbStage(0.6, bad),)),
                "INB iteration 1 Min2 threshold")
    raise AssertionError(position)


POSITIONS = ["threshold", "union threshold", "min2", "union min2", "inb threshold",
             "inb min2"]


# a stage's Min2 of None is "off", which is valid
@pytest.mark.parametrize("position,bad", [(p, b) for p in POSITIONS for b in BAD_NUMBERS
                                          if not (p == "inb min2" and b is None)],
                         ids=lambda x: x if isinstance(x, str) else repr(x))
def test_bad_threshold_is_refused_naming_the_field(position, bad):
    make, field = _at(position, bad)
    with pytest.raises(ConfigError) as err:
        make()
    msg = str(err.value)
    assert msg.startswith(field + ": ") and "\n" not in msg
    assert "[-1, 1]" in msg


def test_a_value_just_outside_the_range_is_shown_exactly():
    with pytest.raises(ConfigError, match=r"^threshold: 1\.0000001 is not a number in"):
        MatchConfig("single", ("tfidf",), (1.0000001,))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf"), 1e9, 1001.0,
                                 -0.1, True, "0.5", None])
def test_bad_weight_is_refused_naming_the_modality(bad):
    with pytest.raises(ConfigError, match=r"^weight of phash: .* is not a number in "
                                          r"\[0, 1000\]$"):
        MatchConfig("sum", ("tfidf", "phash"), (0.5,), weights=(0.5, bad))


def test_all_zero_weights_are_refused():
    with pytest.raises(ConfigError, match="not all zero"):
        MatchConfig("sum", ("tfidf", "phash"), (0.5,), weights=(0.0, 0.0))


@pytest.mark.parametrize("text", ["sum:a,b:nan,1", "sum:a,b:1,inf", "sum:a,b:1e9,1",
                                  "sum:a,b:-1,1"])
def test_weights_in_a_mode_text_are_checked(text):
    mode, mods, weights = parse_mode(text)
    with pytest.raises(ConfigError, match=r"^weight of [ab]: "):
        MatchConfig(mode, mods, (0.5,), weights=weights)


@pytest.mark.parametrize("param,field", [
    ("threshold", "threshold"), ("min2", "Min2 threshold"),
    ("inb1.threshold", "INB iteration 1 threshold"), ("inb1.min2", "INB iteration 1 Min2")])
@pytest.mark.parametrize("bad", [float("nan"), 1e9, -2.0])
def test_sweep_and_tune_values_go_through_validation(param, field, bad):
    cfg = MatchConfig("single", ("tfidf",), (0.5,), min2=(0.4,))
    if param.startswith("inb"):  # with INB, "threshold" would name the last stage's
        cfg = cfg.replace(inb=(InbStage(0.6, 0.5),))
    with pytest.raises(ConfigError, match=f"^{field}"):
        with_param(cfg, param, bad)


@pytest.mark.parametrize("flag", ["units", "inb_exact"])
@pytest.mark.parametrize("bad", ["false", "true", 0, 1, None, 0.0])
def test_flags_must_be_booleans(flag, bad):
    with pytest.raises(ConfigError, match=f"^{flag}: "):
        MatchConfig("single", ("tfidf",), (0.5,), **{flag: bad})


def test_numbers_are_stored_as_floats_and_round_trip_as_strict_json():
    cfg = MatchConfig("sum", ("tfidf", "phash"), (np.float32(0.25),), weights=(1, 3),
                      min2=[np.float64(-1)], inb=(InbStage(np.float32(1.0), 0),),
                      units=np.bool_(True))
    assert cfg.thresholds == (0.25,) and type(cfg.thresholds[0]) is float
    assert cfg.weights == (1.0, 3.0) and cfg.min2 == (-1.0,) and cfg.units is True
    text = json.dumps(cfg.to_dict(), allow_nan=False)
    assert MatchConfig.from_dict(json.loads(text)) == cfg


# ------------------------------------------------------------------- settings JSON


SETTINGS = {"mode": "sum:tfidf,phash:0.3,0.7", "thresholds": [0.6], "min2": [0.5],
            "inb": [{"threshold": 0.7, "min2": 0.6}, {"threshold": 0.8, "min2": None}],
            "inb_exact": False, "units": True}


def _settings(**changes) -> dict:
    data = json.loads(json.dumps(SETTINGS))
    data.update(changes)
    return data


def test_valid_settings_load():
    cfg = MatchConfig.from_dict(_settings())
    assert cfg.weights == (0.3, 0.7) and cfg.inb[1] == InbStage(0.8, None) and cfg.units


LITERALS = ["NaN", "Infinity", "-Infinity", "1e9", '"0.5"', "true", "null", "[0.5]", "{}"]
WHERE = [("thresholds", "threshold"), ("min2", "Min2 threshold"),
         ("inb0", "INB iteration 1 threshold"), ("inb1min2", "INB iteration 2 Min2 threshold")]


# null is "Min2 off" for a stage, which is valid
@pytest.mark.parametrize("literal,where,field", [
    (lit, where, field) for lit in LITERALS for where, field in WHERE
    if not (where == "inb1min2" and lit == "null")])
def test_settings_json_with_a_bad_number_is_refused(literal, where, field):
    value = json.loads(literal)  # json.loads("NaN") is float nan: Python's JSON reads it
    if where == "thresholds":
        data = _settings(thresholds=[value])
    elif where == "min2":
        data = _settings(min2=[value])
    elif where == "inb0":
        data = _settings()
        data["inb"][0]["threshold"] = value
    else:
        data = _settings()
        data["inb"][1]["min2"] = value
    with pytest.raises(ConfigError) as err:
        MatchConfig.from_dict(data)
    msg = str(err.value)
    assert msg.startswith(f"{field}: ") and "\n" not in msg


@pytest.mark.parametrize("flag", ["units", "inb_exact"])
@pytest.mark.parametrize("literal", ['"false"', '"true"', "0", "1", "null"])
def test_settings_flags_must_be_json_booleans(flag, literal):
    with pytest.raises(ConfigError, match=f"^{flag}: "):
        MatchConfig.from_dict(_settings(**{flag: json.loads(literal)}))


@pytest.mark.parametrize("data,match", [
    ({"thresholds": [0.5]}, "mode"), ({"mode": 3, "thresholds": [0.5]}, "mode"),
    ({"mode": "tfidf"}, "thresholds"), ({"mode": "tfidf", "thresholds": "0.5"}, "thresholds"),
    ({"mode": "tfidf", "thresholds": 0.5}, "thresholds"),
    ({"mode": "tfidf", "thresholds": [0.5], "min2": 0.4}, "min2"),
    ({"mode": "tfidf", "thresholds": [0.5], "inb": [0.5]}, "INB iteration 1"),
    ({"mode": "tfidf", "thresholds": [0.5], "inb": {"threshold": 0.5}}, "inb"),
    ({"mode": "sum:tfidf,phash:nan,1", "thresholds": [0.5]}, "weight of tfidf"),
    ([0.5], "a configuration is a JSON object"),
    ({"mode": "tfidf", "thresholds": ["x" * 10_000]}, "threshold: 'xxx"),
])
def test_malformed_settings_are_one_line_config_errors(data, match):
    with pytest.raises(ConfigError) as err:
        MatchConfig.from_dict(data)
    msg = str(err.value)
    assert msg.startswith(match) and "\n" not in msg and len(msg) < 200


# ------------------------------------------------------------ the edges still evaluate


@pytest.fixture(scope="module")
def engine(tiny_bundle):
    return Engine(Bundle.open(tiny_bundle), "fold3")


def _knn_sets(engine: Engine, modality: str) -> list[set[int]]:
    idx, _ = engine.bundle.knn(engine.scope, modality)
    g2l = {int(g): i for i, g in enumerate(engine.rows)}
    return [{g2l[int(g)] for g in row if g >= 0} for row in idx]


def _predicted(ev) -> list[set[int]]:
    return [set(ev.stage.cand[i][ev.pred[i]].tolist()) for i in range(len(ev.pred))]


def _same_hash(engine: Engine) -> np.ndarray:
    hexes = engine.bundle.items["image_phash"].to_numpy()[engine.rows]
    return hexes[:, None] == hexes[None, :]


def test_threshold_minus_one_admits_every_candidate(engine):
    ev = engine.evaluate(MatchConfig("single", ("tfidf",), (-1.0,), min2=(-1.0,)))
    assert _predicted(ev) == _knn_sets(engine, "tfidf")
    assert np.isfinite(ev.metrics.f1)


def test_threshold_one_admits_only_identical_hashes(engine):
    same = _same_hash(engine)
    knn = _knn_sets(engine, "phash")
    ev = engine.evaluate(MatchConfig("single", ("phash",), (1.0,)))
    assert _predicted(ev) == [{j for j in knn[i] if same[i, j]} | {i} for i in range(engine.n)]
    assert any(len(s) > 1 for s in _predicted(ev))  # the fixture has identical hashes


def test_a_zero_weight_drops_its_modality(engine):
    """sum with weights (0, 1) at 1.0 predicts the union candidates whose hashes are equal,
    whatever their titles: TF-IDF counts for nothing."""
    same = _same_hash(engine)
    union = [a | b for a, b in zip(_knn_sets(engine, "tfidf"), _knn_sets(engine, "phash"),
                                   strict=True)]
    ev = engine.evaluate(MatchConfig("sum", ("tfidf", "phash"), (1.0,), weights=(0.0, 1.0)))
    assert _predicted(ev) == [{j for j in union[i] if same[i, j]} | {i}
                              for i in range(engine.n)]


def test_large_weights_are_only_ratios(engine):
    cfg = MatchConfig("sum", ("tfidf", "phash"), (0.7,), weights=(1000.0, 1000.0))
    equal = MatchConfig("sum", ("tfidf", "phash"), (0.7,))
    assert _predicted(engine.evaluate(cfg)) == _predicted(engine.evaluate(equal))


@pytest.mark.parametrize("cfg", [
    MatchConfig("single", ("tfidf",), (1.0,), min2=(-1.0,), inb=(InbStage(-1.0, 1.0),
                                                                InbStage(1.0, -1.0))),
    MatchConfig("prob", ("tfidf", "phash"), (-1.0,), inb=(InbStage(1.0),), inb_exact=True),
    MatchConfig("union", ("tfidf", "phash"), (-1.0, 1.0), min2=(1.0, -1.0)),
    MatchConfig("sum", ("tfidf", "phash"), (1.0,), weights=(1e-6, 1000.0), min2=(-1.0,),
                inb=(InbStage(0.5, -1.0),)),
], ids=lambda c: c.label)
def test_configurations_at_the_edges_evaluate_to_strict_json(engine, cfg):
    m = engine.evaluate(cfg).metrics
    assert all(np.isfinite([m.f1, m.precision, m.recall]))
    json.dumps({"config": cfg.to_dict(), "metrics": m.to_dict()}, allow_nan=False)


# ------------------------------------------------------------------- the tuner's grids


def test_tuner_stops_at_the_top_of_the_range(engine, monkeypatch):
    """When F1 keeps rising with the threshold, the refined grid around 1.0 must not
    propose 1.001..1.01 (the old grid did, which MatchConfig now refuses)."""
    def rising(_engine, cfg, param, values):
        v = np.asarray(values, np.float64)
        return type("S", (), {"f1": v})()

    monkeypatch.setattr(tune_mod, "sweep", rising)
    monkeypatch.setattr(tune_mod, "threshold_min2_grid",
                        lambda st, gs, t, m: np.add.outer(np.asarray(t, float),
                                                          np.asarray(m, float)))
    out = tune_mod.tune(engine, MatchConfig("single", ("tfidf",), (0.5,)))
    assert out.thresholds == (1.0,)
    out = tune_mod.tune(engine, MatchConfig("single", ("tfidf",), (0.5,), min2=(0.4,)))
    assert out.thresholds == (1.0,) and out.min2 == (1.0,)


def test_tuning_min2_under_a_fixed_negative_threshold(engine):
    """Min2's start (threshold - 0.1) and its cap (<= threshold) at the bottom of the range:
    -1.05 is refused and an empty grid has no best value."""
    cfg = MatchConfig("union", ("tfidf", "phash"), (-0.95, -1.0), min2=(-1.0, -1.0))
    out = tune_mod.tune(engine, cfg, fixed={"threshold"})
    assert out.thresholds == (-0.95, -1.0)
    assert out.min2 is not None
    assert all(-1.0 <= m <= t for m, t in zip(out.min2, out.thresholds, strict=True))
