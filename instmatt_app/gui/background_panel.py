"""Background panel: keep the original background, blur it, make it transparent or replace it by a
photo. Each change is one document command (``doc.set_background``)."""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QPushButton, QSlider, QWidget

from instmatt_app.gui.icons import icon

__all__ = ["BackgroundPanel", "MODES"]

MODES = {"original": "Original (people removed are filled in)", "blurred": "Blurred",
         "transparent": "Transparent", "replaced": "Replaced by a photo"}


class BackgroundPanel(QWidget):
    modeChosen = Signal(str)
    blurChosen = Signal(float)
    imageRequested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        form = QFormLayout(self)
        form.setContentsMargins(10, 8, 10, 8)
        self.mode = QComboBox()
        for key, label in MODES.items():
            self.mode.addItem(label, key)
        form.addRow("Mode", self.mode)
        self.blur = QSlider(Qt.Horizontal)
        self.blur.setRange(1, 100)
        self.blur.setValue(20)
        self.blur_label = QLabel("20 px")
        self.blur.valueChanged.connect(lambda v: self.blur_label.setText(f"{v} px"))
        self.blur.sliderReleased.connect(lambda: self.blurChosen.emit(float(self.blur.value())))
        form.addRow("Blur", self.blur)
        form.addRow("", self.blur_label)
        self.choose = QPushButton(icon("mdi6.image-plus"), "Choose photo…")
        self.choose.clicked.connect(self.imageRequested)
        form.addRow("", self.choose)
        self.mode.activated.connect(lambda i: self.modeChosen.emit(self.mode.itemData(i)))
        self._sync_enabled()

    def set_state(self, mode: str, blur_radius: float) -> None:
        self.mode.blockSignals(True)
        self.mode.setCurrentIndex(max(0, self.mode.findData(mode)))
        self.mode.blockSignals(False)
        self.blur.blockSignals(True)
        self.blur.setValue(int(round(blur_radius)))
        self.blur.blockSignals(False)
        self.blur_label.setText(f"{int(round(blur_radius))} px")
        self._sync_enabled()

    def _sync_enabled(self) -> None:
        m = self.mode.currentData()
        self.blur.setEnabled(m == "blurred")
        self.blur_label.setEnabled(m == "blurred")
