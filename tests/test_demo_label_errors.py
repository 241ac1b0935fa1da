"""Deliberate label errors in the demo data (generate_demo(label_errors=...), `precompute
demo --label-errors`): only the label_group column lies, exactly at the postings
label_errors.csv lists, every kind is there at about the share asked for, the same seed
gives the same errors, and share 0 is the demo of before, byte for byte."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest

import precompute.demo as demo_module
import precompute.demo_data as demo_data
from precompute import cli as precompute_cli
from precompute.demo import build_demo
from precompute.demo_data import (
    ERROR_KINDS,
    LABEL_ERRORS_FILE,
    generate_demo,
    label_error_summary,
    plan_demo,
    plan_label_errors,
)
from precompute.errors import InputError

SMALL = 120  # postings (28 label groups at seed 0; about 1 s to generate)
SHARE = 0.3


def digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"label_group": "int64", "true_label": "int64",
                                    "given_label": "int64"})


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    generate_demo(out, n_postings=SMALL, seed=0, progress=False)
    return out


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("noisy")
    generate_demo(out, n_postings=SMALL, seed=0, progress=False, label_errors=SHARE)
    return out


@pytest.fixture(scope="module")
def truth(noisy) -> pd.DataFrame:
    return read(noisy / LABEL_ERRORS_FILE)


def members_of(n_postings: int, seed: int) -> tuple[list[list[int]], list[int]]:
    """Posting indices per group as generate_demo numbers them, without drawing."""
    plan = plan_demo(n_postings, seed)
    starts = [sum(g["size"] for g in plan[:i]) for i in range(len(plan))]
    return ([list(range(s, s + g["size"])) for s, g in zip(starts, plan, strict=True)],
            [g["label_group"] for g in plan])


# ---------------------------------------------------------------------- what the CSV says


def test_labels_lie_exactly_where_the_truth_file_says(clean, noisy, truth):
    before, after = read(clean / "train.csv"), read(noisy / "train.csv")
    assert list(truth.columns) == ["posting_id", "kind", "true_label", "given_label"]
    others = ["posting_id", "image", "image_phash", "title"]
    assert before[others].equals(after[others])  # titles and pictures are the true product's
    changed = before["label_group"] != after["label_group"]
    assert set(after.loc[changed, "posting_id"]) == set(truth["posting_id"])
    assert truth["posting_id"].is_unique and len(truth) == int(changed.sum()) > 0
    rows = truth.merge(before, on="posting_id").merge(after, on="posting_id",
                                                      suffixes=("_true", "_given"))
    assert (rows["true_label"] == rows["label_group_true"]).all()
    assert (rows["given_label"] == rows["label_group_given"]).all()
    images = {k: v for k, v in digests(clean).items() if k.startswith("train_images/")}
    assert images == {k: v for k, v in digests(noisy).items() if k.startswith("train_images/")}


def test_every_kind_is_there_and_is_what_it_says(clean, truth):
    before = read(clean / "train.csv")
    size = before.groupby("label_group").size()
    labels = set(size.index)
    assert set(truth["kind"]) == set(ERROR_KINDS)
    for true, rows in truth.groupby("true_label"):
        kinds, given = set(rows["kind"]), set(rows["given_label"])
        assert len(kinds) == 1 and len(given) == 1 and true not in given  # one clean error
        kind, target = kinds.pop(), given.pop()
        if kind == "split":  # a new label for part of the group: 1+ postings each side
            assert target not in labels and 1 <= len(rows) <= size[true] - 1
        elif kind == "merged":  # the whole group takes another product's label
            assert target in labels and len(rows) == size[true]
        else:  # moved: one posting to another product's group
            assert target in labels and len(rows) == 1 and size[true] >= 2
    partners = truth.loc[truth["kind"] != "split", "given_label"]
    assert not set(partners) & set(truth["true_label"])  # a receiving group is itself intact


def test_share_of_groups_is_about_the_request(clean, truth):
    n_groups = read(clean / "train.csv")["label_group"].nunique()
    assert abs(truth["true_label"].nunique() / n_groups - SHARE) <= 1 / n_groups
    for n_postings, seed in ((1600, 0), (400, 7)):
        members, labels = members_of(n_postings, seed)
        for share in (0.02, 0.1, 0.25, 0.5):
            errors = plan_label_errors(members, labels, share, seed)
            affected = {(kind, true) for _, kind, true, _ in errors}
            assert abs(len(affected) / len(labels) - share) <= 1 / len(labels)
            per_kind = [sum(k == kind for k, _ in affected) for kind in ERROR_KINDS]
            assert min(per_kind) >= 1 and max(per_kind) - min(per_kind) <= 1, per_kind


def test_a_tiny_share_still_has_every_kind():
    members, labels = members_of(60, 0)
    errors = plan_label_errors(members, labels, 0.001, 0)
    assert sorted({kind for _, kind, _, _ in errors}) == sorted(ERROR_KINDS)


def test_the_seed_decides_the_errors(noisy, tmp_path):
    generate_demo(tmp_path, n_postings=SMALL, seed=0, progress=False, label_errors=SHARE)
    assert digests(tmp_path) == digests(noisy)
    members, labels = members_of(400, 0)
    assert (plan_label_errors(members, labels, 0.2, 0)
            != plan_label_errors(members, labels, 0.2, 1))


def test_share_zero_is_the_demo_of_before(clean, noisy, tmp_path):
    generate_demo(tmp_path, n_postings=SMALL, seed=0, progress=False, label_errors=SHARE)
    generate_demo(tmp_path, n_postings=SMALL, seed=0, progress=False, label_errors=0.0)
    assert not (tmp_path / LABEL_ERRORS_FILE).exists()  # the last run's truth would lie
    assert digests(tmp_path) == digests(clean)
    assert LABEL_ERRORS_FILE not in digests(clean)


# ------------------------------------------------------------------------------ bad values


@pytest.mark.parametrize("share", [float("nan"), float("inf"), -0.1, 0.51, 1, "0.1", True,
                                   None])
def test_bad_share_is_one_line_and_writes_nothing(tmp_path, share):
    with pytest.raises(ValueError, match="label_errors") as caught:
        generate_demo(tmp_path / "d", n_postings=SMALL, progress=False, label_errors=share)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-0.01", "0.6", "abc", ""])
def test_bad_flag_is_one_line_naming_it(tmp_path, capsys, text):
    code = precompute_cli.main(["demo", "--out", str(tmp_path / "d"), "--label-errors", text])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith("precompute: error: --label-errors: ")
    assert not (tmp_path / "d").exists()


def test_flag_reaches_build_demo(tmp_path, monkeypatch, capsys):
    seen: list[float] = []
    monkeypatch.setattr(demo_module, "build_demo",
                        lambda out, **kw: seen.append(kw["label_errors"]) or out)
    for flags in ([], ["--label-errors", "0.25"], ["--label-errors", " 0.5 "]):
        assert precompute_cli.main(["demo", "--out", str(tmp_path), *flags]) == 0
    assert seen == [0.0, 0.25, 0.5]


# ------------------------------------------------------------------ the stamp and its reuse


@pytest.fixture
def generations(monkeypatch) -> list[float]:
    """build_demo without the minutes of building: the shares each data generation used."""
    made: list[float] = []
    real = demo_data.generate_demo

    def counted(*args, **kw):
        made.append(kw["label_errors"])
        return real(*args, **kw)

    monkeypatch.setattr(demo_data, "generate_demo", counted)
    monkeypatch.setattr(demo_module, "build", lambda options: options.out)
    return made


def test_stamp_records_the_share_and_counts_and_a_new_share_regenerates(tmp_path, generations):
    data = tmp_path / "data"
    build_demo(tmp_path, n_postings=60, progress=False, label_errors=0.2)
    stamp = json.loads((data / "generated.json").read_text())
    assert stamp["label_errors"] == 0.2 and stamp["seed"] == 0 and stamp["n_postings"] == 60
    truth = read(data / LABEL_ERRORS_FILE)
    assert stamp == {"seed": 0, "n_postings": 60, "label_errors": 0.2,
                     **label_error_summary(data)}
    assert sum(stamp["label_error_postings"].values()) == len(truth)
    assert sum(stamp["label_error_groups"].values()) == truth["true_label"].nunique()
    build_demo(tmp_path, n_postings=60, progress=False, label_errors=0.2)   # reused
    build_demo(tmp_path, n_postings=60, progress=False, label_errors=0.3)   # another share
    build_demo(tmp_path, n_postings=60, progress=False)                     # none
    assert generations == [0.2, 0.3, 0.0]
    stamp = json.loads((data / "generated.json").read_text())
    assert stamp["label_errors"] == 0 and not (data / LABEL_ERRORS_FILE).exists()
    assert set(stamp["label_error_groups"].values()) == {0}


def test_a_stamp_from_before_label_errors_means_none(tmp_path, generations):
    build_demo(tmp_path, n_postings=60, progress=False)
    (tmp_path / "data" / "generated.json").write_text('{"seed": 0, "n_postings": 60}')
    build_demo(tmp_path, n_postings=60, progress=False)  # the same data: reused
    assert generations == [0.0]
    build_demo(tmp_path, n_postings=60, progress=False, label_errors=0.1)
    assert generations == [0.0, 0.1]


def test_build_demo_refuses_a_bad_share_before_anything(tmp_path, generations):
    with pytest.raises(InputError, match="label_errors") as caught:
        build_demo(tmp_path, n_postings=60, progress=False, label_errors=float("nan"))
    assert "\n" not in str(caught.value) and generations == []
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("share", [0.0, SHARE])
def test_a_label_errors_file_it_did_not_write_is_never_touched(tmp_path, share):
    mine = tmp_path / LABEL_ERRORS_FILE
    mine.write_text("posting_id,kind,true_label,given_label\nsku-1,split,1,2\n")
    with pytest.raises(ValueError, match="never replaced or removed"):
        generate_demo(tmp_path, n_postings=SMALL, seed=0, progress=False, label_errors=share)
    assert mine.read_text() == "posting_id,kind,true_label,given_label\nsku-1,split,1,2\n"
    assert not (tmp_path / "train.csv").exists() and not (tmp_path / "train_images").exists()
