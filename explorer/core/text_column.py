"""A column of strings held as one Arrow array: UTF-8 bytes and offsets, no Python object
per row. The query list's titles, posting ids and labels at a million postings are about
200 MB of bytes this way; as numpy object arrays they were three million `str` objects
(RSS, and 0.3 s to make them). A row becomes a Python `str` only when it is read: the
rows on screen, a case list's few hundred, one query's candidates."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["TextColumn"]


class TextColumn:
    """Read-only strings (never null: a missing value is "") with numpy-like reads:
    `col[i]` is a str, `col[rows]` (integer or boolean array) an object array of those
    rows, `col == "x"` a boolean array."""

    __hash__ = None  # == compares row by row, as numpy's does

    def __init__(self, arrow: pa.Array | pa.ChunkedArray) -> None:
        if isinstance(arrow, pa.ChunkedArray):
            arrow = arrow.combine_chunks() if arrow.num_chunks != 1 else arrow.chunk(0)
        if not (pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type)):
            arrow = pc.cast(arrow, pa.large_string())
        self.arrow: pa.Array = pc.fill_null(arrow, "") if arrow.null_count else arrow

    @classmethod
    def of(cls, values: Sequence[Any] | np.ndarray) -> TextColumn:
        """From Python values; anything that is not a str (None, NaN) becomes ""."""
        return cls(pa.array([v if isinstance(v, str) else "" for v in values],
                            pa.large_string()))

    def __len__(self) -> int:
        return len(self.arrow)

    def __iter__(self) -> Iterator[str]:
        return iter(self.arrow.to_pylist())

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int | np.integer):
            i = int(key)
            if not -len(self) <= i < len(self):
                raise IndexError(f"row {i} out of range for {len(self)} strings")
            return self.arrow[i % len(self)].as_py()
        return self.take(key).to_numpy()

    def take(self, rows: Any) -> TextColumn:
        """The column of these rows (integers, numpy's negative ones included, or a
        boolean mask)."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64, copy=False)
        if rows.size and rows.min() < 0:
            rows = np.where(rows < 0, rows + len(self), rows)
        return TextColumn(self.arrow.take(pa.array(rows)))

    def to_numpy(self) -> np.ndarray:
        """An object array of str (one Python object per row: for a few rows only)."""
        return np.asarray(self.arrow.to_numpy(zero_copy_only=False), dtype=object)

    def tolist(self) -> list[str]:
        return self.arrow.to_pylist()

    def __eq__(self, other: object) -> np.ndarray:  # type: ignore[override]
        if isinstance(other, TextColumn):
            return _bools(pc.equal(self.arrow, other.arrow))
        if isinstance(other, str):
            return _bools(pc.equal(self.arrow, pa.scalar(other, self.arrow.type)))
        return np.zeros(len(self), bool)

    def __ne__(self, other: object) -> np.ndarray:  # type: ignore[override]
        return ~self.__eq__(other)

    def contains(self, text: str) -> np.ndarray:
        """Case-insensitive substring match of each row (what the list's search does)."""
        return _bools(pc.match_substring(self.arrow, text, ignore_case=True))

    def replaced(self, rows: np.ndarray, values: Sequence[str]) -> TextColumn:
        """A copy with the strings of `rows` (ascending, distinct) replaced by `values`."""
        if not len(rows):
            return self
        mask = np.zeros(len(self), bool)
        mask[rows] = True
        return TextColumn(pc.replace_with_mask(self.arrow, pa.array(mask),
                                               pa.array(list(values), self.arrow.type)))


def _bools(arrow: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(arrow.to_numpy(zero_copy_only=False), dtype=bool)
