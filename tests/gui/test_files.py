"""Export (through the dialog), project save / load, autosave and crash recovery, preferences."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QApplication, QDialogButtonBox

from tests.conftest import REPO
from tests.gui.conftest import click_canvas, point_inside


def _inside(win, layer_id):
    la = win.doc.layer(layer_id)
    others = sum(l.alpha for l in win.doc.layers if l.id != layer_id)
    return point_inside(la.alpha, others)


def _drive_export_dialog(out_dir, formats, bit16=False, mask=False):
    """Fill in the modal export dialog once it is open, then press Export."""
    def fill():
        from instmatt_app.gui.export_dialog import ExportDialog

        dlg = QApplication.activeModalWidget()
        assert isinstance(dlg, ExportDialog)
        for key, cb in dlg.formats.items():
            cb.setChecked(key in formats)
        (dlg.bit16 if bit16 else dlg.bit8).setChecked(True)
        (dlg.as_mask if mask else dlg.as_transparency).setChecked(True)
        dlg.folder.setText(str(out_dir))
        dlg.findChild(QDialogButtonBox).button(QDialogButtonBox.Ok).click()
    QTimer.singleShot(50, fill)


def test_group_photo_to_layered_psd_with_one_recoloured_and_one_removed(window, tmp_path, qtbot):
    """The issue's 'done when': mouse and shortcuts only, then read the PSD back."""
    from psd_tools import PSDImage

    ids = [la.id for la in window.doc.layers]
    a, b = ids[0], ids[1]
    click_canvas(qtbot, window, *_inside(window, a))  # select person a by clicking
    assert window.selected_id == a
    window.recolour.set_value("hue", 150)  # typing a value in the recolour panel
    click_canvas(qtbot, window, *_inside(window, b))
    qtbot.keyClick(window, Qt.Key_Delete)  # remove person b
    assert window.doc.layer(b).removed
    out = tmp_path / "export"
    _drive_export_dialog(out, {"psd", "png"})
    with qtbot.waitSignal(window.taskFinished, timeout=60_000):
        qtbot.keyClick(window, Qt.Key_E, Qt.ControlModifier)
    assert not window.banner.isVisible() or window.banner.level != "error", window.banner.text.text()
    psds = [p for p in window.last_export if p.suffix == ".psd"]
    assert len(psds) == 1 and psds[0].is_file()
    psd = PSDImage.open(psds[0])
    assert (psd.width, psd.height) == (window.image.shape[1], window.image.shape[0])
    names = [layer.name for layer in psd.descendants()]
    name_a, name_b = window.doc.layer(a).name, window.doc.layer(b).name
    assert name_a in names and name_b not in names
    person = next(layer for layer in psd.descendants() if layer.name == name_a)
    rgba = np.asarray(person.composite(viewport=psd.viewbox).convert("RGBA"))
    solid = window.doc.layer(a).alpha > 0.98
    assert rgba[..., 3][solid].min() > 240
    diff = np.abs(rgba[..., :3].astype(int) - window.image.astype(int))[solid]
    assert diff.mean() > 8  # recoloured, not the photo's colour
    # the unedited photo is matched where the person is solid and the hue barely matters (grey)
    assert np.median(diff) < 60
    # the PNG alpha matte of person a equals its alpha in the document (8-bit)
    alpha_png = next(p for p in window.last_export if p.name.endswith("_alpha.png") and
                     window.doc.layer(a).name.replace(" ", "_") in p.name)
    am = np.asarray(Image.open(alpha_png)).astype(np.float32)
    am = am / (65535.0 if am.max() > 255 else 255.0)
    assert np.abs(am - window.doc.layer(a).alpha).max() <= 1 / 255 + 1e-6


def test_export_16_bit_tiff_with_mask_option(window, tmp_path, qtbot):
    out = tmp_path / "tiff"
    with qtbot.waitSignal(window.taskFinished, timeout=60_000):
        window.export(out, {"tiff"}, bit_depth=16, alpha_as="mask", people=[window.doc.layers[0].id])
    tifs = sorted(p for p in window.last_export if p.suffix in (".tif", ".tiff"))
    assert tifs, window.banner.text.text()
    im = Image.open([p for p in tifs if "composite" not in p.name][0])
    assert im.size == (window.image.shape[1], window.image.shape[0])
    assert "A" in im.getbands() or im.mode in ("RGBA",) or len(im.getbands()) == 4


