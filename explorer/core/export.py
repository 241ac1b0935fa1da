"""Exports: predictions in the competition's format, per-query metrics, every error pair
and every confused group as CSV; `FRAMES` is what the app's File menu and `explorer
evaluate --export-*` both write."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from explorer.core.config import ConfigError
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
          "confused": _all_confused}
NEED_LABELS = ("errors", "confused")


class ExportError(ConfigError):
    """An export target that cannot be written; the message names the path (a
    ConfigError: the option or the dialog named it, and callers report both alike)."""


def check_target(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work, a target that is not a regular file to be (re)written:
    a folder, a FIFO, a device, a socket or a symbolic link (renaming over one would
    replace it), or one whose folder does not exist."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not stat.S_ISREG(path.stat().st_mode)):
        raise ExportError(f"{path}: not a regular file; refusing to replace it")
    parent = path.resolve().parent
    if not parent.is_dir():
        raise ExportError(f"{path}: folder {parent} does not exist")
    return path


def write_text(text: str, path: str | os.PathLike[str]) -> Path:
    """Write atomically: a temporary file beside the target, then a rename; the
    temporary file never stays behind."""
    return _atomic(path, lambda fh: fh.write(text.encode("utf-8")))


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """`frame` as CSV, atomically (see write_text)."""
    return _atomic(path, lambda fh: frame.to_csv(fh, index=False, encoding="utf-8"))


def _atomic(path: str | os.PathLike[str], write) -> Path:
    path = check_target(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.resolve().parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        check_target(path)  # it may have changed while we wrote
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
