"""Exports: predictions in the competition's format, per-query metrics, every error pair,
every confused group and the label audit as CSV; `FRAMES` is what the app's File menu and `explorer
evaluate --export-*` both write."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.core.atomic_write import write_atomic
from explorer.core.audit import audit
from explorer.core.confusion import confused_groups
from explorer.core.engine import Engine, Evaluation
from explorer.core.error_pairs import error_pairs


def ordered_matches(ev: Evaluation) -> tuple[np.ndarray, np.ndarray]:
    """(query row, neighbour row) of every predicted pair, each query's own row first and
    the rest by decreasing score."""
    st = ev.stage
    key = np.where(ev.pred, -st.score, np.inf)
    key[:, 0] = -np.inf
    order = np.argsort(key, axis=1, kind="stable")
    pred = np.take_along_axis(ev.pred, order, axis=1)
    cand = np.take_along_axis(st.cand, order, axis=1)
    q, c = np.nonzero(pred)
    return q, cand[q, c]


def predictions_frame(engine: Engine, ev: Evaluation) -> pd.DataFrame:
    ids = engine.bundle.items["posting_id"].to_numpy()[engine.rows]
    q, nb = ordered_matches(ev)
    matches = pd.Series(ids[nb]).groupby(q, sort=True).agg(" ".join)
    return pd.DataFrame({"posting_id": ids, "matches": matches.reindex(
        np.arange(engine.n)).to_numpy()})


def metrics_frame(engine: Engine, ev: Evaluation) -> pd.DataFrame:
    items = engine.bundle.items.iloc[engine.rows]
    out = pd.DataFrame({
        "posting_id": items["posting_id"].to_numpy(),
        "label_group": items["label_group"].to_numpy(),
        "group_size": ev.group_size, "n_pred": ev.n_pred, "true_positives": ev.tp,
    })
    if ev.has_labels:
        out["precision"], out["recall"], out["f1"] = ev.precision, ev.recall, ev.f1
    return out


def _all_confused(engine: Engine, ev: Evaluation) -> pd.DataFrame:
    return confused_groups(engine, ev, n=None)


#: export kind -> frame of a scope's evaluation; the last two need labels
FRAMES = {"predictions": predictions_frame, "metrics": metrics_frame, "errors": error_pairs,
          "confused": _all_confused, "audit": audit}
NEED_LABELS = ("errors", "confused", "audit")


def write_text(text: str, path: str | os.PathLike[str]) -> Path:
    """Write atomically: a temporary file beside the target, then a rename; the
    temporary file never stays behind."""
    return write_atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """`frame` as CSV, atomically (see write_text)."""
    return write_atomic(path, lambda fh: frame.to_csv(fh, index=False, encoding="utf-8"))
