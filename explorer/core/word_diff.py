"""Which words tell two titles apart, as pieces of each title to highlight.

The pair view shows two titles and marks what differs: the amounts, compared by value by
:mod:`explorer.core.highlight` ("1kg" and "1000 g" are the same amount), and every other
word (a flavour, colour, size or variant: "pedas" vs "asli", "merah" vs "biru", "XL" vs
"L"), compared here. Words are runs of letters and digits, compared case-insensitively;
punctuation and spacing are ignored. The words outside the amounts are aligned with
:class:`difflib.SequenceMatcher`; a word that both titles hold, in another place, is shared
(word order does not make two products different). An unshared word "differs" when the
other title has unshared words too, and is "only" in its title when the other title has
none (this one just adds words: "PROMO").
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from difflib import SequenceMatcher

from explorer.core.highlight import Kind, compare_titles

__all__ = ["Segment", "Word", "compare_words", "differing_words", "words"]

#: ``(text, kind)``: ``kind`` is ``"differs"`` (the other title says something else here),
#: ``"only"`` (the other title has nothing in its place) or None (shared, or between words).
Segment = tuple[str, Kind | None]

_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Word:
    """``title[start:end]``, compared as ``key`` (case-folded)."""

    start: int
    end: int
    key: str


def words(title: str) -> list[Word]:
    """The words of ``title`` in order: runs of letters, digits (and ``_``)."""
    return [Word(m.start(), m.end(), m.group(0).casefold()) for m in _WORD.finditer(title)]


def _word_kinds(a: list[str], b: list[str]) -> tuple[list[Kind | None], list[Kind | None]]:
    """Per word of each side: None when shared (aligned with an equal word of the other
    side, or equal to one of its unaligned words: moved); else "differs" when the other
    side has unshared words too (they say different things), "only" when it has none
    (this side only adds words)."""
    ua, ub = [True] * len(a), [True] * len(b)
    for block in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        ua[block.a:block.a + block.size] = [False] * block.size
        ub[block.b:block.b + block.size] = [False] * block.size
    spare: dict[str, list[int]] = defaultdict(list)  # b's unaligned words, in order
    for j, unshared in enumerate(ub):
        if unshared:
            spare[b[j]].append(j)
    for i, unshared in enumerate(ua):
        if unshared and spare[a[i]]:
            ua[i] = ub[spare[a[i]].pop(0)] = False
    kind_a: Kind = "differs" if any(ub) else "only"
    kind_b: Kind = "differs" if any(ua) else "only"
    return ([kind_a if u else None for u in ua], [kind_b if u else None for u in ub])


def _segments(title: str, marks: list[tuple[int, int, Kind | None]]) -> list[Segment]:
    """``title`` cut at the (non-overlapping, sorted) marks; unmarked text is None. Pieces
    of one kind that touch, or are separated by spaces only, are joined."""
    out: list[list] = []

    def add(text: str, kind: Kind | None) -> None:
        if not text:
            return
        if out and out[-1][1] == kind:
            out[-1][0] += text
        else:
            out.append([text, kind])

    pos = 0
    for start, end, kind in marks:
        gap = title[pos:start]
        # "pedas manis" reads as one highlighted phrase, not two words and a plain space
        bridge = kind is not None and out and out[-1][1] == kind and not gap.strip()
        add(gap, kind if bridge else None)
        add(title[start:end], kind)
        pos = end
    add(title[pos:], None)
    return [(text, kind) for text, kind in out]


def _marks(title: str, amounts, own: list[Word], kinds: list[Kind | None]
           ) -> list[tuple[int, int, Kind | None]]:
    marks = [(h.start, h.end, None if h.kind == "same" else h.kind) for h in amounts]
    marks += [(w.start, w.end, k) for w, k in zip(own, kinds, strict=True)]
    return sorted(marks)


def compare_words(a: str, b: str, units: dict | None = None
                  ) -> tuple[list[Segment], list[Segment]]:
    """``a`` and ``b`` cut into pieces, each marked against the other title: amounts by
    value (:func:`explorer.core.highlight.compare_titles`), the other words by spelling
    (case-insensitive). Joining a side's pieces gives back its title.

    >>> left, right = compare_words("Keripik Pedas isi 250g", "keripik ASLI isi 500 g")
    >>> left
    [('Keripik ', None), ('Pedas', 'differs'), (' isi ', None), ('250g', 'differs')]
    >>> [p for p in right if p[1]]
    [('ASLI', 'differs'), ('500 g', 'differs')]
    """
    a, b = a or "", b or ""
    ha, hb = compare_titles(a, b, units)

    def outside(title_words: list[Word], amounts) -> list[Word]:
        return [w for w in title_words
                if not any(w.start < h.end and h.start < w.end for h in amounts)]

    wa, wb = outside(words(a), ha), outside(words(b), hb)
    ka, kb = _word_kinds([w.key for w in wa], [w.key for w in wb])
    return (_segments(a, _marks(a, ha, wa, ka)), _segments(b, _marks(b, hb, wb, kb)))


def differing_words(segments: list[Segment]) -> list[str]:
    """The highlighted pieces of one side, stripped, in order (for a one-line summary)."""
    return [text.strip() for text, kind in segments if kind is not None and text.strip()]
