"""explorer.core.word_diff: the words that tell two titles apart, with the amounts judged
by value (explorer.core.highlight)."""

from __future__ import annotations

import pytest

from explorer.core.word_diff import compare_words, differing_words, words


def marked(segments) -> list[tuple[str, str]]:
    return [(text, kind) for text, kind in segments if kind is not None]


def test_words_are_case_folded_runs_of_letters_and_digits():
    ws = words("Kaos-Polos, XL (Merah)!")
    assert [w.key for w in ws] == ["kaos", "polos", "xl", "merah"]
    assert [(w.start, w.end) for w in ws] == [(0, 4), (5, 10), (12, 14), (16, 21)]


def test_flavour_words_differ():
    left, right = compare_words("Keripik Singkong PEDAS 100g", "keripik singkong asli 100 gr")
    assert marked(left) == [("PEDAS", "differs")]
    assert marked(right) == [("asli", "differs")]


def test_segments_give_back_the_titles():
    a, b = "<Minyak> & Goreng, 2 liter!", "minyak goreng sawit 2000 ml"
    left, right = compare_words(a, b)
    assert "".join(t for t, _ in left) == a and "".join(t for t, _ in right) == b
    # punctuation and case are not differences; 2 liter is 2000 ml
    assert marked(left) == [] and marked(right) == [("sawit", "only")]


def test_moved_words_are_shared():
    left, right = compare_words("Sabun Lifebuoy merah besar", "LIFEBUOY sabun besar biru")
    assert marked(left) == [("merah", "differs")]
    assert marked(right) == [("biru", "differs")]


def test_added_words_are_only_on_their_side():
    left, right = compare_words("Kaos merah", "PROMO Kaos merah COD")
    assert marked(left) == []
    assert marked(right) == [("PROMO", "only"), ("COD", "only")]


def test_a_word_twice_differs_once():
    left, right = compare_words("tas tas hitam", "tas hitam")
    assert marked(left) == [("tas", "only")] and marked(right) == []


def test_amounts_are_judged_by_value():
    left, right = compare_words("Shampoo 1kg isi 2 pcs", "shampoo 1000 g isi 3 pcs")
    assert marked(left) == [("2 pcs", "differs")]
    assert marked(right) == [("3 pcs", "differs")]
    left, right = compare_words("Sabun 250ml wangi", "Sabun wangi")
    assert marked(left) == [("250ml", "only")] and marked(right) == []


def test_neighbouring_words_of_one_kind_read_as_one_phrase():
    left, right = compare_words("Teh hijau melati 25 sachet", "Teh hitam 25 sachet")
    assert marked(left) == [("hijau melati", "differs")]
    assert marked(right) == [("hitam", "differs")]


@pytest.mark.parametrize(("a", "b"), [("", ""), ("", "kopi"), ("kopi", "KOPI"), ("!!", "?")])
def test_edge_cases(a, b):
    left, right = compare_words(a, b)
    assert "".join(t for t, _ in left) == a and "".join(t for t, _ in right) == b
    assert marked(left) == [] and marked(right) == ([("kopi", "only")] if b == "kopi" else [])


def test_differing_words():
    left, right = compare_words("Teh hijau melati 25 sachet", "Teh hitam 25 sachet")
    assert differing_words(left) == ["hijau melati"] and differing_words(right) == ["hitam"]
