"""Refinement panel: parallel vs cycle refinement, the cycle order (click people on the canvas or drag
the list), Run, and the heat-map of where the result differs from parallel refinement."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QButtonGroup, QCheckBox, QHBoxLayout, QLabel, QListWidget,
                               QListWidgetItem, QPushButton, QRadioButton, QVBoxLayout, QWidget)

from instmatt_app.gui.icons import icon

__all__ = ["RefinePanel"]


class _OrderList(QListWidget):
    def __init__(self, panel: "RefinePanel"):
        super().__init__()
        self.panel = panel
        self.setDragDropMode(QAbstractItemView.InternalMove)
        self.setDefaultDropAction(Qt.MoveAction)
        self.setMaximumHeight(150)


class RefinePanel(QWidget):
    modeChanged = Signal(str)
    orderChanged = Signal(list)  # layer ids, first refined first
    pickOrderToggled = Signal(bool)
    runRequested = Signal()
    heatmapToggled = Signal(bool)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 8, 10, 8)
        modes = QHBoxLayout()
        self.parallel = QRadioButton("Parallel")
        self.parallel.setToolTip("Refine every person at once (paper §3.3, parallel)")
        self.cycle = QRadioButton("Cycle")
        self.cycle.setToolTip("Refine people one after another in the order you set: each sees the "
                              "mattes already refined")
        self.parallel.setChecked(True)
        grp = QButtonGroup(self)
        grp.addButton(self.parallel)
        grp.addButton(self.cycle)
        modes.addWidget(self.parallel)
        modes.addWidget(self.cycle)
        modes.addStretch(1)
        lay.addLayout(modes)
        self.pick_btn = QPushButton(icon("mdi6.cursor-default-click"), "Set order by clicking people")
        self.pick_btn.setCheckable(True)
        self.pick_btn.setToolTip("Click the people on the photo in the order to refine them")
        lay.addWidget(self.pick_btn)
        self.order_list = _OrderList(self)
        self.order_list.setMinimumHeight(70)
        self.order_list.model().rowsMoved.connect(self._rows_moved)  # drag and drop inside the list
        self._filling = False
        lay.addWidget(self.order_list)
        self.order_list.setToolTip("Refinement order (cycle mode): drag to reorder; the numbers are drawn on "
                                   "the photo")
        row = QHBoxLayout()
        self.run_btn = QPushButton(icon("mdi6.play", "#ffffff"), "Run refinement")
        self.run_btn.setObjectName("primary")
        row.addWidget(self.run_btn, 1)
        lay.addLayout(row)
        self.heat = QCheckBox("Show difference from parallel")
        lay.addWidget(self.heat)
        self.info = QLabel("")
        self.info.setObjectName("muted")
        self.info.setWordWrap(True)
        lay.addWidget(self.info)
        lay.addStretch(1)
        self.parallel.toggled.connect(self._mode_toggled)
        self.pick_btn.toggled.connect(self.pickOrderToggled)
        self.run_btn.clicked.connect(self.runRequested)
        self.heat.toggled.connect(self.heatmapToggled)
        self._mode_toggled()

    @property
    def mode(self) -> str:
        return "cycle" if self.cycle.isChecked() else "parallel"

    def set_mode(self, mode: str) -> None:
        (self.cycle if mode == "cycle" else self.parallel).setChecked(True)

    def _mode_toggled(self, *_) -> None:
        cyc = self.cycle.isChecked()
        self.pick_btn.setEnabled(cyc)
        self.order_list.setEnabled(cyc)
        if not cyc and self.pick_btn.isChecked():
            self.pick_btn.setChecked(False)
        self.modeChanged.emit(self.mode)

    def set_order(self, rows: list[tuple[int, str, str]]) -> None:
        """rows: (layer id, name, colour) in refinement order."""
        self._filling = True
        self.order_list.clear()
        for n, (lid, name, colour) in enumerate(rows, 1):
            pm = QPixmap(12, 12)
            pm.fill(QColor(colour))
            it = QListWidgetItem(pm, f"{n}.  {name}")
            it.setData(Qt.UserRole, lid)
            self.order_list.addItem(it)
        self._filling = False

    def order(self) -> list[int]:
        return [self.order_list.item(i).data(Qt.UserRole) for i in range(self.order_list.count())]

    def _rows_moved(self, *args) -> None:
        if not self._filling:
            from PySide6.QtCore import QTimer

            QTimer.singleShot(0, lambda: self.orderChanged.emit(self.order()))
