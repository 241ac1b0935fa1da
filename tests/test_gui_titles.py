"""What a person reads in the GUI: titles decoded (explorer.core.titles) in the query list,
the neighbour tiles, the error-case lists, the query panel and the pair view, with the
stored title in a tooltip; the pair view's word comparison (large titles when the bundle
has no pictures); the threshold axis and column headers in words. Offscreen (pytest-qt),
over a bundle whose titles are stored as in the real table (tests/escaped_titles.py)."""

from __future__ import annotations

import numpy as np
import pytest
from escaped_titles import ESCAPED, build_escaped_bundle
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage

from explorer.core.bundle import Bundle
from explorer.core.charts import Curve, threshold_curve
from explorer.core.config import InbStage, MatchConfig
from explorer.core.explain import explain_query
from explorer.core.session import Session
from explorer.core.views import scope_view
from explorer.gui.cases_panel import CasesPanel
from explorer.gui.neighbours import NeighbourModel
from explorer.gui.pair_view import LARGE_TITLE, PairView, Posting
from explorer.gui.plots import ThresholdPlot
from explorer.gui.query_model import QueryModel
from explorer.gui.query_panel import QueryPanel
from explorer.gui.tile_delegate import TileRole

LOOSE = MatchConfig("single", ("tfidf",), (0.2,))
TOOLTIP, DISPLAY = Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.DisplayRole
RED = '<span style="color:#c62828; font-weight:bold">{}</span>'
# the stored titles as a rich-text tooltip writes them ("&amp;" escaped once more)
STORED = {k: raw.replace("&", "&amp;").replace("'", "&#x27;").replace('"', "&quot;")
          for k, (raw, _) in ESCAPED.items()}


@pytest.fixture(scope="module")
def escaped(tmp_path_factory):
    path, rows = build_escaped_bundle(tmp_path_factory.mktemp("escaped"))
    session = Session(Bundle.open(path))
    snap = session.compute("all", LOOSE)
    return scope_view(snap, cases=10**6, with_cases=False), rows


def test_query_list_shows_decoded_titles_with_the_stored_one_in_the_tooltip(qtbot, escaped):
    view, rows = escaped
    model = QueryModel()
    model.set_table(view.table)
    col = model.columns.index("title")
    at = {key: model.index(model.view_row(rows[key]), col) for key in ESCAPED}
    for key, (_, shown) in ESCAPED.items():
        assert at[key].data(DISPLAY) == shown
        assert STORED[key] in at[key].data(TOOLTIP) and "stored as" in at[key].data(TOOLTIP)
    plain = model.index(model.view_row(3), col)
    assert "stored as" not in plain.data(TOOLTIP)
    model.set_view(text="✨")  # the decoded text is searched
    assert sorted(model.scope_row(r) for r in range(model.rowCount())) == sorted(rows.values())


def test_list_headers_say_what_the_columns_hold(qtbot, escaped):
    view, _ = escaped
    model = QueryModel()
    model.set_table(view.table)
    tips = {model.headerData(c, Qt.Orientation.Horizontal, DISPLAY):
            model.headerData(c, Qt.Orientation.Horizontal, TOOLTIP)
            for c in range(model.columnCount())}
    assert "true group size" in tips["group"].lower()
    assert tips["P"].startswith("Precision") and tips["R"].startswith("Recall")
    cases = CasesPanel()
    qtbot.addWidget(cases)
    for m in cases.models.values():
        for c in range(m.columnCount()):
            assert m.headerData(c, Qt.Orientation.Horizontal, TOOLTIP), \
                m.headerData(c, Qt.Orientation.Horizontal, DISPLAY)


def test_tiles_show_decoded_titles(qtbot, escaped):
    view, rows = escaped
    snap = view.snapshot
    frame = explain_query(snap.engine, snap.evaluation, rows[1], near_misses=3)
    model = NeighbourModel()
    model.set_tiles(frame, snap.engine.rows)
    query = model.index(0)
    assert query.data(DISPLAY) == query.data(TileRole.Title) == ESCAPED[1][1]
    assert query.data(TileRole.TitleRaw) == ESCAPED[1][0]
    assert STORED[1] in query.data(TOOLTIP) and ESCAPED[1][1].replace("&", "&amp;") in \
        query.data(TOOLTIP)
    other = model.index(model.row_of_scope(rows[2]))
    assert other.data(TileRole.Title) == ESCAPED[2][1]
    plain = [r for r in range(model.rowCount())
             if model.index(r).data(TileRole.ScopeRow) not in rows.values()]
    assert plain and all("stored as" not in model.index(r).data(TOOLTIP) for r in plain)


