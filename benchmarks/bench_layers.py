"""Benchmark: multi-layer colour estimation and layered PSD export on a 24 MP photo with 4 people.

The photo is a synthetic HIM2K-style composite of ../shared/data/synthetic (4 people), upscaled to
6000 x 4000 px (24 MP) with its ground-truth alphas; the upscaled alpha edges are a few pixels
wide, like a real 24 MP matte's hair. Prints seconds per stage and the peak resident memory.

    python benchmarks/bench_layers.py [--name dev_0002] [--width 6000] [--height 4000] [--skip-psd]
                                      [--bit-depth 8|16] [--alpha-as transparency|mask] [--document]
                                      [--full-size]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from instmatt_app.core.layer_colours import estimate_layer_colours, reconstruct  # noqa: E402


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far, GB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2


def load(shared: Path, name: str, width: int, height: int):
    d = shared / "data" / "synthetic"
    img = cv2.imread(str(d / "images_png" / "comp" / f"{name}.png"), cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f"cannot read the synthetic sample {name} under {d}")
    img = cv2.cvtColor(cv2.resize(img, (width, height), interpolation=cv2.INTER_CUBIC), cv2.COLOR_BGR2RGB)
    alphas = []
    for f in sorted((d / "alphas" / "comp" / name).glob("*.png")):
        a = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        alphas.append(cv2.resize(a, (width, height), interpolation=cv2.INTER_LINEAR))
    return img, np.stack(alphas).astype(np.float32) / 255.0


def time_document(img8: np.ndarray, alphas: np.ndarray) -> None:
    """Document model at full size: first composite (colours estimated inside), recolour, stroke."""
    from instmatt_app.core.adjustments import Adjustments
    from instmatt_app.core.document import Document, PersonLayer
    doc = Document(img8, [PersonLayer(id=i + 1, name=f"Person {i + 1}", alpha=a) for i, a in enumerate(alphas)])

    def timed(label, fn):
        t, c = time.perf_counter(), time.process_time()
        fn()
        print(f"  document {label}: {time.perf_counter() - t:.2f} s wall, {time.process_time() - c:.2f} s CPU")
    timed("ensure_colours", doc.ensure_colours)
    timed("first composite", doc.composite)
    doc.set_adjustments(1, Adjustments(hue=30, exposure=0.5))
    timed("composite after a recolour", doc.composite)
    a = doc.layer(2).alpha.copy()
    ys, xs = np.nonzero(a > 0.99)
    cy, cx = int(ys.mean()), int(xs.mean())
    a[cy - 100:cy + 100, cx - 150:cx + 150] = 0.0
    doc.set_alpha(2, a)
    timed("composite after a 300x200 px stroke", doc.composite)
    print(f"  document peak RSS {peak_rss_gb():.2f} GB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--name", default="dev_0002", help="synthetic sample (dev_0002 has 4 people)")
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--skip-psd", action="store_true")
    ap.add_argument("--full-size", action="store_true",
                    help="solve the band levels full size and crop at the end (the old way; for before / after)")
    ap.add_argument("--bit-depth", type=int, default=8, choices=(8, 16))
    ap.add_argument("--alpha-as", default="transparency", choices=("transparency", "mask"))
    ap.add_argument("--document", action="store_true",
                    help="time the document model instead: colours, composite, recolour, a brush stroke")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")

    img8, alphas = load(args.shared, args.name, args.width, args.height)
    print(f"photo {args.width}x{args.height} ({args.width * args.height / 1e6:.1f} MP), "
          f"{len(alphas)} people; peak RSS after loading {peak_rss_gb():.2f} GB")
    if args.document:                   # the document model on its own (it estimates its colours)
        time_document(img8, alphas)
        return 0
    img = img8.astype(np.float32) / 255.0
    mixed = float(((alphas.max(axis=0) < 1 - 1e-3) & (alphas.sum(axis=0) > 1e-3)).mean())
    print(f"mixed (band) pixels: {100 * mixed:.2f} %")

    t, c = time.perf_counter(), time.process_time()
    stats: dict = {}
    res = estimate_layer_colours(img, alphas, stats=stats, boxed=not args.full_size)
    t_col, c_col = time.perf_counter() - t, time.process_time() - c
    rec = reconstruct(alphas, res.people, res.background)
    mae = float(np.abs(rec - img).mean()) * 255
    del rec
    stored = (sum(p.nbytes for p in res.people) + res.background.nbytes) / 2 ** 30
    print(f"colour estimation: {t_col:.2f} s wall, {c_col:.2f} s CPU, reconstruction MAE {mae:.4f}/255, "
          f"peak RSS {peak_rss_gb():.2f} GB; the colour layers hold {stored:.2f} GB")

    print("  CPU seconds per stage: " + ", ".join(f"{k[:-2]} {v:.2f}" for k, v in stats.items() if k.endswith("_s")))
    print("  band fraction per level: " + ", ".join(f"{k[6:-5]} {100 * v:.1f} %" for k, v in stats.items()
                                                  if k.endswith("_band")))
    if not args.skip_psd:
        from instmatt_app.io.psd_export import write_layered_psd
        with tempfile.TemporaryDirectory() as td:
            out = Path(td) / "bench.psd"
            t, c = time.perf_counter(), time.process_time()
            write_layered_psd(out, img8, alphas, res.people, res.background,
                              names=[f"Person {i + 1}" for i in range(len(alphas))],
                              bit_depth=args.bit_depth, alpha_as=args.alpha_as)
            t_psd, c_psd = time.perf_counter() - t, time.process_time() - c
            size = out.stat().st_size / 1e6
        print(f"PSD export ({args.bit_depth}-bit, alpha as {args.alpha_as}): {t_psd:.2f} s wall, {c_psd:.2f} s CPU, {size:.0f} MB, "
              f"peak RSS {peak_rss_gb():.2f} GB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
