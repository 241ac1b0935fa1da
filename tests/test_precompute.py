"""`precompute build`: input checking (one-line InputError naming file and line, nothing
left behind), unlabelled test sets, phashes computed from images, and the command line."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
import pytest
from conftest import synthetic_table
from PIL import Image

from explorer.core.bundle import Bundle
from precompute import cli as precompute_cli
from precompute.build import BuildOptions, build
from precompute.errors import InputError

COLUMNS = ("posting_id", "image", "image_phash", "title", "label_group")


def line_of(row: int) -> int:
    """CSV line of data row `row`: one header line, lines counted from 1."""
    return row + 2


def names_line(msg: str, line: int) -> bool:
    return re.search(rf"\bline {line}\b", msg) is not None


def assert_empty_folder(folder: Path) -> None:
    """No bundle and no hidden temporary folder were left behind."""
    assert [p.name for p in folder.iterdir()] == []


@pytest.fixture
def out_dir(tmp_path) -> Path:
    """An empty parent folder for the bundle, apart from the CSV's folder."""
    d = tmp_path / "bundles"
    d.mkdir()
    return d


def build_into(csv: Path, out_dir: Path, **kw) -> Path:
    return build(BuildOptions(csv=csv, out=out_dir / "b.bundle", k=8, progress=False, **kw))


# --------------------------------------------------------------------------- bad inputs


def _write_df(df: pd.DataFrame, path: Path) -> None:
    df.to_csv(path, index=False)


def _no_title(path: Path) -> dict:
    _write_df(synthetic_table(20).drop(columns="title"), path)
    return {"parts": ["title", "missing required column"]}


def _duplicate_id(path: Path) -> dict:
    df = synthetic_table(20)
    first, dup = 3, 11
    df.loc[dup, "posting_id"] = df.loc[first, "posting_id"]
    _write_df(df, path)
    return {"parts": ["duplicate posting_id", df.loc[first, "posting_id"]],
            "lines": [line_of(dup), line_of(first)]}


def _not_utf8(path: Path) -> dict:
    df = synthetic_table(20)
    row = 9
    df.loc[row, "title"] = "kopi MARKER susu"
    raw = df.to_csv(index=False).encode("utf-8").replace(b"MARKER", b"caf\xff")
    path.write_bytes(raw)
    return {"parts": ["UTF-8"], "lines": [line_of(row)]}


def _bad_phash(path: Path) -> dict:
    df = synthetic_table(20)
    row = 6
    df.loc[row, "image_phash"] = "xyz"
    _write_df(df, path)
    return {"parts": ["image_phash", "'xyz'"], "lines": [line_of(row)]}


def _empty_file(path: Path) -> dict:
    path.write_bytes(b"")
    return {"parts": ["empty"]}


def _header_only(path: Path) -> dict:
    path.write_text(",".join(COLUMNS) + "\n", encoding="utf-8")
    return {"parts": ["no data rows"]}


def _empty_label(path: Path) -> dict:
    df = synthetic_table(20)
    row = 14
    df["label_group"] = df["label_group"].astype(object)
    df.loc[row, "label_group"] = ""
    _write_df(df, path)
    return {"parts": ["label_group", "empty"], "lines": [line_of(row)]}


def _four_groups(path: Path) -> dict:
    _write_df(synthetic_table(n_groups=4), path)
    return {"parts": ["label_group", "4"]}


BAD_INPUTS: dict[str, Callable[[Path], dict]] = {
    "missing-title-column": _no_title,
    "duplicate-posting-id": _duplicate_id,
    "non-utf8": _not_utf8,
    "malformed-phash": _bad_phash,
    "empty-file": _empty_file,
    "header-only": _header_only,
    "empty-label-group": _empty_label,
    "fewer-than-5-groups": _four_groups,
}


