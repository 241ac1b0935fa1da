"""The app's "Find pictures by words" box (explorer/gui/picture_search.py): disabled, with
how to build a cross-modal modality, on a bundle without one; with one, typed words show
the best-fitting pictures as tiles (thumbnails, titles, scores), a click makes a tile's
posting the query, and closing the window closes the text model's child.

The text model's child is replaced here, and only here, by a fake client that returns a
known vector (the picture row of one posting), since tests/test_text_query.py tests the
real child; the bundle is built with stand-in towers (no model loads)."""

from __future__ import annotations

import threading
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from conftest import synthetic_table
from gui_window import TIMEOUT, open_main_window
from PIL import Image
from PySide6.QtCore import Qt

from explorer.core.bundle import Bundle
from explorer.gui import picture_search
from explorer.gui.picture_search import NO_CROSS_MODAL, TOP
from explorer.gui.tile_delegate import TileRole

DIM = 8


def _vector(key: str) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(key.encode())).normal(size=DIM)


def _stand_in_towers(spec: str, **_: object):
    """Titles: a sum of word vectors; pictures: their file's own vector (no model)."""
    from precompute.crossmodal_towers import EncodedPictures, Towers, unit_rows

    def texts(titles, **_: object) -> np.ndarray:
        return unit_rows(np.array([sum(_vector(w) for w in t.lower().split()) for t in titles]))

    def images(paths, **_: object) -> EncodedPictures:
        emb = unit_rows(np.array([_vector(p.name) for p in paths]))
        return EncodedPictures(emb, np.ones(len(paths), bool), [], {})

    return Towers(dim=DIM, model="stand-in", record={"kind": "heads", "text_model": spec},
                  arrays={"text_proj": np.eye(DIM, dtype=np.float32)}, encode_texts=texts,
                  encode_images=images)


@pytest.fixture(scope="module")
def cross_bundle(tmp_path_factory) -> Path:
    from precompute import crossmodal_towers
    from precompute.build import BuildOptions, build

    root = tmp_path_factory.mktemp("picture_search")
    table = synthetic_table(n_groups=30)
    table.to_csv(root / "train.csv", index=False)
    (root / "img").mkdir()
    for i, name in enumerate(table["image"]):
        Image.new("RGB", (48, 48), (i * 7 % 255, 90, 160)).save(root / "img" / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(crossmodal_towers, "load_towers", _stand_in_towers)
        return build(BuildOptions(csv=root / "train.csv", out=root / "cx.bundle",
                                  images=root / "img", k=10, crossmodal=("cx:stand-in.pt",),
                                  progress=False))


class FakeClient:
    """Stands in for TextQueryClient: every text's vector is `VECTOR`, given once `go`
    is set (a model that takes a while to load)."""

    VECTOR: ClassVar[np.ndarray] = np.zeros(DIM, np.float32)
    made: ClassVar[list[FakeClient]] = []
    go: ClassVar[threading.Event] = threading.Event()

    def __init__(self, bundle: Path, modality: str | None = None, **_: object) -> None:
        self.bundle, self.modality, self.texts, self.closed = bundle, modality, [], False
        self.running = False
        FakeClient.made.append(self)

    def embed(self, text: str) -> np.ndarray:
        self.texts.append(text)
        assert self.go.wait(TIMEOUT / 1000)
        self.running = True
        return self.VECTOR

    def close(self) -> None:
        self.closed = True


def test_the_box_is_disabled_without_a_cross_modal_modality(qtbot, tiny_bundle, settings):
    w = open_main_window(qtbot, tiny_bundle, settings)
    panel = w.picture_search
    assert not panel.box.isEnabled()
    assert "--crossmodal NAME:CKPT" in panel.toolTip() and panel.toolTip() == NO_CROSS_MODAL
    assert panel.search() is None and panel.client is None  # nothing starts


def test_typed_words_show_the_fitting_pictures_as_tiles(qtbot, cross_bundle, settings,
                                                        monkeypatch):
    monkeypatch.setattr(picture_search, "TextQueryClient", FakeClient)
    FakeClient.made.clear()
    bundle = Bundle.open(cross_bundle)
    w = open_main_window(qtbot, cross_bundle, settings)
    panel = w.picture_search
    scope_rows = bundle.scope_rows(w.scope)
    target = int(scope_rows[5])  # the text is this posting's picture: it must come first
    FakeClient.VECTOR = np.asarray(bundle.embeddings("cx")[target], np.float32)
    assert panel.box.isEnabled() and panel.client is None  # started on first use only
    # a tab behind the settings until asked for (Query > Find pictures by words)
    assert w.tabifiedDockWidgets(w.pictures_dock)
    assert panel.visibleRegion().isEmpty()  # covered by the settings tab
    w.find_pictures()
    qtbot.waitUntil(lambda: not panel.visibleRegion().isEmpty(), timeout=TIMEOUT)

    FakeClient.go.clear()
    with qtbot.waitSignal(panel.searched, timeout=TIMEOUT):
        qtbot.keyClicks(panel.box, "botol minum hijau")
        qtbot.waitUntil(lambda: "loading the text model" in panel.status.text())
        FakeClient.go.set()
    client = FakeClient.made[-1]
    assert client.texts == ["botol minum hijau"]  # debounced: one search, not one a key
    assert (client.bundle, client.modality) == (cross_bundle, "cx")
    model = panel.grid.model()
    assert model.rowCount() == min(TOP, len(scope_rows))
    first = model.index(0)
    ids = bundle.items["posting_id"].to_numpy()
    assert first.data(TileRole.GlobalRow) == target
    assert first.data(TileRole.PostingId) == ids[target]
    assert first.data(TileRole.Score) == pytest.approx(1.0, abs=1e-5)
    scores = [model.index(i).data(TileRole.Score) for i in range(model.rowCount())]
    assert scores == sorted(scores, reverse=True)
    assert set(model.index(i).data(TileRole.GlobalRow)
               for i in range(model.rowCount())) <= set(scope_rows.tolist())
    assert bundle.items["title"].iloc[target] == first.data(TileRole.Title)
    # the tiles are painted by the neighbour grid's delegate from the window's one cache
    assert panel.grid.itemDelegate().cache is w.cache
    assert "botol minum hijau" in panel.status.text()

    # a click makes the posting the query
    rect = panel.grid.visualRect(model.index(1))
    second = model.index(1).data(TileRole.PostingId)
    with qtbot.waitSignal(w.queryShown, timeout=TIMEOUT):
        qtbot.mouseClick(panel.grid.viewport(), Qt.MouseButton.LeftButton,
                         pos=rect.center())
    assert w.view.table.posting_id[w.query] == second

    # Enter searches at once; the window's close closes the child
    with qtbot.waitSignal(panel.searched, timeout=TIMEOUT):
        panel.box.setText("sepatu merah")
        qtbot.keyClick(panel.box, Qt.Key.Key_Return)
    assert client.texts[-1] == "sepatu merah"
    # another scope: the same words searched again there
    other = next(s for s in bundle.manifest.scopes if s != w.scope)
    with qtbot.waitSignal(panel.searched, timeout=TIMEOUT):
        w.state.update(scope=other)
    rows = {model.index(i).data(TileRole.GlobalRow) for i in range(model.rowCount())}
    assert rows <= set(bundle.scope_rows(other).tolist()) and client.texts[-1] == "sepatu merah"
    w.close()
    assert client.closed
