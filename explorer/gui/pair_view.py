"""Two postings side by side: pictures, ids, label groups, and the titles (decoded:
:mod:`explorer.core.titles`) with what tells them apart highlighted: the amounts that
differ (:mod:`explorer.core.highlight`) and the other words that differ, a flavour, colour
or variant (:mod:`explorer.core.word_diff`). Without pictures the titles take their place,
in a large font.

In the learned mode the classifier's probability and its strongest reasons follow, each
signed towards or against a match (:mod:`explorer.core.pair_reasons`).

The pictures are the bundle's 192 px thumbnails, or the original files when the analyst
has set the dataset's image folder (:class:`explorer.core.image_folder.ImageFolder`):
a pack-size label that is a blur at 192 px is readable there."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QImageReader, QPixmap
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from explorer.core.bundle import Bundle
from explorer.core.highlight import describe_conflicts
from explorer.core.image_folder import ImageFolder
from explorer.core.pair_reasons import TOP, PairReasons
from explorer.core.titles import decoded_titles, raw_titles
from explorer.core.word_diff import Segment, compare_words, differing_words
from explorer.gui.neighbours import NeighbourModel
from explorer.gui.tile_delegate import (
    STATUS_COLOURS,
    TileRole,
    format_sim,
    provenance_text,
    reasons_html,
)

__all__ = ["PairDialog", "PairView", "Posting", "PostingPanel", "read_original",
           "segments_html"]

IMAGE_SIDE = 288  # thumbnails are 192 px; shown 1.5x, smoothly scaled
FULL_SIDE = 480   # originals (often 1024 px) are decoded at most this large
LARGE_TITLE = 1.6  # title font scale when there are no pictures: the titles are the pair
_STYLES = {"differs": "color:#c62828; font-weight:bold",
           "only": "background-color:#fff1b8; font-weight:bold"}
TITLE_TIP = ("Red: the other title says something else here (another amount, flavour, "
             "colour or variant). Yellow: the other title has nothing in its place.")


def segments_html(pieces: list[Segment]) -> str:
    """Title pieces (:func:`explorer.core.word_diff.compare_words`) as rich text: what
    differs from the other title in bold red, what the other title lacks in bold on yellow,
    the shared words as they are (escaped)."""
    out = []
    for text, kind in pieces:
        style = _STYLES.get(kind) if kind else None
        out.append(f'<span style="{style}">{html.escape(text)}</span>' if style
                   else html.escape(text))
    return "".join(out)


@dataclass(frozen=True)
class Posting:
    """What the pair view shows of one posting."""

    posting_id: str
    title: str  # as read (decoded)
    label_group: str = ""
    image: QImage | None = None
    source: str = ""  # the original file shown, "" for the thumbnail
    title_raw: str = ""  # as stored in the table, when it differs from `title`

    @classmethod
    def from_bundle(cls, bundle: Bundle, global_row: int,
                    images: ImageFolder | None = None) -> Posting:
        item = bundle.items.iloc[global_row]
        group = item.get("label_group")
        image, source = None, ""
        path = images.path(global_row) if images is not None else None
        if path is not None:
            image = read_original(path)
            source = str(path) if image is not None else ""
        if image is None:
            # two small JPEGs per pair, decoded here on demand: well under a millisecond
            data = bundle.thumbnail(global_row)
            image = QImage.fromData(data) if data else None
        title, raw = decoded_titles(bundle)[global_row], raw_titles(bundle)[global_row]
        return cls(str(item["posting_id"]), title,
                   "" if group is None or _isnan(group) else str(group),
                   None if image is None or image.isNull() else image, source,
                   raw if raw != title else "")


def read_original(path: str | Path, side: int = FULL_SIDE) -> QImage | None:
    """The picture at `path`, EXIF orientation applied, decoded at most `side` px on its
    long side (JPEGs decode at reduced scale: a 1024 px original takes a few ms); None
    when it cannot be read."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and max(size.width(), size.height()) > side:
        reader.setScaledSize(size.scaled(QSize(side, side), Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    return None if image.isNull() else image


def _isnan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


class PostingPanel(QWidget):
    """One side of the pair: picture, posting id, label group and title. Without pictures
    (``large``) the picture box is hidden and the title is set large."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.image = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.image.setFixedSize(IMAGE_SIDE, IMAGE_SIDE)
        self.image.setFrameShape(QFrame.Shape.StyledPanel)
        self.posting_id = QLabel()
        self.label_group = QLabel()
        self.title = QLabel(wordWrap=True)
        self.title.setTextFormat(Qt.TextFormat.RichText)
        for label in (self.posting_id, self.label_group, self.title):
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.image, 0, Qt.AlignmentFlag.AlignHCenter)
        for label in (self.posting_id, self.label_group, self.title):
            layout.addWidget(label)
        layout.addStretch(1)
        self._title_size = max(self.title.font().pointSizeF(), 9.0)  # -1: set in pixels

    def set_posting(self, posting: Posting, pieces: list[Segment], large: bool = False
                    ) -> None:
        """Show ``posting`` with its title cut into ``pieces`` (one side of
        :func:`explorer.core.word_diff.compare_words`). ``large``: no picture box and a
        large title (the pair has no pictures)."""
        self.image.setVisible(not large)
        font = self.title.font()
        font.setPointSizeF(self._title_size * (LARGE_TITLE if large else 1.0))
        self.title.setFont(font)
        self.title.setMinimumWidth(IMAGE_SIDE if large else 0)  # the width a picture had
        self.title.setText(segments_html(pieces))
        tip = TITLE_TIP
        if posting.title_raw:
            tip = (f"{html.escape(TITLE_TIP)}<br><br><i>stored as:</i> "
                   f"{html.escape(posting.title_raw)}")
        self.title.setToolTip(tip)
        side = FULL_SIDE if posting.source else IMAGE_SIDE
        self.image.setFixedSize(side, side)
        self.image.setToolTip(posting.source or "the bundle's thumbnail")
        if posting.image is None:
            self.image.setPixmap(QPixmap())
            self.image.setText("no picture")
        else:
            image = posting.image
            # thumbnails are shown 1.5x; originals at their own size up to the box, so
            # what the analyst reads on a label is what the seller uploaded
            if not posting.source or max(image.width(), image.height()) > side:
                image = image.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                                     Qt.TransformationMode.SmoothTransformation)
            self.image.setPixmap(QPixmap.fromImage(image))
        self.posting_id.setText(posting.posting_id)
        self.label_group.setText(f"label group {posting.label_group or '–'}")


class PairView(QWidget):
    """A query and one candidate side by side, with their similarity per modality and why
    the candidate is (or is not) predicted. ``bundle`` is needed only by :meth:`show_tile`;
    ``images`` (the original pictures) is optional there."""

    def __init__(self, bundle: Bundle | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._bundle = bundle
        self.images: ImageFolder | None = None
        self.left = PostingPanel()
        self.right = PostingPanel()
        self.status = QLabel(wordWrap=True)
        self.status.setTextFormat(Qt.TextFormat.RichText)
        self.sims = QLabel()
        self.sims.setTextFormat(Qt.TextFormat.RichText)
        self.conflicts = QLabel(wordWrap=True)
        self.words = QLabel(wordWrap=True)  # the differing words, in one line
        self.words.setTextFormat(Qt.TextFormat.RichText)
        self.why = QLabel(wordWrap=True)  # the learned classifier's reasons
        self.why.setTextFormat(Qt.TextFormat.RichText)
        self.why.setVisible(False)
        sides = QHBoxLayout()
        sides.addWidget(self.left)
        sides.addWidget(self.right)
        layout = QVBoxLayout(self)
        layout.addLayout(sides)
        for label in (self.words, self.status, self.sims, self.why, self.conflicts):
            layout.addWidget(label)

    def set_pair(self, left: Posting, right: Posting, sims: Mapping[str, float] | None = None,
                 status: str = "", detail: str = "", why: PairReasons | None = None) -> None:
        """Show ``left`` and ``right``; ``sims`` are their similarities by modality, ``status``
        (TP / FP / missed / ...) and ``detail`` (admitted by / reason) the status line,
        ``why`` the learned classifier's reasons (None: not the learned mode)."""
        pa, pb = compare_words(left.title, right.title)
        large = left.image is None and right.image is None
        self.left.set_posting(left, pa, large)
        self.right.set_posting(right, pb, large)
        wa, wb = differing_words(pa), differing_words(pb)
        self.words.setText(
            f"<b>differs:</b> {html.escape(', '.join(wa) or '–')} &nbsp;<i>vs</i>&nbsp; "
            f"{html.escape(', '.join(wb) or '–')}" if wa or wb else "the titles share every word")
        colour = STATUS_COLOURS.get(status)
        head = (f'<span style="color:{colour.name()}; font-weight:bold">{html.escape(status)}'
                "</span>" if colour is not None else html.escape(status))
        self.status.setText(" — ".join(p for p in (head, html.escape(detail)) if p))
        cells = "".join(f"<td>&nbsp;{html.escape(m)} <b>{format_sim(v)}</b>&nbsp;</td>"
                        for m, v in (sims or {}).items())
        self.sims.setText(f"<table><tr>{cells}</tr></table>" if cells else "")
        self.why.setText(reasons_html(why, TOP))
        self.why.setVisible(why is not None)
        found = describe_conflicts(left.title, right.title)
        self.conflicts.setText(("different amounts (the unit filter separates these): "
                                + "; ".join(found)) if found else "")
        self.conflicts.setVisible(bool(found))

    def show_tile(self, model: NeighbourModel, row: int) -> None:
        """The model's query beside the tile at model ``row``."""
        if self._bundle is None:
            raise RuntimeError("PairView.show_tile needs the bundle")
        query = next((r for r in range(model.rowCount())
                      if model.index(r).data(TileRole.Status) == "query"), None)
        if query is None:
            raise ValueError("the model holds no query tile")
        tile = model.index(row)
        status = tile.data(TileRole.Status)
        detail = provenance_text(status, tile.data(TileRole.AdmittedBy),
                                 tile.data(TileRole.Reason), tile.data(TileRole.Gap),
                                 verbose=True)
        score = tile.data(TileRole.Score)
        if math.isfinite(score) and status != "query":
            detail = f"{detail} · score {score:.3f}" if detail else f"score {score:.3f}"
        rows = (model.index(query).data(TileRole.GlobalRow), tile.data(TileRole.GlobalRow))
        left, right = (Posting.from_bundle(self._bundle, r, self.images) for r in rows)
        self.set_pair(left, right, tile.data(TileRole.Sims), status, detail,
                      tile.data(TileRole.Why))


class PairDialog(QDialog):
    """A non-modal window around a :class:`PairView` (``view``)."""

    def __init__(self, bundle: Bundle | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Pair")
        self.view = PairView(bundle)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.view)
        layout.addWidget(buttons)

    def set_pair(self, left: Posting, right: Posting, sims: Mapping[str, float] | None = None,
                 status: str = "", detail: str = "", why: PairReasons | None = None) -> None:
        self.view.set_pair(left, right, sims, status, detail, why)

    def show_tile(self, model: NeighbourModel, row: int) -> None:
        self.view.show_tile(model, row)
