"""The desktop app end to end under offscreen Qt: open, select, paint, undo, recolour, hide, remove,
cycle order, errors, shortcuts. The engine result is shared (see conftest)."""
from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt, QTimer

from tests.gui.conftest import click_canvas, drag_canvas, point_inside


def _inside(win, layer_id):
    la = win.doc.layer(layer_id)
    others = sum(l.alpha for l in win.doc.layers if l.id != layer_id)
    return point_inside(la.alpha, others)


def test_open_photo_runs_engine_in_background_and_ui_stays_responsive(make_window, photo_path, qtbot):
    import time

    win = make_window()
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(20)
    with qtbot.waitSignal(win.peopleReady, timeout=90_000):
        assert win.open_path(photo_path)
        assert win.progress.isVisible() and win.cancel_btn.isVisible()
        assert win.canvas.has_image()  # the photo shows at once, before the people
    timer.stop()
    gaps = np.diff(ticks)
    assert len(ticks) >= 3 and gaps.max() < 2.0, \
        f"the event loop stalled for {gaps.max():.2f} s while the engine worked"
    assert len(win.live_layers()) >= 1
    assert not win.progress.isVisible()
    assert win.device_label.text() == "CPU"
    assert "default" in win.models_label.text()
    assert str(photo_path.resolve()) in win.settings.recent_files()


def test_cancel_stops_the_engine(make_window, photo_path, qtbot):
    win = make_window()
    with qtbot.waitSignal(win.taskFinished, timeout=90_000):
        win.open_path(photo_path)
        win.cancel_task()
    assert win.doc is None  # cancelled: no people appear
    assert not win.progress.isVisible()
    assert not win.banner.isVisible() or win.banner.level != "error"


def test_click_selects_the_person_under_the_mouse(window, qtbot):
    for la in window.doc.layers:
        x, y = _inside(window, la.id)
        click_canvas(qtbot, window, x, y)
        assert window.selected_id == la.id
        assert window.layers.current_id() == la.id
    click_canvas(qtbot, window, 5, 5)  # the top-left corner is background
    assert window.selected_id is None