def _build_bad(case: str, tmp_path: Path, out_dir: Path) -> tuple[str, dict, Path]:
    csv = tmp_path / "bad.csv"
    expect = BAD_INPUTS[case](csv)
    with pytest.raises(InputError) as info:
        build_into(csv, out_dir)
    return str(info.value), expect, csv


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_naming_the_problem(case, tmp_path, out_dir):
    msg, expect, _ = _build_bad(case, tmp_path, out_dir)
    assert "\n" not in msg
    for part in expect["parts"]:
        assert part in msg, (part, msg)
    for line in expect.get("lines", []):
        assert names_line(msg, line), (line, msg)
    assert_empty_folder(out_dir)


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_message_names_the_file(case, tmp_path, out_dir):
    msg, _, csv = _build_bad(case, tmp_path, out_dir)
    assert str(csv) in msg


def test_error_inside_the_writer_leaves_nothing(tmp_path, out_dir):
    # every title is a stop word: TF-IDF fails after items and phashes were written
    df = synthetic_table(20)
    df["title"] = "the and of"
    csv = tmp_path / "stop.csv"
    df.to_csv(csv, index=False)
    with pytest.raises(InputError, match="title"):
        build_into(csv, out_dir)
    assert_empty_folder(out_dir)


def test_good_input_builds_in_the_same_setup(make_csv, out_dir):
    """Control for the tests above: the same helper on a good table does write a bundle."""
    out = build_into(make_csv(synthetic_table(20)), out_dir)
    assert [p.name for p in out_dir.iterdir()] == ["b.bundle"]
    assert Bundle.open(out).n_items == len(synthetic_table(20))


# --------------------------------------------------------------------------- test sets


