"""A small dataset whose titles are stored as in the real Shopee table: UTF-8 bytes written
as literal backslash-x escapes, HTML entities (some escaped twice) and the repr of a bytes
object, with what a person should read for each. Shared by the tests of the decoded-title
display (tests/test_titles.py, tests/test_gui_titles.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from conftest import synthetic_table

# posting row -> (raw title as stored in the CSV, the title a person reads); the rows are
# group 0's first posting and group 1's first two postings of synthetic_table()
SPARKLE = r"\xe2\x9c\xa8"  # the UTF-8 bytes of "✨", as literal text
ESCAPED = {
    0: (rf"{SPARKLE}Hideem{SPARKLE}Implora Cheek &amp; Liptint 250ml",
        "✨Hideem✨Implora Cheek & Liptint 250ml"),
    1: (r"Sabun \xe2\x9c\xa8 &amp; Lotion PEDAS 500ml", "Sabun ✨ & Lotion PEDAS 500ml"),
    2: (r"""b'Sabun \xe2\x9c\xa8 &amp;quot;asli&amp;quot; Lotion 500ml'""",
        'Sabun ✨ "asli" Lotion 500ml'),
}


def escaped_table() -> pd.DataFrame:
    """synthetic_table() with the ESCAPED titles put in; rows 1 and 2 share a label group."""
    df = synthetic_table()
    first = df.groupby("label_group").head(2).index
    g0 = df.index[df["label_group"] == df["label_group"].iloc[0]][0]
    g1 = [i for i in first if df.at[i, "label_group"] == 1001]
    rows = {0: g0, 1: g1[0], 2: g1[1]}
    for key, (raw, _) in ESCAPED.items():
        df.at[rows[key], "title"] = raw
    df.attrs["escaped_rows"] = rows  # ESCAPED key -> row of the table (= bundle row)
    return df


def build_escaped_bundle(root: Path) -> tuple[Path, dict[int, int]]:
    """A TF-IDF + phash bundle (no pictures) over escaped_table(); (bundle path, ESCAPED
    key -> bundle row)."""
    from precompute.build import BuildOptions, build

    df = escaped_table()
    csv = root / "train.csv"
    df.to_csv(csv, index=False)
    text = csv.read_text(encoding="utf-8")
    assert SPARKLE in text and "✨" not in text  # the escapes are literal text in the file
    return build(BuildOptions(csv=csv, out=root / "escaped.bundle", k=20, progress=False)), \
        df.attrs["escaped_rows"]
