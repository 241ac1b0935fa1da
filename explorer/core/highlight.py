"""Which amounts differ between two titles, as character spans to highlight.

The pair view shows two titles side by side and marks the amounts that tell the postings
apart ("Sabun 250ml" vs "Sabun 500ml"). The amounts are read by
:func:`explorer.core.units.quantity_spans`, so they agree with the unit filter: "1kg" and
"1000 g" are the same amount and are not marked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from explorer.core.units import extract_quantities, load_units, quantity_spans

__all__ = ["Highlight", "Kind", "compare_titles", "describe_conflicts", "segments"]

#: ``differs``: the other title names this dimension with other amounts; ``only``: the other
#: title names no amount of this dimension; ``same``: the other title names these amounts too.
Kind = Literal["same", "differs", "only"]


@dataclass(frozen=True)
class Highlight:
    """``title[start:end]`` names ``quantities`` (dimension -> amounts in base units)."""

    start: int
    end: int
    kind: Kind
    quantities: dict[str, tuple[float, ...]]


def _highlights(title: str, other: dict[str, tuple[float, ...]],
                units: dict | None) -> list[Highlight]:
    out = []
    for span in quantity_spans(title, units):
        differs = only = False
        for dim, values in span.quantities.items():
            if dim not in other:
                only = True
            elif not set(values) <= set(other[dim]):
                differs = True
        kind: Kind = "differs" if differs else "only" if only else "same"
        out.append(Highlight(span.start, span.end, kind, span.quantities))
    return out


def compare_titles(a: str, b: str, units: dict | None = None
                   ) -> tuple[list[Highlight], list[Highlight]]:
    """The amounts named in ``a`` and in ``b``, each marked against the other title.

    An amount "differs" when the other title names the same dimension but not that amount
    (a span with several dimensions differs when any of them does).

    >>> a, b = compare_titles("Sabun 250ml 2 pcs", "Sabun 500ml 2 pcs")
    >>> [("Sabun 250ml 2 pcs"[h.start:h.end], h.kind) for h in a]
    [('250ml', 'differs'), ('2 pcs', 'same')]
    """
    qa, qb = extract_quantities(a, units), extract_quantities(b, units)
    return _highlights(a, qb, units), _highlights(b, qa, units)


def segments(title: str, highlights: list[Highlight]) -> list[tuple[str, Kind | None]]:
    """``title`` cut into consecutive pieces, each with its highlight kind (None between
    amounts); joining the pieces gives back ``title``."""
    out: list[tuple[str, Kind | None]] = []
    pos = 0
    for h in sorted(highlights, key=lambda h: h.start):
        if h.start < pos:  # overlapping spans cannot come from one title; keep the first
            continue
        if h.start > pos:
            out.append((title[pos:h.start], None))
        out.append((title[h.start:h.end], h.kind))
        pos = h.end
    if pos < len(title):
        out.append((title[pos:], None))
    return out


def _base_units(units: dict | None) -> dict[str, str]:
    """Dimension -> the first alias whose factor is 1 (its base unit), for display."""
    vocab = load_units() if units is None else units
    return {dim: next((a for a, f in aliases.items() if f == 1), "")
            for dim, aliases in vocab.items()}


def describe_conflicts(a: str, b: str, units: dict | None = None) -> list[str]:
    """One line per dimension that makes the unit filter separate the two titles (both
    name it, with no amount in common), e.g. ``"volume: 250 ml vs 500 ml"``."""
    qa, qb = extract_quantities(a, units), extract_quantities(b, units)
    base = _base_units(units)
    out = []
    for dim, values in qa.items():
        if dim in qb and not set(values) & set(qb[dim]):
            unit = f" {base.get(dim, '')}".rstrip()
            left = ", ".join(f"{v:g}" for v in values)
            right = ", ".join(f"{v:g}" for v in qb[dim])
            out.append(f"{dim}: {left}{unit} vs {right}{unit}")
    return out
