"""Recolour panel: hue, saturation, lightness, tint and exposure sliders for the selected person.

While a slider moves, ``previewChanged`` fires (live preview, no undo step); when it is released
(or a value is typed, or Reset is pressed) ``committed`` fires once: one undo step per gesture.
Values are the fields of :class:`instmatt_app.core.adjustments.Adjustments`.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider,
                               QVBoxLayout, QWidget)

from instmatt_app.gui.icons import icon

__all__ = ["RecolourPanel", "SLIDERS"]

# field, label, minimum, maximum, decimals, suffix
SLIDERS = [
    ("hue", "Hue", -180.0, 180.0, 0, "°"),
    ("saturation", "Saturation", -1.0, 1.0, 2, ""),
    ("lightness", "Lightness", -1.0, 1.0, 2, ""),
    ("tint", "Tint", -1.0, 1.0, 2, ""),
    ("exposure", "Exposure", -3.0, 3.0, 2, " EV"),
]
_STEPS = 1000


class RecolourPanel(QWidget):
    previewChanged = Signal(dict)
    committed = Signal(dict)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 8, 10, 8)
        self.target = QLabel("Select a person to recolour")
        self.target.setObjectName("muted")
        lay.addWidget(self.target)
        grid = QGridLayout()
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(6)
        self.sliders: dict[str, QSlider] = {}
        self.spins: dict[str, QDoubleSpinBox] = {}
        self._specs = {s[0]: s for s in SLIDERS}
        for row, (key, label, lo, hi, dec, suffix) in enumerate(SLIDERS):
            grid.addWidget(QLabel(label), row, 0)
            s = QSlider(Qt.Horizontal)
            s.setRange(0, _STEPS)
            s.setValue(self._to_slider(key, 0.0))
            sp = QDoubleSpinBox()
            sp.setRange(lo, hi)
            sp.setDecimals(dec)
            sp.setSingleStep((hi - lo) / 100)
            sp.setSuffix(suffix)
            sp.setFixedWidth(78)
            sp.setKeyboardTracking(False)
            s.valueChanged.connect(lambda v, k=key: self._slider_moved(k, v))
            s.sliderReleased.connect(self._commit)
            sp.valueChanged.connect(lambda v, k=key: self._spin_changed(k, v))
            grid.addWidget(s, row, 1)
            grid.addWidget(sp, row, 2)
            self.sliders[key], self.spins[key] = s, sp
        lay.addLayout(grid)
        bar = QHBoxLayout()
        bar.addStretch(1)
        self.reset_btn = QPushButton(icon("mdi6.restore"), "Reset")
        self.reset_btn.clicked.connect(self.reset)
        bar.addWidget(self.reset_btn)
        lay.addLayout(bar)
        lay.addStretch(1)
        self._syncing = False
        self.setEnabled(False)

    def _to_slider(self, key: str, v: float) -> int:
        _, _, lo, hi, _, _ = self._specs[key]
        return int(round((v - lo) / (hi - lo) * _STEPS))

    def _from_slider(self, key: str, pos: int) -> float:
        _, _, lo, hi, dec, _ = self._specs[key]
        return round(lo + (hi - lo) * pos / _STEPS, dec + 1)

    def values(self) -> dict[str, float]:
        return {k: float(self.spins[k].value()) for k in self.spins}

    def set_values(self, values: dict[str, float], target: str = "") -> None:
        """Show ``values`` without emitting anything."""
        self._syncing = True
        try:
            for k in self.spins:
                v = float(values.get(k, 0.0))
                self.spins[k].setValue(v)
                self.sliders[k].setValue(self._to_slider(k, v))
        finally:
            self._syncing = False
        if target:
            self.target.setText(target)

    def set_value(self, key: str, value: float) -> None:
        """Programmatic change (tests, scripting): like typing the value: preview + one commit."""
        self.spins[key].setValue(value)

    def _slider_moved(self, key: str, pos: int) -> None:
        if self._syncing:
            return
        self._syncing = True
        self.spins[key].setValue(self._from_slider(key, pos))
        self._syncing = False
        self.previewChanged.emit(self.values())
        if not self.sliders[key].isSliderDown():
            self._commit()

    def _spin_changed(self, key: str, v: float) -> None:
        if self._syncing:
            return
        self._syncing = True
        self.sliders[key].setValue(self._to_slider(key, v))
        self._syncing = False
        self.previewChanged.emit(self.values())
        self._commit()

    def _commit(self) -> None:
        self.committed.emit(self.values())

    def reset(self) -> None:
        self.set_values({})
        self.previewChanged.emit(self.values())
        self._commit()
