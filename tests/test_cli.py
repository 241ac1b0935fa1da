"""`explorer evaluate`: the JSON report agrees with the core engine, settings files round
trip, exports are consistent with the report, errors are one line with exit code 2, and
`--best` is at least as good as the single modalities it searches."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import WORDS, synthetic_table

from explorer.cli import main
from explorer.core.bundle import Bundle
from explorer.core.config import MatchConfig
from explorer.core.engine import Engine
from precompute.build import BuildOptions, build

REPORT_KEYS = {"scope", "tuned_on", "config", "metrics", "timing_ms"}
METRIC_KEYS = {"f1", "precision", "recall", "n_queries"}
TIMING_KEYS = {"recompute_median", "sweep", "inb_iteration"}


def evaluate(capsys, bundle: Path, *args: str) -> tuple[int, str, str]:
    rc = main(["evaluate", str(bundle), *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def evaluate_json(capsys, bundle: Path, *args: str) -> dict:
    rc, out, err = evaluate(capsys, bundle, *args, "--json")
    assert rc == 0, err
    return json.loads(out)  # exactly one JSON object, nothing else on stdout


def core_metrics(bundle: Path, scope: str, config: dict) -> dict:
    ev = Engine(Bundle.open(bundle), scope).evaluate(MatchConfig.from_dict(config))
    return dataclasses.asdict(ev.metrics)


def hard_table(seed: int) -> pd.DataFrame:
    """The synthetic table with a third of the titles and a third of the phashes replaced
    by noise, so that no single modality is perfect and fusions matter."""
    df = synthetic_table(n_groups=60, seed=seed)
    rng = np.random.default_rng(seed + 100)
    n = len(df)
    t = rng.random(n) < 0.35
    df.loc[t, "title"] = [" ".join(rng.choice(WORDS, 3, replace=False)) for _ in range(t.sum())]
    p = rng.random(n) < 0.35
    df.loc[p, "image_phash"] = [f"{int(rng.integers(0, 2**63)):016x}" for _ in range(p.sum())]
    return df


@pytest.fixture(scope="module")
def hard_bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hard")
    csv = root / "train.csv"
    hard_table(seed=2).to_csv(csv, index=False)
    return build(BuildOptions(csv=csv, out=root / "hard.bundle", k=20, progress=False))


# --------------------------------------------------------------------------- JSON report


def test_json_report_matches_the_core(tiny_bundle, capsys):
    out = evaluate_json(capsys, tiny_bundle, "--scope", "fold0", "--tune-on", "fold1",
                        "--mode", "tfidf")
    assert set(out) == REPORT_KEYS
    assert out["scope"] == "fold0"
    assert out["tuned_on"] == "fold1"
    assert set(out["metrics"]) == METRIC_KEYS
    assert set(out["timing_ms"]) == TIMING_KEYS
    assert out["timing_ms"]["inb_iteration"] is None  # no INB in this configuration
    assert out["timing_ms"]["recompute_median"] >= 0
    assert out["timing_ms"]["sweep"] >= 0
    assert out["config"]["mode"] == "tfidf"
    assert out["config"]["inb"] == []
    assert 0.0 < out["config"]["thresholds"][0] < 1.0  # tuned away from nothing
    b = Bundle.open(tiny_bundle)
    assert out["metrics"]["n_queries"] == len(b.scope_rows("fold0"))
    assert out["metrics"] == core_metrics(tiny_bundle, "fold0", out["config"])


def test_json_report_matches_the_core_on_a_harder_bundle(hard_bundle, capsys):
    out = evaluate_json(capsys, hard_bundle, "--scope", "fold0", "--tune-on", "fold1",
                        "--mode", "sum:tfidf,phash", "--inb", "1", "--no-timing")
    assert out["metrics"]["f1"] < 1.0
    assert len(out["config"]["inb"]) == 1
    assert out["metrics"] == core_metrics(hard_bundle, "fold0", out["config"])


def test_post_processing_flags_are_tuned_or_kept_and_match_the_core(hard_bundle, capsys):
    from explorer.core.post_tuning import MERGE_SIZES

    out = evaluate_json(capsys, hard_bundle, "--scope", "fold0", "--tune-on", "fold1",
                        "--mode", "tfidf", "--mutual", "--merge", "--chisel", "10", "0.95",
                        "--no-timing")
    post = out["config"]["post"]
    assert set(post) == {"mutual", "merge", "chisel"}
    assert post["chisel"] == {"size": 10, "threshold": 0.95}  # given: kept
    assert post["merge"]["max_size"] in MERGE_SIZES  # tuned on its grid
    assert out["metrics"] == core_metrics(hard_bundle, "fold0", out["config"])


def test_fixed_threshold_is_kept(tiny_bundle, capsys):
    out = evaluate_json(capsys, tiny_bundle, "--scope", "fold2", "--mode", "phash",
                        "--threshold", "0.8", "--no-timing")
    assert out["config"]["thresholds"] == [0.8]
    assert out["tuned_on"] is None
    assert out["timing_ms"] == {}
    assert out["metrics"] == core_metrics(tiny_bundle, "fold2", out["config"])


@pytest.mark.parametrize("whole_report", [False, True])
def test_settings_file_round_trip(hard_bundle, tmp_path, capsys, whole_report):
    first = evaluate_json(capsys, hard_bundle, "--scope", "fold0", "--tune-on", "fold1",
                          "--mode", "union:tfidf,phash", "--no-timing")
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(first if whole_report else first["config"]),
                        encoding="utf-8")
    again = evaluate_json(capsys, hard_bundle, "--scope", "fold0", "--settings", str(settings),
                          "--no-timing")
    assert again["tuned_on"] is None
    assert again["config"] == first["config"]
    assert again["metrics"] == first["metrics"]


def test_settings_file_on_the_fixture(tiny_bundle, tmp_path, capsys):
    first = evaluate_json(capsys, tiny_bundle, "--scope", "fold0", "--tune-on", "fold1",
                          "--mode", "tfidf")
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(first["config"]), encoding="utf-8")
    again = evaluate_json(capsys, tiny_bundle, "--settings", str(settings))
    assert again["scope"] == "fold0"
    assert again["config"] == first["config"]
    assert again["metrics"] == first["metrics"]


# --------------------------------------------------------------------------- exports


@pytest.mark.parametrize("bundle_name,scope,mode_args", [
    ("tiny", "fold0", ["--mode", "tfidf", "--tune-on", "fold1"]),
    ("hard", "fold0", ["--mode", "tfidf", "--threshold", "0.3"]),
    ("hard", "fold3", ["--mode", "union:tfidf,phash", "--threshold", "0.5", "0.7"]),
])
def test_exports(request, tmp_path, capsys, bundle_name, scope, mode_args):
    bundle = request.getfixturevalue(f"{bundle_name}_bundle")
    preds_csv, metrics_csv = tmp_path / "pred.csv", tmp_path / "metrics.csv"
    errors_csv, confused_csv = tmp_path / "errors.csv", tmp_path / "confused.csv"
    audit_csv = tmp_path / "audit.csv"
    out = evaluate_json(capsys, bundle, "--scope", scope, *mode_args, "--no-timing",
                        "--export-csv", str(preds_csv), "--export-metrics", str(metrics_csv),
                        "--export-errors", str(errors_csv), "--export-confused",
                        str(confused_csv), "--export-audit", str(audit_csv))
    b = Bundle.open(bundle)
    rows = b.scope_rows(scope)
    ids = b.items["posting_id"].to_numpy()[rows].tolist()
    labels = dict(zip(b.items["posting_id"], b.items["label_group"], strict=True))
    in_scope = set(ids)

    preds = pd.read_csv(preds_csv, dtype=str, keep_default_na=False)
    assert list(preds.columns) == ["posting_id", "matches"]
    assert preds["posting_id"].tolist() == ids
    f1s = []
    for pid, matches in zip(preds["posting_id"], preds["matches"], strict=True):
        got = matches.split(" ")
        assert got[0] == pid
        assert len(set(got)) == len(got)
        assert set(got) <= in_scope
        truth = {p for p in ids if labels[p] == labels[pid]}
        f1s.append(2 * len(truth & set(got)) / (len(truth) + len(got)))
    # the predictions alone reproduce the reported mean F1
    assert np.mean(f1s) == pytest.approx(out["metrics"]["f1"], abs=1e-12)

    per_query = pd.read_csv(metrics_csv)
    assert {"posting_id", "precision", "recall", "f1", "n_pred"} <= set(per_query.columns)
    assert per_query["posting_id"].astype(str).tolist() == ids
    assert per_query["f1"].mean() == pytest.approx(out["metrics"]["f1"], abs=1e-12)
    assert per_query["precision"].mean() == pytest.approx(out["metrics"]["precision"],
                                                          abs=1e-12)
    assert per_query["recall"].mean() == pytest.approx(out["metrics"]["recall"], abs=1e-12)
    assert per_query["n_pred"].tolist() == [len(m.split(" ")) for m in preds["matches"]]
    # every error pair behind those metrics, and nothing else
    errors = pd.read_csv(errors_csv, dtype={"posting_id": str, "neighbour_id": str})
    fp = errors[errors["kind"] == "false positive"]
    missed = errors[errors["kind"] == "missed"]
    assert len(fp) == (per_query["n_pred"] - per_query["true_positives"]).sum()
    assert len(missed) == (per_query["group_size"] - per_query["true_positives"]).sum()
    predicted = {(pid, m) for pid, ms in zip(preds["posting_id"], preds["matches"], strict=True)
                 for m in ms.split(" ")}
    assert all(pair in predicted for pair in zip(fp["posting_id"], fp["neighbour_id"],
                                                  strict=True))
    assert not any(pair in predicted for pair in zip(missed["posting_id"],
                                                      missed["neighbour_id"], strict=True))
    # every false positive joins two groups: the confused-groups table counts them all
    confused = pd.read_csv(confused_csv)
    assert confused["fp_pairs"].sum() == len(fp)
    # the audit: its merge rows are the confused groups, on their coverage, best first
    found = pd.read_csv(audit_csv, dtype={"label_group": str, "other_label_group": str})
    assert found["score"].is_monotonic_decreasing and found["score"].between(0, 1).all()
    merges = found[found["kind"] == "merge"]
    assert len(merges) == len(confused)
    assert sorted(merges["score"].round(9)) == sorted(confused["coverage"].round(9))
    assert (confused["coverage"] > 0).all() and (confused["coverage"] <= 1).all()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# --------------------------------------------------------------------------- errors


ERRORS = {
    # id: (arguments after the bundle, substrings of the message)
    "unknown-modality": (["--mode", "clip", "--threshold", "0.5"], ["clip"]),
    "unknown-modality-tuned": (["--mode", "clip", "--tune-on", "fold1"], ["clip"]),
    "union-threshold-count": (["--mode", "union:tfidf,phash", "--threshold", "0.5"],
                              ["threshold"]),
    "no-threshold-no-tune": (["--mode", "tfidf"], ["threshold", "--tune-on"]),
    "unknown-scope": (["--scope", "fold9", "--mode", "tfidf", "--threshold", "0.5"],
                      ["fold9"]),
    "unknown-tune-scope": (["--mode", "tfidf", "--tune-on", "valid"], ["valid"]),
    "no-mode": (["--threshold", "0.5"], ["--mode"]),
    "post-untuned": (["--mode", "tfidf", "--threshold", "0.5", "--mutual"], ["mutual",
                                                                             "--tune-on"]),
    "merge-one-value": (["--mode", "tfidf", "--threshold", "0.5", "--merge", "3"],
                        ["--merge", "TARGET MAX"]),
    "chisel-size-fraction": (["--mode", "tfidf", "--threshold", "0.5", "--chisel", "2.5",
                              "0.9"], ["chisel size", "whole number"]),
    "mutual-nan": (["--mode", "tfidf", "--threshold", "0.5", "--mutual", "nan"], ["mutual"]),
    "export-folder-missing": (["--mode", "tfidf", "--threshold", "0.5", "--export-errors",
                               "/nonexistent/errors.csv"], ["--export-errors", "does not exist"]),
}


def _assert_one_line_error(rc: int, out: str, err: str, parts: list[str]) -> None:
    assert rc == 2
    assert out == ""
    assert err.startswith("explorer: error:")
    assert err.endswith("\n")
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    for part in parts:
        assert part in err, (part, err)


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_are_one_line(tiny_bundle, capsys, case):
    args, parts = ERRORS[case]
    rc, out, err = evaluate(capsys, tiny_bundle, *args, "--json")
    _assert_one_line_error(rc, out, err, parts)


def test_missing_bundle_folder(tmp_path, capsys):
    missing = tmp_path / "no.bundle"
    rc, out, err = evaluate(capsys, missing, "--mode", "tfidf", "--threshold", "0.5", "--json")
    _assert_one_line_error(rc, out, err, [str(missing)])


def test_unreadable_settings_file(tiny_bundle, tmp_path, capsys):
    settings = tmp_path / "s.json"
    settings.write_text("{not json", encoding="utf-8")
    rc, out, err = evaluate(capsys, tiny_bundle, "--settings", str(settings), "--json")
    _assert_one_line_error(rc, out, err, [str(settings)])


# --------------------------------------------------------------------------- --best


def test_best_reports_its_pick_on_the_evaluation_scope(tiny_bundle, capsys):
    best = evaluate_json(capsys, tiny_bundle, "--best", "--tune-on", "fold1")
    assert best["scope"] == "fold0"
    assert best["tuned_on"] == "fold1"
    assert best["metrics"] == core_metrics(tiny_bundle, "fold0", best["config"])
    assert best["best_candidates"][0]["config"] == best["config"]


def test_best_wins_on_its_tuning_scope(hard_bundle, capsys):
    """What the search guarantees: on the scope it tunes on, its pick is at least as good
    as every configuration it contains, the tuned single modalities among them."""
    best = evaluate_json(capsys, hard_bundle, "--best", "--tune-on", "fold1", "--no-timing")
    tuned_f1 = best["best_candidates"][0]["tuned_f1"]
    assert core_metrics(hard_bundle, "fold1", best["config"])["f1"] == pytest.approx(
        tuned_f1, abs=1e-12)
    assert best["metrics"] == core_metrics(hard_bundle, "fold0", best["config"])
    for mode in ("tfidf", "phash", "union:tfidf,phash"):
        single = evaluate_json(capsys, hard_bundle, "--mode", mode, "--tune-on", "fold1",
                               "--no-timing")
        on_tuning_scope = core_metrics(hard_bundle, "fold1", single["config"])["f1"]
        assert on_tuning_scope < 1.0
        assert tuned_f1 >= on_tuning_scope - 1e-9, mode