def test_unlabelled_csv_builds_scope_all_only(make_csv, out_dir, capsys):
    df = synthetic_table(30).drop(columns="label_group")
    out = build_into(make_csv(df, "test.csv"), out_dir)
    b = Bundle.open(out)
    assert b.manifest.scopes == ("all",)
    assert set(b.manifest.graphs) == {"all"}
    assert b.manifest.dataset["has_labels"] is False
    assert not b.manifest.has_labels
    assert (b.folds == -1).all()
    assert b.items["label_group"].isna().all()
    assert b.items["posting_id"].tolist() == df["posting_id"].tolist()

    from explorer.cli import main

    rc = main(["evaluate", str(out), "--mode", "tfidf", "--threshold", "0.5", "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    report = json.loads(captured.out)
    assert report["scope"] == "all"
    m = report["metrics"]
    assert m["f1"] is None
    assert m["precision"] is None
    assert m["recall"] is None
    assert m["note"] == "no labels"
    assert m["n_queries"] == len(df)


# --------------------------------------------------------------------------- phash from images


def test_missing_phash_column_needs_images(make_csv, out_dir):
    csv = make_csv(synthetic_table(20).drop(columns="image_phash"))
    with pytest.raises(InputError) as info:
        build_into(csv, out_dir)
    assert "image_phash" in str(info.value)
    assert "\n" not in str(info.value)
    assert_empty_folder(out_dir)


def _picture(seed: int, size: int) -> Image.Image:
    """A distinct little picture: coarse random blocks, smoothly scaled up."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return Image.fromarray(blocks, "RGB").resize((size, size), Image.Resampling.BILINEAR)


def test_phashes_computed_from_images(tmp_path, out_dir):
    df = synthetic_table(n_groups=6, seed=4).drop(columns="image_phash")
    images = tmp_path / "images"
    images.mkdir()
    names = []
    for i in range(len(df)):
        ext = "png" if i % 2 else "jpg"
        name = f"img_{i}.{ext}"
        _picture(i % 7, 48 + 8 * (i % 3)).save(images / name)
        names.append(name)
    df["image"] = names
    csv = tmp_path / "noph.csv"
    df.to_csv(csv, index=False)

    out = build_into(csv, out_dir, images=images)
    expected = []
    for name in names:
        with Image.open(images / name) as img:
            expected.append(str(imagehash.phash(img)))
    assert len(set(expected)) >= 5  # really different pictures
    b = Bundle.open(out)
    assert b.items["image_phash"].tolist() == expected
    bits = np.asarray(b.array(b.manifest.modality("phash").files["embeddings"]))
    assert [row.tobytes().hex() for row in bits] == expected
    # and the neighbour similarities follow those hashes
    idx, sim = (np.asarray(a) for a in b.knn("all", "phash"))
    for q in range(len(df)):
        for j in range(1, idx.shape[1]):
            ham = (int(expected[q], 16) ^ int(expected[idx[q, j]], 16)).bit_count()
            assert sim[q, j] == pytest.approx(1 - ham / 64, abs=1e-6)


def test_empty_phash_cells_are_computed_from_images(tmp_path, out_dir):
    df = synthetic_table(n_groups=5, seed=1)
    images = tmp_path / "images"
    images.mkdir()
    for i, name in enumerate(df["image"]):
        _picture(i, 40).save(images / name, format="PNG")
    empty = [1, 4]
    df.loc[empty, "image_phash"] = ""
    csv = tmp_path / "some-empty.csv"
    df.to_csv(csv, index=False)
    with pytest.raises(InputError, match=rf"{csv}: line {line_of(1)}: image_phash"):
        build_into(csv, out_dir)
    assert_empty_folder(out_dir)
    out = build_into(csv, out_dir, images=images)
    got = Bundle.open(out).items["image_phash"].tolist()
    for i, name in enumerate(df["image"]):
        if i in empty:
            with Image.open(images / name) as img:
                assert got[i] == str(imagehash.phash(img))
        else:
            assert got[i] == df["image_phash"].iloc[i]


def test_unreadable_images_are_skipped_and_recorded(tmp_path, out_dir):
    """A missing or broken picture does not stop the build: its row gets no phash (empty
    image_phash, absent in `present`), is recorded as skipped, and is nobody's neighbour."""
    df = synthetic_table(n_groups=8).drop(columns="image_phash")
    images = tmp_path / "images"
    images.mkdir()
    for i, name in enumerate(df["image"]):
        _picture(i % 3, 32).save(images / name, format="PNG")  # many equal hashes
    broken, missing = 2, 5
    (images / df["image"].iloc[broken]).write_bytes(b"not a picture")
    (images / df["image"].iloc[missing]).unlink()
    csv = tmp_path / "noph.csv"
    df.to_csv(csv, index=False)
    b = Bundle.open(build_into(csv, out_dir, images=images, thumbnails=False))
    bad = {broken, missing}
    expected = []
    for i, name in enumerate(df["image"]):
        if i in bad:
            expected.append("")
        else:
            with Image.open(images / name) as img:
                expected.append(str(imagehash.phash(img)))
    assert b.items["image_phash"].tolist() == expected
    mod = b.manifest.modality("phash")
    assert [d["row"] for d in mod.params["skipped"]] == sorted(bad)
    assert "corrupt" in mod.params["skipped"][0]["reason"]
    assert mod.params["skipped"][1]["reason"] == "missing"
    assert np.flatnonzero(~b.present("phash")).tolist() == sorted(bad)
    for scope in b.manifest.scopes:
        rows = b.scope_rows(scope)
        idx = np.asarray(b.knn(scope, "phash")[0])
        for q, row in enumerate(rows):
            listed = idx[q][idx[q] >= 0]
            if row in bad:  # only itself
                assert listed.tolist() == [row]
            else:
                assert not bad & set(listed.tolist()), (scope, row, listed)
                # every other present row of the scope is listed (k covers the scope)
                assert len(listed) == min(8, sum(r not in bad for r in rows))
        g = b.graph_files(scope)
        # global rows, -1 padding
        cand, sims = np.asarray(b.array(g["cand"])), np.asarray(b.array(g["sims"]["phash"]))
        with_bad = (np.isin(cand, list(bad)) | np.isin(rows, list(bad))[:, None])
        pair = with_bad & (cand >= 0) & (cand != rows[:, None])
        if scope == "all":  # TF-IDF's lists still pair the bad rows with others
            assert pair.any()
        assert np.isneginf(sims[pair]).all()
        assert np.isfinite(sims[(cand >= 0) & ~with_bad]).all()
    # and through INB (re-scored or re-searched) they stay nobody's match, even at the
    # loosest threshold: the engine's embedding spaces honour `present` too
    from explorer.core.config import InbStage, MatchConfig
    from explorer.core.engine import Engine

    engine = Engine(b, "all")
    for exact in (False, True):
        cfg = MatchConfig("single", ("phash",), (-1.0,), inb=(InbStage(-1.0),),
                          inb_exact=exact)
        ev = engine.evaluate(cfg)
        q, c = np.nonzero(ev.pred)
        nb = ev.stage.cand[q, c]
        pairs = {(int(a), int(z)) for a, z in zip(q, nb, strict=True) if a != z}
        assert pairs, "the loosest threshold matches the present rows with each other"
        assert not {p for p in pairs if bad & set(p)}, exact


# --------------------------------------------------------------------------- command line


def test_cli_build_quiet(make_csv, out_dir, capsys):
    csv = make_csv(synthetic_table(20))
    out = out_dir / "cli.bundle"
    rc = precompute_cli.main(["build", "--csv", str(csv), "--out", str(out), "--k", "6",
                              "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out.startswith("wrote")
    assert str(out) in captured.out
    assert captured.err == ""
    b = Bundle.open(out)
    assert b.manifest.k == 6
    assert sorted(m.name for m in b.manifest.modalities) == ["phash", "tfidf"]


def test_cli_build_one_modality(make_csv, out_dir, capsys):
    out = out_dir / "text.bundle"
    rc = precompute_cli.main(["build", "--csv", str(make_csv(synthetic_table(20))), "--out",
                              str(out), "--text", "tfidf", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert [m.name for m in Bundle.open(out).manifest.modalities] == ["tfidf"]


def _assert_cli_error(capsys, argv: list[str], *parts: str) -> None:
    rc = precompute_cli.main(argv)
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    assert captured.err.endswith("\n")
    assert captured.err.count("\n") == 1, captured.err
    assert captured.err.startswith("precompute: error:")
    assert "Traceback" not in captured.err
    for part in parts:
        assert part in captured.err, (part, captured.err)


@pytest.mark.parametrize("case", ["duplicate-posting-id", "malformed-phash", "header-only"])
def test_cli_bad_input(case, tmp_path, out_dir, capsys):
    csv = tmp_path / "bad.csv"
    BAD_INPUTS[case](csv)
    _assert_cli_error(capsys, ["build", "--csv", str(csv), "--out", str(out_dir / "x.bundle"),
                               "--quiet"], str(csv))
    assert_empty_folder(out_dir)


def test_cli_missing_csv(tmp_path, out_dir, capsys):
    missing = tmp_path / "absent.csv"
    _assert_cli_error(capsys, ["build", "--csv", str(missing), "--out",
                               str(out_dir / "x.bundle"), "--quiet"], str(missing))
    assert_empty_folder(out_dir)


def test_cli_existing_output_needs_force(make_csv, out_dir, capsys):
    csv = make_csv(synthetic_table(20))
    out = out_dir / "b.bundle"
    argv = ["build", "--csv", str(csv), "--out", str(out), "--k", "5", "--quiet"]
    assert precompute_cli.main(argv) == 0
    capsys.readouterr()
    _assert_cli_error(capsys, argv, str(out), "--force")
    assert precompute_cli.main([*argv, "--force"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert [p.name for p in out_dir.iterdir()] == ["b.bundle"]
