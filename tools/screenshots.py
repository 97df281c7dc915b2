"""Save screenshots of every main view of the desktop app to docs/screenshots/.

Usage: ``python tools/screenshots.py [PHOTO] [--out DIR] [--scale 1] [--timings]``.
``--timings`` also measures the interactive steps (open, render each view, brush stroke, undo,
recolour preview, refinement, re-matte, export, save) and prints them (docs/gui.md quotes them). Runs offscreen (no display
needed), matting the photo with the embedded default engine (a few seconds on a CPU). The default
photo is the development data's two-person sample (../shared/data/qualitative/images/zidane.jpg).
"""
from __future__ import annotations

import argparse
import os

import numpy as np
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PHOTO = REPO.parent / "shared" / "data" / "qualitative" / "images" / "zidane.jpg"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo", nargs="?", default=str(DEFAULT_PHOTO))
    ap.add_argument("--out", default=str(REPO / "docs" / "screenshots"))
    ap.add_argument("--scale", default="1", help="QT_SCALE_FACTOR (2 = HiDPI screenshots)")
    ap.add_argument("--timings", action="store_true", help="also measure and print the interactive steps")
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ["QT_SCALE_FACTOR"] = args.scale
    sys.path.insert(0, str(REPO))

    from PySide6.QtCore import QEventLoop, QTimer
    from PySide6.QtWidgets import QApplication

    from instmatt_app.gui.app import create_app
    from instmatt_app.gui.main_window import MainWindow
    from instmatt_app.gui.settings import AppSettings

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="instmatt-shots-"))
    create_app()
    win = MainWindow(AppSettings(tmp / "settings.ini"), recovery_dir=tmp / "recovery")
    win.ask_before_discarding = False
    win.resize(1440, 900)
    win.show()

    def pump(ms: int = 80) -> None:
        loop = QEventLoop()
        QTimer.singleShot(ms, loop.quit)
        loop.exec()

    def shot(name: str, widget=None) -> None:
        win.wait_for_render()
        pump()
        path = out / f"{name}.png"
        (widget or win).grab().save(str(path), "PNG", 0)  # 0 = smallest file
        print("saved", path)

    shot("00_start")
    loop = QEventLoop()
    win.taskFinished.connect(lambda _n: loop.quit())
    win.open_path(args.photo)
    pump(300)
    shot("01_processing")
    loop.exec()
    if win.doc is None or not win.live_layers():
        print("no people found; only the start screens were saved", file=sys.stderr)
        return 1
    layers = win.doc.layers
    win.select_person(layers[0].id)
    for n, view in enumerate(("composite", "person", "alpha", "trimatte", "people"), start=2):
        win.set_view(view)
        shot(f"{n:02d}_view_{view}")
    # recolour one person, remove another (the "done when" scenario)
    win.set_view("composite")
    win.select_person(layers[0].id)
    win.recolour.set_value("hue", 150)
    win.recolour.set_value("saturation", 0.4)
    shot("07_recoloured")
    if len(layers) > 1:
        win.select_person(layers[1].id)
        win.remove_selected()
        shot("08_person_removed")
        win.undo()
    # brush tool with its options and cursor
    win.select_person(layers[0].id)
    win.set_tool("guide")
    win.set_view("people")
    from PySide6.QtCore import QPointF

    a = layers[0].alpha
    ys, xs = np.nonzero(a > 0.9)
    if len(xs):
        p = win.canvas.to_widget(float(np.median(xs)), float(np.median(ys)))
        win.canvas._mouse = QPointF(p)
        win.canvas.preview_begin("#4caf50")
        x0, y0 = float(np.median(xs)), float(np.median(ys))
        win.canvas.preview_segment(x0 - 60, y0 - 30, x0 + 40, y0 + 10, win.size_spin.value() / 2)
    shot("09_guidance_brush")
    win.canvas.preview_clear()
    win.set_tool("select")
    # cycle refinement: order by clicking, badges, heat-map
    win.refine_panel.set_mode("cycle")
    win._set_cycle_order([la.id for la in reversed(win.live_layers())])
    win.set_view("composite")
    shot("10_cycle_order")
    loop2 = QEventLoop()
    win.taskFinished.connect(lambda _n: loop2.quit())
    win.run_refinement()
    loop2.exec()
    win.refine_panel.heat.setChecked(True)
    shot("11_difference_heatmap")
    win.refine_panel.heat.setChecked(False)
    # dialogs
    from instmatt_app.gui.export_dialog import ExportDialog
    from instmatt_app.gui.preferences_dialog import PreferencesDialog

    dlg = ExportDialog([(la.id, la.name, True) for la in win.live_layers()], tmp / "export", win.settings, win)
    dlg.show()
    shot("12_export_dialog", dlg)
    dlg.close()
    prefs = PreferencesDialog(win.settings, win)
    prefs.show()
    shot("13_preferences", prefs)
    prefs.close()
    win.open_path(tmp / "missing.jpg")
    shot("14_error_message")
    win.banner.hide()
    win.toggle_panels()
    shot("15_panels_hidden")
    win.toggle_panels()
    win.close()
    QApplication.processEvents()
    if args.timings:
        measure(args.photo, tmp)
    return 0


def measure(photo: str, tmp: Path) -> None:
    """Time the interactive steps in a fresh window (engine models load on the first open)."""
    import time

    sys.path.insert(0, str(REPO / "tools"))
    from app_session import brush_across, guidance_dab, new_window, recolour, run_job, undo

    w = new_window(tmp)

    def job(start) -> float:
        t = time.perf_counter()
        run_job(w, start)
        return time.perf_counter() - t

    print(f"open -> people on screen (first run, models load): {job(lambda: w.open_path(photo)):.2f} s")
    print(f"find people again (models loaded): {job(w.detect_people):.2f} s")
    print(f"photo {w.image.shape[1]}x{w.image.shape[0]}, {len(w.live_layers())} people")
    if not w.live_layers():
        return
    la = w.doc.layers[0]
    w.select_person(la.id)
    for v in ("composite", "person", "alpha", "trimatte", "people"):
        w.set_view(v)
        t = time.perf_counter()
        w.refresh_canvas()
        print(f"render {v}: {time.perf_counter() - t:.3f} s")
    w.set_view("composite")
    t = time.perf_counter()
    t_gui = brush_across(w)
    print(f"brush stroke: GUI thread {t_gui:.3f} s, new composite on screen after {time.perf_counter() - t:.3f} s")
    t = time.perf_counter()
    t_gui = undo(w)
    print(f"undo: GUI thread {t_gui:.3f} s, redrawn after {time.perf_counter() - t:.3f} s")
    print(f"recolour preview frame: {recolour(w):.3f} s")
    w.refine_panel.set_mode("cycle")
    print(f"cycle refinement (+ parallel reference), redrawn: {job(w.run_refinement):.2f} s")
    t = time.perf_counter()
    if guidance_dab(w, la):
        print(f"guidance stroke -> re-matte one person, redrawn: {time.perf_counter() - t:.2f} s")
    out = tmp / "export"
    t_exp = job(lambda: w.export(out, {"psd", "png", "tiff"}))
    print(f"export psd+png+tiff: {t_exp:.2f} s, {len(w.last_export)} files")
    t = time.perf_counter()
    w._write_project(tmp / "timing.instmatt")
    print(f"save project: {time.perf_counter() - t:.2f} s")
    w.close()

if __name__ == "__main__":
    sys.exit(main())
