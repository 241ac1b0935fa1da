"""Issue 9's classes of bad input at the `explorer` command line and in the app's
non-interactive mode: every one ends within seconds with one line naming the file, field
or option and exit status 2, never a traceback, a dialog or a hang; exports never replace
what is not a regular file and never leave a temporary file behind; a figure tuned on the
data it reports says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from explorer.cli import main

TIMEOUT_S = 120


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(list(args))
    got = capsys.readouterr()
    return rc, got.out, got.err


def one_line(rc: int, err: str, *parts: str) -> None:
    assert rc == 2, err
    assert err.startswith("explorer: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for part in parts:
        assert part in err, (part, err)


# --------------------------------------------------------------------------- settings files

BAD_SETTINGS = {
    # id: (file bytes, a part of the message)
    "json-list": (b'[{"mode": "tfidf"}]', "JSON object"),
    "json-string": (b'"tfidf"', "JSON object"),
    "not-utf8": (b'{"config": {"mode": "tfidf\xff", "thresholds": [0.5]}}', "UTF-8"),
    "nan-threshold": (b'{"config": {"mode": "tfidf", "thresholds": [NaN]}}', "NaN"),
    "no-config": (b'{"scope": "fold0"}', "config"),
    "pinned-not-object": (b'{"config": {"mode": "tfidf", "thresholds": [0.5]}, "pinned": 3}',
                          "pinned"),
    "scope-not-string": (b'{"config": {"mode": "tfidf", "thresholds": [0.5]}, "scope": 0}',
                         "scope"),
}


@pytest.mark.parametrize("case", list(BAD_SETTINGS))
def test_bad_settings_files_are_one_line(tiny_bundle, tmp_path, capsys, case):
    data, part = BAD_SETTINGS[case]
    path = tmp_path / "s.json"
    path.write_bytes(data)
    rc, out, err = run_cli(capsys, "evaluate", str(tiny_bundle), "--settings", str(path),
                           "--json")
    one_line(rc, err, str(path), part)
    assert out == ""


def test_settings_that_are_not_a_regular_file_do_not_block(tiny_bundle, tmp_path, capsys):
    fifo = tmp_path / "settings.fifo"
    os.mkfifo(fifo)
    rc, _, err = run_cli(capsys, "evaluate", str(tiny_bundle), "--settings", str(fifo))
    one_line(rc, err, str(fifo), "not a regular file")
    rc, _, err = run_cli(capsys, "evaluate", str(tiny_bundle), "--settings", str(tmp_path))
    one_line(rc, err, str(tmp_path))


def test_settings_naming_a_modality_the_bundle_lacks(tiny_bundle, tmp_path, capsys):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"config": {"mode": "clip", "thresholds": [0.5]}}))
    rc, _, err = run_cli(capsys, "evaluate", str(tiny_bundle), "--settings", str(path))
    one_line(rc, err, str(path), "clip")


# --------------------------------------------------------------------------- exports


def test_exports_refuse_targets_that_are_not_regular_files(tiny_bundle, tmp_path, capsys):
    fifo = tmp_path / "pred.fifo"
    os.mkfifo(fifo)
    folder = tmp_path / "a-folder"
    folder.mkdir()
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "elsewhere.csv")
    for target in (fifo, folder, link):
        rc, _, err = run_cli(capsys, "evaluate", str(tiny_bundle), "--mode", "tfidf",
                             "--threshold", "0.5", "--export-csv", str(target))
        one_line(rc, err, "--export-csv", str(target), "not a regular file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-folder", "link.csv", "pred.fifo"]
    assert fifo.is_fifo() and folder.is_dir() and list(folder.iterdir()) == []
    assert link.is_symlink() and not (tmp_path / "elsewhere.csv").exists()


def test_an_export_that_fails_midway_leaves_no_temporary_file(tmp_path, monkeypatch):
    import pandas as pd

    from explorer.core import export

    target = tmp_path / "out.csv"
    target.write_text("the analyst's old file\n")

    def boom(self, *a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", boom)
    with pytest.raises(OSError):
        export.write_csv(pd.DataFrame({"a": [1]}), target)
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    assert target.read_text() == "the analyst's old file\n"


def test_two_exports_into_one_file_are_refused(tiny_bundle, tmp_path, capsys):
    out = tmp_path / "x.csv"
    rc, _, err = run_cli(capsys, "evaluate", str(tiny_bundle), "--mode", "tfidf",
                         "--threshold", "0.5", "--export-csv", str(out),
                         "--export-metrics", str(out))
    one_line(rc, err, "same file")
    assert not out.exists()


# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize("args, part", [
    (["--mode", "tfidf", "--threshold", "nan"], "threshold"),
    (["--mode", "tfidf", "--threshold", "inf"], "threshold"),
    (["--mode", "tfidf", "--threshold", "1e9"], "threshold"),
    (["--mode", "tfidf", "--threshold", "0.5", "--min2", "nan"], "Min2"),
    (["--mode", "tfidf", "--threshold", "0.5", "--inb", "1", "--inb-threshold=-inf"],
     "INB"),
    (["--mode", "sum:tfidf,phash:nan,1", "--threshold", "0.5"], "weight"),
    (["--mode", "tfidf", "--threshold", "0.5", "--inb", "-1"], "--inb"),
    (["--mode", "tfidf", "--threshold", "0.5", "--inb", "9"], "--inb"),
])
def test_numbers_out_of_range_are_refused(tiny_bundle, capsys, args, part):
    rc, out, err = run_cli(capsys, "evaluate", str(tiny_bundle), *args, "--json")
    one_line(rc, err, part)
    assert out == ""


# --------------------------------------------------------------------------- tuning honesty


def test_tuning_on_the_reported_scope_is_flagged(tiny_bundle, capsys):
    rc, out, err = run_cli(capsys, "evaluate", str(tiny_bundle), "--mode", "tfidf",
                           "--scope", "fold0", "--tune-on", "fold0", "--json", "--no-timing")
    assert rc == 0 and "warning" in err and "fold0" in err and "optimistic" in err
    assert json.loads(out)["warnings"]
    rc, out, err = run_cli(capsys, "evaluate", str(tiny_bundle), "--best", "--no-timing")
    assert rc == 0 and "warning" in err and "best configuration" in err
    rc, out, err = run_cli(capsys, "evaluate", str(tiny_bundle), "--mode", "tfidf",
                           "--tune-on", "fold1", "--json", "--no-timing")
    assert rc == 0 and "warning" not in err and "warnings" not in json.loads(out)


# --------------------------------------------------------------------------- the app, headless


def _app(*args: str, env_home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_CONFIG_HOME": str(env_home),
           "XDG_CACHE_HOME": str(env_home)}
    code = "import sys; from explorer.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                          text=True, timeout=TIMEOUT_S, env=env)


@pytest.mark.parametrize("case", ["missing", "not-a-bundle", "damaged", "bad-settings"])
def test_screenshot_mode_never_opens_a_dialog(tiny_bundle, tmp_path, case):
    """Offscreen, a modal dialog waits forever: each of these once hung the process."""
    png = tmp_path / "shot.png"
    args: list[str]
    if case == "missing":
        args = [str(tmp_path / "nowhere.bundle")]
    elif case == "not-a-bundle":
        args = [str(tmp_path)]
    elif case == "damaged":
        import shutil

        copy = tmp_path / "copy.bundle"
        shutil.copytree(tiny_bundle, copy)
        (copy / "items.parquet").write_bytes(b"not parquet")
        args = [str(copy)]
    else:
        bad = tmp_path / "s.json"
        bad.write_text('{"config": {"mode": "tfidf", "thresholds": [1e9]}}')
        args = [str(tiny_bundle), "--settings", str(bad)]
    done = _app(*args, "--screenshot", str(png), env_home=tmp_path / "home")
    assert done.returncode == 2, done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("explorer:")]
    assert len(lines) == 1 and lines[0].startswith("explorer: error:"), done.stderr
    assert "Traceback" not in done.stderr
    assert not png.exists()


def test_deeply_nested_json_is_one_line(tiny_bundle, tmp_path, capsys):
    """json's parser recurses: "[[[[..." deeper than its stack was a RecursionError."""
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000)
    rc, _, err = run_cli(capsys, "evaluate", str(tiny_bundle), "--settings", str(path))
    one_line(rc, err, str(path), "nested too deeply")
