"""An analyst's verdicts on label-audit findings (issue 12), and metrics without the
postings marked as label errors.

A marks file is CSV with the columns `posting_id,mark[,label_group,note]`, one row per
posting; `mark` is "label error" (its label is wrong: a labelling team should fix it) or
"true difference" (the audit flagged it, and it is right). The app writes it; `explorer
evaluate --exclude-marked FILE` reads it back: a posting marked as a label error is left
out as a query and from every other query's predicted and true sets, so the figure says
what the matcher scores on the labels the analyst trusts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from explorer.core.atomic_write import write_atomic
from explorer.core.config import ConfigError
from explorer.core.engine import Engine, Evaluation
from explorer.core.metrics import Metrics, query_metrics

__all__ = ["LABEL_ERROR", "MARKS", "TRUE_DIFFERENCE", "excluding", "marked_rows",
           "marks_table", "read_marks", "write_marks"]

LABEL_ERROR, TRUE_DIFFERENCE = "label error", "true difference"
MARKS = (LABEL_ERROR, TRUE_DIFFERENCE)
COLUMNS = ("posting_id", "mark", "label_group", "note")
MAX_BYTES = 64 << 20


def read_marks(path: str | os.PathLike[str]) -> dict[str, str]:
    """posting_id -> mark, from a marks file; one line naming the file and the row for
    anything else (a missing column, an unknown mark, a posting marked twice)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_BYTES >> 20} MiB")
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError,
            pd.errors.EmptyDataError) as exc:
        raise ConfigError(f"{path}: not a readable marks CSV ({type(exc).__name__})"
                          ) from None
    missing = [c for c in COLUMNS[:2] if c not in frame.columns]
    if missing:
        raise ConfigError(f"{path}: no column {', '.join(missing)} (expected "
                          f"{','.join(COLUMNS)})")
    out: dict[str, str] = {}
    for i, (pid, mark) in enumerate(zip(frame["posting_id"], frame["mark"], strict=True)):
        row = i + 2  # the header is line 1
        if mark not in MARKS:
            raise ConfigError(f"{path}, line {row}: mark {mark[:40]!r} is not one of "
                              f"{', '.join(MARKS)}")
        if not pid:
            raise ConfigError(f"{path}, line {row}: empty posting_id")
        if pid in out:
            raise ConfigError(f"{path}, line {row}: posting {pid} is marked twice")
        out[pid] = mark
    return out


def write_marks(marks: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write marks (a frame with at least posting_id and mark) atomically, COLUMNS order."""
    frame = marks.reindex(columns=list(COLUMNS)).astype(object).fillna("")
    bad = ~frame["mark"].isin(MARKS)
    if bad.any():
        raise ConfigError(f"mark {frame['mark'][bad].iloc[0]!r} is not one of "
                          f"{', '.join(MARKS)}")
    text = frame.to_csv(index=False)
    return write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def excluding(engine: Engine, ev: Evaluation, rows: np.ndarray) -> Metrics | None:
    """Mean metrics of `ev` without the scope rows `rows`: they are no query, and no
    other query's predicted or true set holds them. None without labels or queries."""
    if not ev.has_labels:
        return None
    drop = np.zeros(engine.n, bool)
    drop[np.asarray(rows, np.int64)] = True
    if drop.all():
        return None
    st = ev.stage
    gone = np.zeros(st.cand.shape, bool)
    valid = st.cand >= 0
    gone[valid] = drop[st.cand[valid]]
    pred_gone = ev.pred & gone
    n_pred = ev.n_pred - pred_gone.sum(axis=1)
    tp = ev.tp - (pred_gone & st.true).sum(axis=1)
    # true members marked away, whether candidates or not
    labels = engine.labels
    dropped = np.bincount(labels[drop], minlength=int(labels.max()) + 1)
    group = ev.group_size - dropped[labels]
    keep = ~drop
    p, r, f = query_metrics(tp[keep], n_pred[keep], group[keep])
    return Metrics(float(f.mean()), float(p.mean()), float(r.mean()), int(keep.sum()))


def marked_rows(engine: Engine, marks: dict[str, str], mark: str = LABEL_ERROR
                ) -> np.ndarray:
    """The scope rows of the postings carrying `mark` (postings of other scopes ignored)."""
    if engine.bundle is None:
        raise ConfigError("marks name postings: this scope has no bundle to look them up")
    ids = engine.bundle.items["posting_id"].to_numpy()[engine.rows].astype(str)
    want = {pid for pid, m in marks.items() if m == mark}
    return np.flatnonzero(np.isin(ids, list(want)))


def marks_table(marks: Mapping[str, str], items: pd.DataFrame) -> pd.DataFrame:
    """posting_id, mark, label_group (from the bundle's `items`; "" for a posting it
    lacks or without labels): what `write_marks` writes."""
    frame = pd.DataFrame({"posting_id": list(marks), "mark": list(marks.values())},
                         dtype=object)
    if "label_group" in items:
        hit = items[items["posting_id"].isin(frame["posting_id"])]  # the marked only
        known = dict(zip(hit["posting_id"], hit["label_group"], strict=True))
        frame["label_group"] = [_text(known.get(pid)) for pid in frame["posting_id"]]
    return frame.sort_values("posting_id", kind="stable").reset_index(drop=True)


def _text(value: Any) -> str:
    return "" if value is None or pd.isna(value) else str(value)
