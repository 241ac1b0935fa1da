"""Tests for explorer.core.units: amount extraction from titles and the pair conflict filter."""

from __future__ import annotations

import json

import numpy as np
import pytest

from explorer.core.units import QuantityTable, extract_quantities, load_units


def conflict(a: str, b: str, units: dict | None = None) -> bool:
    table = QuantityTable.from_titles([a, b], units=units)
    return bool(table.conflicts(np.array([0, 1]), np.array([1, 0]))[0])


def reference_conflict(qa: dict, qb: dict) -> bool:
    """Per-pair definition: some dimension named by both with disjoint amount sets."""
    return any(dim in qb and not set(qa[dim]) & set(qb[dim]) for dim in qa)


# --------------------------------------------------------------------------- vocabulary


def test_default_vocabulary_has_the_core_dimensions():
    units = load_units()
    for dim, alias in [("mass", "gr"), ("volume", "ml"), ("count", "pcs"), ("storage", "gb"),
                       ("length", "m"), ("inch", "inch")]:
        assert alias in units[dim], (dim, alias)
    assert units["mass"]["kg"] == 1000 * units["mass"]["g"]
    assert units["storage"]["gb"] == 1024 * units["storage"]["mb"]
    # ambiguous tokens are deliberately not units
    all_aliases = {a for aliases in units.values() for a in aliases}
    assert not {"in", '"', "x", "s"} & all_aliases
    # comment keys are not dimensions or aliases
    assert not any(k.startswith("_") for k in units)
    assert not any(a.startswith("_") for a in all_aliases)


def test_load_units_from_path_and_validation(tmp_path):
    good = tmp_path / "u.json"
    good.write_text(json.dumps({"_comment": "x", "mass": {"G": 1, "KG": 1000, "_base": "g"}}))
    assert load_units(good) == {"mass": {"g": 1.0, "kg": 1000.0}}
    dup = tmp_path / "dup.json"
    dup.write_text(json.dumps({"a": {"u": 1}, "b": {"u": 2}}))
    with pytest.raises(ValueError):
        load_units(dup)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"a": {"u": 0}}))
    with pytest.raises(ValueError):
        load_units(bad)


def test_load_units_returns_a_fresh_copy():
    units = load_units()
    units["mass"]["g"] = 99.0
    assert load_units()["mass"]["g"] == 1.0
    assert extract_quantities("30g") == {"mass": (30.0,)}


# --------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        ("Susu UHT 250ml isi 2 pcs", {"volume": (250.0,), "count": (2.0,)}),
        ("Beras 5kg / 5 kg", {"mass": (5000.0,)}),
        ("Gula 1,5kg", {"mass": (1500.0,)}),
        ("Gula 1.5kg", {"mass": (1500.0,)}),
        ("Gula 1.5 KG", {"mass": (1500.0,)}),
        ("Minyak 1.000ml", {"volume": (1000.0,)}),
        ("Powerbank 10.000 mAh", {"battery": (10000.0,)}),
        ("Teh 0.250 kg", {"mass": (250.0,)}),
        ("Sabun 1.250,5 ml", {"volume": (1250.5,)}),
        ("Biskuit 12 x 30g", {"mass": (30.0,)}),
        ("Masak 5 menit", {}),
        ("Jus 2 grape", {}),
        ("Meja 3m", {"length": (3000.0,)}),
        ("Meja 3 m", {"length": (3000.0,)}),
        ("Lantai 3m2", {}),
        ("Kopi 30g 30gr 30 gram", {"mass": (30.0,)}),
        ("Susu 1,5 L", {"volume": (1500.0,)}),
        ("HP 1 tb", {"storage": (1024.0,)}),
        ("HP 512mb", {"storage": (0.5,)}),
        ("Masker 2 in 1", {}),
        ('Tablet 8"', {}),
        ("Baterai ZE550ML", {}),  # a model code, not 550 ml
        ("Micro SD 32GB 98MB/s", {"storage": (32.0,)}),  # a speed, not an amount
        ("Micro SD 32GB / 64GB", {"storage": (32.0, 64.0)}),
        ("Kaos size 2 tahun", {}),
        ("Realme 4/64GB 5000mAh", {"storage": (4.0, 64.0), "battery": (5000.0,)}),
        ("Tempe 1/2kg", {"mass": (500.0,)}),
        ("Kardus 20x30 cm", {"length": (200.0, 300.0)}),
        ("Stiker 45cmx10m", {"length": (450.0, 10000.0)}),
        ("Susu 190mlx24", {"volume": (190.0,)}),
        ("Tisu 1 lusin", {"count": (12.0,)}),
        ("Vitamin 500 MG", {"mass": (0.5,)}),
        ("Sampo 250ML 500ML", {"volume": (250.0, 500.0)}),
        ("", {}),
        ("Layar 5 İnch", {"inch": (5.0,)}),  # re's case folding differs from str.lower()
    ],
)
def test_extract_quantities(title, expected):
    assert extract_quantities(title) == expected


