"""How one neighbour tile looks: thumbnail, title, similarities and a status badge.

The item roles a tile reads are defined here (the model in ``neighbours`` fills them), with
the small text helpers that the tile, its tooltip and the pair view share.
"""

from __future__ import annotations

import html
import math
import zlib
from collections.abc import Mapping, Sequence
from enum import IntEnum

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QImage, QPainter, QPalette, QTextLayout
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem, QWidget

from explorer.core.pair_reasons import PairReasons
from explorer.gui.thumbnails import ThumbnailCache

__all__ = ["STATUS_COLOURS", "TILE_SIZE", "TileDelegate", "TileRole", "format_sim",
           "provenance_text", "reasons_html", "short_name", "sims_text"]

Index = QModelIndex | QPersistentModelIndex


class TileRole(IntEnum):
    """Custom item-data roles of a neighbour tile."""

    Status = Qt.ItemDataRole.UserRole.value + 1  # "query" / "TP" / "FP" / "missed" / "near miss"
    Title = Status + 1        # as read (decoded: explorer.core.titles)
    PostingId = Status + 2
    Score = Status + 3        # float, NaN when the pair was never scored
    AdmittedBy = Status + 4   # "" unless predicted
    Reason = Status + 5       # "" unless missed or a near miss
    Gap = Status + 6          # how far below the threshold; NaN when not applicable
    Sims = Status + 7         # mapping modality -> similarity to the query (NaN: none)
    GlobalRow = Status + 8    # row in the bundle
    ScopeRow = Status + 9     # row in the engine's scope (explain_query's "row")
    TitleRaw = Status + 10    # the title as stored in the table
    Why = Status + 11         # the learned classifier's PairReasons, None in other modes


STATUS_COLOURS: dict[str, QColor] = {
    "query": QColor("#1565c0"), "TP": QColor("#2e7d32"), "FP": QColor("#c62828"),
    "match": QColor("#546e7a"),  # a prediction in a bundle without labels
    "missed": QColor("#ef6c00"), "near miss": QColor("#757575"),
}
TILE_SIZE = QSize(200, 270)


def short_name(modality: str) -> str:
    """A compact label for a modality: names up to 5 letters stay, longer ones keep 4;
    the parts of a fused name are shortened one by one ("effnet+minilm" -> "effn+mini")."""
    return "+".join(p if len(p) <= 5 else p[:4] for p in modality.split("+"))


def format_sim(value: float) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{value:.3f}"


def sims_text(sims: Mapping[str, float], modalities: Sequence[str] | None = None,
              short: bool = True, sep: str = "  ") -> str:
    """``"tfidf 0.712  phash 0.906"``: the similarities of `modalities` (default: all)."""
    names = list(sims) if modalities is None else [m for m in modalities if m in sims]
    return sep.join(f"{short_name(m) if short else m} {format_sim(sims[m])}" for m in names)


def provenance_text(status: str, admitted_by: str, reason: str, gap: float,
                    verbose: bool = False) -> str:
    """Why the tile is where it is: the rule that admitted a predicted neighbour, or why a
    true match was missed ("below threshold by 0.034"). ``verbose`` adds "admitted by"."""
    if status in ("query", "TP", "FP", "match"):
        if status == "query" or not admitted_by:
            return admitted_by
        # a post-processing stage's words already say how ("added by merging groups")
        wordy = verbose and not admitted_by.startswith("added by")
        return f"admitted by {admitted_by}" if wordy else admitted_by
    if gap is not None and math.isfinite(gap) and reason:
        # a miss just under the threshold must not read "by 0.000"
        return f"{reason} by {gap:.3f}" if gap >= 5e-4 else f"{reason} by < 0.001"
    return reason


def reasons_html(why: PairReasons | None, k: int) -> str:
    """The classifier's probability and its `k` strongest reasons as rich text, one per
    line, green towards a match and red against; "" without reasons."""
    if why is None:
        return ""
    lines = [html.escape(why.headline) + (", because:" if why.top(k) else "")]
    for r in why.top(k):
        colour = STATUS_COLOURS["TP" if r.contribution > 0 else "FP"].name()
        lines.append(f'&nbsp;&nbsp;<span style="color:{colour}">'
                     f'{"▲" if r.contribution > 0 else "▼"}</span> {html.escape(r.text)}')
    return "<br>".join(lines)


def _pastel(text: str) -> QColor:
    """A stable light colour for a title card (crc32: the same on every run)."""
    return QColor.fromHsv(zlib.crc32(text.encode("utf-8")) % 360, 60, 235)