def test_paint_alpha_is_one_undo_step_and_undo_restores_exactly(window, qtbot):
    la = window.doc.layers[0]
    window.select_person(la.id)
    before = la.alpha.copy()
    window.set_tool("brush")
    window.size_spin.setValue(30)
    ys, xs = np.nonzero(before < 0.01)
    x0, y0 = float(xs[len(xs) // 2]), float(ys[len(ys) // 2])  # somewhere the person is absent
    n_before = len(window.doc.history)
    drag_canvas(qtbot, window, [(x0, y0), (x0 + 10, y0), (x0 + 20, y0 + 5)])
    after = window.doc.layer(la.id).alpha
    assert len(window.doc.history) == n_before + 1
    assert after[int(y0), int(x0)] > 0.9 and after.sum() > before.sum()
    qtbot.keyClick(window, Qt.Key_Z, Qt.ControlModifier)
    np.testing.assert_array_equal(window.doc.layer(la.id).alpha, before)
    qtbot.keyClick(window, Qt.Key_Z, Qt.ControlModifier | Qt.ShiftModifier)
    np.testing.assert_array_equal(window.doc.layer(la.id).alpha, after)


def test_the_composite_view_redraws_only_a_strokes_region_and_shows_the_full_composite(window, qtbot, monkeypatch):
    from instmatt_app.gui import render

    window.set_view("composite")
    window.refresh_canvas()                                    # the view's picture is kept from here
    doc = window.doc
    la = doc.layers[0]
    window.select_person(la.id)
    window.set_tool("brush")
    window.size_spin.setValue(20)
    ys, xs = np.nonzero(la.alpha < 0.01)
    x0, y0 = float(xs[len(xs) // 2]), float(ys[len(ys) // 2])
    calls = []
    full, region = doc.composite, doc.composite_region
    monkeypatch.setattr(doc, "composite", lambda: calls.append("full") or full())
    monkeypatch.setattr(doc, "composite_region", lambda box: calls.append(box) or region(box))
    drag_canvas(qtbot, window, [(x0, y0), (x0 + 15, y0)])
    qtbot.keyClick(window, Qt.Key_Z, Qt.ControlModifier)     # undo redraws that region again
    window.wait_for_render()
    window.refresh_canvas()
    assert calls and "full" not in calls
    assert all((y1 - ya) * (x1 - xa) < 0.5 * la.alpha.size for ya, y1, xa, x1 in calls)
    np.testing.assert_array_equal(window._render_view(), render.to_uint8(full()))


def test_eraser_and_locked_layer(window, qtbot):
    la = window.doc.layers[-1]
    window.select_person(la.id)
    x, y = _inside(window, la.id)
    qtbot.keyClick(window, Qt.Key_E)
    assert window.tool == "eraser"
    drag_canvas(qtbot, window, [(x, y), (x + 4, y + 4)])
    assert window.doc.layer(la.id).alpha[int(y), int(x)] < 0.05
    window.toggle_locked(la.id)
    assert window.doc.layer(la.id).locked
    before = window.doc.layer(la.id).alpha.copy()
    qtbot.keyClick(window, Qt.Key_X)
    assert window.tool == "brush"
    drag_canvas(qtbot, window, [(x, y), (x + 4, y + 4)])
    np.testing.assert_array_equal(window.doc.layer(la.id).alpha, before)
    assert window.banner.isVisible() and "locked" in window.banner.text.text()


def test_recolour_changes_only_that_person_and_is_one_undo_step(window, qtbot):
    la = window.doc.layers[0]
    window.select_person(la.id)
    window.set_view("composite")
    base = window.doc.composite().copy()
    n = len(window.doc.history)
    window.recolour.set_value("hue", 120)
    assert len(window.doc.history) == n + 1
    assert window.doc.layer(la.id).adjustments.hue == pytest.approx(120)
    comp = window.doc.composite()
    x, y = _inside(window, la.id)
    assert np.abs(comp[int(y), int(x)] - base[int(y), int(x)]).max() > 0.02
    far = window.doc.layer(la.id).alpha + sum(l.alpha for l in window.doc.layers) < 1e-4
    assert np.abs(comp[far] - base[far]).max() < 1e-5
    window.undo()
    assert window.doc.layer(la.id).adjustments.is_identity
    assert window.recolour.values()["hue"] == 0


def test_live_recolour_preview_makes_no_undo_step(window, qtbot):
    la = window.doc.layers[0]
    window.select_person(la.id)
    n = len(window.doc.history)
    s = window.recolour.sliders["exposure"]
    s.setSliderDown(True)
    s.setValue(s.maximum())
    assert len(window.doc.history) == n  # preview only
    assert window.doc.layer(la.id).adjustments.exposure == pytest.approx(3.0)
    s.setSliderDown(False)
    window.recolour._commit()
    assert len(window.doc.history) == n + 1
    window.undo()
    assert window.doc.layer(la.id).adjustments.exposure == 0


def test_hide_by_eye_icon_and_delete_key(window, qtbot):
    la = window.doc.layers[0]
    item = window.layers.item_for(la.id)
    rect = window.layers.list.visualItemRect(item)
    qtbot.mouseClick(window.layers.list.viewport(), Qt.LeftButton, pos=QPoint(rect.x() + 18, rect.center().y()))
    assert not window.doc.layer(la.id).visible
    window.undo()
    assert window.doc.layer(la.id).visible
    window.select_person(la.id)
    qtbot.keyClick(window, Qt.Key_Delete)
    assert window.doc.layer(la.id).removed
    comp = window.doc.composite()
    photo = window.image.astype(np.float32) / 255
    core = window.doc.layer(la.id).alpha > 0.99
    # the background shows through where the person was: the composite there is no longer the photo
    assert np.abs(comp[core] - photo[core]).mean() > 0.05
    window.restore_selected()
    assert not window.doc.layer(la.id).removed


def test_rename_and_reorder_in_layers_panel(window, qtbot):
    from PySide6.QtCore import QModelIndex
    from PySide6.QtWidgets import QLineEdit

    ids = [la.id for la in window.doc.layers]
    lst = window.layers.list
    item = window.layers.item_for(ids[0])
    lst.editItem(item)  # what a double-click does
    editor = lst.findChild(QLineEdit)
    assert editor is not None
    editor.setText("Zinedine")
    qtbot.keyClick(editor, Qt.Key_Return)  # the delegate commits on the next event-loop turn
    qtbot.waitUntil(lambda: window.doc.layer(ids[0]).name == "Zinedine", timeout=2000)
    n = len(window.doc.history)
    # move the bottom row (back-most person) to the top, as a drag in the list does
    assert lst.model().moveRow(QModelIndex(), lst.count() - 1, QModelIndex(), 0)
    qtbot.waitUntil(lambda: len(window.doc.history) == n + 1, timeout=2000)
    assert [la.id for la in window.doc.layers] == list(reversed(ids))
    assert window.layers.list.item(0).data(Qt.UserRole) == ids[0]  # front-most is listed first
    window.undo()
    assert [la.id for la in window.doc.layers] == ids


def test_cycle_order_by_clicking_and_refinement_with_heatmap(window, qtbot):
    ids = [la.id for la in window.doc.layers]
    window.refine_panel.set_mode("cycle")
    window.refine_panel.pick_btn.setChecked(True)
    for lid in reversed(ids):
        click_canvas(qtbot, window, *_inside(window, lid))
    assert window.cycle_order == list(reversed(ids))
    assert window.refine_panel.order() == list(reversed(ids))
    from PySide6.QtCore import QModelIndex  # dragging the order list works too
    ol = window.refine_panel.order_list
    assert ol.model().moveRow(QModelIndex(), ol.count() - 1, QModelIndex(), 0)
    qtbot.waitUntil(lambda: window.cycle_order == ids, timeout=2000)
    assert window.refine_panel.order() == ids
    for lid in reversed(ids):  # and clicking sets it again
        click_canvas(qtbot, window, *_inside(window, lid))
    assert window.cycle_order == list(reversed(ids))
    window.wait_for_render()
    assert [b[2] for b in window.canvas.badges] == [str(i + 1) for i in range(len(ids))]
    n = len(window.doc.history)
    with qtbot.waitSignal(window.taskFinished, timeout=60_000):
        window.refine_panel.run_btn.click()
    assert not window.banner.isVisible() or window.banner.level != "error", window.banner.text.text()
    assert window.parallel_alphas is not None and set(window.parallel_alphas) == set(ids)
    assert len(window.doc.history) in (n, n + 1)  # one step (none if nothing changed)
    # every alpha is held once: the kept result (the base of re-matting) uses the layers' arrays
    assert all(inst.alpha is window.doc.layer(lid).alpha for lid, inst in zip(window.inst_ids, window.result.instances))
    assert all(window.parallel_alphas[lid].dtype == np.uint8 for lid in ids)
    window.refine_panel.heat.setChecked(True)
    window.refresh_canvas()
    assert "Mean |Δα|" in window.refine_panel.info.text()


def test_guidance_brush_rematte_changes_only_the_selected_person(window, qtbot):
    ids = [la.id for la in window.doc.layers]
    la = window.doc.layer(ids[0])
    other_before = window.doc.layer(ids[1]).alpha.copy()
    window.select_person(la.id)
    window.set_tool("guide")
    window.set_guide_label("background")
    x, y = _inside(window, la.id)
    window.size_spin.setValue(60)
    with qtbot.waitSignal(window.taskFinished, timeout=60_000):
        drag_canvas(qtbot, window, [(x, y), (x + 20, y)])
    assert not window.banner.isVisible() or window.banner.level != "error", window.banner.text.text()
    assert window.doc.layer(la.id).alpha[int(y), int(x)] < 0.5
    np.testing.assert_array_equal(window.doc.layer(ids[1]).alpha, other_before)
    assert window.doc.history.undo_label.startswith("Re-matte")


def test_views_render(window, qtbot):
    window.select_person(window.doc.layers[0].id)
    for view in ("composite", "person", "alpha", "trimatte", "people"):
        window.set_view(view)
        img = window._render_view()
        assert img.dtype == np.uint8 and img.shape[:2] == window.image.shape[:2]
    window.set_view("trimatte")
    tri = window._render_view()
    x, y = _inside(window, window.selected_id)
    assert tuple(tri[int(y), int(x)]) == (255, 0, 0)
    x, y = _inside(window, window.doc.layers[1].id)
    assert tri[int(y), int(x)][1] > 240  # α_r: another person


def test_shortcuts_and_zoom(window, qtbot):
    qtbot.keyClick(window, Qt.Key_B)
    assert window.tool == "brush"
    size = window.size_spin.value()
    qtbot.keyClick(window, Qt.Key_BracketRight)
    assert window.size_spin.value() > size
    qtbot.keyClick(window, Qt.Key_BracketLeft)
    qtbot.keyClick(window, Qt.Key_BracketLeft)
    assert window.size_spin.value() < size
    qtbot.keyClick(window, Qt.Key_1, Qt.ControlModifier)
    assert window.canvas.zoom_percent == pytest.approx(100.0)
    qtbot.keyClick(window, Qt.Key_0, Qt.ControlModifier)
    assert window.canvas.zoom_percent < 100
    # wheel zoom keeps the photo point under the mouse fixed
    from PySide6.QtCore import QPoint as P
    anchor = QPointF(300, 200)
    before = window.canvas.to_image(anchor)
    qtbot.wait(1)
    from PySide6.QtGui import QWheelEvent
    ev = QWheelEvent(anchor, window.canvas.mapToGlobal(anchor), P(0, 0), P(0, 120), Qt.NoButton,
                     Qt.NoModifier, Qt.NoScrollPhase, False)
    window.canvas.wheelEvent(ev)
    after = window.canvas.to_image(anchor)
    assert abs(after.x() - before.x()) < 0.5 and abs(after.y() - before.y()) < 0.5
    qtbot.keyClick(window, Qt.Key_Tab)
    assert not window.docks[0].isVisible()
    qtbot.keyClick(window, Qt.Key_Tab)
    assert window.docks[0].isVisible()
    qtbot.keyClick(window, Qt.Key_4)
    assert window.view == "trimatte"


def test_corrupt_file_shows_message_and_keeps_the_document(window, tmp_path, qtbot):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    doc = window.doc
    assert not window.open_path(bad)
    assert window.banner.isVisible() and window.banner.level == "error"
    assert "broken.jpg" in window.banner.text.text()
    assert window.doc is doc


def test_no_people_found_is_a_clear_message(make_window, data_dir, qtbot):
    win = make_window()
    path = sorted((data_dir / "coco_backgrounds" / "images").glob("*.jpg"))[0]
    with qtbot.waitSignal(win.taskFinished, timeout=60_000):
        win.open_path(path)
    if win.live_layers():
        pytest.skip("the detector found someone in the background photo")
    assert win.banner.isVisible() and "No people found" in win.banner.text.text()
    assert win.doc is not None


def test_background_modes(window, data_dir, qtbot):
    la = window.doc.layers[0]
    window.select_person(la.id)
    window.set_view("composite")
    window.set_background_mode("transparent")
    img = window._render_view()
    assert img.shape[2] == 4
    corner = img[5, 5]
    assert corner[3] == 0  # background pixel: transparent, the checkerboard shows
    x, y = _inside(window, la.id)
    assert img[int(y), int(x), 3] == 255
    assert window.background_panel.mode.currentData() == "transparent"
    bg = sorted((data_dir / "coco_backgrounds" / "images").glob("*.jpg"))[1]
    assert window.choose_background_image(str(bg))
    assert window.doc.background.mode == "replaced"
    img = window._render_view()
    assert img.shape[2] == 3 and np.abs(img[5, 5].astype(int) - window.image[5, 5].astype(int)).max() > 0
    window.undo()
    window.undo()
    assert window.doc.background.mode == "original"
    assert window.background_panel.mode.currentData() == "original"


def test_drop_a_file_and_recent_files(make_window, photo_path, tmp_path, qtbot):
    from PySide6.QtCore import QMimeData, QUrl, QPointF
    from PySide6.QtGui import QDropEvent

    win = make_window()
    bad = tmp_path / "dropped.png"
    bad.write_bytes(b"not a png")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(bad))])
    ev = QDropEvent(QPointF(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    win.canvas.dropEvent(ev)
    assert win.banner.isVisible() and "dropped.png" in win.banner.text.text()
    win.settings.add_recent(photo_path)
    win._fill_recent_menu()
    names = [a.text() for a in win.recent_menu.actions()]
    assert photo_path.name in names


def test_pan_with_middle_button_and_space_drag(window, qtbot):
    c = window.canvas
    before = c.to_image(QPointF(400, 300))
    qtbot.mousePress(c, Qt.MiddleButton, pos=QPoint(400, 300))
    qtbot.mouseMove(c, pos=QPoint(450, 330))
    qtbot.mouseRelease(c, Qt.MiddleButton, pos=QPoint(450, 330))
    after = c.to_image(QPointF(450, 330))
    assert abs(after.x() - before.x()) < 1 and abs(after.y() - before.y()) < 1
    c.setFocus()
    qtbot.keyPress(c, Qt.Key_Space)
    n = len(window.doc.history)
    window.set_tool("brush")
    before = c.to_image(QPointF(300, 300))
    qtbot.mousePress(c, Qt.LeftButton, pos=QPoint(300, 300))
    qtbot.mouseMove(c, pos=QPoint(260, 280))
    qtbot.mouseRelease(c, Qt.LeftButton, pos=QPoint(260, 280))
    qtbot.keyRelease(c, Qt.Key_Space)
    after = c.to_image(QPointF(260, 280))
    assert abs(after.x() - before.x()) < 1 and abs(after.y() - before.y()) < 1
    assert len(window.doc.history) == n  # panning painted nothing


def test_failures_show_clear_messages(make_window, photo_path, qtbot, window):
    # GPU out of memory in a background job: a message, the app keeps its document
    def oom(progress, cancelled):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    doc = window.doc
    with qtbot.waitSignal(window.taskFinished, timeout=10_000):
        window._start_task("x", oom, lambda out: None, "Re-matting")
    assert window.banner.level == "error" and "Out of memory" in window.banner.text.text()
    assert window.doc is doc
    # a model that is missing: the Mask R-CNN detector without user weights
    from instmatt_app.pipeline import Engine, EngineConfig
    from instmatt_app.model_manager import user_model

    if user_model("maskrcnn") is not None:
        pytest.skip("Mask R-CNN weights are installed on this machine")
    win = make_window()
    win._engine_factory = lambda device: Engine(EngineConfig(device="cpu", detector="maskrcnn"))
    with qtbot.waitSignal(win.taskFinished, timeout=60_000):
        win.open_path(photo_path)
    assert win.banner.level == "error" and "instmatt models add maskrcnn" in win.banner.text.text()


def test_unsaved_edits_are_not_dropped_silently(window, photo_path, qtbot):
    from PySide6.QtWidgets import QApplication, QMessageBox

    window.ask_before_discarding = True
    la = window.doc.layers[0]
    window.layers.renamed.emit(la.id, "Edited")
    doc = window.doc

    def answer(button):
        def press():
            box = QApplication.activeModalWidget()
            assert isinstance(box, QMessageBox) and "Save the changes" in box.text()
            box.button(button).click()
        QTimer.singleShot(50, press)

    answer(QMessageBox.Cancel)
    assert not window.open_path(photo_path)
    assert window.doc is doc and window.doc.layer(la.id).name == "Edited"
    answer(QMessageBox.Discard)
    with qtbot.waitSignal(window.taskFinished, timeout=60_000):
        assert window.open_path(photo_path)
    assert window.doc is not doc
    window.ask_before_discarding = False


def test_find_people_again_is_one_undo_step(window, qtbot):
    la = window.doc.layers[0]
    window.layers.renamed.emit(la.id, "Kept by undo")
    before = [l.id for l in window.doc.layers]
    with qtbot.waitSignal(window.taskFinished, timeout=60_000):
        qtbot.keyClick(window, Qt.Key_F5)
    assert window.doc.history.undo_label == "Re-matte people"
    window.undo()
    assert [l.id for l in window.doc.layers] == before
    assert window.doc.layer(la.id).name == "Kept by undo"


def test_shortcut_list_names_the_photographer_keys(window, qtbot):
    rows = dict((what, keys) for keys, what in window.shortcut_rows())
    for action, key in [("Alpha brush: paint the person in", "B"), ("Swap brush / eraser", "X"),
                        ("Smaller brush", "["), ("Larger brush", "]"), ("Hide / show panels", "Tab"),
                        ("Export…", "Ctrl+E"), ("Save project", "Ctrl+S")]:
        assert key in rows[action], (action, rows.get(action))
    window.show_shortcuts()
    assert window._shortcuts_dialog.isVisible()
    window._shortcuts_dialog.close()


def test_add_a_missed_person_by_clicking(make_window, engine, group_result, group_path, qtbot):
    """Only person 0 was found; the Add person tool picks person 1 with one click."""
    masks = np.stack([group_result.instances[0].coarse_mask])
    one = engine.run(group_result.image, masks=masks)
    win = make_window()
    win.set_result(one, group_path)
    missing = group_result.instances[1].alpha
    x, y = point_inside(missing, group_result.instances[0].alpha)
    qtbot.keyClick(win, Qt.Key_A)
    assert win.tool == "add"
    with qtbot.waitSignal(win.taskFinished, timeout=60_000):
        click_canvas(qtbot, win, x, y)
    assert not win.banner.isVisible() or win.banner.level != "error", win.banner.text.text()
    assert len(win.live_layers()) == 2
    new = win.doc.layers[-1]
    assert win.selected_id == new.id and win.tool == "select"
    inter = ((new.alpha > 0.5) & (missing > 0.5)).sum()
    union = ((new.alpha > 0.5) | (missing > 0.5)).sum()
    assert inter / union > 0.6, f"IoU with the missed person {inter / union:.2f}"
    assert win.doc.history.undo_label == "Add person"
    win.undo()
    assert len(win.live_layers()) == 1


def test_find_people_again_on_an_edited_photo_is_one_step_and_brings_its_colours(window, qtbot):
    """F5 on an edited document: the detector's people replace the old ones as one undo step, with
    the colours the worker estimated (nothing is estimated again on the GUI side); undo brings the
    old people back."""
    old_ids = [la.id for la in window.doc.layers]
    window.doc.rename(old_ids[0], "Edited")
    n = len(window.doc.history)
    with qtbot.waitSignal(window.taskFinished, timeout=90_000):
        window.detect_people()
    assert not window.banner.isVisible() or window.banner.level != "error", window.banner.text.text()
    new_ids = [la.id for la in window.doc.layers]
    assert new_ids and not set(new_ids) & set(old_ids)
    assert len(window.doc.history) == n + 1 and window.doc.colours_valid
    assert all(la.colour is not None for la in window.doc.layers)
    assert all(inst.alpha is window.doc.layer(lid).alpha for lid, inst in zip(window.inst_ids, window.result.instances))
    window.undo()
    assert [la.id for la in window.doc.layers] == old_ids and window.doc.layer(old_ids[0]).name == "Edited"
