"""The main window: canvas + layers / recolour / refinement panels, toolbars, menus, status bar.

It is a view and a dispatcher: photos go through :class:`instmatt_app.pipeline.Engine` on a worker
thread, every edit becomes one command on :class:`instmatt_app.core.document.Document` (so undo and
redo cover everything), and files are read and written by :mod:`instmatt_app.io`. Views:

* ``composite``  the document's recomposited photo (Eq. 2 with the edits),
* ``person``     the selected person alone over the checkerboard,
* ``alpha``      the selected person's alpha (all people summed when none is selected),
* ``trimatte``   the selected person's tri-matte, α_t, α_r, α_b as red, green, blue,
* ``people``     every person tinted in its colour tag over a dimmed photo.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QThreadPool, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (QButtonGroup, QDockWidget, QFileDialog, QHBoxLayout,
                               QLabel, QMainWindow, QProgressBar, QPushButton, QSizePolicy, QSlider, QSpinBox,
                               QToolBar, QToolButton, QVBoxLayout, QWidget)

from instmatt_app.gui import render
from instmatt_app.gui.banner import Banner
from instmatt_app.gui.brush import GUIDANCE_LABELS, Stroke, edit_guidance, paint_alpha
from instmatt_app.gui.canvas import Canvas, dropped_files
from instmatt_app.gui.doc_edits import set_alphas
from instmatt_app.gui.engine_jobs import rematte
from instmatt_app.gui.icons import app_icon, icon
from instmatt_app.gui.layers_panel import LayerRow, LayersPanel
from instmatt_app.gui.recolour_panel import RecolourPanel
from instmatt_app.gui.recovery import RecoveryStore
from instmatt_app.gui.refine_panel import RefinePanel
from instmatt_app.gui.settings import AppSettings
from instmatt_app.gui.worker import Task

__all__ = ["MainWindow", "VIEWS", "TOOLS"]

VIEWS = {"composite": ("Composite", "mdi6.image", "1"), "person": ("Person", "mdi6.account", "2"),
         "alpha": ("Alpha", "mdi6.circle-half-full", "3"), "trimatte": ("Tri-matte", "mdi6.layers-triple", "4"),
         "people": ("All people", "mdi6.account-multiple", "5")}
TOOLS = {"select": ("Select person", "mdi6.cursor-default", "V"),
         "brush": ("Alpha brush: paint the person in", "mdi6.brush", "B"),
         "eraser": ("Alpha eraser: paint the person out", "mdi6.eraser", "E"),
         "guide": ("Guidance brush: mark this person / another person / background, then re-matte",
                   "mdi6.brush-variant", "G"),
         "add": ("Add a person: click on them", "mdi6.account-plus", "A")}
_STROKE_COLOURS = {"brush": "#4caf50", "eraser": "#f44336", "this": "#4caf50", "other": "#ffb300",
                   "background": "#f44336"}
_TOOL_HINTS = {
    "select": "Click a person to select them  ·  wheel: zoom  ·  space-drag or middle button: pan  ·  "
              "B brush  ·  E eraser  ·  G guidance  ·  Tab: hide panels",
    "add": "Click on a person the detector missed; they are matted and added as a new layer",
}
PROJECT_FILTER = "InstMatt project (*.instmatt)"
IMAGE_FILTER = "Photos (*.jpg *.jpeg *.png *.tif *.tiff *.bmp *.webp);;InstMatt project (*.instmatt);;All files (*)"


def _friendly_error(exc: BaseException) -> str:
    """One line for the banner: the exception's own message, with a hint for known failures."""
    text = str(exc) or type(exc).__name__
    low = text.lower()
    if "out of memory" in low:
        return ("Out of memory while processing the photo. Close other programs, choose the CPU in "
                f"Preferences, or use a smaller photo. ({text})")
    return text


