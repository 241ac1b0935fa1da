"""TextColumn: Arrow strings read like a numpy object array (rows, masks, comparisons),
never null, with the list's case-insensitive search."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from explorer.core.text_column import TextColumn

VALUES = ["Botol Hijau 500ml", "", "ÉCLAIR cake", "botol merah", "x&amp;y"]


def test_rows_read_like_a_numpy_object_array():
    col = TextColumn.of(VALUES)
    want = np.array(VALUES, dtype=object)
    assert len(col) == 5 and list(col) == VALUES and col.tolist() == VALUES
    for i in (0, 2, 4, -1, -5, np.int64(3)):
        assert col[i] == want[i] and isinstance(col[i], str)
    for rows in ([3, 0, 3], np.array([4, -1, 1]), np.array([], np.int64),
                 np.array([True, False, True, False, True])):
        got = col[rows]
        assert got.dtype == object and got.tolist() == want[rows].tolist()
    assert col.take([2, 0]).tolist() == ["ÉCLAIR cake", "Botol Hijau 500ml"]
    with pytest.raises(IndexError):
        col[5]
    with pytest.raises(IndexError):
        col[-6]


def test_comparisons_and_search():
    col = TextColumn.of(VALUES)
    np.testing.assert_array_equal(col == "botol merah", [False, False, False, True, False])
    np.testing.assert_array_equal(col != "", [True, False, True, True, True])
    other = TextColumn.of(["Botol Hijau 500ml", "", "eclair", "botol merah", "x&y"])
    np.testing.assert_array_equal(col == other, [True, True, False, True, False])
    np.testing.assert_array_equal(col.contains("BOTOL"), [True, False, False, True, False])
    np.testing.assert_array_equal(col.contains("éclair"), [False, False, True, False, False])
    np.testing.assert_array_equal(col.contains(""), [True] * 5)
    assert (col == 3).tolist() == [False] * 5  # not a string: equal to none


def test_nulls_and_non_strings_and_replacement():
    assert TextColumn.of([None, float("nan"), "a"]).tolist() == ["", "", "a"]
    assert TextColumn(pa.array(["a", None])).tolist() == ["a", ""]
    assert TextColumn(pa.array([12, 7])).tolist() == ["12", "7"]  # integer labels
    chunked = TextColumn(pa.chunked_array([["a", "b"], ["c"]]))
    assert chunked.tolist() == ["a", "b", "c"] and chunked[2] == "c"
    col = TextColumn.of(VALUES)
    new = col.replaced(np.array([1, 4]), ["(none)", "x&y"])
    assert new.tolist() == ["Botol Hijau 500ml", "(none)", "ÉCLAIR cake", "botol merah", "x&y"]
    assert col.tolist() == VALUES  # the original is unchanged
    assert col.replaced(np.array([], np.int64), []) is col
