"""The neighbour grid, its tile delegate, the thumbnail cache and the pair view, offscreen
(pytest-qt), over the small demo bundle and the thumbnail-less tiny bundle."""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from PySide6.QtCore import QObject, QRect, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QStyle, QStyleOptionViewItem

from explorer.core.bundle import Bundle
from explorer.core.config import MatchConfig
from explorer.core.engine import Engine
from explorer.core.explain import explain_query
from explorer.gui.neighbours import NeighbourGrid, NeighbourModel
from explorer.gui.pair_view import PairDialog, PairView, Posting
from explorer.gui.thumbnails import ThumbnailCache
from explorer.gui.tile_delegate import (
    STATUS_COLOURS,
    TILE_SIZE,
    TileDelegate,
    TileRole,
    format_sim,
    provenance_text,
    short_name,
    sims_text,
)


@dataclass
class Query:
    bundle: Bundle
    engine: Engine
    q: int
    frame: pd.DataFrame


def explained(path, cfg: MatchConfig) -> Query:
    """The first query of fold 0 whose tiles include a true positive and a missed match."""
    bundle = Bundle.open(path)
    engine = Engine(bundle, "fold0")
    ev = engine.evaluate(cfg)
    for q in range(engine.n):
        frame = explain_query(engine, ev, q, near_misses=3)
        if {"TP", "missed"} <= set(frame["status"]):
            return Query(bundle, engine, q, frame)
    raise AssertionError("no query with a true positive and a missed match")


@pytest.fixture(scope="module")
def demo(demo_bundle) -> Query:
    return explained(demo_bundle, MatchConfig("union", ("tfidf", "phash"), (0.5, 0.9)))


@pytest.fixture(scope="module")
def tiny(tiny_bundle) -> Query:
    return explained(tiny_bundle, MatchConfig("single", ("tfidf",), (0.8,)))


def model_for(query: Query) -> NeighbourModel:
    model = NeighbourModel()
    model.set_tiles(query.frame, query.engine.rows)
    return model


