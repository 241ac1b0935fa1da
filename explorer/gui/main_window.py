"""The main window: wires the controls, the query list, the query panel, the neighbour
grid, the plots, the error cases and the metrics bar to one Session through the Worker.

What the analyst looks at is one `ViewerState` (scope, configuration, pinned baseline,
query, pictures folder, label-audit marks); the controls are a view of it. Flow: the
state changes -> `request()` posts a job (compute the snapshot, then the ScopeView) to the
worker's view lane -> `_on_view` applies the newest result (older ones are dropped) ->
the list, the metrics, the plots and the cases repaint from it, and the current query's
explanation is computed in the worker's query lane. Nothing here computes a metric or touches the
engine: everything that does runs on the worker thread."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDockWidget,
    QHeaderView,
    QLineEdit,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QTableView,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from explorer.core.charts import Curve, param_value
from explorer.core.config import ConfigError, MatchConfig
from explorer.core.evaluate import last_threshold_param
from explorer.core.explain import explain_query
from explorer.core.image_folder import ImageFolder
from explorer.core.pair_reasons import PairReasons, config_reasons
from explorer.core.queries import FILTERS
from explorer.core.session import Session, default_scope, tuning_scope
from explorer.core.state import SettingsDoc, ViewerState, label_errors, remarked
from explorer.core.sweep import with_param
from explorer.core.views import ScopeView, curve_in_job, scope_view
from explorer.core.wording import describe_config
from explorer.gui import menus
from explorer.gui.audit_parts_view import AuditPartsDialog, PartsShown, compute_parts
from explorer.gui.cases_panel import CasesPanel
from explorer.gui.context import AppContext
from explorer.gui.controls import ControlsPanel
from explorer.gui.metrics_bar import MetricsBar
from explorer.gui.neighbours import NeighbourGrid
from explorer.gui.pair_view import PairDialog, Posting
from explorer.gui.picture_search import PictureSearchPanel
from explorer.gui.plots import GroupSizePlot, HistogramPlot, ThresholdPlot
from explorer.gui.query_model import ROW_ROLE, QueryModel
from explorer.gui.query_panel import QueryPanel
from explorer.gui.thumbnails import ThumbnailCache
from explorer.gui.worker import Worker

NEAR_MISSES = 8
SEARCH_DELAY_MS = 120
# a large scope's threshold curve (seconds at 1M) starts once the settings rest this long:
# started after every move of a drag, it would compete with the next move's view
CURVE_DELAY_MS = 250


@dataclass(frozen=True)
class _Case:
    """A worker result: one error-case list of one view."""

    view: ScopeView
    kind: str
    frame: pd.DataFrame


@dataclass(frozen=True)
class _Curve:
    """A worker result: the threshold curve of one view (now in view.curve)."""

    view: ScopeView
    curve: Curve | None


@dataclass(frozen=True)
class _Explained:
    """A worker result: one query's explanation (the neighbour grid) in one view."""

    view: ScopeView
    query: int
    frame: pd.DataFrame
    # the learned classifier's reasons by tile (scope row); empty in any other mode
    reasons: Mapping[int, PairReasons] = field(default_factory=dict)