def test_project_round_trip_keeps_edits(window, make_window, tmp_path, qtbot):
    ids = [la.id for la in window.doc.layers]
    window.layers.renamed.emit(ids[0], "Zizou")
    window.toggle_visible(ids[1])
    window.select_person(ids[0])
    window.recolour.set_value("exposure", 1.0)
    path = tmp_path / "group.instmatt"
    assert window._write_project(path)
    assert path.is_file() and window.windowTitle().startswith("group.instmatt")
    other = make_window()
    with qtbot.waitSignal(other.peopleReady, timeout=60_000):
        other.open_path(path)
    names = {la.name for la in other.doc.layers}
    assert "Zizou" in names
    z = next(la for la in other.doc.layers if la.name == "Zizou")
    assert z.adjustments.exposure == pytest.approx(1.0)
    assert [la.visible for la in other.doc.layers] == [la.visible for la in window.doc.layers]
    for la, lb in zip(window.doc.layers, other.doc.layers):
        assert np.abs(la.alpha - lb.alpha).max() <= 1 / 65535 + 1e-6


def test_corrupt_project_is_a_message(window, tmp_path, qtbot):
    bad = tmp_path / "bad.instmatt"
    bad.write_bytes(b"PK\x03\x04 not a zip at all")
    doc = window.doc
    with qtbot.waitSignal(window.taskFinished, timeout=30_000):
        window.open_path(bad)
    assert window.banner.isVisible() and window.banner.level == "error"
    assert "bad.instmatt" in window.banner.text.text()
    assert window.doc is doc


def test_autosave_and_recovery_after_a_crash(window, make_window, tmp_path, qtbot):
    ids = [la.id for la in window.doc.layers]
    window.layers.renamed.emit(ids[0], "Unsaved name")
    assert window.autosave()
    assert window.autosave_path.is_file()
    assert not window.autosave()  # nothing changed since
    # "crash": the first window never closes; a new one starts with the same recovery folder
    second = make_window(recovery_dir=window.recovery_dir)
    qtbot.waitUntil(lambda: second.banner.isVisible(), timeout=5000)
    assert "did not close normally" in second.banner.text.text()
    from PySide6.QtWidgets import QPushButton

    restore = [b for b in second.banner.findChildren(QPushButton) if b.text() == "Restore"][0]
    with qtbot.waitSignal(second.peopleReady, timeout=60_000):
        restore.click()
    assert "Unsaved name" in [la.name for la in second.doc.layers]
    assert second.project_path is None and second.windowTitle().startswith("Untitled *")
    assert second._dirty  # restored work counts as unsaved: Ctrl+S asks for a new file name
    second.ask_before_discarding = False
    second.close()  # a normal exit removes the recovery file
    assert not window.autosave_path.exists()


def test_preferences_dialog_lists_models_with_licences_and_rejects_bad_weights(window, tmp_path, qtbot):
    from instmatt_app.gui.preferences_dialog import PreferencesDialog

    dlg = PreferencesDialog(window.settings, window)
    qtbot.addWidget(dlg)
    assert dlg.table.rowCount() >= 1
    licences = [dlg.table.item(r, 1).text() for r in range(dlg.table.rowCount())]
    assert all(licences)
    bogus = tmp_path / "not_weights.pth"
    bogus.write_bytes(b"garbage")
    assert not dlg.add_model("instmatt", str(bogus))
    assert "not_weights.pth" in dlg.message.text()
    assert dlg.passes.value() == 8
    dlg.device.setCurrentText("cpu")
    dlg.autosave.setValue(0)
    dlg.passes.setValue(2)
    assert dlg.boxes.currentData() == "auto"
    if not (REPO / "models/centernet.onnx").is_file():  # not shipped: offered but not selectable
        assert not dlg.boxes.model().item(dlg.boxes.findData("movenet+centernet")).isEnabled()
    dlg.boxes.setCurrentIndex(dlg.boxes.findData("movenet"))
    dlg._accept()
    assert window.settings.get("device") == "cpu" and window.settings.get("autosave_s") == 0
    assert window.settings.get("guidance_passes") == 2 and window.settings.get("person_boxes") == "movenet"
    window.engine, window._engine_factory = None, None   # the app's own engine, built from the settings
    engine = window._get_engine()
    assert engine.config.guidance_passes == 2 and engine.config.detector_options == {"boxes": "movenet"}
    assert engine.detector.box_detector_name == "movenet-multipose"
    window.settings.set("person_boxes", "something old")   # a stale stored value is not fatal
    assert window._person_boxes() == "auto"
