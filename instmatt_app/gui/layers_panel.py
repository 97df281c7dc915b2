"""The layers panel: one row per person (front-most on top) with thumbnail, editable name, visibility,
lock and colour tag; drag to reorder; Delete removes, a context menu restores.

The panel only shows rows and emits intentions; the main window turns them into document commands.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QHBoxLayout, QListWidget, QListWidgetItem, QMenu,
                               QStyle, QStyledItemDelegate, QToolButton, QVBoxLayout, QWidget, QLabel)

from instmatt_app.gui.icons import icon
from instmatt_app.gui.qt_image import qimage_from_array

__all__ = ["LayerRow", "LayersPanel", "TAG_COLOURS"]

ID_ROLE = Qt.UserRole
VISIBLE_ROLE, LOCKED_ROLE, TAG_ROLE, REMOVED_ROLE, SUBTITLE_ROLE = (Qt.UserRole + i for i in range(1, 6))
ROW_H = 58
TAG_COLOURS = {"Red": "#e5534b", "Orange": "#f0883e", "Yellow": "#e3b341", "Green": "#57ab5a",
               "Blue": "#539bf5", "Violet": "#b083f0", "Grey": "#8d9098"}


@dataclass
class LayerRow:
    """What one row shows. thumb: (s, s, 4) uint8 RGBA or None."""

    id: int
    name: str
    visible: bool = True
    locked: bool = False
    colour_tag: str = "#539bf5"
    removed: bool = False
    thumb: np.ndarray | None = None
    subtitle: str = ""


def _rects(r: QRect) -> dict[str, QRect]:
    x, y, h = r.x(), r.y(), r.height()
    return {"eye": QRect(x + 6, y + (h - 24) // 2, 24, 24),
            "tag": QRect(x + 34, y + 6, 4, h - 12),
            "thumb": QRect(x + 42, y + (h - 46) // 2, 46, 46),
            "name": QRect(x + 96, y + 8, r.width() - 96 - 36, 20),
            "sub": QRect(x + 96, y + 30, r.width() - 96 - 36, 18),
            "lock": QRect(r.right() - 30, y + (h - 24) // 2, 24, 24)}


class _Delegate(QStyledItemDelegate):
    def __init__(self, panel: "LayersPanel"):
        super().__init__(panel)
        self.panel = panel
        self._checker = None

    def sizeHint(self, option, index) -> QSize:  # noqa: N802
        return QSize(200, ROW_H)

    def _checker_pixmap(self) -> QPixmap:
        if self._checker is None:
            pm = QPixmap(12, 12)
            pm.fill(QColor("#5b5e66"))
            p = QPainter(pm)
            p.fillRect(0, 0, 6, 6, QColor("#45474e"))
            p.fillRect(6, 6, 6, 6, QColor("#45474e"))
            p.end()
            self._checker = pm
        return self._checker

    def paint(self, p: QPainter, option, index) -> None:
        r = option.rect
        rc = _rects(r)
        selected = bool(option.state & QStyle.State_Selected)
        removed = bool(index.data(REMOVED_ROLE))
        p.save()
        p.fillRect(r, QColor("#34496e" if selected else ("#26282e" if index.row() % 2 else "#222429")))
        p.setPen(QColor("#1b1c20"))
        p.drawLine(r.bottomLeft(), r.bottomRight())
        visible = bool(index.data(VISIBLE_ROLE))
        eye = icon("mdi6.eye" if visible else "mdi6.eye-off", "#d7d9de" if visible else "#6f727a")
        eye.paint(p, rc["eye"])
        p.fillRect(rc["tag"], QColor(index.data(TAG_ROLE) or "#8d9098"))
        p.fillRect(rc["thumb"], self._checker_pixmap())
        pm = index.data(Qt.DecorationRole)
        if isinstance(pm, QPixmap) and not pm.isNull():
            if removed:
                p.setOpacity(0.35)
            p.drawPixmap(rc["thumb"], pm)
            p.setOpacity(1.0)
        p.setPen(QPen(QColor("#1b1c20"), 1))
        p.drawRect(rc["thumb"].adjusted(0, 0, -1, -1))
        f = QFont(option.font)
        f.setStrikeOut(removed)
        f.setBold(selected)
        p.setFont(f)
        p.setPen(QColor("#7b7e86" if removed else "#f1f2f4"))
        p.drawText(rc["name"], Qt.AlignVCenter | Qt.AlignLeft, index.data(Qt.DisplayRole) or "")
        f2 = QFont(option.font)
        f2.setPointSizeF(f2.pointSizeF() * 0.88)
        p.setFont(f2)
        p.setPen(QColor("#8d9098"))
        p.drawText(rc["sub"], Qt.AlignVCenter | Qt.AlignLeft, index.data(SUBTITLE_ROLE) or "")
        locked = bool(index.data(LOCKED_ROLE))
        lk = icon("mdi6.lock" if locked else "mdi6.lock-open-variant-outline", "#ffd180" if locked else "#5d6068")
        lk.paint(p, rc["lock"])
        p.restore()

    def editorEvent(self, event, model, option, index) -> bool:  # noqa: N802
        if event.type() == QEvent.MouseButtonRelease and event.button() == Qt.LeftButton:
            rc = _rects(option.rect)
            pos = event.position().toPoint()
            lid = index.data(ID_ROLE)
            if rc["eye"].contains(pos):
                self.panel.visibilityToggled.emit(lid)
                return True
            if rc["lock"].contains(pos):
                self.panel.lockToggled.emit(lid)
                return True
            if rc["tag"].adjusted(-3, 0, 3, 0).contains(pos):
                self.panel._tag_menu(lid, self.panel.list.viewport().mapToGlobal(pos))
                return True
        return super().editorEvent(event, model, option, index)

    def updateEditorGeometry(self, editor, option, index) -> None:  # noqa: N802
        editor.setGeometry(_rects(option.rect)["name"].adjusted(-3, -2, 3, 2))


class _List(QListWidget):
    def __init__(self, panel: "LayersPanel"):
        super().__init__()
        self.panel = panel
        self.setDragDropMode(QAbstractItemView.InternalMove)
        self.setDefaultDropAction(Qt.MoveAction)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed)
        self.setContextMenuPolicy(Qt.CustomContextMenu)
        self.setUniformItemSizes(True)



class LayersPanel(QWidget):
    """Signals carry layer ids; ``reordered`` carries the ids back-most first (z-order)."""

    selected = Signal(int)  # -1 = none
    renamed = Signal(int, str)
    visibilityToggled = Signal(int)
    lockToggled = Signal(int)
    tagChanged = Signal(int, str)
    reordered = Signal(list)
    removeRequested = Signal(int)
    restoreRequested = Signal(int)
    addPersonRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        self.list = _List(self)
        self.list.setItemDelegate(_Delegate(self))
        lay.addWidget(self.list, 1)
        bar = QHBoxLayout()
        bar.setContentsMargins(6, 4, 6, 4)
        self.count_label = QLabel("No people")
        self.count_label.setObjectName("muted")
        bar.addWidget(self.count_label, 1)
        self.add_btn = self._button("mdi6.account-plus", "Add a person: click on them in the photo")
        self.add_btn.clicked.connect(self.addPersonRequested)
        self.del_btn = self._button("mdi6.delete", "Remove the selected person from the composite (Delete)")
        self.del_btn.clicked.connect(self._remove_current)
        bar.addWidget(self.add_btn)
        bar.addWidget(self.del_btn)
        lay.addLayout(bar)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemChanged.connect(self._item_changed)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.model().rowsMoved.connect(self._rows_moved)  # drag and drop inside the list
        self._updating = False
        self._shown_order: list[int] = []

    def _button(self, name: str, tip: str) -> QToolButton:
        b = QToolButton()
        b.setIcon(icon(name))
        b.setToolTip(tip)
        b.setAutoRaise(True)
        return b

    # -- content -----------------------------------------------------------------------
    def set_layers(self, rows: list[LayerRow], selected_id: int | None) -> None:
        """Rows in z-order (back-most first); shown front-most on top."""
        self._updating = True
        try:
            self.list.clear()
            for row in reversed(rows):
                it = QListWidgetItem(row.name)
                it.setFlags(Qt.ItemIsSelectable | Qt.ItemIsEnabled | Qt.ItemIsDragEnabled |
                            (Qt.ItemIsEditable if not row.locked else Qt.NoItemFlags))
                it.setData(ID_ROLE, row.id)
                it.setData(VISIBLE_ROLE, row.visible)
                it.setData(LOCKED_ROLE, row.locked)
                it.setData(TAG_ROLE, row.colour_tag)
                it.setData(REMOVED_ROLE, row.removed)
                it.setData(SUBTITLE_ROLE, row.subtitle)
                if row.thumb is not None:
                    pm = QPixmap.fromImage(qimage_from_array(row.thumb))
                    it.setData(Qt.DecorationRole, pm)
                self.list.addItem(it)
                if row.id == selected_id:
                    self.list.setCurrentItem(it)
            self._shown_order = [r.id for r in rows]
            live = sum(not r.removed for r in rows)
            self.count_label.setText("No people" if not rows else f"{live} {'person' if live == 1 else 'people'}"
                                     + (f", {len(rows) - live} removed" if live != len(rows) else ""))
        finally:
            self._updating = False

    def select(self, layer_id: int | None) -> None:
        self._updating = True
        try:
            for i in range(self.list.count()):
                it = self.list.item(i)
                if it.data(ID_ROLE) == layer_id:
                    self.list.setCurrentItem(it)
                    return
            self.list.setCurrentItem(None)
        finally:
            self._updating = False

    def item_for(self, layer_id: int) -> QListWidgetItem | None:
        for i in range(self.list.count()):
            if self.list.item(i).data(ID_ROLE) == layer_id:
                return self.list.item(i)
        return None

    def current_id(self) -> int | None:
        it = self.list.currentItem()
        return None if it is None else it.data(ID_ROLE)

    # -- signals -----------------------------------------------------------------------
    def _current_changed(self, cur, prev) -> None:
        if not self._updating:
            self.selected.emit(-1 if cur is None else cur.data(ID_ROLE))

    def _item_changed(self, it: QListWidgetItem) -> None:
        if not self._updating:
            from PySide6.QtCore import QTimer

            lid, text = it.data(ID_ROLE), it.text()
            # emitted after the editor has closed: the rename rebuilds the list, deleting this item
            QTimer.singleShot(0, lambda: self.renamed.emit(lid, text))

    def _rows_moved(self, *args) -> None:
        if self._updating:
            return
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, self._emit_order)  # after the view finished the move

    def _emit_order(self) -> None:
        order = list(reversed([self.list.item(i).data(ID_ROLE) for i in range(self.list.count())]))
        if order != self._shown_order:
            self._shown_order = order
            self.reordered.emit(order)

    def _remove_current(self) -> None:
        lid = self.current_id()
        if lid is not None:
            self.removeRequested.emit(lid)

    def _tag_menu(self, lid: int, global_pos: QPoint) -> None:
        m = QMenu(self)
        for name, col in TAG_COLOURS.items():
            pm = QPixmap(12, 12)
            pm.fill(QColor(col))
            a = m.addAction(name)
            a.setIcon(pm)
            a.triggered.connect(lambda _=False, c=col: self.tagChanged.emit(lid, c))
        m.exec(global_pos)

    def _context_menu(self, pos: QPoint) -> None:
        it = self.list.itemAt(pos)
        if it is None:
            return
        lid = it.data(ID_ROLE)
        m = QMenu(self)
        if it.data(REMOVED_ROLE):
            m.addAction(icon("mdi6.restore"), "Restore person", lambda: self.restoreRequested.emit(lid))
        else:
            m.addAction(icon("mdi6.delete"), "Remove person", lambda: self.removeRequested.emit(lid))
        m.addAction(icon("mdi6.rename-box"), "Rename", lambda: self.list.editItem(it))
        m.addAction("Show / hide", lambda: self.visibilityToggled.emit(lid))
        m.addAction("Lock / unlock", lambda: self.lockToggled.emit(lid))
        tags = m.addMenu("Colour tag")
        for name, col in TAG_COLOURS.items():
            tags.addAction(name, lambda c=col: self.tagChanged.emit(lid, c))
        m.exec(self.list.viewport().mapToGlobal(pos))
