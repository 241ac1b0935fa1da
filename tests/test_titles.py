"""explorer.core.titles: the decoding of scraped titles (moved from precompute.text_encoders,
which imports it back), its vectorised form over a table, and the per-bundle cache."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from escaped_titles import ESCAPED, build_escaped_bundle

from explorer.core.bundle import Bundle
from explorer.core.titles import (
    _may_change,
    decoded_titles,
    normalise_title,
    normalise_titles,
    raw_titles,
)

CASES = [
    ("Sabun &amp; Sampo", "Sabun & Sampo"),
    ("Mom&#39;s Baby", "Mom's Baby"),
    ("kaos &amp;quot;polos&amp;quot;", 'kaos "polos"'),  # escaped twice, as in the table
    ("Tom&Jerry &regular", "Tom&Jerry &regular"),  # no ';': not an entity
    (r"Nescafe \xc3\x89clair Latte 220ml", "Nescafe Éclair Latte 220ml"),
    (r"\xe2\x9d\xa4 RATU \xe2\x9d\xa4", "❤ RATU ❤"),
    (r"Marcks\xe2\x80\x99 Venus", "Marcks’ Venus"),
    (r"caf\xe9 latte", "café latte"),  # not UTF-8: latin-1
    (r"\xc3\x89\xff\xe9t\xc3\xa9", "Éÿét" + "é"),  # valid parts UTF-8, stray bytes latin-1
    (r"\xc3", "Ã"),  # a truncated sequence
    (r"EAGLE\nEucalyptus\tSpray", "EAGLE Eucalyptus Spray"),
    (r"PRIA\\WANITA", "PRIA\\WANITA"),
    (r"""b"L'Oreal \xe2\x9c\xa8 Men" """, "L'Oreal ✨ Men"),  # the repr of a bytes object
    ("  botol \t minyak\n\n 250ml  ", "botol minyak 250ml"),
    ("a\x00b\x85c", "a b c"),  # control characters
    ("", ""),
    (float("nan"), ""),
    (None, ""),
    (pd.NA, ""),
    (42, ""),
]


@pytest.mark.parametrize(("raw", "want"), CASES)
def test_normalise_title(raw, want):
    assert normalise_title(raw) == want


def test_normalise_titles_decodes_a_table_as_each_title_alone():
    raws = [raw for raw, _ in CASES] * 2 + ["plain title 250ml", "b", "bag", "b'", "&", "\\"]
    wants = [want for _, want in CASES] * 2 + ["plain title 250ml", "b", "bag", "b'", "&",
                                               "\\"]
    got = normalise_titles(raws)
    assert got.dtype == object and got.tolist() == wants
    assert normalise_titles(pd.Series(raws, index=range(100, 100 + len(raws)))).tolist() \
        == wants  # the index does not matter
    assert normalise_titles([]).tolist() == []


def test_normalise_titles_sees_every_kind_of_whitespace():
    """The fast path skips titles that cannot change: any whitespace other than one inner
    space must still be collapsed, as normalise_title does."""
    spaces = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace() and c != 32]
    raws = [f"kopi{s}susu" for s in spaces] + [f"kopi {s}susu" for s in spaces] + \
        ["kopi  susu", " kopi susu", "kopi susu "]
    assert normalise_titles(raws).tolist() == ["kopi susu"] * len(raws)



def hostile_titles() -> list[str]:
    """Titles built to change under normalise_title in every way: each character up to
    U+3000 (every class of _MAY_CHANGE_CHAR and all whitespace but one) alone, inside, first
    and last, every whitespace character anywhere, bytes reprs, spaces at the ends and
    doubled, escapes and entities, and the plain titles around them."""
    chars = [chr(c) for c in range(0x3001)]
    chars += [chr(c) for c in range(0x3001, sys.maxunicode + 1) if chr(c).isspace()]
    titles = [t for c in chars for t in (c, f"a{c}b", f"{c}ab", f"ab{c}", f" {c} ")]
    for body in ("", "x", r"\xe2\x9c\xa8", "&amp;", "a b"):
        titles += [f"b'{body}'", f'b"{body}"', f"b'{body}", f" b'{body}'", f"B'{body}'"]
    titles += [" kopi", "kopi ", "  kopi", "kopi  susu", "kopi   susu", " ", "  ", "",
               "&amp;quot;", "&#39;", r"\n", r"\\", "b", "bag", "plain title 250ml"]
    return titles


def test_flagging_never_misses_a_title_that_normalise_title_changes():
    """normalise_titles decodes only the flagged titles: a title normalise_title changes
    and the flag misses would be shown undecoded."""
    titles = hostile_titles()
    flagged = _may_change(pa.array(titles, type=pa.large_string()))
    missed = [t for t, f in zip(titles, flagged, strict=True) if not f and normalise_title(t) != t]
    assert not missed, f"not flagged but changed: {missed[:10]!r}"
    assert not flagged[titles.index("plain title 250ml")]  # the fast path still skips
    raws = [*titles, float("nan"), None, pd.NA, 42, ""]
    assert normalise_titles(raws).tolist() == [normalise_title(t) for t in raws]


@pytest.fixture(scope="module")
def escaped(tmp_path_factory):
    path, rows = build_escaped_bundle(tmp_path_factory.mktemp("escaped"))
    return Bundle.open(path), rows


def test_decoded_titles_of_a_bundle_are_cached(escaped):
    bundle, rows = escaped
    titles = decoded_titles(bundle)
    assert len(titles) == bundle.manifest.n_items
    for key, (raw, shown) in ESCAPED.items():
        assert titles[rows[key]] == shown
        assert raw_titles(bundle)[rows[key]] == raw
    plain = np.setdiff1d(np.arange(len(titles)), list(rows.values()))
    assert (titles[plain] == bundle.items["title"].to_numpy(object)[plain]).all()
    assert decoded_titles(bundle) is titles  # once per bundle


@pytest.mark.realdata
def test_normalise_titles_on_the_real_table(real_csv):
    titles = pd.read_csv(real_csv, usecols=["title"])["title"]
    assert normalise_titles(titles).tolist() == [normalise_title(t) for t in titles]