class TileDelegate(QStyledItemDelegate):
    """Paints tiles of a fixed size from :class:`TileRole` data. Thumbnails come from a
    :class:`ThumbnailCache` (never decoded here); the view repaints a tile on ``ready``."""

    PAD = 6
    THUMB_HEIGHT = 184  # the thumbnails' 192 px, nearly unscaled

    def __init__(self, cache: ThumbnailCache | None = None, parent: QWidget | None = None,
                 tile_size: QSize = TILE_SIZE) -> None:
        super().__init__(parent)
        self._cache = cache
        self._size = QSize(tile_size)
        self._modalities: tuple[str, ...] | None = None
        self._title_lines: dict[tuple[str, float, str], tuple[str, str]] = {}

    @property
    def cache(self) -> ThumbnailCache | None:
        return self._cache

    def set_modalities(self, modalities: Sequence[str] | None) -> None:
        """Show only these modalities' similarities on the tile (None: all of them)."""
        self._modalities = None if modalities is None else tuple(modalities)

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(self._size)

    # -- painting ----------------------------------------------------------------------
    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        status = index.data(TileRole.Status) or ""
        title = index.data(TileRole.Title) or ""
        colour = STATUS_COLOURS.get(status, QColor("#757575"))
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        hovered = bool(option.state & QStyle.StateFlag.State_MouseOver)

        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        card = QRectF(option.rect).adjusted(2, 2, -2, -2)
        painter.setPen(palette.color(QPalette.ColorRole.Highlight) if selected or hovered
                       else palette.color(QPalette.ColorRole.Mid))
        painter.setBrush(palette.color(QPalette.ColorRole.Base))
        painter.drawRoundedRect(card, 6, 6)
        if selected:  # a second stroke: selection must read at a glance
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(card.adjusted(1, 1, -1, -1), 5, 5)

        inner = card.adjusted(self.PAD, self.PAD, -self.PAD, -self.PAD)
        thumb = QRectF(inner.left(), inner.top(), inner.width(), self.THUMB_HEIGHT)
        row = index.data(TileRole.GlobalRow)
        image = self._cache.image(int(row)) if self._cache is not None and row is not None \
            else None
        if image is None:
            self._paint_title_card(painter, thumb, title, option.font)
        else:
            self._paint_image(painter, thumb, image, palette)

        small = QFont(option.font)
        small.setPointSizeF(max(small.pointSizeF() * 0.85, 6.0))
        self._paint_badge(painter, thumb, status, colour, small)
        self._paint_score(painter, thumb, index.data(TileRole.Score), small)

        fm = QFontMetricsF(option.font)
        y = thumb.bottom() + 4
        painter.setFont(option.font)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        for line in self._elided_title(title, option.font, inner.width()):
            painter.drawText(QRectF(inner.left(), y, inner.width(), fm.height()),
                             Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, line)
            y += fm.lineSpacing()

        sfm = QFontMetricsF(small)
        painter.setFont(small)
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        sims = index.data(TileRole.Sims) or {}
        text = sfm.elidedText(sims_text(sims, self._modalities), Qt.TextElideMode.ElideRight,
                              inner.width())
        painter.drawText(QRectF(inner.left(), y + 2, inner.width(), sfm.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, text)
        y += sfm.lineSpacing() + 2

        why = provenance_text(status, index.data(TileRole.AdmittedBy) or "",
                              index.data(TileRole.Reason) or "", index.data(TileRole.Gap))
        painter.setPen(colour.darker(115))
        painter.drawText(QRectF(inner.left(), y, inner.width(), sfm.height()),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                         sfm.elidedText(why, Qt.TextElideMode.ElideRight, inner.width()))
        painter.restore()

    def _paint_image(self, painter: QPainter, rect: QRectF, image: QImage,
                     palette: QPalette) -> None:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase))
        painter.drawRoundedRect(rect, 4, 4)
        scale = min(rect.width() / image.width(), rect.height() / image.height())
        w, h = image.width() * scale, image.height() * scale
        target = QRectF(rect.center().x() - w / 2, rect.center().y() - h / 2, w, h)
        painter.drawImage(target, image)

    def _paint_title_card(self, painter: QPainter, rect: QRectF, title: str,
                          font: QFont) -> None:
        """The placeholder: a coloured card with the title's first words."""
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(_pastel(title))
        painter.drawRoundedRect(rect, 4, 4)
        big = QFont(font)
        big.setPointSizeF(font.pointSizeF() * 1.3)
        big.setBold(True)
        painter.setFont(big)
        painter.setPen(QColor("#37474f"))
        words = " ".join(title.split()[:5])
        painter.drawText(rect.adjusted(10, 24, -10, -10),
                         Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, words)

    def _paint_badge(self, painter: QPainter, thumb: QRectF, status: str, colour: QColor,
                     font: QFont) -> None:
        if not status:
            return
        bold = QFont(font)
        bold.setBold(True)
        fm = QFontMetricsF(bold)
        badge = QRectF(thumb.left() + 4, thumb.top() + 4, fm.horizontalAdvance(status) + 12,
                       fm.height() + 4)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawRoundedRect(badge, badge.height() / 2, badge.height() / 2)
        painter.setFont(bold)
        painter.setPen(QColor("white"))
        painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, status)

    def _paint_score(self, painter: QPainter, thumb: QRectF, score: float | None,
                     font: QFont) -> None:
        if score is None or not math.isfinite(score):
            return
        text = f"{score:.3f}"
        fm = QFontMetricsF(font)
        w, h = fm.horizontalAdvance(text) + 10, fm.height() + 4
        pill = QRectF(thumb.right() - 4 - w, thumb.top() + 4, w, h)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 150))
        painter.drawRoundedRect(pill, h / 2, h / 2)
        painter.setFont(font)
        painter.setPen(QColor("white"))
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)

    def _elided_title(self, title: str, font: QFont, width: float) -> tuple[str, str]:
        """The title on at most two lines, the second elided; cached (layout is not cheap)."""
        key = (title, width, font.key())
        found = self._title_lines.get(key)
        if found is not None:
            return found
        layout = QTextLayout(title, font)
        layout.beginLayout()
        line = layout.createLine()
        first = ""
        if line.isValid():
            line.setLineWidth(width)
            first = title[: line.textLength()]
        layout.endLayout()
        rest = title[len(first):].strip()
        second = QFontMetricsF(font).elidedText(rest, Qt.TextElideMode.ElideRight, width)
        if len(self._title_lines) > 4096:
            self._title_lines.clear()
        found = self._title_lines[key] = (first.rstrip(), second)
        return found
