"""Amounts named in product titles ("250ml", "1,5 kg", "64GB") and a vectorised conflict filter.

Titles that name different amounts of the same dimension are different products
("Shampoo 250ml" vs "Shampoo 500ml"), while "30g", "30gr" and "30 gram" -- or "1kg" and
"1000 g" -- are the same amount. :func:`extract_quantities` reads the amounts of one title;
:class:`QuantityTable` packs them for a whole table so that the matching engine can drop
candidate pairs whose titles conflict, millions of pairs at a time.

The unit vocabulary is data (``resources/units.json``): dimension -> {alias -> factor to the
dimension's base unit}; see :func:`load_units`.

Number and unit rules
---------------------
* ``1,5kg`` and ``1.5kg`` are 1.5 kg; a dot followed by exactly three digits in a number without
  a comma groups thousands (``1.000ml`` is 1000 ml, ``10.000mAh`` is 10000 mAh) unless the integer
  part is ``0`` (``0.250 kg``); with both separators the last one is the decimal mark.
* The amount may touch its unit or be separated from it by spaces. A unit never matches as the
  prefix of a longer word ("5 menit", "2 grape", "3m2") nor as a rate ("98MB/s"), and a number
  never starts inside a word or another number ("ZE550ML" is a model code, not 550 ml).
* ``12 x 30g`` names only 30 g (no count is invented from "x"). In the dimensions listed in
  ``SPREAD_DIMS`` (sizes such as ``20x30 cm``) every number of an ``x`` chain takes the unit.
  Numbers listed with slashes share the unit that follows (``4/64GB``, ``60/90/150 ml``), and a
  proper fraction ``1/2``, ``1/4``, ``3/4``, ``1/8`` ... directly before a unit of one of
  ``FRACTION_DIMS`` is read as a fraction (``1/2kg`` is 500 g).
* Amounts are converted to the base unit and rounded to 6 significant digits, so 1.5 kg equals
  1500 g exactly.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

__all__ = ["QuantitySpan", "QuantityTable", "extract_quantities", "load_units", "quantity_spans"]

#: Dimensions in which all numbers of an "a x b x c <unit>" chain take the unit (sizes).
SPREAD_DIMS = frozenset({"length", "inch"})
#: Dimensions in which "1/2 <unit>" is a fraction rather than a list of two amounts.
FRACTION_DIMS = frozenset({"mass", "volume", "length", "inch"})
_FRACTION_DENOMINATORS = frozenset({2, 4, 8})

_SIG_DIGITS = 6

_NUM = r"\d+(?:[.,]\d+)*"
# After a unit: not followed by a word character, except an "x" that starts the next factor of
# a size chain ("30cmx50cm", "190mlx24"); and not a rate ("98mb/s", "10 m/s").
_UNIT_END = r"(?:(?!\w)|(?=x\s*\d))(?!\s*/\s*(?:s|sec|detik)(?!\w))"
_SEP = r"\s*[x×*/]\s*"


# --------------------------------------------------------------------------------------------
# vocabulary
# --------------------------------------------------------------------------------------------


def _default_units_text() -> str:
    try:
        from importlib.resources import files

        resource = files("explorer.resources").joinpath("units.json")
        if resource.is_file():
            return resource.read_text(encoding="utf-8")
    except (ImportError, OSError, TypeError, ValueError):
        pass
    path = Path(__file__).resolve().parents[2] / "resources" / "units.json"
    return path.read_text(encoding="utf-8")


def _normalize_units(raw: Mapping) -> dict[str, dict[str, float]]:
    """Validate a vocabulary; drop ``_``-prefixed keys; lower-case aliases."""
    if not isinstance(raw, Mapping):
        raise TypeError(f"units must be a mapping of dimension -> aliases, got {type(raw)!r}")
    out: dict[str, dict[str, float]] = {}
    owner: dict[str, str] = {}
    for dim, aliases in raw.items():
        if not isinstance(dim, str) or dim.startswith("_"):
            continue
        if not isinstance(aliases, Mapping):
            raise TypeError(f"units[{dim!r}] must be a mapping of alias -> factor")
        table: dict[str, float] = {}
        for alias, factor in aliases.items():
            if not isinstance(alias, str) or alias.startswith("_"):
                continue
            key = " ".join(alias.lower().split())
            if not key:
                raise ValueError(f"empty unit alias in dimension {dim!r}")
            if isinstance(factor, bool) or not isinstance(factor, int | float):
                raise TypeError(f"factor of unit {alias!r} ({dim}) must be a number")
            value = float(factor)
            if not np.isfinite(value) or value <= 0:
                raise ValueError(f"factor of unit {alias!r} ({dim}) must be positive and finite")
            if key in owner and owner[key] != dim:
                raise ValueError(f"unit alias {key!r} is in both {owner[key]!r} and {dim!r}")
            owner[key] = dim
            table[key] = value
        if table:
            out[dim] = table
    return out


@functools.cache
def _default_units() -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
    units = _normalize_units(json.loads(_default_units_text()))
    return tuple((dim, tuple(aliases.items())) for dim, aliases in units.items())


def load_units(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """The unit vocabulary: dimension -> {alias (lower case) -> factor to the base unit}.

    ``path=None`` reads the packaged ``resources/units.json`` (``explorer.resources`` when
    installed, the source checkout's ``resources/`` otherwise). Keys starting with ``_`` are
    comments and ignored. Raises ``ValueError`` when an alias belongs to two dimensions or a
    factor is not positive.
    """
    if path is None:
        return {dim: dict(aliases) for dim, aliases in _default_units()}
    return _normalize_units(json.loads(Path(path).read_text(encoding="utf-8")))


# --------------------------------------------------------------------------------------------
# extraction
# --------------------------------------------------------------------------------------------


class _Parser:
    """Compiled regexes for one vocabulary."""

    def __init__(self, units: dict[str, dict[str, float]]):
        self.dims: tuple[str, ...] = tuple(units)
        self.alias: dict[str, tuple[int, float]] = {}
        for d, aliases in enumerate(units.values()):
            for alias, factor in aliases.items():
                self.alias["".join(alias.split())] = (d, factor)
        self.spread = frozenset(d for d, name in enumerate(self.dims) if name in SPREAD_DIMS)
        self.fraction = frozenset(d for d, name in enumerate(self.dims) if name in FRACTION_DIMS)
        if not self.alias:
            self.chain = self.elem = None
            return
        ordered = sorted({a for aliases in units.values() for a in aliases},
                         key=lambda a: (-len(a), a))
        patterns = [re.escape(a).replace(r"\ ", r"\s*") for a in ordered]
        unit = "(?:" + "|".join(patterns) + ")"
        flags = re.IGNORECASE
        # for the rare match whose str.lower() is not the alias ("İnch", "ſachet")
        self._fallback = [(re.compile(pat, flags), self.alias["".join(a.split())])
                          for pat, a in zip(patterns, ordered, strict=True)]
        self.chain = re.compile(
            rf"(?<!\w)(?<!\d[.,])(?:{_NUM}(?:\s*{unit}{_UNIT_END})?{_SEP})*"
            rf"{_NUM}\s*{unit}{_UNIT_END}",
            flags,
        )
        self.elem = re.compile(
            rf"(?P<num>{_NUM})(?:\s*(?P<unit>{unit}){_UNIT_END})?(?P<sep>{_SEP})?", flags
        )

    def amounts(self, title: str) -> dict[int, list[float]]:
        """dimension index -> distinct base amounts in order of appearance."""
        found: dict[int, list[float]] = {}
        if self.chain is None or not isinstance(title, str):
            return found
        for chain in self.chain.finditer(title):
            for d, value in self._chain_amounts(chain.group(0)):
                values = found.setdefault(d, [])
                if value not in values:
                    values.append(value)
        return found

    def _unit(self, text: str) -> tuple[int, float] | None:
        found = self.alias.get("".join(text.lower().split()))
        if found is None:
            found = next((u for pat, u in self._fallback if pat.fullmatch(text)), None)
        return found

    def _chain_amounts(self, text: str) -> list[tuple[int, float]]:
        # element: [raw number, value, unit (dim, factor) | None, separator after it]
        elems = []
        for m in self.elem.finditer(text):
            unit = m.group("unit")
            sep = m.group("sep")
            elems.append([m.group("num"), _parse_number(m.group("num")),
                          self._unit(unit) if unit else None, sep.strip() if sep else None, sep])
        # unit of each element: its own, or inherited from the next element with a unit
        units: list[tuple[int, float] | None] = [None] * len(elems)
        nxt = None
        slash_only = True
        for i in range(len(elems) - 1, -1, -1):
            own, sep = elems[i][2], elems[i][3]
            if own is not None:
                units[i], nxt, slash_only = own, own, True
                continue
            if nxt is not None:
                slash_only = slash_only and sep == "/"
                if slash_only or nxt[0] in self.spread:
                    units[i] = nxt
        out: list[tuple[int, float]] = []
        skip = False
        for i, (raw, value, own, _sep, raw_sep) in enumerate(elems):
            if skip:
                skip = False
                continue
            unit = units[i]
            if unit is None or value is None:
                continue
            if (own is None and raw_sep == "/" and i + 1 < len(elems) and units[i + 1] == unit
                    and unit[0] in self.fraction and (i == 0 or elems[i - 1][3] != "/")
                    and elems[i + 1][3] != "/" and _is_fraction(raw, elems[i + 1][0])):
                value = int(raw) / int(elems[i + 1][0])
                skip = True
            out.append((unit[0], _round_sig(value * unit[1])))
        return out


def _is_fraction(num: str, den: str) -> bool:
    if not (num.isdigit() and den.isdigit()):
        return False
    a, b = int(num), int(den)
    return b in _FRACTION_DENOMINATORS and a % 2 == 1 and a < b


def _parse_number(raw: str) -> float | None:
    """'1,5' -> 1.5, '1.000' -> 1000, '0.250' -> 0.25, '1.250,5' -> 1250.5; None if unreadable."""
    has_dot, has_comma = "." in raw, "," in raw
    if has_dot and has_comma:
        dec = "." if raw.rfind(".") > raw.rfind(",") else ","
        grp = "," if dec == "." else "."
        whole, frac = raw.rsplit(dec, 1)
        groups = whole.split(grp)
        if any(len(g) != 3 for g in groups[1:]) or "." in frac or "," in frac:
            return None
        return float("".join(groups) + "." + frac)
    if not (has_dot or has_comma):
        return float(raw)
    sep = "." if has_dot else ","
    parts = raw.split(sep)
    if len(parts) > 2:
        if all(len(p) == 3 for p in parts[1:]):
            return float("".join(parts))
        return None
    whole, frac = parts
    if sep == "." and len(frac) == 3 and whole.lstrip("0"):
        return float(whole + frac)
    return float(whole + "." + frac)


def _round_sig(value: float) -> float:
    return float(f"{value:.{_SIG_DIGITS}g}") if value else 0.0


def _units_key(units: Mapping) -> tuple:
    norm = _normalize_units(units)
    return tuple((dim, tuple(sorted(aliases.items()))) for dim, aliases in norm.items())


@functools.lru_cache(maxsize=32)
def _parser_for_key(key: tuple) -> _Parser:
    return _Parser({dim: dict(aliases) for dim, aliases in key})


def _parser(units: Mapping | None) -> _Parser:
    if units is None:
        return _parser_for_key(_default_units())
    return _parser_for_key(_units_key(units))


def extract_quantities(title: str, units: dict | None = None) -> dict[str, tuple[float, ...]]:
    """Dimension -> sorted distinct amounts (in the dimension's base unit) named in ``title``.

    >>> extract_quantities("Susu UHT 250ml isi 2 pcs")
    {'volume': (250.0,), 'count': (2.0,)}
    """
    parser = _parser(units)
    found = parser.amounts(title)
    return {parser.dims[d]: tuple(sorted(found[d])) for d in sorted(found)}


class QuantitySpan(NamedTuple):
    """One run of amounts in a title: ``title[start:end]`` and what it names."""

    start: int
    end: int
    quantities: dict[str, tuple[float, ...]]


def quantity_spans(title: str, units: dict | None = None) -> list[QuantitySpan]:
    """Where ``title`` names amounts, in order: one span per amount or chain of amounts
    ("250ml", "4/64GB", "20x30 cm", "12 x 30g"), with the dimension -> sorted amounts it
    names. The spans together name exactly what :func:`extract_quantities` reads.

    >>> quantity_spans("Susu 1,5 kg")
    [QuantitySpan(start=5, end=11, quantities={'mass': (1500.0,)})]
    """
    parser = _parser(units)
    if parser.chain is None or not isinstance(title, str):
        return []
    out = []
    for chain in parser.chain.finditer(title):
        found: dict[int, set[float]] = {}
        for d, value in parser._chain_amounts(chain.group(0)):
            found.setdefault(d, set()).add(value)
        if found:
            quantities = {parser.dims[d]: tuple(sorted(found[d])) for d in sorted(found)}
            out.append(QuantitySpan(chain.start(), chain.end(), quantities))
    return out


# --------------------------------------------------------------------------------------------
# table
# --------------------------------------------------------------------------------------------


def _mask_dtype(n_dims: int) -> type[np.unsignedinteger]:
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if n_dims <= np.iinfo(dtype).bits:
            return dtype
    raise ValueError(f"at most 64 dimensions are supported, got {n_dims}")


class QuantityTable:
    """Per-posting amounts for a whole table, packed for vectorised pair checks.

    ``amounts`` is a float64 array of shape ``(n, n_dims, max_values)``: for posting ``i`` and
    dimension ``d`` the distinct base amounts in order of appearance, padded with NaN.
    """

    def __init__(self, amounts: np.ndarray, dims: Sequence[str]):
        amounts = np.asarray(amounts, dtype=np.float64)
        dims = tuple(dims)
        if amounts.ndim != 3 or amounts.shape[1] != len(dims):
            raise ValueError(
                f"amounts must have shape (n, {len(dims)}, max_values), got {amounts.shape}"
            )
        self.amounts = amounts
        self.dims = dims
        n, n_dims, _ = amounts.shape
        filled = ~np.isnan(amounts)
        counts = filled.sum(axis=2)  # (n, n_dims)
        dtype = _mask_dtype(max(n_dims, 1))
        present = np.zeros(n + 1, dtype=dtype)  # extra last entry: padding index, no dims
        for d in range(n_dims):
            present[:n] |= (counts[:, d] > 0).astype(dtype) << dtype(d)
        self._present = present
        # per dimension, the slots that hold any amount, as contiguous columns
        occupied = filled.any(axis=0)  # (n_dims, max_values)
        self._slots = [
            [np.ascontiguousarray(amounts[:, d, k]) for k in np.flatnonzero(occupied[d])]
            for d in range(n_dims)
        ]

    @classmethod
    def from_titles(
        cls, titles: Sequence[str], units: dict | None = None, max_values: int = 4
    ) -> QuantityTable:
        """Extract the amounts of every title (first ``max_values`` per dimension)."""
        if max_values < 1:
            raise ValueError("max_values must be at least 1")
        parser = _parser(units)
        amounts = np.full((len(titles), len(parser.dims), max_values), np.nan)
        seen: dict[str, dict[int, list[float]]] = {}
        for i, title in enumerate(titles):
            found = seen.get(title) if isinstance(title, str) else None
            if found is None:
                found = parser.amounts(title)
                if isinstance(title, str):
                    seen[title] = found
            for d, values in found.items():
                kept = values[:max_values]
                amounts[i, d, : len(kept)] = kept
        return cls(amounts, parser.dims)

    def __len__(self) -> int:
        return self.amounts.shape[0]

    @property
    def max_values(self) -> int:
        return self.amounts.shape[2]

    def conflicts(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Bool array, shape of ``rows``: True where the two postings' amounts conflict.

        A pair conflicts when, for some dimension, both postings name at least one amount and
        the two sets share no value. Negative indices are padding and never conflict; a posting
        never conflicts with itself.
        """
        rows = np.asarray(rows)
        cols = np.asarray(cols)
        if rows.shape != cols.shape:
            raise ValueError(f"rows and cols differ in shape: {rows.shape} vs {cols.shape}")
        out = np.zeros(rows.shape, dtype=bool)
        if rows.size == 0:
            return out
        for name, arr in (("rows", rows), ("cols", cols)):
            if not np.issubdtype(arr.dtype, np.integer):
                raise TypeError(f"{name} must be an integer array, got {arr.dtype}")
        n = len(self)
        r = rows.ravel()
        c = cols.ravel()
        if r.max() >= n or c.max() >= n:
            raise IndexError(f"posting index out of range for a table of {n}")
        r = np.where(r < 0, n, r)
        c = np.where(c < 0, n, c)
        present = self._present
        common = present[r] & present[c]
        idx = np.flatnonzero(common)
        if idx.size == 0:
            return out
        r = r[idx]
        c = c[idx]
        common = common[idx]
        hit = np.zeros(idx.size, dtype=bool)
        one = present.dtype.type(1)
        for d, slots in enumerate(self._slots):
            sel = np.flatnonzero(common & (one << present.dtype.type(d)))
            if sel.size == 0:
                continue
            rs = r[sel]
            cs = c[sel]
            a = [slot[rs] for slot in slots]
            b = [slot[cs] for slot in slots]
            shared = a[0] == b[0]
            for i in range(len(slots)):
                for j in range(len(slots)):
                    if i or j:
                        shared |= a[i] == b[j]  # NaN padding never equals anything
            hit[sel[~shared]] = True
        out.reshape(-1)[idx] = hit
        return out

    def describe(self, i: int) -> dict[str, tuple[float, ...]]:
        """Dimension -> sorted amounts (base units) stored for posting ``i``."""
        row = self.amounts[i]
        out = {}
        for d, name in enumerate(self.dims):
            values = row[d][~np.isnan(row[d])]
            if values.size:
                out[name] = tuple(sorted(float(v) for v in values))
        return out