def test_unit_equivalences():
    assert extract_quantities("30g") == extract_quantities("30gr") == extract_quantities("30 gram")
    assert extract_quantities("1kg") == extract_quantities("1000g")
    litre = extract_quantities("1,5 L")
    assert litre == extract_quantities("1.5 l") == extract_quantities("1500 ml")
    assert extract_quantities("1 tb") == extract_quantities("1024 gb")
    assert 9 * 0.001 != 0.009  # plain float arithmetic would not match ...
    assert extract_quantities("9 mg") == extract_quantities("0,009 g") == {"mass": (0.009,)}


def test_custom_units_dict():
    units = {"_note": "ignored", "weight": {"lb": 1.0, "oz": 0.0625}}
    assert extract_quantities("Steak 16 oz", units) == {"weight": (1.0,)}
    assert extract_quantities("Steak 500g", units) == {}
    assert conflict("Steak 1 lb", "Steak 16oz", units) is False
    assert conflict("Steak 1 lb", "Steak 2 lb", units) is True
    assert conflict("Shampoo 250ml", "Shampoo 500ml", units) is False  # ml unknown here
    table = QuantityTable.from_titles(["Steak 2 LB"], units=units)
    assert table.dims == ("weight",)
    assert table.describe(0) == {"weight": (2.0,)}


# --------------------------------------------------------------------------- pair conflicts


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("Kopi 30g", "Kopi 30gr", False),
        ("Kopi 30g", "Kopi 30 gram", False),
        ("Shampoo 250ml", "Shampoo 500ml", True),
        ("Beras 1kg", "Beras 1000g", False),
        ("Beras 1kg", "Beras 2 kg", True),
        ("Susu 1,5 L", "Susu 1500ml", False),
        ("Minyak 1.000ml", "Minyak 1 liter", False),
        ("Xiaomi 64GB", "Xiaomi 128GB", True),
        ("SSD 1 tb", "SSD 1024 gb", False),
        ("Shampoo", "Shampoo 500ml", False),
        ("Shampoo", "Shampoo", False),
        ("Shampoo 250ml", "Kopi 30g", False),
        ("Shampoo 250ml 500ml", "Shampoo 500ml", False),
        ("Shampoo 250ml isi 2 pcs", "Shampoo 250ml isi 3 pcs", True),
        ("Meja 3m", "Meja 300 cm", False),
        ("Meja 3m", "Meja 5 menit", False),
    ],
)
def test_pair_conflicts(a, b, expected):
    assert conflict(a, b) is expected
    assert conflict(b, a) is expected


def test_padding_and_self_pairs_never_conflict():
    # the last posting names an amount, so a -1 wrapping around to it would conflict with 0
    table = QuantityTable.from_titles(["Shampoo 250ml", "Sabun", "Shampoo 500ml"])
    rows = np.array([0, 0, 2, -1, 0, -1, 1, 2, -2, 0, -7])
    cols = np.array([2, 0, 2, 0, -1, -1, 0, 0, 0, -2, -2])
    got = table.conflicts(rows, cols)
    assert got.dtype == bool
    assert got.tolist() == [True, False, False, False, False, False, False, True] + [False] * 3


def test_two_dimensional_shape_is_preserved():
    titles = ["Shampoo 250ml", "Shampoo 500ml", "Sabun 100g", "Sabun 200 gr", "Sabun"]
    table = QuantityTable.from_titles(titles)
    rows = np.repeat(np.arange(5), 5).reshape(5, 5)
    cols = np.tile(np.arange(5), 5).reshape(5, 5)
    got = table.conflicts(rows, cols)
    assert got.shape == (5, 5)
    expected = np.zeros((5, 5), dtype=bool)
    expected[0, 1] = expected[1, 0] = expected[2, 3] = expected[3, 2] = True
    np.testing.assert_array_equal(got, expected)
    # padded candidate matrix
    cand = np.array([[1, 2, -1], [0, -1, -1], [3, 4, 0]])
    got = table.conflicts(np.repeat(np.arange(3)[:, None], 3, axis=1), cand)
    np.testing.assert_array_equal(
        got, [[True, False, False], [True, False, False], [True, False, False]]
    )


def test_empty_and_bad_inputs():
    table = QuantityTable.from_titles(["Shampoo 250ml", "Shampoo 500ml"])
    assert table.conflicts(np.zeros((0, 3), int), np.zeros((0, 3), int)).shape == (0, 3)
    with pytest.raises(ValueError):
        table.conflicts(np.array([0, 1]), np.array([1]))
    with pytest.raises(IndexError):
        table.conflicts(np.array([0]), np.array([2]))
    empty = QuantityTable.from_titles([])
    assert empty.amounts.shape == (0, len(load_units()), 4)