class MainWindow(QMainWindow):
    viewApplied = Signal()      # a new ScopeView is on screen (tests and the screenshot wait)
    viewFailed = Signal(str)    # the newest view could not be computed (one line)
    caseShown = Signal(str)     # an error-case list (its kind) is on screen
    queryShown = Signal(int)    # the current query's neighbour grid is on screen

    def __init__(self, session: Session, bundle_path: Path, context: AppContext,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.session, self.bundle_path, self.context = session, Path(bundle_path), context
        self.settings = context.settings
        self.setWindowTitle(f"Shopee match explorer — {self.bundle_path.name}")
        self.view: ScopeView | None = None
        self._previous = None                   # metrics before the last adjustment
        self._pending_query: str | None = None  # posting id to select once a view arrives
        self._requested: tuple | None = None    # _key() of the view last posted
        self._search_gen: int | None = None     # the tune / Best request in flight
        self._explained: tuple | None = None    # (view, query) whose grid is on screen
        self._pending_pair: tuple[int, int] | None = None  # (query, neighbour) to show
        self.pair_dialog: PairDialog | None = None
        self.parts_dialog: AuditPartsDialog | None = None
        # the audit finding whose parts are wanted, and the cases-lane job computing them
        self._parts_wanted: pd.Series | None = None
        self._parts_gen = 0
        self.show_near_misses = True
        self.worker = Worker(self)
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.progress.connect(self._on_progress)
        self.cache = ThumbnailCache(session.bundle, parent=self)
        names = {n for n, _ in session.modalities} | set(session.derived)
        doc = self.settings.load_state(self.bundle_path, session.scopes, names)
        tune_on = None
        if doc is None:
            scope = default_scope(session.bundle)
            doc = SettingsDoc(session.default_config(), scope)
            if session.bundle.manifest.has_labels:  # nothing to tune on without labels
                tune_on = tuning_scope(session.bundle, scope)
        self.state = ViewerState(session.scopes, names, doc.scope, doc.config, doc.pinned)
        self.state.update(marks=self.settings.marks(self.bundle_path))
        self._build()
        self.cases.set_marks(self.state.marks)
        menus.install(self)
        self.controls.set_choices(list(session.scopes), session.modalities, session.derived)
        self.controls.bind(self.state)
        self.state.subscribe(self._on_state)
        self.request(tune_on=tune_on)
        stored = self.settings.image_folder(self.bundle_path)
        if stored:
            self.set_image_folder(Path(stored), remember=False)  # gone since: thumbnails
        geometry, layout = self.settings.window()
        if geometry is not None:
            self.restoreGeometry(geometry)
        if layout is not None:
            self.restoreState(layout)

    # -- construction ---------------------------------------------------------------------
    def _build(self) -> None:
        self.controls = ControlsPanel()
        dock = QDockWidget("Settings", self, objectName="settingsDock")
        scroll = QScrollArea(widgetResizable=True)  # five INB stages make the panel tall
        scroll.setWidget(self.controls)
        scroll.setMinimumWidth(self.controls.sizeHint().width() + 24)
        dock.setWidget(scroll)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)
        # find pictures by words (a cross-modal modality's text tower, in a child process)
        self.picture_search = PictureSearchPanel(self.session.bundle, self.bundle_path,
                                                 self.cache)
        self.picture_search.bind(self.state)
        self.picture_search.postingChosen.connect(self.select_posting)
        words = QDockWidget("Find pictures by words", self, objectName="pictureSearchDock")
        words.setWidget(self.picture_search)
        # a tab behind the settings: the grid keeps its width until the analyst asks
        # (Query > Find pictures by words, Ctrl+Shift+F)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, words)
        self.tabifyDockWidget(words, dock)  # the second one given is the tab on top
        self.pictures_dock = words

        self.search = QLineEdit(objectName="search", placeholderText="search title, id, label…",
                                clearButtonEnabled=True)
        self.filter = QComboBox(objectName="filter")
        self.filter.addItems(FILTERS)
        self.model = QueryModel(self)
        self.list = QTableView(objectName="queryList")
        self.list.setModel(self.model)
        self.list.setSortingEnabled(True)
        # worst queries first: where an error-analysis session starts
        self.list.sortByColumn(self.model.columns.index("f1"), Qt.SortOrder.AscendingOrder)
        self.list.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.verticalHeader().hide()
        self.list.verticalHeader().setDefaultSectionSize(22)
        self.list.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.list.horizontalHeader().setDefaultSectionSize(60)
        self.model.modelReset.connect(self._size_columns)
        left = QWidget()
        lay = QVBoxLayout(left)
        lay.setContentsMargins(0, 0, 0, 0)
        top = QSplitter(Qt.Orientation.Horizontal)
        lay.addWidget(self.search)
        lay.addWidget(self.filter)
        lay.addWidget(self.list)

        self.query_panel = QueryPanel(self.cache)
        self.grid = NeighbourGrid(self.cache)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.query_panel)
        right.addWidget(self.grid)
        right.setStretchFactor(1, 1)
        top.addWidget(left)
        top.addWidget(right)
        top.setStretchFactor(1, 1)
        top.setSizes([520, 900])

        self.threshold_plot = ThresholdPlot()
        self.histogram = HistogramPlot()
        self.by_size = GroupSizePlot()
        self.cases = CasesPanel()
        self.tabs = QTabWidget(objectName="bottomTabs")
        self.tabs.addTab(self.threshold_plot, "P / R / F1 vs threshold")
        self.tabs.addTab(self.histogram, "F1 histogram")
        self.tabs.addTab(self.by_size, "F1 by group size")
        self.tabs.addTab(self.cases, "Error cases")
        main = QSplitter(Qt.Orientation.Vertical)
        main.addWidget(top)
        main.addWidget(self.tabs)
        main.setSizes([680, 260])

        self.metrics = MetricsBar()
        central = QWidget()
        lay = QVBoxLayout(central)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.metrics)
        lay.addWidget(main, 1)
        self.setCentralWidget(central)

        self.controls.tuneRequested.connect(lambda on: self.request(tune_on=on))
        self.controls.bestRequested.connect(lambda on: self.request(best_on=on))
        self.controls.resetRequested.connect(self._on_reset)
        self.threshold_plot.thresholdDragged.connect(self._on_dragged)
        self.list.selectionModel().currentRowChanged.connect(self._on_current)
        self._search_timer = QTimer(self, singleShot=True, interval=SEARCH_DELAY_MS)
        self._search_timer.timeout.connect(self._apply_search)
        self.search.textChanged.connect(lambda _: self._search_timer.start())
        self._curve_timer = QTimer(self, singleShot=True, interval=CURVE_DELAY_MS)
        self._curve_timer.timeout.connect(self._request_curve)
        self.filter.currentTextChanged.connect(self._on_filter)
        self.grid.tileActivated.connect(self.select_query)
        self.grid.tileClicked.connect(self._show_pair)
        self.cases.queryRequested.connect(self.select_query)
        self.tabs.currentChanged.connect(lambda _: self._show_cases())
        self.cases.currentChanged.connect(lambda _: self._show_cases())
        self.cases.pairRequested.connect(self._show_case_pair)
        self.cases.markRequested.connect(lambda mark: self.mark_finding(mark or None))
        self.cases.partsRequested.connect(self.show_parts)

    # -- the state ----------------------------------------------------------------------
    @property
    def scope(self) -> str:
        return self.state.scope

    @property
    def config(self) -> MatchConfig:
        return self.state.config

    @property
    def pinned(self) -> MatchConfig | None:
        return self.state.pinned

    @property
    def query(self) -> int | None:
        """Scope-local row of the current query."""
        return self.state.query

    @property
    def images(self) -> ImageFolder | None:
        """The original pictures, when a folder is set."""
        return self.state.images

    @property
    def marks(self) -> dict[str, str]:
        """The label audit's marks: posting_id -> mark (explorer.core.audit_marks)."""
        return self.state.marks

    def _on_state(self, changed: frozenset[str]) -> None:
        if "marks" in changed:
            self.settings.save_marks(self.bundle_path, self.state.marks)  # an hour's work
            self.cases.set_marks(self.state.marks)
        # marks count only when the label errors changed (the second F1), and never cancel
        # a search of minutes: its view asks for them when it lands (_catch_up)
        if (changed & {"scope", "config", "pinned", "marks"} and self._requested != self._key()
                and (changed != {"marks"} or not self._searching())):
            self.request()
        if "query" in changed and self.state.query is not None:
            self._restore_selection()
            self.show_query()

    def _key(self) -> tuple:
        """What a view depends on: scope, configuration, pinned, the label errors marked."""
        return (self.state.scope, self.state.config, self.state.pinned,
                label_errors(self.state.marks))

    def _searching(self) -> bool:
        """True while a tune / Best request is the newest of the view lane."""
        return self._search_gen is not None and \
            self._search_gen == self.worker.generation("view")

    def apply_settings(self, doc: SettingsDoc, where: str) -> None:
        """Take a settings document (File > Load settings, `explorer --settings`);
        ConfigError naming `where` when this bundle cannot show it."""
        self.state.apply(doc, where)

    def document(self) -> SettingsDoc:
        """The settings document of what is on screen (File > Export settings)."""
        return self.state.document(str(self.bundle_path))

    # -- requests -------------------------------------------------------------------------
    def request(self, tune_on: str | None = None, best_on: str | None = None) -> int:
        """Post the current settings to the worker: as they are, with every threshold tuned
        on scope `tune_on`, or replaced by the best configuration searched on `best_on`."""
        session, scope, cfg, pinned = self.session, self.scope, self.config, self.pinned
        previous, marks = self.view, self.state.marks  # replaced on change, never mutated
        self._requested = self._key()

        def job(progress, cancelled) -> ScopeView:
            if best_on:
                c = session.best(best_on, progress=progress, cancelled=cancelled)
            else:
                c = session.tune(cfg, tune_on) if tune_on else cfg
            snap = session.compute(scope, c, pinned, progress=progress, cancelled=cancelled)
            # the error-case list on screen follows in its own job (_show_cases), so the
            # metrics repaint without waiting for it
            return scope_view(snap, previous, with_cases=False, with_curve="cheap",
                              marks=marks)

        if best_on:
            label = f"best on {best_on}"
            self.statusBar().showMessage(f"tuning: searching the best configuration on "
                                         f"{best_on}… (any change cancels)")
        elif tune_on:
            label = f"tune on {tune_on}"
            self.statusBar().showMessage(f"tuning every threshold on {tune_on}…")
        else:
            label = cfg.label
        generation = self.worker.submit(job, label, lane="view")
        self._search_gen = generation if best_on or tune_on else None
        return generation

    def set_config(self, cfg: MatchConfig) -> None:
        self.state.update(config=cfg)

    def set_scope(self, scope: str) -> None:
        self.state.update(scope=scope)

    def pin(self) -> None:
        self.state.update(pinned=self.config)
        self.statusBar().showMessage(f"pinned: {describe_config(self.config)}", 4000)

    def unpin(self) -> None:
        self.state.update(pinned=None)

    def mark_finding(self, mark: str | None, finding: pd.Series | None = None) -> int:
        """Mark every posting of an audit finding's members (the selected one by default)
        `mark` (None: clear); how many postings that was."""
        if finding is None:
            finding = self.cases.selected_finding()
        if finding is None:
            return 0
        ids = tuple(finding["member_ids"])
        self.state.update(marks=remarked(self.state.marks, ids, mark))
        self.statusBar().showMessage(
            f"{len(ids)} posting{'s' * (len(ids) != 1)} "
            + (f"marked as {mark}" if mark else "unmarked"), 4000)
        return len(ids)

    def add_marks(self, marks: dict[str, str]) -> None:
        """Take marks read from a file: theirs win over the postings marked here."""
        self.state.update(marks={**self.state.marks, **marks})

    def _on_reset(self) -> None:
        labelled = self.session.bundle.manifest.has_labels
        tune_on = tuning_scope(self.session.bundle, self.scope) if labelled else None
        self.state.update(config=self.session.default_config())
        self.request(tune_on=tune_on)

    def _on_dragged(self, value: float) -> None:
        if self.view is None or not self.view.has_curve or self.view.curve is None:
            return
        try:
            self.set_config(with_param(self.config, self.view.curve.param, value))
        except ConfigError as exc:  # dragged outside the range a threshold may take
            self.statusBar().showMessage(str(exc), 6000)

    # -- results --------------------------------------------------------------------------
    def _on_finished(self, lane: str, generation: int) -> None:
        result = self.worker.take(lane, generation)
        if result is None or generation != self.worker.generation(lane):
            return  # superseded while it was computed
        if lane == "view":
            self._on_view(result)
        elif lane == "query":
            self._on_explained(result)
        elif lane == "curve":
            if result.view is self.view:
                self._show_curve(result.view)
        elif isinstance(result, PartsShown):
            self._parts_wanted = None
            self.parts_dialog.view.set_parts(result)
            self._show_cases()  # its job may have superseded the list's
        else:
            self._on_case(result)
            if self._parts_wanted is not None and \
                    self._parts_gen != self.worker.generation("cases"):
                self._request_parts()  # superseded by the list's job

    def _on_case(self, case: _Case) -> None:
        if case.view is self.view:
            self.cases.set_case(case.kind, case.frame)
            self.caseShown.emit(case.kind)
        if self.cases.current_kind != case.kind:
            self._show_cases()  # the analyst switched lists meanwhile

    def _on_view(self, view: ScopeView) -> None:
        snap = view.snapshot
        old = self.view
        same_scope = old is not None and old.snapshot.scope == snap.scope
        if old is None or view.table is not old.table:  # else the same numbers (marks)
            self._previous = old.snapshot.metrics if same_scope else None
        self.view = view
        if snap.config != self.config:  # tuned: show the tuned thresholds
            # computed already, with the label errors of its request
            self._requested = (snap.scope, snap.config, self.pinned, self._requested[-1])
            self.state.update(config=snap.config)
            self.statusBar().showMessage(f"tuned: {describe_config(snap.config)}", 5000)
        elif self.statusBar().currentMessage().startswith("tuning"):
            self.statusBar().clearMessage()  # that tuning was superseded
        base = snap.baseline.metrics if snap.baseline is not None else None
        self.metrics.set_metrics(snap.metrics, snap.n, snap.scope, self._previous, base,
                                 view.without_marked)
        self.metrics.set_progress(0, 0)
        anchor = self._top_row()
        self.model.set_table(view.table)
        if view.has_curve:
            self._show_curve(view)
        else:  # a million postings: the curve follows in a job of its own
            cfg = snap.config
            self.threshold_plot.set_pending(param_value(cfg, last_threshold_param(cfg)))
            self._curve_timer.start()
        if view.histogram is not None:
            self.histogram.set_data(*view.histogram)
            bh = view.baseline_histogram
            self.histogram.set_baseline(*(bh if bh is not None else (None, None)))
        if view.by_size is not None:
            self.by_size.set_data(view.by_size)
        if self._pending_query is not None:
            self.select_posting(self._pending_query)
            self._pending_query = None
        elif (self.query is None or self.query >= snap.n) and self.model.rowCount():
            self.select_query(self.model.scope_row(0))
        else:
            self._restore_selection(scroll=False)
            self._scroll_to_top_row(anchor)  # the list stays where the analyst left it
            self.show_query()
        self.viewApplied.emit()
        # the error-case list on screen starts after this view is painted: computed
        # alongside, it would slow the repaint (the GIL) for a list that can wait
        QTimer.singleShot(0, self._show_cases)
        self._catch_up()

    def _catch_up(self) -> None:
        """Ask for the marks' figure when they changed during a search."""
        self._search_gen = None
        if self._requested != self._key():
            self.request()

    def _on_failed(self, lane: str, generation: int, message: str) -> None:
        if generation != self.worker.generation(lane):
            return
        self.statusBar().showMessage(message, 8000)
        if (lane == "cases" and generation == self._parts_gen
                and self.parts_dialog is not None):
            self._parts_wanted = None
            self.parts_dialog.view.set_pending(message)
        if lane == "view":
            self.metrics.set_progress(0, 0)
            self.viewFailed.emit(message)
            if self._searching():
                self._catch_up()

    def _on_progress(self, generation: int, done: int, total: int) -> None:
        if generation == self.worker.generation("view"):
            self.metrics.set_progress(done, total)

    def _request_curve(self) -> None:
        view = self.view
        if view is not None and not view.has_curve:
            self.worker.submit(lambda _p, cancelled: _Curve(view, curve_in_job(view, cancelled)),
                               "threshold curve", lane="curve")

    def _show_curve(self, view: ScopeView) -> None:
        """Draw the view's computed curve; only the line moves when the curve on screen is
        the same one (a threshold drag keeps the curves and axes)."""
        if view.curve is None:
            return
        drawn = self.threshold_plot.curve
        if drawn is not None and drawn.f1 is view.curve.f1:
            self.threshold_plot.set_threshold(view.curve.current)
        else:
            self.threshold_plot.set_curve(view.curve)

    def _show_cases(self) -> None:
        """Fill the error-case list on screen: at once when this view has it, else from a
        job in the worker's case lane (50-130 ms at 34k), superseded by the next one."""
        if self.view is None or self.tabs.currentWidget() is not self.cases:
            return
        view, kind = self.view, self.cases.current_kind
        if view.has_case(kind):
            self.cases.set_case(kind, view.case(kind))
            self.caseShown.emit(kind)
        else:  # its own lane: it never cancels a view, nor waits behind one
            self.worker.submit(lambda _p, _c: _Case(view, kind, view.case(kind)),
                               f"error cases: {kind}", lane="cases")

    # -- the current query --------------------------------------------------------------
    def select_query(self, scope_row: int) -> None:
        """Make a posting of the scope the query (shown in the list when it is filtered in)."""
        if not self.state.update(query=int(scope_row)):
            self._restore_selection()  # the same query: selected again in the list
            self.show_query()

    def select_posting(self, posting_id: str) -> bool:
        if self.view is None:
            self._pending_query = posting_id
            return False
        hit = np.flatnonzero(self.view.table.posting_id == posting_id)
        if not len(hit):
            self.statusBar().showMessage(f"{posting_id}: not in scope {self.scope}", 6000)
            return False
        self.select_query(int(hit[0]))
        return True

    def step_query(self, step: int) -> None:
        n = self.model.rowCount()
        if not n:
            return
        at = self.model.view_row(self.query) if self.query is not None else None
        row = 0 if at is None else min(max(at + step, 0), n - 1)
        self.select_query(self.model.scope_row(row))

    def _top_row(self) -> int | None:
        """Scope row at the top of the visible list, to keep it in place across updates."""
        idx = self.list.indexAt(self.list.viewport().rect().topLeft())
        return int(self.model.data(idx, ROW_ROLE)) if idx.isValid() else None

    def _scroll_to_top_row(self, scope_row: int | None) -> None:
        at = self.model.view_row(scope_row) if scope_row is not None else None
        if at is not None:
            self.list.scrollTo(self.model.index(at, 0),
                               QAbstractItemView.ScrollHint.PositionAtTop)

    def _restore_selection(self, scroll: bool = True) -> None:
        sel = self.list.selectionModel()
        at = self.model.view_row(self.query) if self.query is not None else None
        with_blocked = sel.blockSignals(True)
        if at is None:
            sel.clearSelection()
        else:
            idx = self.model.index(at, 0)
            sel.setCurrentIndex(idx, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                | QItemSelectionModel.SelectionFlag.Rows)
            if scroll:
                self.list.scrollTo(idx, QAbstractItemView.ScrollHint.PositionAtCenter)
        sel.blockSignals(with_blocked)

    def _on_current(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.state.update(query=int(self.model.data(current, ROW_ROLE)))

    def show_query(self) -> None:
        """The query panel at once (from the view's table); the neighbour grid when the
        worker's query lane has explained the query (the engine is the worker's alone)."""
        if self.view is None or self.query is None:
            return
        view, q, t = self.view, self.query, self.view.table
        snap = view.snapshot
        near = NEAR_MISSES if self.show_near_misses else 0
        self._explained = None

        def explain(_progress, _cancelled) -> _Explained:
            frame = explain_query(snap.engine, snap.evaluation, q, near_misses=near)
            return _Explained(view, q, frame,
                              config_reasons(snap.engine, snap.config, q, frame["row"]))

        self.worker.submit(explain, f"query {t.posting_id[q]}", lane="query")
        labelled = snap.evaluation.has_labels
        self.query_panel.set_query(
            int(snap.engine.rows[q]), str(t.posting_id[q]), str(t.title[q]), str(t.label[q]),
            int(t.group_size[q]),
            (float(t.f1[q]), float(t.precision[q]), float(t.recall[q])) if labelled else None,
            int(t.n_pred[q]), title_raw=None if t.title_raw is None else str(t.title_raw[q]))

    def _on_explained(self, done: _Explained) -> None:
        if done.view is not self.view or done.query != self.query:
            return  # another query or view since
        self.grid.model().set_tiles(done.frame, done.view.snapshot.engine.rows, done.reasons)
        self.grid.set_modalities(done.view.snapshot.config.modalities)
        self._explained = (done.view, done.query)
        pair, self._pending_pair = self._pending_pair, None
        if pair is not None and pair[0] == done.query:
            self._open_pair(pair[1])
        self.queryShown.emit(done.query)

    def query_pending(self) -> bool:
        """True while the current query's grid is still being computed."""
        return self.view is not None and self.query is not None and \
            self._explained != (self.view, self.query)

    def set_near_misses(self, on: bool) -> None:
        self.show_near_misses = bool(on)
        self.show_query()

    def _show_pair(self, scope_row: int) -> None:
        """Both postings side by side, the differing quantities highlighted."""
        model = self.grid.model()
        at = model.row_of_scope(scope_row)
        if self.view is None or at is None or scope_row == self.query:
            return
        if self.pair_dialog is None:
            self.pair_dialog = PairDialog(self.session.bundle, self)
        self.pair_dialog.view.images = self.images
        self.pair_dialog.show_tile(model, at)
        self.pair_dialog.show()
        self.pair_dialog.raise_()

    def set_image_folder(self, folder: Path | None, remember: bool = True) -> str | None:
        """Show the original pictures under `folder` in the pair view (None: thumbnails
        only); an error message, and nothing changed, when the folder holds none of the
        bundle's pictures."""
        if folder is None:
            self.state.update(images=None)
        else:
            try:
                images = ImageFolder(folder, self.session.bundle)
            except ValueError as exc:
                return str(exc)
            found, looked = images.found()
            if not found:
                return (f"{folder}: none of the bundle's pictures is there ({looked} image "
                        "names looked up)")
            self.state.update(images=images)
            self.statusBar().showMessage(
                f"original pictures from {images.root} ({found} of {looked} looked up found)",
                6000)
        if remember:
            self.settings.save_image_folder(self.bundle_path, folder)
        return None

    def _show_case_pair(self, query: int, neighbour: int) -> None:
        """Make `query` the query and show its pair with `neighbour` once its grid (which
        the pair view reads) is explained."""
        self.select_query(query)
        if self.query_pending():
            self._pending_pair = (query, neighbour)
        else:
            self._open_pair(neighbour)

    def show_parts(self, finding: pd.Series) -> None:
        """A split finding's parts (a merge's two groups) side by side, computed in the
        worker's cases lane, which it shares with the case lists: whichever of the two
        supersedes the other asks for it again when it lands."""
        if self.view is None:
            return
        if self.parts_dialog is None:
            self.parts_dialog = AuditPartsDialog(self.cache, self)
            self.parts_dialog.view.bind(self.state)
            self.parts_dialog.view.postingClicked.connect(self.select_query)
        self._parts_wanted = finding
        self._request_parts()
        self.parts_dialog.show()
        self.parts_dialog.raise_()

    def _request_parts(self) -> None:
        view, finding = self.view, self._parts_wanted
        what = f"{finding['kind']} of {finding['label_group']}"
        self.parts_dialog.view.set_pending(f"computing the parts of the {what}…")
        self._parts_gen = self.worker.submit(lambda _p, _c: compute_parts(view, finding),
                                             f"parts: {what}", lane="cases")

    def _open_pair(self, scope_row: int) -> None:
        """The query beside `scope_row`: its tile's pair view when the grid holds it, else
        the two postings alone (an audit finding's other group need not be a candidate)."""
        if self.grid.model().row_of_scope(scope_row) is not None:
            self._show_pair(scope_row)
            return
        if self.view is None or self.query is None or scope_row == self.query:
            return
        if self.pair_dialog is None:
            self.pair_dialog = PairDialog(self.session.bundle, self)
        rows = self.view.snapshot.engine.rows
        left, right = (Posting.from_bundle(self.session.bundle, int(rows[r]), self.images)
                       for r in (self.query, scope_row))
        self.pair_dialog.set_pair(
            left, right, detail="neither a match, a true match nor a near miss of the query")
        self.pair_dialog.show()
        self.pair_dialog.raise_()

    # -- list view ------------------------------------------------------------------------
    def _size_columns(self) -> None:
        header = self.list.horizontalHeader()
        for i, name in enumerate(self.model.columns):
            if name == "title":
                header.setSectionResizeMode(i, QHeaderView.ResizeMode.Stretch)
            else:
                header.setSectionResizeMode(i, QHeaderView.ResizeMode.Interactive)
                header.resizeSection(i, 110 if name == "posting_id" else 52)

    def _apply_search(self) -> None:
        self.model.set_view(text=self.search.text())
        self._restore_selection()

    def _on_filter(self, kind: str) -> None:
        self.model.set_view(kind=kind)
        self._restore_selection()

    # -- shutdown -------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.save_window(self.saveGeometry(), self.saveState())
        self.settings.save_state(self.bundle_path, self.document())
        self._curve_timer.stop()
        self.worker.stop()
        self.picture_search.close_client()
        super().closeEvent(event)

    def find_pictures(self) -> None:
        """Show the find-pictures tab and put the cursor in its box."""
        self.pictures_dock.show()
        self.pictures_dock.raise_()
        self.picture_search.box.setFocus()
        self.picture_search.box.selectAll()
