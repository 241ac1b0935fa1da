"""Titles as a person reads them.

The Shopee table stores some titles as scraped: UTF-8 bytes written as literal backslash-x
escapes (``\\xe2\\x9c\\xa8``), the repr of a bytes object (``b"..."``) and HTML entities
(``&amp;``, sometimes escaped twice). :func:`normalise_title` decodes them; the text
encoders embed its output (``precompute.text_encoders`` imports it from here, so what the
model reads and what the analyst reads are one decoding), and the app shows it.

:func:`decoded_titles` decodes a bundle's titles once, cached on the bundle as a
TextColumn (Arrow strings, explorer.core.text_column): the lists and tiles read rows of it
instead of decoding on every paint, and only the titles decoding changes ever become
Python strings. The raw title stays available (:func:`raw_titles`) for tooltips and
exports.
"""

from __future__ import annotations

import codecs
import html
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from explorer.core.text_column import TextColumn

__all__ = ["decoded_titles", "normalise_title", "normalise_titles", "raw_titles"]

# A scraped title is sometimes the repr of a bytes object: b"..." around escaped UTF-8.
_BYTES_REPR = re.compile(r"""^b(['"])(.*)\1$""", re.DOTALL)
_ESCAPE = re.compile(r"""\\\\|\\[ntr'"]|(?:\\x[0-9A-Fa-f]{2})+""")
# Only terminated entities: html.unescape alone would turn "&regular" into "®ular".
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SPACE = re.compile(r"\s+")
# Every title normalise_title could change holds one of these characters (an escape or an
# entity needs "\" or "&"; control characters and whitespace other than " " become spaces:
# Python's \s is " " and exactly the whitespace listed), two spaces in a row, leading or
# trailing whitespace, or starts with b' or b" (a bytes repr). Any other title is its own
# normalised form, which lets normalise_titles skip most of the table. The test is one RE2
# pass in pyarrow (_MAY_CHANGE), about 0.15 s at a million titles (Python's re through
# pandas took 0.9 s): RE2 has no \u escapes, so they are spelled \x{...} there.
_MAY_CHANGE_CHAR = r"[\\&\x00-\x1f\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
_MAY_CHANGE = (re.sub(r"\\u([0-9A-Fa-f]{4})", r"\\x{\1}", _MAY_CHANGE_CHAR)
               + r"""|  |^ | $|^b['"]""")


def _latin1_bytes(exc: UnicodeError) -> tuple[str, int]:
    assert isinstance(exc, UnicodeDecodeError)
    return exc.object[exc.start:exc.end].decode("latin-1"), exc.end


codecs.register_error("shopee-latin1", _latin1_bytes)


def _unescape(match: re.Match[str]) -> str:
    text = match.group(0)
    if not text.startswith("\\x"):
        return {"\\\\": "\\", "\\'": "'", '\\"': '"'}.get(text, " ")  # \n \t \r: a space
    raw = bytes(int(text[i + 2:i + 4], 16) for i in range(0, len(text), 4))
    # valid UTF-8 sequences decode as such, each stray byte as its latin-1 character
    return raw.decode("utf-8", errors="shopee-latin1")


def normalise_title(title: Any) -> str:
    """The study's title cleaning: bytes-repr wrapper and escaped bytes decoded, HTML
    entities decoded (twice-escaped ones too), control characters and runs of whitespace
    made one space, stripped. Anything that is not a string (NaN, None) gives ""."""
    if not isinstance(title, str):
        return ""
    text = title.strip()
    wrapped = _BYTES_REPR.match(text)
    if wrapped:
        text = wrapped.group(2)
    text = _ESCAPE.sub(_unescape, text)
    for _ in range(3):  # "&amp;quot;" is in the real table
        decoded = _ENTITY.sub(lambda m: html.unescape(m.group(0)), text)
        if decoded == text:
            break
        text = decoded
    return _SPACE.sub(" ", _CONTROL.sub(" ", text)).strip()


def normalise_titles(titles: Any) -> np.ndarray:
    """:func:`normalise_title` of each title (any sequence; NaN and None give ""), as an
    object array. Only the titles that could change are decoded, each distinct one once
    (on the real table about 1 in 5)."""
    text = np.array([t if isinstance(t, str) else "" for t in pd.Series(titles, dtype=object)],
                    dtype=object)
    try:
        arrow = pa.array(text, type=pa.large_string())
    except UnicodeEncodeError:  # a lone surrogate: Arrow holds UTF-8 only, so decode all
        return _decode_flagged(text, np.ones(len(text), bool))
    return _decode_flagged(text, _may_change(arrow))


def _may_change(text: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Whether normalise_title could change each title (no nulls in `text`): a superset of
    the titles it does change."""
    return pc.match_substring_regex(text, _MAY_CHANGE).to_numpy(zero_copy_only=False)


def _decode_flagged(text: np.ndarray, may: np.ndarray) -> np.ndarray:
    """`text` (an object array of str) with the flagged titles normalised, each distinct
    one decoded once; the others are the very objects of `text`."""
    out = text.copy()
    rows = np.flatnonzero(may)
    if len(rows):
        out[rows] = np.array(_normalised(text[rows]), dtype=object)
    return out


def _normalised(todo: np.ndarray) -> list[str]:
    """normalise_title of each of `todo`, each distinct title decoded once."""
    unique = pd.unique(todo)
    decoded = dict(zip(unique, map(normalise_title, unique), strict=True))
    return [decoded[t] for t in todo]


def _arrow_titles(bundle: Any) -> pa.Array | pa.ChunkedArray | None:
    """The bundle's title column as Arrow strings, nulls as "" (zero-copy from pandas'
    Arrow-backed str dtype); None when the column is not Arrow strings (object dtype)."""
    col = bundle.items["title"]
    if not hasattr(col.array, "__arrow_array__") or not pd.api.types.is_string_dtype(col.dtype):
        return None
    arrow = pa.array(col.array)  # pa.chunked_array(col.array) would iterate in Python
    if not (pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type)):
        return None
    return pc.fill_null(arrow, "")


def raw_titles(bundle: Any) -> TextColumn:
    """The bundle's titles as stored (NaN as ""), one per bundle row (a TextColumn: no
    Python object per title); computed once per bundle."""
    cache = bundle.derived
    if "titles_raw" not in cache:
        arrow = _arrow_titles(bundle)
        if arrow is not None:
            cache["titles_raw"] = TextColumn(arrow)
        else:
            title = bundle.items["title"]
            cache["titles_raw"] = TextColumn.of(
                title.astype(object).where(title.notna(), "").astype(str).tolist())
    return cache["titles_raw"]


def decoded_titles(bundle: Any) -> TextColumn:
    """The bundle's titles decoded by :func:`normalise_title`, one per bundle row (a
    TextColumn); only the flagged titles become Python strings, once per bundle, cached
    in ``bundle.derived``."""
    cache = bundle.derived
    if "titles" not in cache:
        raw = raw_titles(bundle)
        rows = np.flatnonzero(_may_change(raw.arrow))
        cache["titles"] = raw.replaced(rows, _normalised(raw[rows]))
    return cache["titles"]