class MainWindow(QMainWindow):
    """``engine_factory(device) -> Engine`` lets tests share one engine; ``recovery_dir`` holds autosaves."""

    peopleReady = Signal()  # a document with people (or an empty one) is on screen
    taskFinished = Signal(str)  # name of a background task that ended (any outcome)

    def __init__(self, settings: AppSettings | None = None, engine_factory: Callable | None = None,
                 recovery_dir: str | Path | None = None):
        super().__init__()
        self.settings = settings or AppSettings()
        self._engine_factory = engine_factory
        self.engine = None
        self.setWindowTitle("InstMatt Studio")
        self.setWindowIcon(app_icon())
        self.resize(1440, 900)
        self.setAcceptDrops(True)
        if recovery_dir is None:
            import platformdirs

            recovery_dir = Path(platformdirs.user_data_dir("instmatt-studio", "InstMatt")) / "recovery"
        self.recovery_dir = Path(recovery_dir)
        self.recovery = RecoveryStore(self.recovery_dir)
        # state
        self.photo_path: Path | None = None
        self.project_path: Path | None = None
        self.image: np.ndarray | None = None
        self.result = None  # the engine's MattingResult behind the document
        self.doc = None
        self._unsubscribe = None
        self.inst_ids: list[int] = []  # layer id of each engine instance, in instance order
        self.guidance: dict[int, np.ndarray] = {}  # layer id -> edited coarse mask (H, W) float32
        # ids whose guidance is still the engine result's own coarse mask (copied on the first edit:
        # an unused copy of every person's mask is 0.9 GB at 60 MP with four people)
        self._shared_guidance: set[int] = set()
        self.selected_id: int | None = None
        self.view = "composite"
        # the composite view's last picture (uint8) and the document's token for it: an edit redraws
        # only the regions it changed (Document.composite_changes)
        self._composite_u8: np.ndarray | None = None
        self._composite_token = None
        self.tool = "select"
        self.guide_label = "this"
        self.cycle_order: list[int] = []
        self.parallel_alphas: dict[int, np.ndarray] | None = None   # (H, W) uint8 per layer id
        self.show_heatmap = False
        self.task: Task | None = None
        self._stroke: Stroke | None = None
        self._stroke_last = None
        self._preview_adjust: tuple[int, object] | None = None
        self._thumbs: dict[int, np.ndarray] = {}
        self._centroids: dict[int, tuple[float, float]] = {}
        self._dirty = False
        self._autosave_dirty = False
        self.ask_before_discarding = True
        self._closed = False  # set when the window closes: late signals from worker threads are ignored  # Save / Discard / Cancel before unsaved edits are dropped
        self.last_export: list[Path] = []
        # the document is read by background renders / exports and edited on the GUI thread
        self.doc_lock = threading.RLock()
        self._heat_mean: float | None = None
        self._build_ui()
        self._render_timer = QTimer(self, singleShot=True, interval=0)
        self._render_timer.timeout.connect(self._start_render)
        self._render_pool = QThreadPool(self)
        self._render_pool.setMaxThreadCount(1)
        self._render_task: Task | None = None
        self._render_again = False
        self._autosave_timer = QTimer(self)
        self._autosave_timer.timeout.connect(self.autosave)
        self._apply_autosave_interval()
        self._update_actions()
        geom, state = self.settings.get("window_geometry"), self.settings.get("window_state")
        if geom is not None:
            self.restoreGeometry(geom)
        if state is not None:
            self.restoreState(state)
        self._keep_keys_for_shortcuts()
        QTimer.singleShot(0, self.check_recovery)

    # ================================================================== UI construction
    def _action(self, text: str, slot, shortcut=None, icon_name: str | None = None, checkable: bool = False,
                tip: str | None = None) -> QAction:
        a = QAction(text, self)
        if icon_name:
            a.setIcon(icon(icon_name))
        if shortcut is not None:
            seqs = shortcut if isinstance(shortcut, list) else [shortcut]
            a.setShortcuts([QKeySequence(s) for s in seqs])
            a.setShortcutContext(Qt.WindowShortcut)
        a.setCheckable(checkable)
        sc = a.shortcut().toString(QKeySequence.NativeText)
        a.setToolTip(f"{tip or text}" + (f"  ({sc})" if sc else ""))
        a.triggered.connect(slot)
        self.addAction(a)  # shortcuts work even when menus and toolbars are hidden
        return a

    def _build_ui(self) -> None:
        A = self._action
        self.act_open = A("&Open…", self.open_dialog, QKeySequence.Open, "mdi6.folder-open", tip="Open a photo or project")
        self.act_save = A("&Save project", self.save_project, QKeySequence.Save, "mdi6.content-save")
        self.act_save_as = A("Save project &as…", self.save_project_as, QKeySequence("Ctrl+Shift+S"))
        self.act_export = A("&Export…", self.export_dialog, QKeySequence("Ctrl+E"), "mdi6.export",
                            tip="Export layered PSD / PNG / TIFF")
        self.act_prefs = A("&Preferences…", self.preferences, QKeySequence("Ctrl+,"), "mdi6.cog")
        self.act_quit = A("&Quit", self.close, QKeySequence.Quit)
        self.act_undo = A("&Undo", self.undo, QKeySequence("Ctrl+Z"), "mdi6.undo")
        self.act_redo = A("&Redo", self.redo, [QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")], "mdi6.redo")
        self.act_delete = A("&Remove person", self.remove_selected, [QKeySequence(Qt.Key_Delete),
                                                                     QKeySequence(Qt.Key_Backspace)], "mdi6.delete")
        self.act_restore = A("Restore person", self.restore_selected, None, "mdi6.restore")
        self.act_fit = A("&Fit in window", lambda: self.canvas.fit(), QKeySequence("Ctrl+0"), "mdi6.fit-to-screen")
        self.act_100 = A("&Actual pixels (100 %)", lambda: self.canvas.actual_size(), QKeySequence("Ctrl+1"),
                         "mdi6.magnify")
        self.act_zoom_in = A("Zoom &in", lambda: self.canvas.zoom_by(1.25), [QKeySequence("Ctrl++"),
                                                                           QKeySequence("Ctrl+=")], "mdi6.magnify-plus")
        self.act_zoom_out = A("Zoom &out", lambda: self.canvas.zoom_by(0.8), QKeySequence("Ctrl+-"),
                              "mdi6.magnify-minus")
        self.act_panels = A("Hide / show &panels", self.toggle_panels, QKeySequence(Qt.Key_Tab))
        self.act_size_down = A("Smaller brush", lambda: self.step_brush_size(-1), QKeySequence("["))
        self.act_size_up = A("Larger brush", lambda: self.step_brush_size(+1), QKeySequence("]"))
        self.act_swap = A("Swap brush / eraser", self.swap_tool, QKeySequence("X"), "mdi6.swap-horizontal")
        self.act_rematte = A("Re-&matte person", self.rematte_selected, QKeySequence("Ctrl+R"), "mdi6.refresh",
                             tip="Matte the selected person again from the painted guidance")
        self.act_detect = A("&Find people again", self.detect_people, QKeySequence("F5"), "mdi6.account-search",
                            tip="Run the people detector and matting on the photo again")
        self.act_cancel = A("Cancel", self.cancel_task, QKeySequence(Qt.Key_Escape))
        self.view_group = QActionGroup(self)
        self.view_actions: dict[str, QAction] = {}
        for key, (label, ic, sc) in VIEWS.items():
            a = A(label, lambda _=False, k=key: self.set_view(k), QKeySequence(sc), ic, checkable=True,
                  tip=f"View: {label}")
            self.view_group.addAction(a)
            self.view_actions[key] = a
        self.view_actions["composite"].setChecked(True)
        self.tool_group = QActionGroup(self)
        self.tool_actions: dict[str, QAction] = {}
        for key, (label, ic, sc) in TOOLS.items():
            a = A(label, lambda _=False, k=key: self.set_tool(k), QKeySequence(sc), ic, checkable=True)
            self.tool_group.addAction(a)
            self.tool_actions[key] = a
        self.tool_actions["select"].setChecked(True)

        # menus
        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        m.addSeparator()
        m.addActions([self.act_save, self.act_save_as, self.act_export])
        m.addSeparator()
        m.addActions([self.act_prefs, self.act_quit])
        m = mb.addMenu("&Edit")
        m.addActions([self.act_undo, self.act_redo])
        m.addSeparator()
        m.addActions([self.act_delete, self.act_restore])
        m = mb.addMenu("&View")
        m.addActions(list(self.view_actions.values()))
        m.addSeparator()
        m.addActions([self.act_fit, self.act_100, self.act_zoom_in, self.act_zoom_out])
        m.addSeparator()
        m.addAction(self.act_panels)
        m = mb.addMenu("&Tools")
        m.addActions(list(self.tool_actions.values()))
        m.addSeparator()
        m.addActions([self.act_swap, self.act_size_down, self.act_size_up])
        m = mb.addMenu("&People")
        m.addActions([self.act_detect, self.act_rematte])
        m = mb.addMenu("&Help")
        m.addAction(icon("mdi6.keyboard"), "Keyboard shortcuts", self.show_shortcuts, QKeySequence("F1"))
        m.addAction("About InstMatt Studio", self.show_about)

        # top tool bar: file, history, views, zoom
        tb = QToolBar("Main")
        tb.setObjectName("main_toolbar")
        tb.setMovable(False)
        tb.setToolButtonStyle(Qt.ToolButtonIconOnly)
        tb.addActions([self.act_open, self.act_save, self.act_export])
        tb.addSeparator()
        tb.addActions([self.act_undo, self.act_redo])
        tb.addSeparator()
        for key, a in self.view_actions.items():
            tb.addAction(a)
            btn = tb.widgetForAction(a)
            if isinstance(btn, QToolButton):
                btn.setToolButtonStyle(Qt.ToolButtonTextBesideIcon)
        tb.addSeparator()
        tb.addActions([self.act_fit, self.act_100])
        self.addToolBar(Qt.TopToolBarArea, tb)
        self.main_toolbar = tb
        self.addToolBarBreak()
        # options bar for the current tool
        ob = QToolBar("Tool options")
        ob.setObjectName("options_toolbar")
        ob.setMovable(False)
        self.options_toolbar = ob
        ob.setMinimumHeight(40)
        self.tool_label = QLabel("Select")
        self.tool_label.setObjectName("heading")
        self.tool_label.setMinimumWidth(120)
        ob.addWidget(self.tool_label)
        ob.addSeparator()
        self.brush_box = QWidget()
        self.brush_box.setSizePolicy(QSizePolicy.Maximum, QSizePolicy.Preferred)
        bl = QHBoxLayout(self.brush_box)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.setSpacing(6)
        bl.addWidget(QLabel("Size"))
        self.size_slider = QSlider(Qt.Horizontal)
        self.size_slider.setRange(1, 500)
        self.size_slider.setFixedWidth(140)
        self.size_spin = QSpinBox()
        self.size_spin.setRange(1, 2000)
        self.size_spin.setSuffix(" px")
        self.size_slider.valueChanged.connect(self.size_spin.setValue)
        self.size_spin.valueChanged.connect(self._size_changed)
        bl.addWidget(self.size_slider)
        bl.addWidget(self.size_spin)
        bl.addSpacing(10)
        bl.addWidget(QLabel("Hardness"))
        self.hard_slider = QSlider(Qt.Horizontal)
        self.hard_slider.setRange(0, 100)
        self.hard_slider.setFixedWidth(100)
        self.hard_label = QLabel()
        self.hard_label.setMinimumWidth(36)
        self.hard_slider.valueChanged.connect(lambda v: self.hard_label.setText(f"{v} %"))
        bl.addWidget(self.hard_slider)
        bl.addWidget(self.hard_label)
        self.brush_action = ob.addWidget(self.brush_box)
        self.hint_label = QLabel()
        self.hint_label.setObjectName("muted")
        self.hint_action = ob.addWidget(self.hint_label)
        ob.addSeparator()
        self.guide_box = QWidget()
        self.guide_box.setSizePolicy(QSizePolicy.Maximum, QSizePolicy.Preferred)
        gl = QHBoxLayout(self.guide_box)
        gl.setContentsMargins(0, 0, 0, 0)
        gl.setSpacing(2)
        self.guide_buttons = QButtonGroup(self)
        self.guide_btn: dict[str, QPushButton] = {}
        for key, label in GUIDANCE_LABELS.items():
            b = QPushButton(label)
            b.setCheckable(True)
            b.setIcon(icon("mdi6.circle", _STROKE_COLOURS[key]))
            b.clicked.connect(lambda _=False, k=key: self.set_guide_label(k))
            self.guide_buttons.addButton(b)
            self.guide_btn[key] = b
            gl.addWidget(b)
        self.guide_btn["this"].setChecked(True)
        rem = QPushButton(icon("mdi6.refresh"), "Re-matte")
        rem.setObjectName("primary")
        rem.setToolTip("Matte the selected person again using the painted guidance (Ctrl+R)")
        rem.clicked.connect(self.rematte_selected)
        gl.addSpacing(8)
        gl.addWidget(rem)
        self.guide_action = ob.addWidget(self.guide_box)
        self.addToolBar(Qt.TopToolBarArea, ob)
        # left tool bar: tools
        tools = QToolBar("Tools")
        tools.setObjectName("tools_toolbar")
        tools.setMovable(False)
        tools.setOrientation(Qt.Vertical)
        tools.addActions(list(self.tool_actions.values()))
        tools.addSeparator()
        tools.addAction(self.act_swap)
        self.addToolBar(Qt.LeftToolBarArea, tools)
        self.tools_toolbar = tools

        # centre: banner + canvas
        central = QWidget()
        cl = QVBoxLayout(central)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.setSpacing(0)
        self.banner = Banner()
        wrap = QWidget()
        wl = QVBoxLayout(wrap)
        wl.setContentsMargins(8, 6, 8, 0)
        wl.addWidget(self.banner)
        cl.addWidget(wrap)
        self.canvas = Canvas()
        cl.addWidget(self.canvas, 1)
        self.setCentralWidget(central)
        self.canvas.clicked.connect(self.canvas_clicked)
        self.canvas.strokeBegan.connect(self._stroke_began)
        self.canvas.strokeMoved.connect(self._stroke_moved)
        self.canvas.strokeEnded.connect(self._stroke_ended)
        self.canvas.filesDropped.connect(lambda paths: self.open_path(paths[0]))
        self.canvas.zoomChanged.connect(lambda z: self.zoom_label.setText(f"{z:.0f} %"))

        # docks
        self.layers = LayersPanel()
        self.recolour = RecolourPanel()
        self.refine_panel = RefinePanel()
        from instmatt_app.gui.background_panel import BackgroundPanel

        self.background_panel = BackgroundPanel()
        self.refine_panel.set_mode(self.settings.get("refine") if self.settings.get("refine") == "cycle"
                                   else "parallel")
        self.docks = []
        for title, w, name in (("Layers", self.layers, "layers_dock"), ("Recolour", self.recolour, "recolour_dock"),
                               ("Refinement", self.refine_panel, "refine_dock"),
                               ("Background", self.background_panel, "background_dock")):
            d = QDockWidget(title, self)
            d.setObjectName(name)
            d.setWidget(w)
            d.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
            self.addDockWidget(Qt.RightDockWidgetArea, d)
            self.docks.append(d)
        self.tabifyDockWidget(self.docks[2], self.docks[3])
        self.docks[2].raise_()
        self.layers.list.setMinimumHeight(2 * 58 + 30)  # two and a half people visible
        self.resizeDocks(self.docks[:3], [420, 250, 300], Qt.Vertical)
        self.resizeDocks([self.docks[0]], [330], Qt.Horizontal)
        self.layers.selected.connect(lambda lid: self.select_person(None if lid < 0 else lid))
        self.layers.renamed.connect(lambda lid, name: self._do("rename", lid, name))
        self.layers.visibilityToggled.connect(self.toggle_visible)
        self.layers.lockToggled.connect(self.toggle_locked)
        self.layers.tagChanged.connect(lambda lid, c: self._do("set_colour_tag", lid, c))
        self.layers.reordered.connect(lambda ids: self._do("reorder", ids))
        self.layers.removeRequested.connect(lambda lid: self._do("remove", lid))
        self.layers.restoreRequested.connect(lambda lid: self._do("restore", lid))
        self.layers.addPersonRequested.connect(lambda: self.set_tool("add"))
        self.recolour.previewChanged.connect(self._recolour_preview)
        self.recolour.committed.connect(self._recolour_commit)
        self.refine_panel.orderChanged.connect(self._set_cycle_order)
        self.refine_panel.runRequested.connect(self.run_refinement)
        self.refine_panel.heatmapToggled.connect(self._toggle_heatmap)
        self.refine_panel.modeChanged.connect(lambda _m: self._schedule_render())
        self.refine_panel.pickOrderToggled.connect(lambda _on: setattr(self, "_picked", []))
        self.background_panel.modeChosen.connect(self.set_background_mode)
        self.background_panel.blurChosen.connect(lambda r: self._do("set_background", "blurred", None, r))
        self.background_panel.imageRequested.connect(self.choose_background_image)

        # status bar
        sb = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setFixedWidth(220)
        self.progress.setRange(0, 100)
        self.cancel_btn = QPushButton(icon("mdi6.stop"), "Cancel")
        self.cancel_btn.clicked.connect(self.cancel_task)
        self.progress_label = QLabel("")
        self.zoom_label = QLabel("")
        self.device_label = QLabel("")
        self.models_label = QLabel("")
        for w in (self.progress_label, self.progress, self.cancel_btn):
            sb.addWidget(w)
        for w in (self.zoom_label, self.device_label, self.models_label):
            sb.addPermanentWidget(w)
        self._show_progress(False)
        self._update_device_label()
        size = int(self.settings.get("brush_size"))
        self.size_spin.setValue(size)
        self.size_slider.setValue(min(size, 500))
        self.hard_slider.setValue(int(round(float(self.settings.get("brush_hardness")) * 100)))
        self.set_tool("select")

    def _keep_keys_for_shortcuts(self) -> None:
        """Single-key shortcuts (B, E, X, [, ], 1-5, ...) must reach the window: number fields take
        the keyboard only when clicked and give it back to the canvas when editing ends."""
        from PySide6.QtWidgets import QAbstractSpinBox, QSlider as _Slider

        for w in self.findChildren(QAbstractSpinBox):
            w.setFocusPolicy(Qt.ClickFocus)
            w.editingFinished.connect(self.canvas.setFocus)
        for w in self.findChildren(_Slider):
            w.setFocusPolicy(Qt.NoFocus)
        self.canvas.setFocus()

    # ================================================================== small helpers
    def show_error(self, text: str, actions=None) -> None:
        self.banner.show_message(text, "error", actions)
        self.statusBar().showMessage(text.splitlines()[0], 8000)

    def show_info(self, text: str, level: str = "info", actions=None) -> None:
        self.banner.show_message(text, level, actions)

    def _show_progress(self, on: bool, text: str = "") -> None:
        self.canvas.busy_text = f"{text}…" if on and text else ""
        self.canvas.update()
        self.progress.setVisible(on)
        self.cancel_btn.setVisible(on)
        self.progress_label.setText(text)
        self.progress_label.setVisible(on)

    def _update_device_label(self) -> None:
        if self.engine is None:
            self.device_label.setText(f"Device: {self.settings.get('device')}")
            self.models_label.setText("")
            return
        dev = self.engine.device
        self.device_label.setText("GPU (" + dev + ")" if dev.startswith("cuda") else "CPU")
        self.device_label.setToolTip(f"Compute device: {dev}")
        try:
            models = self.engine.models_in_use()
        except Exception as exc:  # noqa: BLE001
            models = {"error": str(exc)}
        self.models_label.setText(f"Models: {models.get('detector', '?')} detector · {models.get('matting', '?')} matting")
        self.models_label.setToolTip("\n".join(f"{k}: {v}" for k, v in models.items()))

    def _busy(self) -> bool:
        return self.task is not None and self.task.running

    def _start_task(self, name: str, fn, on_done, label: str) -> Task | None:
        """Run fn(progress, cancelled) in the background; on_done(result) on the GUI thread."""
        if self._busy():
            self.show_info("Please wait: another job is still running (Esc cancels it).", "warning")
            return None
        task = Task(fn, name)
        self.task = task
        self._show_progress(True, label)
        self.progress.setValue(0)

        def progress(stage: str, frac: float) -> None:
            if self._closed:
                return
            self.progress.setValue(int(frac * 100))
            self.progress_label.setText(f"{label} — {stage}")

        def finished(out) -> None:
            if self._closed:
                return
            self._update_device_label()
            try:
                on_done(out)
            except Exception as exc:  # noqa: BLE001 - a GUI-side failure must not kill the app
                self.show_error(f"{label} failed: {_friendly_error(exc)}")

        def failed(exc, tb) -> None:
            if self._closed:
                return
            msg = _friendly_error(exc)
            self.show_error(msg if name == "open" else f"{label} failed: {msg}")
            self._last_traceback = tb

        def cancelled() -> None:
            if self._closed:
                return
            self.statusBar().showMessage(f"{label} cancelled", 5000)

        def done() -> None:
            if self._closed:
                return
            self._show_progress(False)
            if self.task is task:
                self.task = None
            self._update_device_label()
            self._update_actions()
            if getattr(self, "_clear_preview_on_render", False):
                self._schedule_render()  # its result (or nothing, on failure) replaces the stroke preview
            self.taskFinished.emit(name)

        task.signals.progress.connect(progress)
        task.signals.finished.connect(finished)
        task.signals.failed.connect(failed)
        task.signals.cancelled.connect(cancelled)
        task.signals.done.connect(done)
        task.start()
        self._update_actions()
        return task

    def cancel_task(self) -> None:
        if self._busy():
            self.task.cancel()
            self.progress_label.setText("Cancelling…")

    def _person_boxes(self) -> str:
        """The person box detector from the settings (an unknown stored value falls back to auto)."""
        from instmatt_app.nets.embedded import BOX_DETECTORS

        kind = self.settings.get("person_boxes")
        return kind if kind in BOX_DETECTORS else "auto"

    def _get_engine(self):
        """The engine, built on first use (on the worker thread: building loads models)."""
        if self.engine is None:
            if self._engine_factory is not None:
                self.engine = self._engine_factory(self.settings.get("device"))
            else:
                from instmatt_app.pipeline import Engine, EngineConfig

                refine = self.settings.get("refine")
                self.engine = Engine(EngineConfig(device=self.settings.get("device"),
                                                  refine=refine if refine in ("none", "parallel") else "parallel",
                                                  guidance_passes=max(1, self.settings.get("guidance_passes")),
                                                  detector_options={"boxes": self._person_boxes()}))
        return self.engine

    # ================================================================== documents
    def layer(self, layer_id: int | None):
        if self.doc is None or layer_id is None:
            return None
        try:
            return self.doc.layer(layer_id)
        except KeyError:
            return None

    def live_layers(self) -> list:
        return [] if self.doc is None else [la for la in self.doc.layers if not la.removed]

    def _do(self, command: str, *args) -> bool:
        """Run one document command (one undo step); a refusal (locked layer, ...) is shown, not raised."""
        if self.doc is None:
            return False
        if self._exporting():
            self._refresh_layers()
            return False
        try:
            with self.doc_lock:
                getattr(self.doc, command)(*args)
        except Exception as exc:  # noqa: BLE001 - e.g. LockedLayerError: shown in the window
            self.show_error(_friendly_error(exc))
            self._refresh_layers()
            return False
        return True

    def set_document(self, doc, result=None) -> None:
        """Show ``doc`` (and remember the engine ``result`` it came from, for re-matting/refinement)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        self.doc = doc
        self.image = doc.image
        self.result = result
        self.inst_ids = [la.id for la in doc.layers] if result is not None else []
        self.guidance, self._shared_guidance = {}, set()
        if result is not None:
            for lid, inst in zip(self.inst_ids, result.instances):
                self._share_guidance(lid, inst.coarse_mask)
        self._unsubscribe = doc.subscribe(self._doc_event)
        self._thumbs.clear()
        self._centroids.clear()
        self.parallel_alphas = None
        self.cycle_order = [la.id for la in self.live_layers()]
        live = self.live_layers()
        self.selected_id = None
        self._dirty = False
        self._refresh_layers()
        self._refresh_order()
        self._sync_background()
        self.select_person(live[-1].id if live else None)
        self.canvas.set_image(self._render_view(), keep_view=True)
        self.canvas.setFocus()
        self._update_actions()
        self._update_title()

    def _doc_event(self, event) -> None:
        kind = getattr(event, "kind", "changed")
        ids = getattr(event, "layer_ids", None)
        if kind in ("changed", "layers"):
            self._dirty = True
            self._autosave_dirty = True
            if ids:
                for lid in ids:
                    self._thumbs.pop(lid, None)
                    self._centroids.pop(lid, None)
            else:
                self._thumbs.clear()
                self._centroids.clear()
            if self.selected_id is not None and self.layer(self.selected_id) is None:
                self.selected_id = None
            live_ids = {la.id for la in self.live_layers()}
            self.cycle_order = [i for i in self.cycle_order if i in live_ids] + \
                               [i for i in (la.id for la in self.live_layers()) if i not in self.cycle_order]
            self._refresh_layers()
            self._refresh_order()
            self._sync_recolour()
            self._sync_background()
            self._schedule_render()
        self._update_actions()
        self._update_title()

    def _update_title(self) -> None:
        path = (self.project_path or self.photo_path)
        name = path.name if path else ("Untitled" if self.doc is not None else "")
        base = "InstMatt Studio"
        self.setWindowTitle(f"{name}{' *' if self._dirty else ''} — {base}" if name else base)

    def _update_actions(self) -> None:
        has_doc = self.doc is not None
        h = getattr(self.doc, "history", None)
        self.act_undo.setEnabled(bool(h and h.can_undo))
        self.act_redo.setEnabled(bool(h and h.can_redo))
        self.act_undo.setText(f"Undo {h.undo_label}" if h and h.can_undo else "Undo")
        self.act_redo.setText(f"Redo {h.redo_label}" if h and h.can_redo else "Redo")
        for a in (self.act_save, self.act_save_as, self.act_export):
            a.setEnabled(has_doc)
        sel = self.layer(self.selected_id)
        self.act_delete.setEnabled(bool(sel is not None and not sel.removed))
        self.act_restore.setEnabled(bool(sel is not None and sel.removed))
        self.act_rematte.setEnabled(bool(sel is not None and self.result is not None and not self._busy()))
        self.act_detect.setEnabled(self.image is not None and not self._busy())
        self.refine_panel.run_btn.setEnabled(has_doc and bool(self.live_layers()) and not self._busy())

    # ================================================================== opening
    def open_dialog(self) -> None:
        start = str(self.photo_path.parent) if self.photo_path else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(self, "Open photo or project", start, IMAGE_FILTER)
        if path:
            self.open_path(path)

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = self.settings.recent_files()
        if not files:
            a = self.recent_menu.addAction("No recent files")
            a.setEnabled(False)
            return
        for f in files:
            self.recent_menu.addAction(Path(f).name, lambda f=f: self.open_path(f)).setToolTip(f)
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear list", self.settings.clear_recent)

    def confirm_discard(self) -> bool:
        """Unsaved edits: ask Save / Discard / Cancel. True when it is fine to drop the document."""
        if self.doc is None or not self._dirty or not self.ask_before_discarding:
            return True
        from PySide6.QtWidgets import QMessageBox

        name = (self.project_path or self.photo_path)
        box = QMessageBox(QMessageBox.Warning, "Unsaved changes",
                          f"Save the changes to {name.name if name else 'this photo'} as a project first?",
                          QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, self)
        box.setDefaultButton(QMessageBox.Save)
        answer = box.exec()
        if answer == QMessageBox.Save:
            return self.save_project()
        return answer == QMessageBox.Discard

    def open_path(self, path: str | Path) -> bool:
        """Open a photo (runs the engine) or a .instmatt project. Errors appear in the banner."""
        path = Path(path)
        if self._busy():
            self.show_info("Please wait: another job is still running (Esc cancels it).", "warning")
            return False
        if not self.confirm_discard():
            return False
        if path.suffix.lower() == ".instmatt":
            return self.open_project(path)
        from instmatt_app.io.image_io import ImageLoadError, load_image

        try:
            image = load_image(path)
        except ImageLoadError as exc:
            self.show_error(str(exc))
            return False
        except Exception as exc:  # noqa: BLE001
            self.show_error(f"{path}: could not open ({_friendly_error(exc)})")
            return False
        self.banner.hide()
        self.settings.add_recent(path)
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self.doc = None
        self.result = None
        self.photo_path, self.project_path = path, None
        self.image = image
        self.selected_id = None
        self.layers.set_layers([], None)
        self.refine_panel.set_order([])
        self.canvas.set_image(image, keep_view=False)
        self._update_title()
        self.detect_people()
        return True

    def detect_people(self) -> None:
        """Run the whole engine on the current photo in the background."""
        if self.image is None:
            return
        image = self.image

        def work(progress, cancelled):
            from instmatt_app.core.document import Document

            engine = self._get_engine()
            result = engine.run(image, progress=progress, cancel=cancelled)
            progress("layer colours", 0.9)
            # the layers paint into the result's own alphas: re-matting reads only its masks and
            # context, and a copy of every alpha is 0.9 GB at 60 MP with four people
            doc = Document.from_result(result, share_alphas=True)
            doc.ensure_colours()  # the slow first estimate stays off the GUI thread
            return result, doc

        self._start_task("detect", work, self._people_found, "Finding people")

    def _people_found(self, out) -> None:
        result, doc = out
        if result.image is not self.image:
            return  # the user opened another photo meanwhile
        if self.doc is not None and self.doc.image is result.image and self.doc.layers:
            # "find people again" on an edited photo: one undoable step, nothing is lost
            with self.doc_lock:   # the worker's document brings the estimated colours along
                self.doc.replace_people(result, colours=doc, share_alphas=True)
            self.result = result
            self.inst_ids = [la.id for la in self.doc.layers]
            self.guidance, self._shared_guidance = {}, set()
            for lid, inst in zip(self.inst_ids, result.instances):
                self._share_guidance(lid, inst.coarse_mask)
            self.parallel_alphas = None
            self.select_person(self.inst_ids[-1] if self.inst_ids else None)
        else:
            self.set_document(doc, result)
        warnings = list(result.extras.get("warnings", []))
        if warnings:  # e.g. "GPU out of memory during ...; finished on the CPU"
            self.show_info(" ".join(warnings), "warning")
        if not result.instances:
            self.show_info(f"No people found in {self.photo_path.name if self.photo_path else 'this photo'}. "
                           "Use the Add person tool (A) and click on a person to add them.", "warning",
                           [("Add person", lambda: self.set_tool("add"))])
        else:
            n = len(result.instances)
            self.statusBar().showMessage(f"Found {n} {'person' if n == 1 else 'people'} in "
                                         f"{result.timings.get('total', 0):.1f} s on {result.device.upper()}", 8000)
        self.peopleReady.emit()

    def set_result(self, result, photo_path: str | Path | None = None, doc=None) -> None:
        """Show an engine result directly (scripting, tests, screenshots); ``doc`` = its document
        when already made (else built here, with its colour layers)."""
        from instmatt_app.core.document import Document

        self.image = result.image
        self.photo_path = Path(photo_path) if photo_path else None
        self.project_path = None
        if doc is None:
            doc = Document.from_result(result)
            doc.ensure_colours()
        self.set_document(doc, result)
        self.canvas.fit()

    def open_project(self, path: Path, recovered: bool = False) -> bool:
        """Load a .instmatt project in the background (colour layers are re-estimated there).

        recovered: the autosave after a crash: shown as unsaved work with no file name."""
        path = Path(path)
        if self._busy():
            self.show_info("Please wait: another job is still running (Esc cancels it).", "warning")
            return False

        def work(progress, cancelled):
            from instmatt_app.io import project_file

            progress("reading", 0.1)
            doc = project_file.load_project(path)
            progress("layer colours", 0.5)
            doc.ensure_colours()
            return doc

        def done(doc) -> None:
            self.banner.hide()
            if not recovered:
                self.settings.add_recent(path)
            self.image = doc.image
            self.project_path, self.photo_path = (None if recovered else path), None
            self.set_document(doc, None)
            if recovered:
                self._dirty = self._autosave_dirty = True
                self._update_title()
            self.canvas.fit()
            self.peopleReady.emit()

        return self._start_task("open", work, done, f"Opening {path.name}") is not None

    # ================================================================== selection and views
    def set_view(self, view: str) -> None:
        self.view = view
        self.view_actions[view].setChecked(True)
        self._schedule_render()

    def select_person(self, layer_id: int | None) -> None:
        self.selected_id = layer_id
        self.layers.select(layer_id)
        self._sync_recolour()
        self._update_actions()
        if self.view in ("person", "alpha", "trimatte") or self.tool in ("brush", "eraser", "guide"):
            self._schedule_render()

    def person_at(self, x: float, y: float) -> int | None:
        """The visible person whose alpha is highest at photo pixel (x, y) (front-most on ties), or None."""
        best, best_a = None, 0.1
        xi, yi = int(x), int(y)
        for la in reversed(self.live_layers()):
            if not la.visible:
                continue
            a = float(la.alpha[yi, xi])
            if a > best_a + 1e-6:
                best, best_a = la.id, a
        return best

    def canvas_clicked(self, x: float, y: float) -> None:
        if self.doc is None and self.tool != "add":
            return
        if self.tool == "add":
            self.add_person_at(x, y)
            return
        lid = self.person_at(x, y)
        if self.refine_panel.pick_btn.isChecked() and self.refine_panel.mode == "cycle":
            if lid is not None:
                self.pick_order(lid)
            return
        self.select_person(lid)

    def pick_order(self, layer_id: int) -> None:
        """Cycle order by clicking: the first click is refined first, the next second, and so on.
        Clicking someone already picked (or clicking after everyone was picked) starts again."""
        picked = list(getattr(self, "_picked", []))
        if layer_id in picked or len(picked) >= len(self.live_layers()):
            picked = []
        picked.append(layer_id)
        self._picked = picked
        self._set_cycle_order(picked + [i for i in self.cycle_order if i not in picked])

    def _set_cycle_order(self, ids: list[int]) -> None:
        self.cycle_order = list(ids)
        self._refresh_order()
        self._schedule_render()

    def _refresh_order(self) -> None:
        rows = []
        for lid in self.cycle_order:
            la = self.layer(lid)
            if la is not None and not la.removed:
                rows.append((lid, la.name, la.colour_tag))
        self.refine_panel.set_order(rows)

    def _schedule_render(self) -> None:
        self._render_timer.start()

    def _colour_of(self, layer) -> np.ndarray:
        """The person's (H, W, 3) colour for display: adjusted decontaminated colour if the document has it."""
        from instmatt_app.core.adjustments import apply_adjustments

        self.doc.ensure_colours()
        if layer.colour is None:
            return self.image
        return apply_adjustments(layer.colour, layer.adjustments).full()

    def _trimatte_of(self, layer) -> np.ndarray:
        # from the current alphas (after brush edits the stored network tri-matte is stale); equals the
        # engine's tri-matte after its consistency step: α_r = Σ other α, α_b = 1 − Σ α
        others = sum((la.alpha for la in self.live_layers() if la.id != layer.id), np.zeros_like(layer.alpha))
        return np.stack([layer.alpha, np.clip(others, 0, 1), np.clip(1 - layer.alpha - others, 0, 1)])

    def _render_view(self) -> np.ndarray | None:
        if self.image is None:
            return None
        if self.doc is None:
            return self.image
        sel = self.layer(self.selected_id)
        if self.show_heatmap and self.parallel_alphas:
            ids = [lid for lid in self.parallel_alphas if self.layer(lid) is not None]
            cur = [self.layer(i).alpha for i in ids]
            ref = [self.parallel_alphas[i] for i in ids]
            img, self._heat_mean = render.difference_heatmap(self.image, cur, ref)
            return img
        if self.view == "composite":
            return self._composite_view()
        if self.view == "people":
            live = [la for la in self.live_layers() if la.visible]
            alphas = np.stack([la.alpha for la in live]) if live else np.zeros((0,) + self.image.shape[:2], np.float32)
            return render.people_overlay(self.image, alphas, [la.colour_tag for la in live])
        if sel is None:
            if self.view == "alpha":
                live = [la for la in self.live_layers() if la.visible]
                total = np.sum([la.alpha for la in live], axis=0) if live else np.zeros(self.image.shape[:2])
                return render.alpha_grey(np.clip(total, 0, 1))
            return self._composite_view()
        if self.view == "person":
            return render.person_rgba(self._colour_of(sel), sel.alpha if not sel.removed else sel.alpha * 0)
        if self.view == "alpha":
            return render.alpha_grey(sel.alpha)
        return render.trimatte_rgb(self._trimatte_of(sel))

    def _composite_view(self) -> np.ndarray:
        """The recomposited photo; with a transparent background, RGBA over the checkerboard."""
        if self.doc.background.mode == "transparent":
            rgba = self.doc.composite_rgba()
            return render.person_rgba(rgba[..., :3], rgba[..., 3])
        doc = self.doc
        token, boxes = doc.composite_changes(self._composite_token)
        cache = self._composite_u8
        if cache is None or cache.shape[:2] != doc.shape:
            boxes = None
        if boxes is not None and sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in boxes) > 0.5 * cache.shape[0] * \
                cache.shape[1]:
            boxes = None                       # most of the photo: one pass is as fast
        if boxes is None:
            cache = render.to_uint8(doc.composite())
        else:
            for y0, y1, x0, x1 in boxes:
                cache[y0:y1, x0:x1] = render.to_uint8(doc.composite_region((y0, y1, x0, x1)))
        self._composite_u8, self._composite_token = cache, token
        return cache.copy()                    # the next render may patch the cache while this one is shown

    def refresh_canvas(self) -> None:
        """Draw the current view now, on the GUI thread (scripts, tests, screenshots)."""
        try:
            with self.doc_lock:
                img = self._render_view()
        except Exception as exc:  # noqa: BLE001
            self.show_error(f"Could not draw the view: {_friendly_error(exc)}")
            return
        self._show_rendered(img)

    def _start_render(self) -> None:
        """Draw the current view on the render thread; the canvas stays interactive meanwhile.

        Colour layers touched by an edit are re-estimated here (up to a second after a long
        stroke), so the GUI thread never waits for them; renders never overlap, and one that
        was asked for while another ran follows it.
        """
        if self._render_task is not None and self._render_task.running:
            self._render_again = True
            return
        self._render_again = False
        doc = self.doc

        def work(progress, cancelled):
            with self.doc_lock:
                return doc, self._render_view()

        def finished(out) -> None:
            if self._closed:
                return
            d, img = out
            if d is self.doc:
                self._show_rendered(img)
            else:
                self._render_again = True

        def done() -> None:
            if self._render_again and not self._closed:
                self._render_timer.start()

        task = Task(work, "render")
        task.signals.finished.connect(finished)
        task.signals.failed.connect(lambda exc, tb: None if self._closed else
                                    self.show_error(f"Could not draw the view: {_friendly_error(exc)}"))
        task.signals.done.connect(done)
        self._render_task = task.start(self._render_pool)

    def wait_for_render(self, timeout_ms: int = 30_000) -> None:
        """Block until pending renders are on screen (scripts and tests)."""
        from PySide6.QtCore import QCoreApplication, QElapsedTimer

        t = QElapsedTimer()
        t.start()
        while (self._render_timer.isActive() or self._render_again or
               (self._render_task is not None and self._render_task.running)) and t.elapsed() < timeout_ms:
            QCoreApplication.processEvents()
            self._render_pool.waitForDone(10)
        QCoreApplication.processEvents()

    def _show_rendered(self, img) -> None:
        if getattr(self, "_clear_preview_on_render", False) and self._stroke is None and \
                not (self._busy() and self.task.name == "rematte"):
            self._clear_preview_on_render = False
            self.canvas.preview_clear()
        self.canvas.set_image(img)
        self._update_badges()
        if self.show_heatmap and self.parallel_alphas and self._heat_mean is not None:
            self.refine_panel.info.setText(f"Mean |Δα| vs parallel: {self._heat_mean:.4f} per pixel "
                                           f"(bright = where the mattes differ)")

    def _centroid(self, layer) -> tuple[float, float]:
        c = self._centroids.get(layer.id)
        if c is None:
            a = layer.alpha
            step = max(1, max(a.shape) // 512)
            small = a[::step, ::step]
            ys, xs = np.nonzero(small > 0.5)
            if len(xs) == 0:
                c = (a.shape[1] / 2, a.shape[0] / 2)
            else:  # upper body: the 25th percentile of y, median x of that band
                y = float(np.percentile(ys, 25))
                band = xs[np.abs(ys - y) < max(3, small.shape[0] // 50)]
                c = (float(np.median(band if len(band) else xs)) * step, y * step)
            self._centroids[layer.id] = c
        return c

    def _update_badges(self) -> None:
        badges = []
        if self.doc is not None and self.refine_panel.mode == "cycle":
            for n, lid in enumerate(self.cycle_order, 1):
                la = self.layer(lid)
                if la is not None and not la.removed:
                    x, y = self._centroid(la)
                    badges.append((x, y, str(n), la.colour_tag))
        self.canvas.badges = badges
        self.canvas.update()

    def _thumbnail(self, layer) -> np.ndarray:
        """(46, 46, 4) uint8: the person's colour layer (as far as estimated) with its adjustments."""
        from instmatt_app.core.adjustments import apply_adjustments

        colour = layer.colour if layer.colour is not None else self.image
        th = render.thumbnail_rgba(colour, layer.alpha, None, 46)
        if not layer.adjustments.is_identity:
            rgb = apply_adjustments(th[..., :3].astype(np.float32) / 255.0, layer.adjustments)
            th[..., :3] = render.to_uint8(rgb)
        return th

    def _refresh_layers(self) -> None:
        if self.doc is None:
            self.layers.set_layers([], None)
            return
        rows = []
        for la in self.doc.layers:
            th = self._thumbs.get(la.id)
            if th is None:
                th = self._thumbnail(la)
                self._thumbs[la.id] = th
            sub = "removed" if la.removed else ("hidden" if not la.visible else "")
            adj = getattr(la, "adjustments", None)
            if adj is not None and not sub and any(abs(float(v)) > 1e-6 for v in _adjust_values(adj).values()):
                sub = "recoloured"
            if la.locked:
                sub = (sub + " · locked").strip(" ·")
            rows.append(LayerRow(la.id, la.name, la.visible, la.locked, la.colour_tag, la.removed, th, sub))
        self.layers.set_layers(rows, self.selected_id)

    # ================================================================== layer commands
    def toggle_visible(self, layer_id: int) -> None:
        la = self.layer(layer_id)
        if la is not None:
            self._do("set_visible", layer_id, not la.visible)

    def toggle_locked(self, layer_id: int) -> None:
        la = self.layer(layer_id)
        if la is not None:
            self._do("set_locked", layer_id, not la.locked)

    def remove_selected(self) -> None:
        la = self.layer(self.selected_id)
        if la is not None and not la.removed:
            self._do("remove", la.id)

    def restore_selected(self) -> None:
        la = self.layer(self.selected_id)
        if la is not None and la.removed:
            self._do("restore", la.id)

    def undo(self) -> None:
        if self.doc is not None and self.doc.history.can_undo and not self._exporting():
            with self.doc_lock:
                self.doc.history.undo()

    def redo(self) -> None:
        if self.doc is not None and self.doc.history.can_redo and not self._exporting():
            with self.doc_lock:
                self.doc.history.redo()

    def _exporting(self) -> bool:
        if self._busy() and self.task.name in ("export", "save"):
            self.show_info("Please wait until the export has finished.", "warning")
            return True
        return False

    # ================================================================== recolour
    def _sync_recolour(self) -> None:
        la = self.layer(self.selected_id)
        if la is None or la.removed:
            self.recolour.setEnabled(False)
            self.recolour.set_values({}, "Select a person to recolour")
            return
        self.recolour.setEnabled(not la.locked)
        self.recolour.set_values(_adjust_values(la.adjustments),
                                 f"{la.name}{' (locked)' if la.locked else ''}")

    def _adjustments(self, values: dict):
        from instmatt_app.core.adjustments import Adjustments

        return Adjustments(**values)

    def _recolour_preview(self, values: dict) -> None:
        """Live preview while a slider moves: the layer shows the values, no undo step yet."""
        la = self.layer(self.selected_id)
        if la is None or la.locked:
            return
        if self._preview_adjust is None or self._preview_adjust[0] != la.id:
            self._preview_adjust = (la.id, la.adjustments)
        with self.doc_lock:
            la.adjustments = self._adjustments(values)  # preview only; restored before the real command
        self._schedule_render()

    def _recolour_commit(self, values: dict) -> None:
        la = self.layer(self.selected_id)
        if la is None:
            return
        if self._preview_adjust is not None and self._preview_adjust[0] == la.id:
            with self.doc_lock:
                la.adjustments = self._preview_adjust[1]
            self._preview_adjust = None
        new = self._adjustments(values)
        if _adjust_values(new) != _adjust_values(la.adjustments):
            self._do("set_adjustments", la.id, new)
        self._schedule_render()

    # ================================================================== tools and brushes
    def set_tool(self, tool: str) -> None:
        self.tool = tool
        self.tool_actions[tool].setChecked(True)
        self.canvas.set_tool("paint" if tool in ("brush", "eraser", "guide") else "select")
        paint = tool in ("brush", "eraser", "guide")
        self.brush_action.setVisible(paint)
        self.hint_action.setVisible(not paint)
        self.hint_label.setText(_TOOL_HINTS.get(tool, ""))
        self.guide_action.setVisible(tool == "guide")
        self.tool_label.setText(TOOLS[tool][0].split(":")[0])
        if tool in ("brush", "eraser", "guide") and self.selected_id is None and self.live_layers():
            self.statusBar().showMessage("Select a person first: click them in the layers list", 5000)
        if tool == "add":
            self.statusBar().showMessage("Click on a person who was not found", 5000)

    def set_guide_label(self, label: str) -> None:
        self.guide_label = label
        self.guide_btn[label].setChecked(True)

    def swap_tool(self) -> None:
        """X: brush ↔ eraser; with the guidance brush: this person ↔ background."""
        if self.tool == "brush":
            self.set_tool("eraser")
        elif self.tool == "eraser":
            self.set_tool("brush")
        elif self.tool == "guide":
            self.set_guide_label("background" if self.guide_label == "this" else "this")

    def _size_changed(self, v: int) -> None:
        if self.size_slider.value() != min(v, 500):
            self.size_slider.blockSignals(True)
            self.size_slider.setValue(min(v, 500))
            self.size_slider.blockSignals(False)
        self.canvas.brush_radius = v / 2.0
        self.canvas.update()
        self.settings.set("brush_size", v)

    def step_brush_size(self, direction: int) -> None:
        v = self.size_spin.value()
        step = max(1, int(round(v * 0.15)))
        self.size_spin.setValue(max(1, v + direction * step))

    @property
    def hardness(self) -> float:
        return self.hard_slider.value() / 100.0

    def _stroke_began(self, x: float, y: float) -> None:
        la = self.layer(self.selected_id)
        if self.image is None or self.doc is None:
            return
        if self._busy():
            self.show_info("Please wait: a job is running (Esc cancels it).", "warning")
            return
        if la is None or la.removed:
            self.show_info("Select a person first (click on them, or in the Layers list), then paint.", "warning")
            return
        if la.locked:
            self.show_error(f"{la.name} is locked: unlock the layer to edit it.")
            return
        self._stroke = Stroke(self.image.shape[:2], self.size_spin.value() / 2.0, self.hardness)
        self._stroke.add(x, y)
        self._stroke_last = (x, y)
        key = self.guide_label if self.tool == "guide" else self.tool
        self.canvas.preview_begin(_STROKE_COLOURS[key])
        self.canvas.preview_segment(x, y, x, y, self._stroke.radius)

    def _stroke_moved(self, x: float, y: float) -> None:
        if self._stroke is None:
            return
        lx, ly = self._stroke_last
        self._stroke.add(x, y)
        self.canvas.preview_segment(lx, ly, x, y, self._stroke.radius)
        self._stroke_last = (x, y)

    def _stroke_ended(self) -> None:
        stroke, self._stroke = self._stroke, None
        if stroke is None or self.doc is None:
            self.canvas.preview_clear()
            return
        n = len(self.doc.history)
        self.apply_stroke(stroke)
        if len(self.doc.history) == n and not self._busy():
            self.canvas.preview_clear()  # nothing changed: no render will replace the preview
        else:
            self._clear_preview_on_render = True  # the stroke stays visible until its result is drawn

    def apply_stroke(self, stroke: Stroke) -> None:
        """One finished stroke → one document command (alpha brush) or edited guidance (+ re-matte)."""
        la = self.layer(self.selected_id)
        if la is None:
            return
        if self.tool in ("brush", "eraser"):
            new = paint_alpha(la.alpha, stroke, 1.0 if self.tool == "brush" else 0.0)
            if new is not None:
                self._do("set_alpha", la.id, new)
            return
        if self.tool == "guide":
            cov = stroke.coverage()
            if cov is None:
                return
            self.paint_guidance(la.id, cov, self.guide_label)
            self.rematte_selected()

    def _adopt_result(self, result) -> None:
        """Keep ``result`` as the base of later re-matting without holding anything twice: its
        alphas become the document layers' own arrays, and a guidance mask equal to its coarse
        mask (it was matted from them) becomes that mask. At 60 MP with four people each is 0.9 GB."""
        self.result = result
        layers = [self.layer(lid) for lid in self.inst_ids]
        if len(layers) == len(result.instances) and all(la is not None for la in layers):
            result.adopt_alphas([la.alpha for la in layers])
        for lid, inst in zip(self.inst_ids, result.instances):
            g = self.guidance.get(lid)
            if g is not None and g is not inst.coarse_mask and np.array_equal(g, inst.coarse_mask):
                self._share_guidance(lid, inst.coarse_mask)

    def _share_guidance(self, layer_id: int, mask: np.ndarray) -> None:
        """Guide ``layer_id`` by an engine result's coarse mask (H, W) itself until it is edited."""
        self.guidance[layer_id] = np.asarray(mask, np.float32)
        self._shared_guidance.add(layer_id)

    def paint_guidance(self, layer_id: int, cov, label: str) -> None:
        """Edit the coarse masks the matter is guided by (see :func:`brush.edit_guidance`)."""
        if layer_id not in self.guidance:
            self.guidance[layer_id] = (self.layer(layer_id).alpha > 0.5).astype(np.float32)
        for lid in self._shared_guidance & self.guidance.keys():   # a stroke may change anyone's mask
            self.guidance[lid] = self.guidance[lid].copy()
        self._shared_guidance.clear()
        edit_guidance(self.guidance, layer_id, cov, label)

    def _instance_masks(self) -> np.ndarray:
        """(k, H, W) float32 guidance masks in engine-instance order (edited ones where painted)."""
        return np.stack([self.guidance.get(lid, inst.coarse_mask)
                         for lid, inst in zip(self.inst_ids, self.result.instances)])

    def _refine_mode_order(self) -> tuple[str, list[int]]:
        """The refinement mode of the panel and the cycle order as engine-instance indices."""
        mode = self.refine_panel.mode
        order = [self.inst_ids.index(i) for i in self.cycle_order if i in self.inst_ids]
        order += [k for k in range(len(self.inst_ids)) if k not in order]
        return mode, order

    def rematte_selected(self) -> None:
        """Matte the selected person again from the (edited) guidance, reusing the photo's cached
        features; only that person's alpha changes (one undo step)."""
        la = self.layer(self.selected_id)
        if la is None or self.image is None or self._busy():
            return
        if la.locked:
            self.show_error(f"{la.name} is locked: unlock the layer to re-matte it.")
            return
        if self.result is None or la.id not in self.inst_ids:
            self._run_engine_on_layers(then=self.rematte_selected)
            return
        base, masks = self.result, self._instance_masks()
        mode, order = self._refine_mode_order()
        k = self.inst_ids.index(la.id)

        def work(progress, cancelled):
            return rematte(self._get_engine(), base, masks, mode, order, progress)

        def done(new_result) -> None:
            with self.doc_lock:
                set_alphas(self.doc, {la.id: new_result.instances[k].alpha}, f"Re-matte {la.name}")
            self._adopt_result(new_result)
            self.statusBar().showMessage(f"{la.name} re-matted", 5000)

        self._start_task("rematte", work, done, f"Re-matting {la.name}")

    def _run_engine_on_layers(self, then=None) -> None:
        """No engine result behind the document (an opened project, a person added by hand): run the
        engine with the layers' alphas as the guidance masks, then ``then()``."""
        image = self.image
        layers = self.doc.layers
        ids = [la.id for la in layers]
        masks = np.stack([self.guidance.get(la.id, (la.alpha > 0.5).astype(np.float32)) for la in layers]) \
            if layers else np.zeros((0,) + image.shape[:2], np.float32)

        def work(progress, cancelled):
            return self._get_engine().run(image, masks=masks, progress=progress, cancel=cancelled)

        def done(result) -> None:
            self.inst_ids = ids
            for lid, inst in zip(ids, result.instances):
                if lid not in self.guidance:
                    self._share_guidance(lid, inst.coarse_mask)
            self._adopt_result(result)
            if then is not None:
                QTimer.singleShot(0, then)

        self._start_task("prepare", work, done, "Preparing the photo")

    def add_person_at(self, x: float, y: float) -> None:
        """Add-person tool: one click → pick_person → matte the new person with everyone → one undo step."""
        if self.image is None or self._busy():
            return
        from instmatt_app.core.document import Document

        if self.doc is None:
            self.set_document(Document(self.image), None)
        image, base = self.image, self.result
        others = [la.alpha for la in self.live_layers()]
        masks = self._instance_masks() if base is not None and self.inst_ids else None
        mode, order = self._refine_mode_order()

        def work(progress, cancelled):
            from instmatt_app.nets.interactive import pick_person

            progress("select", 0.1)
            prior = None
            ctx = base.extras.get("context") if base is not None else None
            if ctx is not None:
                prior = ctx.cache.get("human_alpha")
            det = pick_person(image, points=[(x, y)], prior=prior, others=others or None)
            progress("matte", 0.4)
            engine = self._get_engine()
            if masks is not None:
                all_masks = np.concatenate([masks, det.mask[None].astype(np.float32)])
                new = rematte(engine, base, all_masks, mode, order + [len(order)], progress, added=det)
            else:
                new = engine.run(image, masks=det.mask[None], progress=progress, cancel=cancelled)
            return new

        def done(new_result) -> None:
            inst = new_result.instances[-1]
            if float(inst.alpha.max()) <= 0.0:
                self.show_info("No person could be matted at that point; click on the person's body.", "warning")
                return
            with self.doc_lock:
                layer = self.doc.add_person(inst.alpha, None, None)
            self._share_guidance(layer.id, inst.coarse_mask)
            if masks is not None:
                self.inst_ids = self.inst_ids + [layer.id]
                self._adopt_result(new_result)
            self.select_person(layer.id)
            self.set_tool("select")
            self.banner.hide()
            self.statusBar().showMessage(f"Added {layer.name}", 5000)

        self._start_task("add", work, done, "Adding a person")

    # ================================================================== refinement
    def run_refinement(self) -> None:
        """Parallel or cycle refinement (cycle: in the clicked order) of every person, one undo step;
        the parallel result is kept for the difference heat-map."""
        if self.doc is None or self.image is None or self._busy():
            return
        if self.result is None or not self.inst_ids:
            self._run_engine_on_layers(then=self.run_refinement)
            return
        base, masks, ids = self.result, self._instance_masks(), list(self.inst_ids)
        mode, order = self._refine_mode_order()
        need_parallel = mode == "cycle"

        def reference(result) -> dict[int, np.ndarray]:
            # 8-bit is plenty for the heat-map, and a quarter of a float copy (1 GB at 60 MP, 4 people)
            return {lid: render.to_uint8(inst.alpha) for lid, inst in zip(ids, result.instances)}

        def work(progress, cancelled):
            engine = self._get_engine()
            par = None
            if need_parallel:
                progress("parallel reference", 0.1)
                # made 8-bit at once: the float result is not kept while the cycle runs
                par = reference(rematte(engine, base, masks, "parallel", order, progress))
            progress(mode, 0.5)
            return rematte(engine, base, masks, mode, order, progress), par

        def done(out) -> None:
            res, par = out
            self.parallel_alphas = par if par is not None else reference(res)
            label = "Cycle refinement" if mode == "cycle" else "Parallel refinement"
            with self.doc_lock:
                set_alphas(self.doc, {lid: inst.alpha for lid, inst in zip(ids, res.instances)}, label)
            self._adopt_result(res)
            warn = [w for w in res.extras.get("warnings", []) if "refine" in w]
            if warn:
                self.show_info(warn[-1], "warning")
            self.statusBar().showMessage(f"{label} done in {res.timings.get('refine', 0):.1f} s", 6000)
            self._schedule_render()

        self._start_task("refine", work, done, "Cycle refinement" if mode == "cycle" else "Parallel refinement")

    def _toggle_heatmap(self, on: bool) -> None:
        self.show_heatmap = on
        if on and self.parallel_alphas is None:
            self.refine_panel.info.setText("Run a refinement first: the heat-map compares it with parallel.")
        if not on:
            self.refine_panel.info.setText("")
        self._schedule_render()

    # ================================================================== files
    def save_project(self) -> bool:
        if self.doc is None:
            return False
        if self.project_path is None:
            return self.save_project_as()
        return self._write_project(self.project_path)

    def save_project_as(self) -> bool:
        if self.doc is None:
            return False
        base = self.project_path or (self.photo_path.with_suffix(".instmatt") if self.photo_path else Path.home() / "untitled.instmatt")
        path, _ = QFileDialog.getSaveFileName(self, "Save project", str(base), PROJECT_FILTER)
        if not path:
            return False
        if not path.endswith(".instmatt"):
            path += ".instmatt"
        return self._write_project(Path(path))

    def _write_project(self, path: Path) -> bool:
        from instmatt_app.io import project_file

        try:
            project_file.save_project(self.doc, path)
        except Exception as exc:  # noqa: BLE001 - disk full, permissions: shown, nothing lost
            self.show_error(f"Could not save {path}: {_friendly_error(exc)}")
            return False
        self.project_path = path
        self.settings.add_recent(path)
        self._dirty = False
        self._update_title()
        self.statusBar().showMessage(f"Saved {path}", 5000)
        return True

    def export_dialog(self) -> None:
        if self.doc is None:
            return
        from instmatt_app.gui.export_dialog import ExportDialog

        src = self.project_path or self.photo_path
        out = (src.parent / f"{src.stem}_layers") if src else Path.home() / "instmatt_export"
        people = [(la.id, la.name, la.visible) for la in self.live_layers()]
        dlg = ExportDialog(people, out, self.settings, self)
        if dlg.exec():
            self.export(**dlg.options())

    def export(self, out_dir: Path, formats: set[str], bit_depth: int = 8, alpha_as: str = "transparency",
               people: list[int] | None = None) -> None:
        """Export in the background with ``export_result``; the written files land in ``last_export``."""
        from instmatt_app.io.export import export_result

        doc = self.doc
        src = self.project_path or self.photo_path
        stem = src.stem if src else None

        def work(progress, cancelled):
            progress("writing", 0.2)
            with self.doc_lock:
                return export_result(doc, out_dir, formats=set(formats), bit_depth=bit_depth, alpha_as=alpha_as,
                                     people=people, stem=stem)

        def done(files) -> None:
            self.last_export = [Path(f) for f in (files or [])]
            self.statusBar().showMessage(f"Exported {len(self.last_export)} files to {out_dir}", 8000)
            self.show_info(f"Exported {len(self.last_export)} files to {out_dir}", "info")

        self._start_task("export", work, done, "Exporting")

    # ================================================================== autosave and recovery
    def _apply_autosave_interval(self) -> None:
        s = int(self.settings.get("autosave_s"))
        if s > 0:
            self._autosave_timer.start(s * 1000)
        else:
            self._autosave_timer.stop()

    @property
    def autosave_path(self) -> Path:
        return self.recovery.project_path

    def autosave(self) -> bool:
        """Save unsaved work to the recovery folder (only when something changed)."""
        if self.doc is None or not self._autosave_dirty or self._busy():
            return False
        try:
            with self.doc_lock:
                self.recovery.save(self.doc, self.photo_path, self.project_path)
        except Exception as exc:  # noqa: BLE001 - shown; the next change retries
            self.statusBar().showMessage(f"Autosave failed: {_friendly_error(exc)}", 8000)
            return False
        self._autosave_dirty = False
        self.statusBar().showMessage("Autosaved", 2000)
        return True

    def check_recovery(self) -> None:
        """At start: an autosave left behind means the app did not close normally; offer to restore it."""
        if not self.recovery.exists() or self.doc is not None:
            return
        self.show_info(f"InstMatt Studio did not close normally. Unsaved work{self.recovery.describe()} "
                       "can be restored.", "warning",
                       [("Restore", self.restore_autosave), ("Discard", self.discard_autosave)])

    def restore_autosave(self) -> bool:
        """Open the autosave as unsaved work (saving asks for a new file name)."""
        return self.open_project(self.autosave_path, recovered=True)

    def discard_autosave(self) -> None:
        self.recovery.discard()

    # ================================================================== background
    def set_background_mode(self, mode: str) -> None:
        if self.doc is None:
            return
        if mode == "replaced" and self.doc.background.image is None:
            self.choose_background_image()
            return
        self._do("set_background", mode)

    def choose_background_image(self, path: str | None = None) -> bool:
        """Replace the background by a photo (any size; resized to the photo)."""
        if self.doc is None:
            return False
        if not path:
            path, _ = QFileDialog.getOpenFileName(self, "Choose a background photo", "", IMAGE_FILTER)
            if not path:
                self._sync_background()
                return False
        from instmatt_app.io.image_io import ImageLoadError, load_image

        try:
            img = load_image(path)
        except ImageLoadError as exc:
            self.show_error(str(exc))
            self._sync_background()
            return False
        return self._do("set_background", "replaced", img)

    def _sync_background(self) -> None:
        if self.doc is not None:
            bg = self.doc.background
            self.background_panel.set_state(bg.mode, bg.blur_radius)

    # ================================================================== help
    def shortcut_rows(self) -> list[tuple[str, str]]:
        """(keys, action) for every action that has a shortcut, in menu order."""
        rows = []
        for a in self.actions():
            keys = ", ".join(k.toString(QKeySequence.NativeText) for k in a.shortcuts())
            if keys:
                rows.append((keys, a.text().replace("&", "")))
        rows += [("Wheel", "Zoom around the mouse"), ("Space + drag, middle button", "Pan")]
        return rows

    def show_shortcuts(self) -> None:
        from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QTableWidget, QTableWidgetItem

        dlg = QDialog(self)
        dlg.setWindowTitle("Keyboard shortcuts")
        dlg.resize(520, 640)
        lay = QVBoxLayout(dlg)
        rows = self.shortcut_rows()
        table = QTableWidget(len(rows), 2)
        table.setHorizontalHeaderLabels(["Keys", "Action"])
        table.verticalHeader().setVisible(False)
        table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeToContents)
        table.horizontalHeader().setStretchLastSection(True)
        table.setEditTriggers(QTableWidget.NoEditTriggers)
        table.setAlternatingRowColors(True)
        for i, (keys, what) in enumerate(rows):
            table.setItem(i, 0, QTableWidgetItem(keys))
            table.setItem(i, 1, QTableWidgetItem(what))
        lay.addWidget(table)
        bb = QDialogButtonBox(QDialogButtonBox.Close)
        bb.rejected.connect(dlg.reject)
        lay.addWidget(bb)
        self._shortcuts_dialog = dlg
        dlg.show()

    def show_about(self) -> None:
        from PySide6.QtWidgets import QMessageBox

        QMessageBox.about(self, "About InstMatt Studio",
                          "<b>InstMatt Studio</b><br>Every person in a photo as a soft, editable layer.<br><br>"
                          "Human Instance Matting via Mutual Guidance and Multi-Instance Refinement "
                          "(Sun, Tang, Tai; CVPR 2022).<br>Model licences: Preferences ▸ Models.")

    # ================================================================== misc
    def toggle_panels(self) -> None:
        """Tab: hide / show every panel and tool bar (the canvas alone)."""
        show = not self.docks[0].isVisible()
        for d in self.docks:
            d.setVisible(show)
        for tb in (self.tools_toolbar, self.options_toolbar, self.main_toolbar):
            tb.setVisible(show)

    def preferences(self) -> None:
        from instmatt_app.gui.preferences_dialog import PreferencesDialog

        keys = ("device", "guidance_passes", "person_boxes")
        old = tuple(self.settings.get(k) for k in keys)
        dlg = PreferencesDialog(self.settings, self)
        if dlg.exec():
            self._apply_autosave_interval()
            if tuple(self.settings.get(k) for k in keys) != old and not self._busy():
                self.engine = None  # rebuilt on the next job with the new device / passes / person boxes
                self._update_device_label()

    def dragEnterEvent(self, event) -> None:  # noqa: N802  (drops outside the canvas)
        if dropped_files(event):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = dropped_files(event)
        if paths:
            self.open_path(paths[0])

    def closeEvent(self, event) -> None:  # noqa: N802
        if not self.confirm_discard():
            event.ignore()
            return
        self._closed = True
        self._render_timer.stop()
        self._autosave_timer.stop()
        self.settings.set("window_geometry", self.saveGeometry())
        self.settings.set("window_state", self.saveState())
        if self._busy():
            self.task.cancel()
            QThreadPool.globalInstance().waitForDone(10000)
        self._render_pool.waitForDone(10000)
        self.discard_autosave()  # a normal exit leaves no recovery file behind
        super().closeEvent(event)


def _adjust_values(adj) -> dict[str, float]:
    """Adjustments dataclass → {field: float} for the recolour sliders (empty when None)."""
    if adj is None:
        return {}
    from dataclasses import asdict, is_dataclass

    d = asdict(adj) if is_dataclass(adj) else dict(adj)
    return {k: float(v) for k, v in d.items() if isinstance(v, (int, float))}
