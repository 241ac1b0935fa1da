"""`precompute build` never destroys what it did not make (issue 9): --force replaces only
a bundle that holds none of the inputs; a build locks its target, re-checks it at the
commit, cleans up on SIGTERM, and the next build removes what a SIGKILLed one left; file
system errors are one line. Real builds run in subprocesses for the signal tests."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_table
from PIL import Image

from explorer.core.bundle import Bundle, BundleError
from precompute import build as build_module
from precompute import cli as precompute_cli
from precompute.build import BuildOptions, build
from precompute.errors import InputError

TIMEOUT_S = 60

# A real `precompute build` that pauses (holding its lock, its temporary folder written)
# just before the neighbour search, and says so through a flag file.
PAUSED_BUILD = """
import sys, time
from pathlib import Path
import precompute.build as b
flag = Path(sys.argv[1])
search = b._search_scopes
def paused(*args, **kw):
    flag.write_text("paused")
    time.sleep(120)
    return search(*args, **kw)
b._search_scopes = paused
from precompute.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.fixture
def csv(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    path = data / "train.csv"
    synthetic_table(n_groups=80).to_csv(path, index=False)  # a few hundred rows
    return path


@pytest.fixture
def parent(tmp_path: Path) -> Path:
    d = tmp_path / "bundles"
    d.mkdir()
    return d


def cli(capsys, *argv: str) -> tuple[int, str]:
    rc = precompute_cli.main(list(argv))
    got = capsys.readouterr()
    return rc, got.err


def assert_one_line_error(rc: int, err: str, *parts: str) -> None:
    assert rc == 2, err
    assert err.startswith("precompute: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for part in parts:
        assert part in err, (part, err)


def build_args(csv: Path, out: Path, *more: str) -> list[str]:
    return ["build", "--csv", str(csv), "--out", str(out), "--k", "5", "--quiet", *more]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def make_bundle(csv: Path, out: Path) -> Path:
    return build(BuildOptions(csv=csv, out=out, k=5, progress=False))


# --------------------------------------------------------------------------- --force


def test_force_refuses_a_folder_that_is_not_a_bundle(capsys, csv, parent):
    out = parent / "results"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "notes.txt").write_text("mine")
    (out / "manifest.json").write_text("{not json")  # a manifest that does not parse
    before = snapshot(out)
    rc, err = cli(capsys, *build_args(csv, out, "--force"))
    assert_one_line_error(rc, err, str(out), "not a bundle")
    assert snapshot(out) == before
    assert sorted(p.name for p in parent.iterdir()) == ["results"]


def test_force_refuses_a_plain_file(capsys, csv, parent):
    out = parent / "b.bundle"
    out.write_text("precious")
    rc, err = cli(capsys, *build_args(csv, out, "--force"))
    assert_one_line_error(rc, err, str(out), "file")
    assert out.read_text() == "precious"
    assert sorted(p.name for p in parent.iterdir()) == ["b.bundle"]


def test_force_refuses_the_folder_holding_the_csv(capsys, csv):
    before = snapshot(csv.parent)
    rc, err = cli(capsys, *build_args(csv, csv.parent, "--force"))
    assert_one_line_error(rc, err, str(csv.parent))
    assert snapshot(csv.parent) == before


def test_force_refuses_a_bundle_that_holds_the_csv(capsys, csv, parent):
    out = make_bundle(csv, parent / "b.bundle")
    inner = out / "copy" / "train.csv"
    inner.parent.mkdir()
    shutil.copy(csv, inner)
    before = snapshot(out)
    rc, err = cli(capsys, *build_args(inner, out, "--force"))
    assert_one_line_error(rc, err, str(out), str(inner))
    assert snapshot(out) == before


def test_force_refuses_a_bundle_that_holds_the_images(capsys, csv, parent):
    out = make_bundle(csv, parent / "b.bundle")
    images = out / "pictures"
    images.mkdir()
    for name in pd.read_csv(csv)["image"]:
        Image.new("RGB", (8, 8), (200, 10, 10)).save(images / name, format="PNG")
    before = snapshot(out)
    rc, err = cli(capsys, *build_args(csv, out, "--images", str(images), "--force"))
    assert_one_line_error(rc, err, str(out), str(images))
    assert snapshot(out) == before


def test_force_still_replaces_a_bundle(capsys, csv, parent):
    out = make_bundle(csv, parent / "b.bundle")
    other = csv.with_name("small.csv")
    synthetic_table(n_groups=10, seed=5).to_csv(other, index=False)
    rc, err = cli(capsys, *build_args(other, out, "--force"))
    assert rc == 0, err
    assert Bundle.open(out).n_items == len(synthetic_table(n_groups=10, seed=5))
    assert sorted(p.name for p in parent.iterdir()) == ["b.bundle"]


def test_demo_force_refuses_a_folder_that_is_not_a_bundle(capsys, tmp_path):
    out = tmp_path / "demo"
    target = out / "demo.bundle"
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    rc, err = cli(capsys, "demo", "--out", str(out), "--postings", "120", "--force", "--quiet")
    assert_one_line_error(rc, err, str(target), "not a bundle")
    assert (target / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == ["demo.bundle"]  # refused before work


def test_demo_refuses_to_overwrite_a_csv_it_did_not_write(capsys, tmp_path):
    out = tmp_path / "project"
    (out / "data").mkdir(parents=True)
    mine = out / "data" / "train.csv"
    mine.write_text("posting_id,image,title\n")
    rc, err = cli(capsys, "demo", "--out", str(out), "--postings", "120", "--quiet")
    assert_one_line_error(rc, err, str(mine))
    assert mine.read_text() == "posting_id,image,title\n"
    assert sorted(p.name for p in (out / "data").iterdir()) == ["train.csv"]


# --------------------------------------------------------------------------- the lock


def start_paused_build(tmp_path: Path, flag: Path, argv: list[str]) -> subprocess.Popen:
    script = tmp_path / "paused_build.py"
    script.write_text(PAUSED_BUILD)
    proc = subprocess.Popen([sys.executable, str(script), str(flag), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + TIMEOUT_S
    while not flag.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"the build did not reach its pause: rc {proc.returncode}, {err}")
        time.sleep(0.05)
    return proc


def test_a_second_build_of_the_same_target_is_refused(capsys, tmp_path, csv, parent):
    out = parent / "b.bundle"
    first = start_paused_build(tmp_path, tmp_path / "flag", build_args(csv, out))
    try:
        rc, err = cli(capsys, *build_args(csv, out))
        assert_one_line_error(rc, err, str(out), ".b.bundle.lock")
        rc, err = cli(capsys, *build_args(csv, out, "--force"))
        assert_one_line_error(rc, err, ".b.bundle.lock")
    finally:
        first.terminate()
        first.communicate(timeout=TIMEOUT_S)
    assert not out.exists()


def test_a_folder_made_during_the_build_is_not_replaced(monkeypatch, csv, parent):
    out = parent / "b.bundle"
    search = build_module._search_scopes

    def someone_writes_there(*args, **kw):
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        return search(*args, **kw)

    monkeypatch.setattr(build_module, "_search_scopes", someone_writes_there)
    for force in (False, True):  # not a bundle: even --force never replaces it
        with pytest.raises((InputError, BundleError)) as info:
            build(BuildOptions(csv=csv, out=out, k=5, progress=False, force=force))
        assert str(out) in str(info.value) and "\n" not in str(info.value)
        assert (out / "notes.txt").read_text() == "mine"
        assert sorted(p.name for p in parent.iterdir()) == ["b.bundle"]
        shutil.rmtree(out)


# --------------------------------------------------------------------------- signals


def test_sigterm_removes_the_temporary_folder(tmp_path, csv, parent):
    out = parent / "b.bundle"
    proc = start_paused_build(tmp_path, tmp_path / "flag", build_args(csv, out))
    hidden = [p.name for p in parent.iterdir()]
    assert any(n.startswith(".b.bundle.") for n in hidden), hidden  # it was writing
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=TIMEOUT_S)
    assert proc.returncode == 143, err
    assert err.count("\n") == 1 and "terminated" in err and "Traceback" not in err, err
    assert list(parent.iterdir()) == []


def _marker(folder: Path, target: str, pid: int) -> None:
    folder.mkdir()
    (folder / ".precompute-build").write_text(json.dumps(
        {"program": "precompute build", "target": target, "pid": pid,
         "host": socket.gethostname(), "started": "2024-01-01T00:00:00"}))
    (folder / "items.parquet").write_bytes(b"half written")


def test_the_next_build_removes_what_a_killed_build_left(capsys, tmp_path, csv, parent):
    out = parent / "b.bundle"
    proc = start_paused_build(tmp_path, tmp_path / "flag", build_args(csv, out))
    proc.kill()
    proc.communicate(timeout=TIMEOUT_S)
    left = sorted(p.name for p in parent.iterdir() if p.is_dir())
    assert len(left) == 1 and left[0].startswith(".b.bundle."), left  # SIGKILL: no cleanup
    # what is not a dead build's of this target stays
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _marker(parent / ".b.bundle.alive", "b.bundle", alive.pid)
        _marker(parent / ".b.bundle.other", "b.bundle.other", proc.pid)
        (parent / ".b.bundle.mine").mkdir()
        (parent / ".b.bundle.mine" / "notes.txt").write_text("no marker: not ours")
        rc, err = cli(capsys, *build_args(csv, out))
        assert rc == 0, err
    finally:
        alive.kill()
        alive.wait()
    assert sorted(p.name for p in parent.iterdir()) == [
        ".b.bundle.alive", ".b.bundle.mine", ".b.bundle.other", "b.bundle"]
    assert (parent / ".b.bundle.mine" / "notes.txt").read_text() == "no marker: not ours"
    assert Bundle.open(out).n_items == len(pd.read_csv(csv))


# --------------------------------------------------------------------------- file errors


def test_out_under_a_regular_file_is_one_line(capsys, csv, tmp_path):
    blocker = tmp_path / "somefile"
    blocker.write_text("x")
    rc, err = cli(capsys, *build_args(csv, blocker / "bundle"))
    assert_one_line_error(rc, err, str(blocker))
    assert blocker.read_text() == "x"


def test_any_os_error_is_one_line_naming_the_path(capsys, monkeypatch, csv, parent):
    def denied(_opts):
        raise PermissionError(13, "Permission denied", "/srv/shared/bundles")

    monkeypatch.setattr(build_module, "build", denied)
    rc, err = cli(capsys, *build_args(csv, parent / "b.bundle"))
    assert_one_line_error(rc, err, "/srv/shared/bundles", "Permission denied")


def test_a_decompression_bomb_is_skipped_not_a_traceback(capsys, monkeypatch, tmp_path,
                                                          parent):
    df = synthetic_table(n_groups=6).drop(columns="image_phash")
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name in df["image"]:
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), np.uint8)).save(
            images / name, format="PNG")
    bomb = 3
    Image.new("L", (200, 200)).save(images / df["image"].iloc[bomb], format="PNG")
    csv = tmp_path / "noph.csv"
    df.to_csv(csv, index=False)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 200 x 200 > twice this: a bomb
    out = parent / "b.bundle"
    rc, err = cli(capsys, *build_args(csv, out, "--images", str(images), "--no-thumbnails"))
    assert rc == 0, err
    b = Bundle.open(out)
    assert b.items["image_phash"].iloc[bomb] == ""
    assert (b.items["image_phash"].drop(index=bomb) != "").all()
    skipped = b.manifest.modality("phash").params["skipped"]
    assert [s["row"] for s in skipped] == [bomb] and "too large" in skipped[0]["reason"]


