"""Tests for explorer.core.highlight (which amounts differ between two titles) and the span
helper it reads, explorer.core.units.quantity_spans."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.core.highlight import compare_titles, describe_conflicts, segments
from explorer.core.units import QuantityTable, extract_quantities, quantity_spans

TITLES = [
    "Sabun 250ml Botol 2 pcs", "Susu UHT 1,5 kg isi 2 pcs", "kaos 20x30 cm 1/2kg",
    "HP 4/64GB ZE550ML", "12 x 30g kopi", "Shampoo 250ml 500ml", "Powerbank 10.000mAh 5 menit",
    "Minyak 1 liter", "Minyak 1000 ml", "no amounts here", "", "Kabel 3m2 98MB/s 2 grape",
    "Beras 5kg + 1kg", "Tas 60/90/150 ml", "<b>Sabun</b> & 250ml",
]


def texts(title: str, highlights) -> list[tuple[str, str]]:
    return [(title[h.start:h.end], h.kind) for h in highlights]


@pytest.mark.parametrize("title", TITLES)
def test_spans_name_exactly_the_extracted_quantities(title):
    found: dict[str, set[float]] = {}
    for span in quantity_spans(title):
        assert 0 <= span.start < span.end <= len(title)
        assert title[span.start].isdigit()
        for dim, values in span.quantities.items():
            found.setdefault(dim, set()).update(values)
    assert {d: tuple(sorted(v)) for d, v in found.items()} == extract_quantities(title)


def test_spans_cover_the_amount_text():
    title = "Susu 1,5 kg isi 2 pcs"
    assert [title[s.start:s.end] for s in quantity_spans(title)] == ["1,5 kg", "2 pcs"]
    assert quantity_spans(None) == []


def test_differing_amount_is_marked_and_shared_one_is_not():
    a, b = "Sabun 250ml Botol 2 pcs", "Sabun 500ml Botol 2 pcs"
    ha, hb = compare_titles(a, b)
    assert texts(a, ha) == [("250ml", "differs"), ("2 pcs", "same")]
    assert texts(b, hb) == [("500ml", "differs"), ("2 pcs", "same")]


def test_the_same_amount_in_other_units_is_not_marked():
    a, b = "Minyak 1 liter", "Minyak 1000 ml"
    ha, hb = compare_titles(a, b)
    assert [h.kind for h in ha + hb] == ["same", "same"]
    assert describe_conflicts(a, b) == []


def test_amount_of_a_dimension_the_other_title_lacks_is_only_here():
    a, b = "Kopi 200 gr 10 pcs", "Kopi 200 gram"
    ha, hb = compare_titles(a, b)
    assert texts(a, ha) == [("200 gr", "same"), ("10 pcs", "only")]
    assert texts(b, hb) == [("200 gram", "same")]


def test_one_of_several_amounts_differs():
    a, b = "Shampoo 250ml 500ml", "Shampoo 500ml"
    ha, _ = compare_titles(a, b)
    assert texts(a, ha) == [("250ml", "differs"), ("500ml", "same")]
    assert describe_conflicts(a, b) == []  # they share 500 ml: the unit filter keeps them


@pytest.mark.parametrize("title", TITLES)
def test_segments_put_the_title_back_together(title):
    ha, _ = compare_titles(title, "Sabun 500ml Botol 3 pcs 1 kg")
    pieces = segments(title, ha)
    assert "".join(text for text, _ in pieces) == title
    assert [text for text, kind in pieces if kind] == [title[h.start:h.end] for h in ha]


def test_describe_conflicts_names_dimension_and_amounts():
    assert describe_conflicts("Sabun 250ml 2 pcs", "Sabun 0,5 liter 2 pcs") == [
        "volume: 250 ml vs 500 ml"]
    assert describe_conflicts("Beras 5kg", "Beras 5kg") == []


def test_conflicts_agree_with_the_unit_filter():
    table = QuantityTable.from_titles(TITLES)
    n = len(TITLES)
    rows, cols = np.divmod(np.arange(n * n), n)
    filtered = table.conflicts(rows, cols)
    described = [bool(describe_conflicts(TITLES[r], TITLES[c])) for r, c in zip(rows, cols,
                                                                                   strict=True)]
    assert described == filtered.tolist()
    assert any(described)
