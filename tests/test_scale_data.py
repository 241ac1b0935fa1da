"""`precompute scale-data`: deterministic Shopee-format tables without images, with the real
table's group-size shape and phashes that agree within groups, written safely."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from precompute.cli import main
from precompute.dataset import read_dataset
from precompute.scale_catalogue import ALL_LINES, make_scale_products
from precompute.scale_data import group_sizes, scale_table, write_scale_data
from precompute.scale_titles import FastRandom

# The real train.csv: 6,979 of its 11,014 groups are pairs, every group holds 2..51 rows.
REAL_PAIR_SHARE = 6979 / 11014


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.unpackbits(x.astype(">u8").view(np.uint8).reshape(-1, 8), axis=1).sum(1)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return scale_table(6000, seed=3)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "c.csv"
    write_scale_data(a, 500, seed=7)
    write_scale_data(b, 500, seed=7)
    write_scale_data(c, 500, seed=8)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.csv", "a.csv.json", "b.csv", "b.csv.json", "c.csv", "c.csv.json"]  # no temporaries


@pytest.mark.parametrize("n", [2, 3, 5, 51, 52, 997, 50_000])
def test_group_sizes_sum_to_n_within_real_range(n):
    sizes = group_sizes(np.random.default_rng(n), n)
    assert sizes.sum() == n
    assert sizes.min() >= 2 and sizes.max() <= 51


def test_group_size_shape_is_the_real_tables():
    sizes = group_sizes(np.random.default_rng(0), 200_000)
    assert abs((sizes == 2).mean() - REAL_PAIR_SHARE) < 0.02
    assert abs(sizes.mean() - 34250 / 11014) < 0.1   # the real mean group size
    assert (sizes >= 20).sum() > 0


def test_table_columns_are_valid_for_precompute_build(tmp_path, table):
    path = tmp_path / "scale.csv"
    write_scale_data(path, 6000, seed=3)
    data = read_dataset(path)   # raises on any malformed column
    assert len(data) == 6000 and data.has_labels
    assert list(table.columns) == ["posting_id", "image", "image_phash", "title",
                                   "label_group"]
    assert table["posting_id"].is_unique and table["image"].is_unique
    assert table["image"].str.fullmatch(r"[0-9a-f]{32}\.jpg").all()
    assert table["image_phash"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert (table["title"].str.len() > 0).all()
    sizes = table.groupby("label_group").size()
    assert sizes.min() >= 2 and sizes.max() <= 51


def test_phash_agrees_within_groups_not_between(table):
    h = np.array([int(x, 16) for x in table["image_phash"]], dtype=np.uint64)
    labels = table["label_group"].to_numpy()
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    within = np.concatenate([_popcount(h[g[0]] ^ h[g[1:]]) for g in np.split(order, bounds)])
    rng = np.random.default_rng(0)
    a, b = rng.integers(len(h), size=20_000), rng.integers(len(h), size=20_000)
    keep = labels[a] != labels[b]
    between = _popcount(h[a[keep]] ^ h[b[keep]])
    # Real table: 13% of within-group pairs share the hash, 30.9 bits apart between groups.
    assert 0.06 < (within == 0).mean() < 0.3
    assert ((within > 0) & (within <= 10)).mean() > 0.03   # near copies (re-encoded photo)
    assert (within >= 26).mean() > 0.3                     # unrelated photos of the product
    assert abs(between.mean() - 30.9) < 1.0
    assert (between == 0).mean() < 0.002
    assert 0.75 < table["image_phash"].nunique() / len(table) < 0.95   # real: 0.84


def test_catalogue_products_are_distinct_with_pack_size_siblings():
    products = make_scale_products(FastRandom(1), 5000)
    keys = [(p.brand, p.line, p.variant, p.amount) for p in products]
    assert len(set(keys)) == len(keys)
    by_family: dict[int, list] = {}
    for p in products:
        by_family.setdefault(p.family, []).append(p)
    packs = [f for f in by_family.values() if f[0].family_type == "pack" and len(f) > 1]
    assert len(packs) > 50
    for fam in packs:   # same product line, another pack size: another group
        assert len({(p.brand, p.line, p.variant) for p in fam}) == 1
        assert len({p.amount for p in fam}) == len(fam)
    assert len({p.line for p in products}) > 60 and len(ALL_LINES) > 60
    assert len({p.brand for p in products}) > 2000


def test_titles_of_a_pack_family_name_their_amounts(table):
    quantity = re.compile(r"\d")
    assert table["title"].str.contains(quantity).mean() > 0.4


def _cli(capsys, *args: str) -> tuple[int, str]:
    code = main(["scale-data", *args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("n", ["x", "1", "0", "-5", "2.5", "5000001", ""])
def test_bad_postings_one_line(tmp_path, capsys, n):
    code, err = _cli(capsys, "--out", str(tmp_path / "s.csv"), "--postings", n)
    assert code == 2 and err.count("\n") == 1 and "--postings" in err
    assert not list(tmp_path.iterdir())


def test_bad_seed_and_paths_one_line(tmp_path, capsys):
    code, err = _cli(capsys, "--out", str(tmp_path / "s.csv"), "--postings", "10",
                     "--seed", "abc")
    assert code == 2 and err.count("\n") == 1 and "--seed" in err
    code, err = _cli(capsys, "--out", str(tmp_path / "no" / "s.csv"), "--postings", "10")
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err
    code, err = _cli(capsys, "--out", str(tmp_path), "--postings", "10", "--force")
    assert code == 2 and err.count("\n") == 1 and "folder" in err
    assert not list(tmp_path.iterdir())


def test_force_replaces_only_our_own_file(tmp_path, capsys):
    out = tmp_path / "s.csv"
    assert _cli(capsys, "--out", str(out), "--postings", "40")[0] == 0
    first = out.read_bytes()
    stamp = json.loads((tmp_path / "s.csv.json").read_text())
    assert stamp["postings"] == 40 and stamp["seed"] == 0
    code, err = _cli(capsys, "--out", str(out), "--postings", "60")   # no --force
    assert code == 2 and "--force" in err and out.read_bytes() == first
    assert _cli(capsys, "--out", str(out), "--postings", "60", "--force")[0] == 0
    assert len(pd.read_csv(out)) == 60
    out.write_bytes(out.read_bytes() + b"edited,by,someone,else,1\n")   # no longer ours
    edited = out.read_bytes()
    code, err = _cli(capsys, "--out", str(out), "--postings", "40", "--force")
    assert code == 2 and "not written by" in err and out.read_bytes() == edited


def test_force_never_replaces_a_foreign_file(tmp_path, capsys):
    foreign = tmp_path / "train.csv"
    foreign.write_text("posting_id,image,image_phash,title,label_group\n")
    for extra in ([], ["--force"]):
        code, err = _cli(capsys, "--out", str(foreign), "--postings", "10", *extra)
        assert code == 2 and err.count("\n") == 1
    assert foreign.read_text() == "posting_id,image,image_phash,title,label_group\n"
    (tmp_path / "x.csv.json").write_text("not a stamp")   # someone's file at the stamp name
    code, err = _cli(capsys, "--out", str(tmp_path / "x.csv"), "--postings", "10")
    assert code == 2 and "stamp" in err and not (tmp_path / "x.csv").exists()
