"""The built-in demo dataset (precompute.demo_data): byte-for-byte deterministic, a valid
Shopee-format table with real JPEGs, group sizes shaped like the real table, and the hard
cases it promises (pack sizes, different-looking photos, generic titles, generic pictures)."""

from __future__ import annotations

import collections
import hashlib
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from explorer.core.units import extract_quantities
from precompute.dataset import read_dataset
from precompute.demo_data import DEFAULT_POSTINGS, generate_demo, pack_text, plan_demo
from precompute.phash import compute_phashes

SMALL = 200  # postings in the generated test sets (about 3 s each)
DIMENSION = {"ml": "volume", "g": "mass", "pcs": "count"}


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by relative path."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "seed0"
    csv = generate_demo(out, n_postings=SMALL, seed=0, progress=False, metadata=True)
    assert csv == out / "train.csv"
    return out


@pytest.fixture(scope="module")
def table(demo):
    return read_dataset(demo / "train.csv").table


@pytest.fixture(scope="module")
def meta(demo) -> dict:
    return json.loads((demo / "demo_meta.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def titles(table) -> dict[str, str]:
    return dict(zip(table["posting_id"], table["title"], strict=True))


@pytest.fixture(scope="module")
def phashes(table) -> dict[str, str]:
    return dict(zip(table["posting_id"], table["image_phash"], strict=True))


def families(meta: dict) -> list[list[dict]]:
    by_family: dict[int, list[dict]] = collections.defaultdict(list)
    for g in meta["groups"]:
        by_family[g["family"]].append(g)
    return list(by_family.values())


# ------------------------------------------------------------------------------ determinism


def test_same_seed_gives_identical_bytes(demo, tmp_path):
    generate_demo(tmp_path, n_postings=SMALL, seed=0, progress=False, metadata=True)
    first, second = digests(demo), digests(tmp_path)
    assert len(first) == SMALL + 2  # the images, train.csv and demo_meta.json
    assert first == second


def test_other_seed_differs(demo, tmp_path):
    csv = generate_demo(tmp_path, n_postings=SMALL, seed=1, progress=False)
    assert csv.read_bytes() != (demo / "train.csv").read_bytes()
    images = {v for k, v in digests(demo).items() if k.endswith(".jpg")}
    others = {v for k, v in digests(tmp_path).items() if k.endswith(".jpg")}
    assert not images & others


def test_plan_is_what_gets_generated(table, meta):
    plan = plan_demo(SMALL, seed=0)
    sizes = table.groupby("label_group").size().to_dict()
    assert {g["label_group"]: g["size"] for g in plan} == sizes
    for planned, written in zip(plan, meta["groups"], strict=True):
        cases = [c for c in written["hard_cases"] if c != "b_multi_look"]  # photo by photo
        assert planned == {**{k: written[k] for k in planned}, "hard_cases": cases}


def test_too_few_postings_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least"):
        generate_demo(tmp_path, n_postings=3, progress=False)
    assert not (tmp_path / "train.csv").exists()


# ---------------------------------------------------------------------------- Shopee format


def test_csv_is_valid_shopee_format(demo, table):
    header = (demo / "train.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "posting_id,image,image_phash,title,label_group"
    assert len(table) == SMALL
    assert table["posting_id"].is_unique and table["image"].is_unique
    assert all(re.fullmatch(r"demo_\d+", p) for p in table["posting_id"])
    assert all(re.fullmatch(r"[0-9a-f]{32}\.jpg", n) for n in table["image"])
    assert all(re.fullmatch(r"[0-9a-f]{16}", h) for h in table["image_phash"])
    assert table["label_group"].dtype.kind == "i"
    assert (table["title"].str.strip() != "").all()


def test_images_are_rgb_jpegs_and_phashes_match(demo, table):
    images = demo / "train_images"
    assert sorted(p.name for p in images.iterdir()) == sorted(table["image"])
    for name in table["image"]:
        with Image.open(images / name) as im:
            assert im.format == "JPEG" and im.mode == "RGB"
            assert 256 <= max(im.size) <= 400 and min(im.size) >= 190
            im.load()
    # the column is what `precompute build --images` would compute itself
    assert compute_phashes(images, table["image"], progress=False).tolist() == \
        table["image_phash"].tolist()


def test_rows_are_shuffled(table):
    labels = table["label_group"].to_numpy()
    assert (labels[1:] == labels[:-1]).mean() < 0.2


# ------------------------------------------------------------------------------ group sizes


def test_group_sizes_of_a_small_demo(table):
    sizes = table.groupby("label_group").size()
    assert sizes.min() >= 2 and sizes.max() <= 51
    assert sizes.sum() == SMALL
    assert (sizes == 2).mean() >= 0.5


@pytest.mark.parametrize("n", [1500, DEFAULT_POSTINGS])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_group_sizes_like_the_real_table(n, seed):
    sizes = [g["size"] for g in plan_demo(n, seed)]
    assert sum(sizes) == n >= 1500
    assert min(sizes) >= 2 and max(sizes) <= 51
    assert sizes.count(2) / len(sizes) >= 0.55
    assert sum(s >= 10 for s in sizes) >= 1 and max(sizes) >= 20
    assert len({g["label_group"] for g in plan_demo(n, seed)}) == len(sizes)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_group_is_a_different_product(seed):
    """Siblings differ in pack size, colour or flavour; no two groups are one product."""
    plan = plan_demo(DEFAULT_POSTINGS, seed)
    products = {(g["brand"], g["line"], g["variant"], g["amount"]) for g in plan}
    assert len(products) == len(plan)
    kinds = {g["kind"] for g in plan}
    assert len(kinds) >= 6


# ------------------------------------------------------------------------------- hard cases


def test_titles_name_only_their_own_quantity(meta, titles):
    """Every amount a title names (250ml, 0,25 L, 1 kilo, 25 pcs...) is the product's own."""
    for g in meta["groups"]:
        expected = {DIMENSION[g["unit"]]: (float(g["amount"]),)} if g["unit"] else {}
        for pid in g["postings"]:
            found = extract_quantities(titles[pid])
            assert not found or found == expected, (titles[pid], found, expected)


def test_hard_case_a_same_look_different_pack_size(meta, titles, phashes):
    pairs = 0
    near_identical = False
    for fam in families(meta):
        packs = [g for g in fam if "a_pack_size" in g["hard_cases"]]
        for i, a in enumerate(packs):
            for b in packs[i + 1:]:
                assert a["label_group"] != b["label_group"]
                assert (a["brand"], a["kind"], a["line"], a["variant"], a["look"]) == \
                    (b["brand"], b["kind"], b["line"], b["variant"], b["look"])
                assert a["amount"] != b["amount"] and a["pack_text"] != b["pack_text"]
                qa = {q for p in a["postings"] for q in extract_quantities(titles[p]).items()}
                qb = {q for p in b["postings"] for q in extract_quantities(titles[p]).items()}
                assert qa and qb and not qa & qb
                pairs += 1
                near_identical |= min(hamming(phashes[p], phashes[q]) for p in a["postings"]
                                      for q in b["postings"]) <= 4
    assert pairs >= 1
    assert near_identical  # some pictures of two pack sizes are (nearly) the same photo


def test_hard_case_b_different_looking_photos_of_one_product(meta, phashes):
    groups = [g for g in meta["groups"] if "b_multi_look" in g["hard_cases"]]
    assert groups
    layouts = set()
    for g in groups:
        assert g["size"] >= 3 and g["alt_photos"]
        assert set(g["alt_photos"]) <= set(g["postings"])
        normal = [p for p in g["postings"] if p not in g["alt_photos"]]
        assert normal
        for pid, layout in g["alt_photos"].items():
            layouts.add(layout)
            assert min(hamming(phashes[pid], phashes[q]) for q in normal) >= 12
    assert len(layouts) >= 3
    alt = sum(len(g["alt_photos"]) for g in meta["groups"])
    in_big = sum(g["size"] for g in meta["groups"] if g["size"] >= 3)
    assert 0.05 <= alt / in_big <= 0.3


def test_hard_case_c_generic_titles(meta, titles):
    groups = [g for g in meta["groups"] if "c_generic_title" in g["hard_cases"]]
    assert groups
    for g in groups:
        assert g["image_text"] == g["brand"]  # the picture carries the brand
        for pid in g["postings"]:
            assert g["brand"].lower() not in titles[pid].lower()


def test_hard_case_d_generic_pictures(meta, titles):
    clusters = [[g for g in fam if "d_generic_image" in g["hard_cases"]]
                for fam in families(meta)]
    clusters = [c for c in clusters if c]
    assert clusters
    for cluster in clusters:
        assert len(cluster) >= 2
        assert len({json.dumps(g["look"], sort_keys=True) for g in cluster}) == 1
        assert len({g["image_text"] for g in cluster}) == 1
        assert len({g["brand"] for g in cluster}) == len(cluster)
        assert all(g["image_text"] != g["brand"] for g in cluster)
        for g in cluster:  # the titles carry the brand (give or take a typo)
            named = sum(g["brand"].lower() in titles[p].lower() for p in g["postings"])
            assert named >= 1


def test_pack_text():
    assert pack_text(250, "ml") == "250ml"
    assert pack_text(1500, "ml") == "1.5L"
    assert pack_text(500, "g") == "500g"
    assert pack_text(1000, "g") == "1kg"
    assert pack_text(25, "pcs") == "isi 25"
    assert pack_text(None, None) == ""
