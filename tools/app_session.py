"""The steps of an editing session in the desktop app, driven from a script (offscreen).

Shared by ``tools/screenshots.py --timings`` (how long each step takes) and
``benchmarks/bench_gui_memory.py`` (how much memory): open a window, run a background job and wait
for it, paint a brush stroke across the photo, undo, recolour a person, paint a guidance stroke.
Each step returns when its result is on screen.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["new_window", "run_job", "brush_across", "undo", "recolour", "guidance_dab"]


def new_window(tmp: Path):
    """A shown 1440 × 900 MainWindow with its settings and recovery files under ``tmp``."""
    from instmatt_app.gui.main_window import MainWindow
    from instmatt_app.gui.settings import AppSettings

    w = MainWindow(AppSettings(tmp / "session.ini"), recovery_dir=tmp / "recovery")
    w.ask_before_discarding = False
    w.resize(1440, 900)
    w.show()
    return w


def run_job(w, start) -> None:
    """Call ``start()`` (which starts a background job) and wait until the job is done and drawn."""
    from PySide6.QtCore import QEventLoop

    loop = QEventLoop()
    w.taskFinished.connect(loop.quit)
    start()
    loop.exec()
    w.taskFinished.disconnect(loop.quit)
    w.wait_for_render()


def _redraw(w) -> None:
    w._start_render()
    w.wait_for_render()


def brush_across(w) -> float:
    """Paint the selected person along the middle row, from a quarter to half the width (a
    20 px brush); returns the seconds the GUI thread was busy."""
    import time

    from instmatt_app.gui.brush import Stroke

    w.set_tool("brush")
    h, wd = w.image.shape[:2]
    s = Stroke((h, wd), 20, 0.7)
    for x in range(wd // 4, wd // 2, 10):
        s.add(x, h / 2)
    t = time.perf_counter()
    w.apply_stroke(s)
    busy = time.perf_counter() - t
    _redraw(w)
    return busy


def undo(w) -> float:
    """Undo the last step; returns the seconds the GUI thread was busy."""
    import time

    t = time.perf_counter()
    w.undo()
    busy = time.perf_counter() - t
    _redraw(w)
    return busy


def recolour(w, hue: float = 90.0) -> float:
    """Preview a hue turn of the selected person, draw it, then commit it (one undo step);
    returns the seconds the preview frame took."""
    import time

    vals = {"hue": hue, "saturation": 0.0, "lightness": 0.0, "tint": 0.0, "exposure": 0.0}
    t = time.perf_counter()
    w._recolour_preview(vals)
    w.refresh_canvas()
    frame = time.perf_counter() - t
    w._recolour_commit(vals)
    return frame


def guidance_dab(w, layer, label: str = "background") -> bool:
    """One 30 px guidance dab labelled ``label`` at the middle of ``layer``'s opaque part, which
    re-mattes that person (waits for it); False when the layer has no opaque part."""
    from instmatt_app.gui.brush import Stroke

    ys, xs = np.nonzero(layer.alpha > 0.9)
    if not len(xs):
        return False
    w.set_tool("guide")
    w.set_guide_label(label)
    h, wd = w.image.shape[:2]
    g = Stroke((h, wd), 30, 0.7)
    g.add(float(np.median(xs)), float(np.median(ys)))
    run_job(w, lambda: w.apply_stroke(g))
    return True
