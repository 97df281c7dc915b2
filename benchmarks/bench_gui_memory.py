"""Memory of the desktop app through a whole editing session on one (big) photo.

    python benchmarks/bench_gui_memory.py PHOTO [--again]

One window, offscreen: open the photo (the engine finds the people and estimates their colours),
show every view, a brush stroke, undo, a recolour, cycle refinement (with its parallel reference),
a guidance stroke that re-mattes one person, export PSD + PNG, save the project and, with
``--again``, "find people again". Prints a table: per step the peak resident memory during the
step, the resident memory after it (GiB, Linux /proc; the peak is reset before each step) and the
wall time. A big photo is made with OpenCV, e.g. a dev composite upscaled to 9500 × 6333 (60 MP).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _status_gib(key: str) -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) / 2 ** 20
    return float("nan")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as fh:   # resets VmHWM to the current RSS
        fh.write("5")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("photo")
    ap.add_argument("--again", action="store_true", help="end with 'find people again'")
    args = ap.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(REPO / "tools"))
    from app_session import brush_across, guidance_dab, new_window, recolour, run_job, undo

    from instmatt_app.gui.app import create_app

    rows: list[tuple[str, float, float, float]] = []
    clock = [time.perf_counter()]

    def mark(step: str) -> None:
        rows.append((step, _status_gib("VmHWM"), _status_gib("VmRSS"), time.perf_counter() - clock[0]))
        print(f"{step}: peak {rows[-1][1]:.2f} GiB, now {rows[-1][2]:.2f} GiB", flush=True)
        _reset_peak()
        clock[0] = time.perf_counter()

    tmp = Path(tempfile.mkdtemp(prefix="instmatt-bench-"))
    create_app()
    w = new_window(tmp)
    _reset_peak()
    mark("window")
    run_job(w, lambda: w.open_path(args.photo))
    if not w.live_layers():
        print("no people found", file=sys.stderr)
        return 1
    mark(f"open, find {len(w.live_layers())} people")
    la = w.doc.layers[0]
    w.select_person(la.id)
    for view in ("composite", "person", "alpha", "trimatte", "people"):
        w.set_view(view)
        w.refresh_canvas()
        w.wait_for_render()
        mark(f"view {view}")
    w.set_view("composite")
    brush_across(w)
    mark("brush stroke")
    undo(w)
    mark("undo")
    recolour(w)
    w.wait_for_render()
    mark("recolour")
    w.refine_panel.set_mode("cycle")
    run_job(w, w.run_refinement)
    mark("cycle refinement")
    guidance_dab(w, la)
    mark("guidance stroke, re-matte")
    run_job(w, lambda: w.export(tmp / "export", {"psd", "png"}))
    mark("export PSD + PNG")
    w._write_project(tmp / "session.instmatt")
    mark("save project")
    if args.again:
        run_job(w, w.detect_people)
        mark("find people again")
    w.close()

    print(f"\n{w.image.shape[1]}x{w.image.shape[0]} ({w.image.shape[0] * w.image.shape[1] / 1e6:.0f} MP)\n")
    print("| step | peak GiB | after GiB | s |")
    print("| --- | --- | --- | --- |")
    for step, peak, now, secs in rows:
        print(f"| {step} | {peak:.2f} | {now:.2f} | {secs:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
