"""Speed of InstMatt-Lite per photo on this CPU: channels-last vs the default (contiguous) layout.

    python benchmarks/bench_lite_speed.py [--limit 8] [--side 1280]

Runs :func:`instmatt_app.nets.lite_matter.matte_people` (shipped settings) on the development composites
resized to ``--side``, with the GT instances as masks, alternating the two memory layouts in one run (best of 2
per photo), and prints seconds per photo, the ratio and the largest difference between the two results.
"""
from __future__ import annotations

import argparse
import glob
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from instmatt_app.nets.lite_matter import FLOOR, load_lite, matte_people  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "synthetic"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=8)
    ap.add_argument("--side", type=int, default=1280)
    args = ap.parse_args()
    torch.set_num_threads(2)
    net = load_lite(REPO / "models" / "instmatt-lite.pth")
    opts = {"fine_side": 512, "base_side": 512, "floor": FLOOR, "solid_core": True, "fill_holes": 0.05}
    channels_last = torch.channels_last
    rows = []
    for path in sorted(glob.glob(str(DATA / "images" / "comp" / "*.jpg")))[:args.limit]:
        name = Path(path).stem
        img = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        f = args.side / max(img.shape[:2])
        img = cv2.resize(img, (round(img.shape[1] * f), round(img.shape[0] * f)), interpolation=cv2.INTER_AREA)
        gts = np.stack([cv2.resize(cv2.imread(p, cv2.IMREAD_GRAYSCALE), img.shape[1::-1])
                        for p in sorted(glob.glob(str(DATA / "alphas" / "comp" / name / "*.png")))]) >= 128
        best = {}
        out = {}
        for _ in range(2):
            for layout, fmt in (("channels_last", channels_last), ("contiguous", torch.contiguous_format)):
                torch.channels_last = fmt            # the layout matte_people gives the network's inputs
                net.to(memory_format=fmt)
                t0 = time.perf_counter()
                out[layout] = matte_people(net, img, gts, **opts)
                best[layout] = min(best.get(layout, 1e9), time.perf_counter() - t0)
        torch.channels_last = channels_last
        diff = float(np.abs(out["channels_last"] - out["contiguous"]).max())
        rows.append((name, len(gts), best["contiguous"], best["channels_last"], diff))
    print("| photo | people | contiguous s | channels-last s | ratio | max |Δα| |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, k, a, b, d in rows:
        print(f"| {name} | {k} | {a:.3f} | {b:.3f} | {a / b:.2f}x | {d:.1e} |")
    a, b = np.median([r[2] for r in rows]), np.median([r[3] for r in rows])
    print(f"| median | | {a:.3f} | {b:.3f} | {a / b:.2f}x | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
