"""Find pictures by words (issue 12): a text box whose words are embedded by the bundle's
cross-modal text tower and the postings of the scope on screen whose pictures fit them
best, as neighbour-grid tiles (the same model, delegate and thumbnail cache), best first,
each with its score. A click on a tile makes that posting the query.

The text tower runs in a child process (explorer.text_query_client: the app never
imports torch), started on the first search, on this panel's own worker thread (the
explorer.gui.worker Worker; a model load of a minute never waits behind, nor delays, the
engine's work), with a status line while it loads. Typing is debounced; the newest
search wins. Without a cross-modal modality the box is disabled and says how to build
one. `close_client()` (the main window calls it when it closes, which is also how
another bundle replaces this one) kills the child."""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QLabel, QLineEdit, QVBoxLayout, QWidget

from explorer.core.bundle import Bundle
from explorer.core.cross_search import search_bundle
from explorer.core.state import ViewerState
from explorer.core.titles import decoded_titles, raw_titles
from explorer.gui.neighbours import NeighbourGrid, TileRole
from explorer.gui.thumbnails import ThumbnailCache
from explorer.gui.tile_delegate import TILE_SIZE
from explorer.gui.worker import Worker
from explorer.text_query_client import TextQueryClient, TextQueryError

__all__ = ["NO_CROSS_MODAL", "TOP", "Found", "PictureSearchPanel", "found_tiles"]

TOP = 60               # tiles shown
TYPING_DELAY_MS = 400  # a search starts once the typing rests this long (Enter: at once)
NO_CROSS_MODAL = ("This bundle has no cross-modal modality, so it cannot search pictures by "
                  "words. Build one with precompute build ... --crossmodal NAME:CKPT "
                  "(CKPT: the best.pt of a `precompute train crossmodal` run).")


@dataclass(frozen=True, eq=False)
class Found:
    """A worker result: the tiles of one search."""

    text: str
    scope: str
    rows: np.ndarray     # the scope's bundle rows (the tiles' row column indexes them)
    tiles: pd.DataFrame  # NeighbourModel.set_tiles frame, best first


def found_tiles(bundle: Bundle, modality: str, scope: str, text: str, vector: np.ndarray,
                top: int = TOP) -> Found:
    """The tiles of the `top` pictures of `scope` that fit `vector` best (worker thread:
    the first search reads and checks the modality's pictures)."""
    hits = search_bundle(bundle, modality, scope, vector, top)
    rows = bundle.scope_rows(scope)
    title, raw = decoded_titles(bundle), raw_titles(bundle)
    tiles = pd.DataFrame({
        "row": np.searchsorted(rows, hits.rows), "title": title[hits.rows],
        "posting_id": bundle.items["posting_id"].iloc[hits.rows].astype(str).to_numpy(),
        "title_raw": raw[hits.rows], "status": "", "score": hits.scores.astype(np.float64),
        "admitted_by": "", "reason": "", "gap": np.nan})
    return Found(text, scope, rows, tiles)


class PictureSearchPanel(QWidget):
    """The box, a status line and the result tiles; `postingChosen(posting_id)` on a
    click. `bind(state)` searches the state's scope and follows its changes."""

    postingChosen = Signal(str)
    searched = Signal(str)  # tiles of a search are on screen (tests wait for it)

    def __init__(self, bundle: Bundle, bundle_path: Path, cache: ThumbnailCache | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bundle, self.bundle_path = bundle, Path(bundle_path)
        names = bundle.manifest.cross_modalities
        self.modality = names[0] if names else None
        self.client: TextQueryClient | None = None
        self._state: ViewerState | None = None
        self.box = QLineEdit(objectName="pictureSearch", clearButtonEnabled=True,
                             placeholderText="find pictures by words… (e.g. botol minum hijau)")
        self.status = QLabel(objectName="pictureSearchStatus", wordWrap=True,
                             textFormat=Qt.TextFormat.RichText)
        self.grid = NeighbourGrid(cache)
        self.grid.setMinimumWidth(TILE_SIZE.width() + 28)  # a tile and a scroll bar
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.box)
        lay.addWidget(self.status)
        lay.addWidget(self.grid, 1)
        self.worker = Worker(self)  # its own thread: a model load never blocks the engine's
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self._timer = QTimer(self, singleShot=True, interval=TYPING_DELAY_MS)
        self._timer.timeout.connect(self.search)
        self.box.textChanged.connect(lambda _: self._timer.start())
        self.box.returnPressed.connect(self.search)
        self.grid.tileClicked.connect(self._chosen)
        if self.modality is None:
            self.box.setEnabled(False)
            self.setToolTip(NO_CROSS_MODAL)
            self.status.setText(html.escape(NO_CROSS_MODAL))
        else:
            extra = f" ({', '.join(names[1:])} not used)" if len(names) > 1 else ""
            self.status.setText(f"the pictures of the scope on screen that fit your words, "
                                f"by the cross-modal modality {html.escape(self.modality)}"
                                f"{html.escape(extra)}")

    @property
    def scope(self) -> str:
        if self._state is not None:
            return self._state.scope
        return "all" if "all" in self.bundle.manifest.scopes else self.bundle.manifest.scopes[0]

    def bind(self, state: ViewerState) -> None:
        """Search `state`'s scope, again whenever it changes."""
        self._state = state
        state.subscribe(lambda changed: "scope" in changed and self.search())

    def search(self) -> int | None:
        """Search the box's text now (the newest search wins); its worker generation, or
        None when there is nothing to search."""
        self._timer.stop()
        text = self.box.text().strip()
        if self.modality is None or not text:
            return None
        if self.client is None:
            self.client = TextQueryClient(self.bundle_path, self.modality)
        client, bundle, modality, scope = self.client, self.bundle, self.modality, self.scope

        def job(_progress, _cancelled) -> Found:
            try:
                vector = client.embed(text)
            except TextQueryError as exc:  # one line for the status, no traceback
                raise ValueError(str(exc)) from None
            return found_tiles(bundle, modality, scope, text, vector)

        self.status.setText("searching…" if client.running else
                            "loading the text model… (the first search starts it; this "
                            "can take a minute)")
        return self.worker.submit(job, f"pictures: {text}", lane="query")

    def _on_finished(self, lane: str, generation: int) -> None:
        found = self.worker.take(lane, generation)
        if found is None:
            return
        self.grid.set_tiles(found.tiles, found.rows)
        n = len(found.tiles)
        self.status.setText(f"{n} picture{'s' * (n != 1)} of scope {html.escape(found.scope)}"
                            f" for <b>{html.escape(found.text)}</b>, best first (score: "
                            "cosine of the words and the picture)")
        self.searched.emit(found.text)

    def _on_failed(self, _lane: str, generation: int, message: str) -> None:
        if generation == self.worker.generation("query"):
            self.status.setText(f"<span style='color:#c62828'>{html.escape(message)}</span>")

    def _chosen(self, scope_row: int) -> None:
        at = self.grid.model().row_of_scope(scope_row)
        if at is not None:
            self.postingChosen.emit(self.grid.model().index(at).data(TileRole.PostingId))

    def close_client(self) -> None:
        """Kill the text model's child (a search waiting on it fails at once) and stop
        the panel's thread."""
        if self.client is not None:
            self.client.close()
        self.worker.stop()