def test_table_storage_and_max_values():
    titles = ["Lampu 11w 9w 7w 5w 4w 3w 9 watt", "Lampu 3w", "Lampu 11w", "Sabun"]
    table = QuantityTable.from_titles(titles, max_values=4)
    assert table.amounts.dtype == np.float64
    assert table.amounts.shape == (4, len(table.dims), 4)
    power = table.dims.index("power")
    # the first max_values distinct amounts in order of appearance
    np.testing.assert_array_equal(table.amounts[0, power], [11.0, 9.0, 7.0, 5.0])
    assert np.isnan(table.amounts[0, : power]).all()
    assert np.isnan(table.amounts[3]).all()
    assert table.describe(0) == {"power": (5.0, 7.0, 9.0, 11.0)}
    assert table.describe(3) == {}
    # 3w was dropped, so 0 vs 1 conflicts; 11w was kept
    got = table.conflicts(np.array([0, 0]), np.array([1, 2]))
    assert got.tolist() == [True, False]
    wide = QuantityTable.from_titles(titles, max_values=6)
    assert wide.conflicts(np.array([0, 0]), np.array([1, 2])).tolist() == [False, False]
    assert wide.describe(0) == {"power": (3.0, 4.0, 5.0, 7.0, 9.0, 11.0)}


TITLES = [
    "Shampoo Clear 250ml",
    "Shampoo Clear 500ml",
    "Shampoo Clear 250 ml 500 ml",
    "Shampoo Clear 0,25 L",
    "Shampoo Clear",
    "Susu UHT 250ml isi 2 pcs",
    "Susu UHT 250ml isi 3 pcs",
    "Susu UHT 1 liter",
    "Susu UHT 1.000ml",
    "Beras 5kg",
    "Beras 5 kg / 10 kg",
    "Beras 5000 gram",
    "Kopi 30g",
    "Kopi 30gr",
    "Kopi 30 gram isi 10 sachet",
    "Kopi 12 x 30g",
    "Kopi 1,5kg",
    "Kopi 1500 gr",
    "Xiaomi Redmi 4/64GB",
    "Xiaomi Redmi 4GB 128GB",
    "Xiaomi Redmi 3/32 GB",
    "SSD 1 TB",
    "SSD 1024 GB",
    "SSD 512GB",
    "Meja Lipat 3m",
    "Meja Lipat 300 cm",
    "Meja Lipat 120x60 cm",
    "Meja Lipat 60x120cm",
    "Kabel 5 meter",
    "Lampu LED 9w",
    "Lampu LED 9 watt 12w",
    "Lampu LED 12W 220V",
    "Powerbank 10.000mAh",
    "Powerbank 20000 mAh 2 pcs",
    "Tisu 250 lembar 2 ply",
    "Tisu 250 sheets 3 ply",
    "Masak 5 menit",
    "Jus 2 grape",
    "Kaos 2 in 1",
    "Tablet 8 inch 32GB",
    "Tablet 10 inch 32 GB",
    "",
]


def test_vectorised_conflicts_match_reference():
    table = QuantityTable.from_titles(TITLES)
    quantities = [extract_quantities(t) for t in TITLES]
    rng = np.random.default_rng(0)
    rows = rng.integers(-1, len(TITLES), size=600)
    cols = rng.integers(-1, len(TITLES), size=600)
    got = table.conflicts(rows, cols)
    expected = [
        r >= 0 and c >= 0 and reference_conflict(quantities[r], quantities[c])
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
    ]
    assert got.tolist() == expected
    assert 0 < got.sum() < got.size  # the sample exercises both outcomes
    # every pair once, as a 2-D (n, n) grid
    n = len(TITLES)
    grid = table.conflicts(*np.meshgrid(np.arange(n), np.arange(n), indexing="ij"))
    full = [[reference_conflict(quantities[r], quantities[c]) for c in range(n)] for r in range(n)]
    np.testing.assert_array_equal(grid, full)
    np.testing.assert_array_equal(grid, grid.T)
    assert not grid.diagonal().any()
    for i, q in enumerate(quantities):
        assert table.describe(i) == q


if __name__ == "__main__":  # timing on the real data: python tests/test_units.py [train.csv]
    import sys
    import time
    from pathlib import Path

    import pandas as pd

    csv = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/shopee/train.csv")
    titles = pd.read_csv(csv, usecols=["title"])["title"].tolist()
    t0 = time.perf_counter()
    table = QuantityTable.from_titles(titles)
    t1 = time.perf_counter()
    rng = np.random.default_rng(0)
    n = len(titles)
    rows = np.repeat(np.arange(n)[:, None], 100, axis=1)
    cols = rng.integers(0, n, size=(n, 100))
    t2 = time.perf_counter()
    mask = table.conflicts(rows, cols)
    t3 = time.perf_counter()
    with_any = int((~np.isnan(table.amounts[:, :, 0])).any(axis=1).sum())
    print(f"{n} titles, {with_any} with an amount; from_titles {t1 - t0:.2f} s")
    print(f"conflicts on {rows.size} pairs: {t3 - t2:.3f} s, {int(mask.sum())} conflicting")
