"""Preferences: compute device, default refinement, guidance passes, person boxes, autosave interval, and
the models (embedded and user-supplied, with their licences) through :mod:`instmatt_app.model_manager`."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QHeaderView, QLabel, QPushButton, QSpinBox, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from instmatt_app.gui.icons import icon

__all__ = ["PreferencesDialog", "PERSON_BOXES"]

# settings value (embedded.BOX_DETECTORS) -> label
PERSON_BOXES = {"auto": "Best available (default)", "movenet+ssdlite": "MoveNet + SSDLite",
                "movenet": "MoveNet only (faster)", "movenet+centernet": "MoveNet + CenterNet (if converted)"}


class PreferencesDialog(QDialog):
    def __init__(self, settings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.setMinimumSize(940, 480)
        self.settings = settings
        lay = QVBoxLayout(self)
        gen = QGroupBox("General")
        form = QFormLayout(gen)
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device.setCurrentText(settings.get("device"))
        self.device.setToolTip("auto: the GPU when PyTorch sees one, else the CPU")
        form.addRow("Device", self.device)
        self.refine = QComboBox()
        self.refine.addItems(["parallel", "cycle", "none"])
        self.refine.setCurrentText(settings.get("refine"))
        form.addRow("Default refinement", self.refine)
        self.passes = QSpinBox()
        self.passes.setRange(1, 16)
        self.passes.setValue(max(1, int(settings.get("guidance_passes"))))
        self.passes.setToolTip("Passes of iterated mutual guidance on the detector's masks: each pass lets the "
                               "network correct a person's mask a little more (people split in pieces become "
                               "whole). 8 = best quality measured; 1 = fastest (about 0.5 s less per photo)")
        form.addRow("Guidance passes", self.passes)
        self.boxes = QComboBox()
        for kind, label in PERSON_BOXES.items():
            self.boxes.addItem(label, kind)
        from instmatt_app.model_manager import models_dir

        if not (models_dir() / "centernet.onnx").is_file():  # not shipped: selectable once converted
            item = self.boxes.model().item(self.boxes.findData("movenet+centernet"))
            item.setEnabled(False)
        current = self.boxes.findData(settings.get("person_boxes"))
        self.boxes.setCurrentIndex(max(0, current))
        self.boxes.setToolTip("Which detectors find people's boxes. MoveNet + SSDLite finds more people (about 12 "
                              "more in 100 on COCO photos); MoveNet alone is a little faster; MoveNet + CenterNet "
                              "needs centernet.onnx converted into the models folder (not shipped: no licence)")
        form.addRow("Person boxes", self.boxes)
        self.autosave = QSpinBox()
        self.autosave.setRange(0, 3600)
        self.autosave.setSuffix(" s")
        self.autosave.setSpecialValueText("off")
        self.autosave.setValue(int(settings.get("autosave_s")))
        form.addRow("Autosave every", self.autosave)
        lay.addWidget(gen)
        mb = QGroupBox("Models")
        ml = QVBoxLayout(mb)
        self.table = QTableWidget(0, 5)
        self.table.setHorizontalHeaderLabels(["Name", "Licence", "Installed", "Role", "File"])
        hh = self.table.horizontalHeader()
        for c in (0, 1, 2):
            hh.setSectionResizeMode(c, QHeaderView.ResizeToContents)
        hh.setSectionResizeMode(3, QHeaderView.Interactive)
        hh.setStretchLastSection(True)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.ElideRight)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        ml.addWidget(self.table)
        row = QHBoxLayout()
        self.kind = QComboBox()
        from instmatt_app.model_manager import USER_KINDS

        self.kind.addItems(list(USER_KINDS))
        row.addWidget(QLabel("Add weights for"))
        row.addWidget(self.kind)
        add = QPushButton(icon("mdi6.plus"), "Add model file…")
        add.clicked.connect(self._add_model)
        row.addWidget(add)
        row.addStretch(1)
        ml.addLayout(row)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        ml.addWidget(self.message)
        lay.addWidget(mb, 1)
        bb = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        bb.accepted.connect(self._accept)
        bb.rejected.connect(self.reject)
        lay.addWidget(bb)
        self.refresh_models()

    def refresh_models(self) -> None:
        from instmatt_app.model_manager import list_models

        try:
            rows = list_models()
        except Exception as exc:  # noqa: BLE001 - a broken manifest is shown, not raised
            rows = []
            self.message.setText(f"Could not read the model list: {exc}")
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            vals = [r.get("name", ""), r.get("licence", ""), "yes" if r.get("installed") else "MISSING",
                    r.get("role", ""), r.get("file", "")]
            for j, v in enumerate(vals):
                it = QTableWidgetItem(str(v))
                it.setToolTip(str(v))
                if j == 2 and not r.get("installed"):
                    it.setForeground(QColor("#ff8a80"))
                self.table.setItem(i, j, it)
        self.table.setColumnWidth(3, 330)

    def _add_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, f"Choose {self.kind.currentText()} weights", "",
                                              "Weights (*.pth *.pt *.ckpt *.bin);;All files (*)")
        if path:
            self.add_model(self.kind.currentText(), path)

    def add_model(self, kind: str, path: str) -> bool:
        from instmatt_app.model_manager import add_user_model

        try:
            dest = add_user_model(kind, path)
        except Exception as exc:  # noqa: BLE001 - invalid weights are a user error, shown here
            self.message.setStyleSheet("color: #ff8a80")
            self.message.setText(f"Could not add {path}: {exc}")
            return False
        self.message.setStyleSheet("color: #a5d6a7")
        self.message.setText(f"Added {kind} weights: {dest}")
        self.refresh_models()
        return True

    def _accept(self) -> None:
        self.settings.set("device", self.device.currentText())
        self.settings.set("refine", self.refine.currentText())
        self.settings.set("guidance_passes", self.passes.value())
        self.settings.set("person_boxes", self.boxes.currentData())
        self.settings.set("autosave_s", self.autosave.value())
        self.accept()