def pixels(image: QImage) -> np.ndarray:
    """(h, w, 3) uint8 RGB copy of ``image``."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    arr = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(),
                                                            image.bytesPerLine())
    return arr[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def paint_tile(delegate: TileDelegate, index) -> np.ndarray:
    image = QImage(TILE_SIZE, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.white)
    option = QStyleOptionViewItem()
    option.rect = QRect(0, 0, TILE_SIZE.width(), TILE_SIZE.height())
    option.font = QApplication.font()
    option.palette = QApplication.palette()
    option.state = QStyle.StateFlag.State_Enabled
    painter = QPainter(image)
    delegate.paint(painter, option, index)
    painter.end()
    return pixels(image)


def count_colour(arr: np.ndarray, colour) -> int:
    return int(np.all(arr == (colour.red(), colour.green(), colour.blue()), axis=2).sum())


# --------------------------------------------------------------------------- model


def test_model_tiles_are_explain_query_rows(qtbot, demo):
    model = model_for(demo)
    frame = demo.frame
    assert model.rowCount() == len(frame)
    assert model.modalities == demo.engine.modalities
    for i, tile in frame.iterrows():
        index = model.index(i)
        assert index.data(TileRole.Status) == tile["status"]
        assert index.data(TileRole.ScopeRow) == tile["row"]
        assert index.data(TileRole.GlobalRow) == demo.engine.rows[tile["row"]]
        assert index.data(TileRole.PostingId) == tile["posting_id"]
        assert index.data(Qt.ItemDataRole.DisplayRole) == tile["title"]
        assert index.data(TileRole.AdmittedBy) == tile["admitted_by"]
        assert index.data(TileRole.Reason) == tile["reason"]
        np.testing.assert_equal(index.data(TileRole.Score), tile["score"])
        np.testing.assert_equal(index.data(TileRole.Gap), tile["gap"])
        sims = index.data(TileRole.Sims)
        assert list(sims) == list(demo.engine.modalities)
        np.testing.assert_allclose([sims[m] for m in sims],
                                   [tile[f"sim_{m}"] for m in sims], equal_nan=True)
    global_rows = demo.engine.rows[frame["row"].to_numpy()]
    assert [model.index(i).data(TileRole.GlobalRow) for i in range(len(frame))] == \
        global_rows.tolist()
    assert model.index(0).data(TileRole.Status) == "query"
    assert model.index(0).data(TileRole.ScopeRow) == demo.q


def test_model_tooltip_summarises_the_tile(qtbot, demo):
    model = model_for(demo)
    frame = demo.frame
    gaps = frame[(frame["status"] == "missed") & np.isfinite(frame["gap"])]
    i = int(gaps.index[0])
    tip = model.index(i).data(Qt.ItemDataRole.ToolTipRole)
    assert f"below threshold by {frame.loc[i, 'gap']:.3f}" in tip
    for m in demo.engine.modalities:
        assert f"{m} {format_sim(frame.loc[i, f'sim_{m}'])}" in tip
    tp = int(frame.index[frame["status"] == "TP"][0])
    assert f"admitted by {frame.loc[tp, 'admitted_by']}" in \
        model.index(tp).data(Qt.ItemDataRole.ToolTipRole)


def test_model_passes_the_model_tester(qtmodeltester, demo):
    model = NeighbourModel()
    qtmodeltester.check(model)
    model.set_tiles(demo.frame, demo.engine.rows)
    qtmodeltester.check(model)
    model.clear()
    assert model.rowCount() == 0
    qtmodeltester.check(model)


def test_model_lookups_and_bad_frames(qtbot, demo):
    model = model_for(demo)
    frame = demo.frame
    last = len(frame) - 1
    assert model.row_of_scope(int(frame["row"].iloc[last])) == last
    assert model.row_of_scope(-5) is None
    assert model.rows_of_global(int(demo.engine.rows[frame["row"].iloc[2]])) == [2]
    with pytest.raises(ValueError, match="status"):
        model.set_tiles(frame.drop(columns=["status"]), demo.engine.rows)
    with pytest.raises(IndexError):
        model.set_tiles(frame, demo.engine.rows[:1])
    assert model.rowCount() == len(frame)  # a rejected frame leaves the model as it was


# --------------------------------------------------------------------------- thumbnails


def test_thumbnails_decode_off_the_gui_thread(qtbot, demo, monkeypatch):
    threads = []
    read = demo.bundle.thumbnail

    def spy(row):
        threads.append(threading.get_ident())
        return read(row)

    monkeypatch.setattr(demo.bundle, "thumbnail", spy)
    cache = ThumbnailCache(demo.bundle)
    row = int(demo.engine.rows[demo.q])
    with qtbot.waitSignal(cache.ready, timeout=10_000, check_params_cb=lambda r: r == row):
        assert cache.image(row) is None
        assert cache.image(row) is None  # the same request is not scheduled twice
        assert cache.pending() == 1
    image = cache.image(row)
    assert image is not None and not image.isNull()
    assert image == QImage.fromData(read(row))
    assert max(image.width(), image.height()) <= 200
    assert threads and threading.get_ident() not in threads
    assert cache.pending() == 0


def test_thumbnail_cache_is_bounded(qtbot, demo):
    cache = ThumbnailCache(demo.bundle, max_size=4)
    done: list[int] = []
    cache.ready.connect(done.append)
    rows = list(range(12))
    for row in rows:
        cache.image(row)
    qtbot.waitUntil(lambda: sorted(done) == rows, timeout=10_000)
    assert len(cache) == 4
    assert cache.pending() == 0
    newest = done[-4:]
    assert all(cache.image(r) is not None for r in newest)
    evicted = done[0]
    assert cache.image(evicted) is None  # evicted: asked again
    assert cache.pending() == 1
    qtbot.waitUntil(lambda: cache.image(evicted) is not None, timeout=10_000)
    assert len(cache) == 4
    with pytest.raises(IndexError):
        cache.image(demo.bundle.n_items)


def test_thumbnail_cache_clear_drops_decodes_in_progress(qtbot, demo):
    cache = ThumbnailCache(demo.bundle)
    for row in range(5):
        cache.image(row)
    cache.clear()
    assert cache.pending() == 0
    with qtbot.assertNotEmitted(cache.ready, wait=300):
        pass
    assert len(cache) == 0
    with qtbot.waitSignal(cache.ready, timeout=10_000):
        cache.image(3)


def test_thumbnail_cache_destroyed_while_decoding(qtbot, demo):
    owner = QObject()
    cache = ThumbnailCache(demo.bundle, parent=owner)
    for row in range(40):
        cache.image(row)
    with qtbot.waitSignal(owner.destroyed, timeout=5_000):
        owner.deleteLater()
    qtbot.wait(100)  # results of running decodes must not reach the deleted cache


def test_bundle_without_thumbnails_schedules_nothing(qtbot, tiny):
    assert not tiny.bundle.has_thumbnails
    cache = ThumbnailCache(tiny.bundle)
    assert not cache.enabled
    with qtbot.assertNotEmitted(cache.ready, wait=200):
        assert cache.image(0) is None
    assert cache.pending() == 0 and len(cache) == 0


# --------------------------------------------------------------------------- delegate


def test_text_helpers():
    assert short_name("tfidf") == "tfidf"
    assert short_name("effnet+minilm") == "effn+mini"
    assert format_sim(float("nan")) == "–" and format_sim(0.71249) == "0.712"
    assert sims_text({"tfidf": 0.5, "minilm": math.nan}) == "tfidf 0.500  mini –"
    assert sims_text({"tfidf": 0.5, "phash": 0.9}, ["phash"]) == "phash 0.900"
    assert provenance_text("missed", "", "below threshold", 0.0342) == "below threshold by 0.034"
    assert provenance_text("missed", "", "outside top-K", math.nan) == "outside top-K"
    assert provenance_text("TP", "Min2", "", math.nan) == "Min2"
    assert provenance_text("FP", "tfidf", "", math.nan, verbose=True) == "admitted by tfidf"


def test_delegate_paints_badge_and_placeholder(qtbot, tiny):
    model = model_for(tiny)
    delegate = TileDelegate(ThumbnailCache(tiny.bundle))
    assert delegate.sizeHint(QStyleOptionViewItem(), model.index(0)) == TILE_SIZE
    for status in ("query", "TP", "missed", "near miss"):
        i = tiny.frame.index[tiny.frame["status"] == status][0]
        arr = paint_tile(delegate, model.index(int(i)))
        assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 20  # not blank
        assert count_colour(arr, STATUS_COLOURS[status]) > 30  # the badge
        others = [s for s in STATUS_COLOURS if s != status]
        assert all(count_colour(arr, STATUS_COLOURS[s]) < 5 for s in others)
    assert delegate.cache.pending() == 0


def test_delegate_shows_the_chosen_modalities(qtbot, tiny):
    model = model_for(tiny)
    delegate = TileDelegate()
    both = paint_tile(delegate, model.index(1))
    delegate.set_modalities(["phash"])
    phash = paint_tile(delegate, model.index(1))
    delegate.set_modalities(["phash", "tfidf"])
    assert not np.array_equal(both, phash)
    assert not np.array_equal(phash, paint_tile(delegate, model.index(1)))


def test_delegate_paints_the_thumbnail_once_decoded(qtbot, demo):
    model = model_for(demo)
    cache = ThumbnailCache(demo.bundle)
    delegate = TileDelegate(cache)
    index = model.index(1)
    with qtbot.waitSignal(cache.ready, timeout=10_000):
        placeholder = paint_tile(delegate, index)  # asks for the thumbnail
    painted = paint_tile(delegate, index)
    top = slice(TileDelegate.PAD + 30, TileDelegate.PAD + TileDelegate.THUMB_HEIGHT)
    assert np.abs(placeholder[top].astype(int) - painted[top]).mean() > 5
    assert cache.pending() == 0


# --------------------------------------------------------------------------- grid


def shown_grid(qtbot, query: Query, cache: ThumbnailCache | None) -> NeighbourGrid:
    grid = NeighbourGrid(cache)
    qtbot.addWidget(grid)
    grid.resize(900, 700)
    grid.set_tiles(query.frame, query.engine.rows)
    grid.show()
    qtbot.waitExposed(grid)
    return grid


def test_grid_click_and_activation_signals(qtbot, demo):
    grid = shown_grid(qtbot, demo, ThumbnailCache(demo.bundle))
    model = grid.model()
    viewport = grid.viewport()
    tile = model.index(2)
    expected = int(demo.frame["row"].iloc[2])
    centre = grid.visualRect(tile).center()
    assert grid.visualRect(tile).size() == TILE_SIZE
    with qtbot.waitSignal(grid.tileClicked) as clicked:
        QTest.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=centre)
    assert clicked.args == [expected]
    with qtbot.waitSignal(grid.tileActivated) as activated:
        QTest.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=centre)
    assert activated.args == [expected]
    query = grid.visualRect(model.index(0)).center()
    with qtbot.assertNotEmitted(grid.tileActivated):
        QTest.mouseDClick(viewport, Qt.MouseButton.LeftButton, pos=query)
    grid.setCurrentIndex(model.index(1))
    with qtbot.waitSignal(grid.tileActivated) as activated:
        QTest.keyClick(grid, Qt.Key.Key_Return)
    assert activated.args == [int(demo.frame["row"].iloc[1])]


def test_grid_repaints_tiles_as_thumbnails_arrive(qtbot, demo, monkeypatch):
    cache = ThumbnailCache(demo.bundle)
    grid = shown_grid(qtbot, demo, cache)
    qtbot.waitUntil(lambda: cache.pending() == 0, timeout=10_000)
    cache.clear()
    first = grid.grab().toImage()  # nothing decoded since the clear: title cards
    updated: list[int] = []
    monkeypatch.setattr(grid, "update", lambda index: updated.append(index.row()))
    qtbot.waitUntil(lambda: 1 in updated, timeout=10_000)  # ready(row) -> that tile repaints
    rect = grid.visualRect(grid.model().index(1))
    later = grid.grab().toImage()
    assert not np.array_equal(pixels(first.copy(rect)), pixels(later.copy(rect)))


def test_grid_without_thumbnails_paints_placeholders(qtbot, tiny):
    cache = ThumbnailCache(tiny.bundle)
    grid = shown_grid(qtbot, tiny, cache)
    arr = pixels(grid.grab().toImage())
    assert len(np.unique(arr.reshape(-1, 3), axis=0)) > 50
    assert cache.pending() == 0 and len(cache) == 0


# --------------------------------------------------------------------------- pair view


def test_pair_view_highlights_only_differing_amounts(qtbot):
    view = PairView()
    qtbot.addWidget(view)
    view.set_pair(Posting("a", "Sabun 250ml Botol 2 pcs", "7"),
                  Posting("b", "Sabun 500ml Botol 2 pcs", "8"),
                  {"tfidf": 0.81234, "phash": math.nan}, "FP", "admitted by tfidf")
    red = '<span style="color:#c62828; font-weight:bold">{}</span>'
    left, right = view.left.title.text(), view.right.title.text()
    assert red.format("250ml") in left and red.format("500ml") in right
    assert "Botol 2 pcs" in left and ">2 pcs<" not in left and ">2 pcs<" not in right
    assert view.left.posting_id.text() == "a" and "7" in view.left.label_group.text()
    assert "FP" in view.status.text() and "admitted by tfidf" in view.status.text()
    assert "0.812" in view.sims.text() and "–" in view.sims.text()
    assert "volume: 250 ml vs 500 ml" in view.conflicts.text()
    assert not view.conflicts.isHidden()
    # no pictures on either side: no empty boxes, the titles take their place
    assert view.left.image.isHidden() and view.right.image.isHidden()


def test_pair_view_same_amount_and_escaping(qtbot):
    view = PairView()
    qtbot.addWidget(view)
    view.set_pair(Posting("a", "<Minyak> & 1 liter"), Posting("b", "Minyak 1000 ml"))
    left = view.left.title.text()
    assert left == "&lt;Minyak&gt; &amp; 1 liter"  # escaped; 1 liter is 1000 ml: plain
    assert "color:#c62828" not in left + view.right.title.text()
    assert view.conflicts.isHidden()


def test_pair_view_shows_a_tile_from_the_model(qtbot, demo):
    model = model_for(demo)
    dialog = PairDialog(demo.bundle)
    qtbot.addWidget(dialog)
    i = int(demo.frame.index[demo.frame["status"] == "missed"][0])
    dialog.show_tile(model, i)
    view = dialog.view
    assert view.left.posting_id.text() == demo.frame["posting_id"].iloc[0]
    assert view.right.posting_id.text() == demo.frame["posting_id"].iloc[i]
    label = str(demo.bundle.items["label_group"].iloc[int(demo.engine.rows[demo.q])])
    assert label in view.left.label_group.text()
    assert not view.left.image.pixmap().isNull() and not view.right.image.pixmap().isNull()
    assert "missed" in view.status.text() and demo.frame["reason"].iloc[i] in view.status.text()
    for m in demo.engine.modalities:
        assert m in view.sims.text()
    bare = PairView()
    qtbot.addWidget(bare)
    with pytest.raises(RuntimeError):
        bare.show_tile(model, 1)


def test_pair_view_shows_the_originals_from_the_image_folder(qtbot, demo, demo_bundle,
                                                             tmp_path):
    from explorer.core.image_folder import ImageFolder
    from explorer.gui.pair_view import FULL_SIDE, IMAGE_SIDE

    model = model_for(demo)
    view = PairView(demo.bundle)
    qtbot.addWidget(view)
    view.images = ImageFolder(demo_bundle.parent / "data" / "train_images", demo.bundle)
    view.show_tile(model, 1)
    right_row = int(model.index(1).data(TileRole.GlobalRow))
    original = QImage(str(view.images.path(right_row)))
    assert view.right.image.width() == FULL_SIDE
    shown = view.right.image.pixmap()
    assert (shown.width(), shown.height()) == (original.width(), original.height())  # unscaled
    assert view.right.image.toolTip() == str(view.images.path(right_row))
    assert max(original.width(), original.height()) > 192  # more than the thumbnail holds
    # a folder without the pictures: the thumbnails, at their size
    (tmp_path / "unrelated.jpg").write_bytes(b"")
    view.images = ImageFolder(tmp_path, demo.bundle)
    view.show_tile(model, 1)
    assert view.right.image.width() == IMAGE_SIDE
    assert not view.right.image.pixmap().isNull()
    assert view.right.image.toolTip() == "the bundle's thumbnail"


def test_originals_are_decoded_at_most_full_side(tmp_path):
    from PIL import Image

    from explorer.gui.pair_view import read_original

    path = tmp_path / "big.jpg"
    Image.new("RGB", (2000, 1000), (200, 30, 40)).save(path, quality=90)
    image = read_original(path, side=480)
    assert (image.width(), image.height()) == (480, 240)
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    assert read_original(tmp_path / "broken.jpg") is None
