"""Export dialog: formats (PSD / PNG / TIFF), 8/16-bit, alpha as transparency or as a layer mask, which
people, and the output folder. Returns the keyword arguments of ``instmatt_app.io.export.export_result``."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QButtonGroup, QCheckBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QPushButton, QRadioButton, QVBoxLayout, QWidget)

from instmatt_app.gui.icons import icon

__all__ = ["ExportDialog"]


class ExportDialog(QDialog):
    """people: [(layer id, name, selected by default)]."""

    def __init__(self, people: list[tuple[int, str, bool]], out_dir: str | Path, settings=None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Export")
        self.setMinimumWidth(460)
        self.settings = settings
        lay = QVBoxLayout(self)
        fmt_box = QGroupBox("Formats")
        fl = QHBoxLayout(fmt_box)
        wanted = set((settings.get("export_formats") if settings else "psd,png").split(","))
        self.formats = {}
        for key, label, tip in (("psd", "Layered PSD", "One layer per person, the background, a merged preview"),
                                ("png", "PNG", "One RGBA file per person, the alpha mattes and the composite"),
                                ("tiff", "TIFF", "RGBA TIFF per person and the composite")):
            cb = QCheckBox(label)
            cb.setToolTip(tip)
            cb.setChecked(key in wanted)
            fl.addWidget(cb)
            self.formats[key] = cb
        lay.addWidget(fmt_box)
        opts = QGroupBox("Options")
        form = QFormLayout(opts)
        depth = QHBoxLayout()
        self.bit8, self.bit16 = QRadioButton("8-bit"), QRadioButton("16-bit")
        g1 = QButtonGroup(self)
        g1.addButton(self.bit8)
        g1.addButton(self.bit16)
        (self.bit16 if settings and settings.get("export_bit_depth") == 16 else self.bit8).setChecked(True)
        depth.addWidget(self.bit8)
        depth.addWidget(self.bit16)
        depth.addStretch(1)
        form.addRow("Bit depth", depth)
        alpha = QHBoxLayout()
        self.as_transparency, self.as_mask = QRadioButton("Transparency"), QRadioButton("Layer mask")
        self.as_mask.setToolTip("PSD: the alpha becomes an editable layer mask")
        g2 = QButtonGroup(self)
        g2.addButton(self.as_transparency)
        g2.addButton(self.as_mask)
        (self.as_mask if settings and settings.get("export_alpha_as") == "mask" else self.as_transparency).setChecked(True)
        alpha.addWidget(self.as_transparency)
        alpha.addWidget(self.as_mask)
        alpha.addStretch(1)
        form.addRow("Alpha as", alpha)
        lay.addWidget(opts)
        ppl = QGroupBox("People")
        pl = QVBoxLayout(ppl)
        self.people = QListWidget()
        self.people.setMaximumHeight(160)
        for lid, name, checked in people:
            it = QListWidgetItem(name)
            it.setData(Qt.UserRole, lid)
            it.setFlags(it.flags() | Qt.ItemIsUserCheckable)
            it.setCheckState(Qt.Checked if checked else Qt.Unchecked)
            self.people.addItem(it)
        pl.addWidget(self.people)
        lay.addWidget(ppl)
        out = QHBoxLayout()
        out.addWidget(QLabel("Folder"))
        self.folder = QLineEdit(str(out_dir))
        out.addWidget(self.folder, 1)
        browse = QPushButton(icon("mdi6.folder-open"), "")
        browse.setToolTip("Choose the output folder")
        browse.clicked.connect(self._browse)
        out.addWidget(browse)
        lay.addLayout(out)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #ff8a80")
        lay.addWidget(self.error)
        bb = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        bb.button(QDialogButtonBox.Ok).setText("Export")
        bb.button(QDialogButtonBox.Ok).setObjectName("primary")
        bb.accepted.connect(self._accept)
        bb.rejected.connect(self.reject)
        lay.addWidget(bb)

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Export to folder", self.folder.text())
        if d:
            self.folder.setText(d)

    def options(self) -> dict:
        """Keyword arguments for ``export_result`` (plus ``out_dir``)."""
        return {
            "out_dir": Path(self.folder.text()).expanduser(),
            "formats": {k for k, cb in self.formats.items() if cb.isChecked()},
            "bit_depth": 16 if self.bit16.isChecked() else 8,
            "alpha_as": "mask" if self.as_mask.isChecked() else "transparency",
            "people": [self.people.item(i).data(Qt.UserRole) for i in range(self.people.count())
                       if self.people.item(i).checkState() == Qt.Checked],
        }

    def _accept(self) -> None:
        o = self.options()
        if not o["formats"]:
            self.error.setText("Choose at least one format.")
            return
        if not self.folder.text().strip():
            self.error.setText("Choose an output folder.")
            return
        if self.settings is not None:
            self.settings.set("export_formats", ",".join(sorted(o["formats"])))
            self.settings.set("export_bit_depth", o["bit_depth"])
            self.settings.set("export_alpha_as", o["alpha_as"])
        self.accept()
