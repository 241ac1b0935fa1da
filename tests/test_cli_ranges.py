"""Thresholds at the ends of their range evaluate (the timing pass and --min2's default
stay inside it); values outside are one line."""

import json

import pytest

from explorer.cli import main


@pytest.mark.parametrize("flags", [["--threshold", "1.0"], ["--threshold", "0.98"],
                                   ["--threshold", "-1"],
                                   ["--threshold", "-0.95", "--min2", "--tune-on", "fold1"],
                                   ["--threshold", "-1", "--min2", "-1"]])
def test_thresholds_at_the_range_ends_evaluate_with_timing(tiny_bundle, capsys, flags):
    """The timing pass moves the threshold by +-0.05; at the ends of [-1, 1] it must stay
    inside (MatchConfig refuses 1.05), and --min2's default (threshold - 0.1) too."""
    assert main(["evaluate", str(tiny_bundle), "--mode", "tfidf", "--json", *flags]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["timing_ms"]["recompute_median"] is not None


@pytest.mark.parametrize("value,field", [("nan", "threshold"), ("inf", "threshold"),
                                         ("1e9", "threshold"), ("-1.5", "threshold")])
def test_bad_threshold_flag_is_one_line(tiny_bundle, capsys, value, field):
    assert main(["evaluate", str(tiny_bundle), "--mode", "tfidf", "--threshold", value]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"explorer: error: {field}: ") and "\n" not in err