def test_a_refused_build_leaves_no_folder_it_made(csv, tmp_path):
    out = tmp_path / "new" / "deeper" / "b.bundle"
    bad = csv.with_name("bad.csv")
    bad.write_text("posting_id,image\n")
    with pytest.raises(InputError):
        build(BuildOptions(csv=bad, out=out, progress=False))
    assert not (tmp_path / "new").exists()
    assert os.listdir(tmp_path) == ["data"]


def test_inputs_that_are_not_regular_files_never_block(tmp_path):
    """A FIFO as --csv, or as the marker of a temporary folder, is refused or ignored at
    once instead of blocking the read (the loader's rule, applied to precompute's reads)."""
    import os
    import threading

    from explorer.core.bundle.target import MARKER, read_marker
    from precompute.dataset import read_dataset
    from precompute.errors import InputError

    def within_seconds(fn):
        """fn's result or exception; a failure (not a hung suite) if it blocks."""
        out: list = []

        def run():
            try:
                out.append(fn())
            except Exception as exc:
                out.append(exc)

        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(20)
        assert out, "blocked on a FIFO"
        return out[0]

    fifo = tmp_path / "train.csv"
    os.mkfifo(fifo)
    got = within_seconds(lambda: read_dataset(fifo))
    assert isinstance(got, InputError) and "not a regular file" in str(got)
    folder = tmp_path / ".x.bundle.abcd"
    folder.mkdir()
    os.mkfifo(folder / MARKER)
    assert within_seconds(lambda: read_marker(folder)) is None
    from explorer.core.bundle import BundleError
    from explorer.core.bundle.target import TargetLock, lock_path

    out = tmp_path / "y.bundle"
    os.mkfifo(lock_path(out))
    got = within_seconds(lambda: TargetLock(out).acquire())
    assert isinstance(got, BundleError) and "not a regular file" in str(got)
