"""An in-window message strip (errors, warnings, information) with optional action buttons."""
from __future__ import annotations

from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget

from instmatt_app.gui.icons import icon

__all__ = ["Banner"]

_ICONS = {"error": ("mdi6.alert-circle", "#ff8a80"), "warning": ("mdi6.alert", "#ffd180"),
          "info": ("mdi6.information", "#8ab4f8")}


class Banner(QFrame):
    """Hidden until :meth:`show_message`; the close button hides it again."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("banner")
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 6, 6, 6)
        self._icon = QLabel()
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextSelectableByMouse)
        lay.addWidget(self._icon)
        lay.addWidget(self.text, 1)
        self._actions = QHBoxLayout()
        lay.addLayout(self._actions)
        close = QToolButton()
        close.setIcon(icon("mdi6.close"))
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        lay.addWidget(close)
        self.level = "info"
        self.hide()

    def show_message(self, text: str, level: str = "info",
                     actions: list[tuple[str, Callable[[], None]]] | None = None) -> None:
        self.level = level
        self.setProperty("level", level)
        self.style().unpolish(self)
        self.style().polish(self)
        name, colour = _ICONS.get(level, _ICONS["info"])
        self._icon.setPixmap(icon(name, colour).pixmap(20, 20))
        self.text.setText(text)
        while self._actions.count():
            w = self._actions.takeAt(0).widget()
            if w is not None:
                w.deleteLater()
        for label, fn in actions or []:
            b = QPushButton(label)
            b.clicked.connect(lambda _=False, fn=fn: (self.hide(), fn()))
            self._actions.addWidget(b)
        self.show()
