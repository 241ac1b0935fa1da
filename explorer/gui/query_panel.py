"""The current query: its picture (or a title card when the bundle has none), title (as
read; the stored one in its tooltip when that differs), id, label, group size and its
precision / recall / F1 under the current settings."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QPixmap
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from explorer.gui.thumbnails import ThumbnailCache

IMAGE_SIDE = 150


class QueryPanel(QWidget):
    def __init__(self, cache: ThumbnailCache | None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._cache = cache
        self._global: int | None = None
        self.image = QLabel(objectName="queryImage", alignment=Qt.AlignmentFlag.AlignCenter)
        self.image.setFixedSize(IMAGE_SIDE, IMAGE_SIDE)
        self.image.setWordWrap(True)
        self.image.setStyleSheet("QLabel#queryImage {background: #f2f2f2; color: #555;"
                                 " border: 1px solid #ddd; padding: 6px;}")
        self.title = QLabel(objectName="queryTitle", wordWrap=True,
                            textFormat=Qt.TextFormat.RichText)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details = QLabel(objectName="queryDetails", wordWrap=True,
                              textFormat=Qt.TextFormat.RichText)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.scores = QLabel(objectName="queryScores", textFormat=Qt.TextFormat.RichText)
        text = QVBoxLayout()
        for w in (self.title, self.details, self.scores):
            text.addWidget(w)
        text.addStretch(1)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.image)
        lay.addLayout(text, 1)
        if cache is not None:
            cache.ready.connect(self._on_ready)
        self.clear()

    def clear(self) -> None:
        self._global = None
        self.image.setPixmap(QPixmap())
        self.image.setText("")
        self.title.setText("<i>no query selected</i>")
        self.title.setToolTip("")
        self.details.clear()
        self.scores.clear()

    def set_query(self, global_row: int, posting_id: str, title: str, label: str,
                  group_size: int, scores: tuple[float, float, float] | None,
                  n_pred: int, title_raw: str | None = None) -> None:
        """``title`` as read (decoded: explorer.core.titles); ``title_raw`` as stored,
        shown in the title's tooltip when it differs."""
        self._global = global_row
        self.title.setText(f"<b>{html.escape(title)}</b>")
        self.title.setToolTip(f"<i>stored as:</i> {html.escape(title_raw)}"
                              if title_raw and title_raw != title else "")
        self.details.setText(f"{html.escape(posting_id)} &nbsp;·&nbsp; label "
                             f"{html.escape(label or '–')} &nbsp;·&nbsp; group of {group_size}"
                             f" &nbsp;·&nbsp; {n_pred} predicted")
        if scores is None:
            self.scores.setText("no labels")
        else:
            f1, p, r = scores
            self.scores.setText(f"<b>F1 {f1:.3f}</b> &nbsp; P {p:.3f} &nbsp; R {r:.3f}")
        self._show_image(title)

    def _show_image(self, title: str = "") -> None:
        img = None if self._cache is None or self._global is None else \
            self._cache.image(self._global)
        if img is not None and not img.isNull():
            self.image.setText("")
            self.image.setPixmap(QPixmap.fromImage(img).scaled(
                IMAGE_SIDE - 4, IMAGE_SIDE - 4, Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation))
        elif title:  # a title card: the bundle has no picture of this posting
            self.image.setPixmap(QPixmap())
            self.image.setText(html.escape(" ".join(title.split()[:8])))

    def _on_ready(self, global_row: int) -> None:
        if global_row == self._global:
            self._show_image()