@pytest.mark.parametrize("kind", ["worst", "false_positives", "missed", "confused"])
def test_case_lists_show_decoded_titles(qtbot, escaped, kind):
    view, _ = escaped
    panel = CasesPanel()
    qtbot.addWidget(panel)
    frame = view.case(kind)
    panel.set_case(kind, frame)
    model = panel.models[kind]
    headers = [model.headerData(c, Qt.Orientation.Horizontal, DISPLAY)
               for c in range(model.columnCount())]
    col = headers.index("title")
    shown = {s: k for k, (_, s) in ESCAPED.items()}
    found = [r for r in range(model.rowCount()) if model.index(r, col).data(DISPLAY) in shown]
    assert found
    for r in found:
        key = shown[model.index(r, col).data(DISPLAY)]
        assert STORED[key] in model.index(r, col).data(TOOLTIP)
    texts = {model.index(r, c).data(DISPLAY) for r in range(model.rowCount())
             for c in range(model.columnCount())}
    assert not any("\\x" in t or "&amp;" in t for t in texts)


def test_query_panel_shows_the_decoded_title(qtbot):
    panel = QueryPanel(None)
    qtbot.addWidget(panel)
    raw, shown = ESCAPED[1]
    panel.set_query(4, "train_1_0", shown, "1001", 2, (1.0, 1.0, 1.0), 2, title_raw=raw)
    assert panel.title.text() == "<b>Sabun ✨ &amp; Lotion PEDAS 500ml</b>"
    assert STORED[1] in panel.title.toolTip()
    assert "Sabun ✨ &amp;" in panel.image.text()  # the title card, decoded
    panel.set_query(5, "train_2_0", "kopi susu", "1002", 2, None, 1, title_raw="kopi susu")
    assert panel.title.toolTip() == ""


def test_pair_view_without_pictures_compares_the_titles_word_by_word(qtbot, escaped):
    view, rows = escaped
    snap = view.snapshot
    model = NeighbourModel()
    model.set_tiles(explain_query(snap.engine, snap.evaluation, rows[1]), snap.engine.rows)
    pair = PairView(snap.engine.bundle)
    qtbot.addWidget(pair)
    normal = pair.left.title.font().pointSizeF()
    pair.show_tile(model, model.row_of_scope(rows[2]))
    left, right = pair.left.title.text(), pair.right.title.text()
    # the decoded titles, the differing words in red, the shared ones plain
    assert left == f"Sabun ✨ &amp; Lotion {RED.format('PEDAS')} 500ml"
    assert right == f"Sabun ✨ &quot;{RED.format('asli')}&quot; Lotion 500ml"
    assert pair.left.image.isHidden() and pair.right.image.isHidden()  # no empty boxes
    assert pair.left.title.font().pointSizeF() == pytest.approx(normal * LARGE_TITLE)
    assert STORED[1] in pair.left.title.toolTip() and STORED[2] in pair.right.title.toolTip()
    assert "PEDAS" in pair.words.text() and "asli" in pair.words.text()


def test_pair_view_with_pictures_keeps_them_and_compares_the_words(qtbot):
    image = QImage(64, 64, QImage.Format.Format_RGB32)
    image.fill(QColor("teal"))
    pair = PairView()
    qtbot.addWidget(pair)
    normal = pair.left.title.font().pointSizeF()
    pair.set_pair(Posting("a", "Teh hijau melati 25 sachet", image=image),
                  Posting("b", "TEH Hitam 25 sachet", image=image))
    assert not pair.left.image.isHidden() and not pair.left.image.pixmap().isNull()
    assert pair.left.title.text() == f"Teh {RED.format('hijau melati')} 25 sachet"
    assert pair.right.title.text() == f"TEH {RED.format('Hitam')} 25 sachet"
    assert pair.left.title.font().pointSizeF() == pytest.approx(normal)
    assert "stored as" not in pair.left.title.toolTip()


def test_threshold_axis_names_the_parameter_in_words(qtbot, escaped):
    view, _ = escaped
    plot = ThresholdPlot()
    qtbot.addWidget(plot)
    engine = view.snapshot.engine
    cfg = MatchConfig("single", ("tfidf",), (0.3,), inb=(InbStage(0.5), InbStage(0.6)))
    plot.set_curve(threshold_curve(engine, cfg))
    assert plot.plot_item.getAxis("bottom").labelText == "INB iteration 2 threshold"
    v = np.linspace(0, 1, 5)
    plot.set_curve(Curve("inb1.min2", v, v, v, v, 0.5, 0.5))  # a curve made without a label
    assert plot.plot_item.getAxis("bottom").labelText == "INB iteration 1 Min2 threshold"
