"""The engine on CUDA against the CPU: the same mattes within tolerance, and the time of each.

    python benchmarks/bench_device_parity.py [DATASET] [--limit 4] [--side 1280] [--passes 8]
                                             [--devices cpu,cuda]

DATASET is in HIM2K layout (default ``../shared/data/synthetic``). Every photo is resized to ``--side`` px and run
through the engine with InstMatt-Lite on its GT instances binarised at 0.5 given as if they were the detector's
masks (``detected=True``: the iterated guidance passes, the merging of people and the refinement run too; the
detector itself is left out, so the check needs neither mediapipe nor RVM), once with ``device="cpu"`` and once
with ``device="cuda"`` (``--devices``). Prints per photo the people kept on each device, the largest and the
mean absolute difference of the alphas, the share of pixels that differ by more than 1/255 and 8/255, IMQ_mad
of each device against the GT, and the seconds of each run (the second of two; the first warms the device up).
Exits 2 without CUDA.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from instmatt_app.evaluation.imq import pool, read_instance_folder, score_image  # noqa: E402
from instmatt_app.io.image_io import load_image  # noqa: E402
from instmatt_app.pipeline import Engine, EngineConfig  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", type=Path, default=REPO.parent / "shared" / "data" / "synthetic")
    ap.add_argument("--limit", type=int, default=4)
    ap.add_argument("--side", type=int, default=1280)
    ap.add_argument("--passes", type=int, default=None, help="guidance passes (default: the engine's)")
    ap.add_argument("--devices", default="cpu,cuda", help="the two devices compared (default cpu,cuda)")
    args = ap.parse_args()
    import torch

    devs = args.devices.split(",")
    if len(devs) != 2:
        print("--devices: two devices, e.g. cpu,cuda", file=sys.stderr)
        return 2
    if any(d.startswith("cuda") for d in devs) and not torch.cuda.is_available():
        print("no CUDA device: nothing to compare", file=sys.stderr)
        return 2
    photos = sorted((args.dataset / "images").glob("*/*.jpg"))[: args.limit]
    if not photos:
        print(f"{args.dataset}: no images/<subset>/*.jpg", file=sys.stderr)
        return 2
    engines = [Engine(EngineConfig(device=d, matting="lite", refine="parallel", guidance_passes=args.passes))
               for d in devs]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"torch {torch.__version__}, {gpu}; {len(photos)} photos at {args.side} px; A = {devs[0]}, B = {devs[1]}")
    print("| photo | people A / B | max |Δα| | mean |Δα| | > 1/255 | > 8/255 | IMQ_mad A | IMQ_mad B | s A | s B |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    scores: list[list] = [[], []]
    for path in photos:
        image = load_image(path)
        _, gts = read_instance_folder(args.dataset / "alphas" / path.parent.name / path.stem)
        f = args.side / max(image.shape[:2])
        size = (round(image.shape[1] * f), round(image.shape[0] * f))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        gts = [cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in gts]
        masks = np.stack([g > 127 for g in gts]).astype(np.float32)
        out, secs, row = [None, None], [0.0, 0.0], [0.0, 0.0]
        for d, engine in enumerate(engines):
            for _ in range(2):
                t0 = time.perf_counter()
                r = engine.run(image, masks=masks.copy(), detected=True)
                secs[d] = time.perf_counter() - t0
            out[d] = r.alphas if r.instances else np.zeros((0,) + image.shape[:2], np.float32)
            preds = [np.round(a * 255).astype(np.uint8) for a in out[d]]
            s = score_image(preds, gts, name=path.stem)
            scores[d].append(s)
            row[d] = 100 * pool([s], (0.5,))["0.5"]["IMQ_mad"]
        a, b = out
        if a.shape == b.shape:
            diff = np.abs(a - b)
            stats = (f"{diff.max():.4f} | {diff.mean():.2e} | {np.mean(diff > 1 / 255):.2e} | "
                     f"{np.mean(diff > 8 / 255):.2e}")
        else:
            stats = "people differ | | |"
        print(f"| {path.stem} | {len(a)} / {len(b)} | {stats} | {row[0]:.2f} | {row[1]:.2f} | "
              f"{secs[0]:.2f} | {secs[1]:.2f} |", flush=True)
    for d, name in enumerate(devs):
        r = pool(scores[d], (0.5,))["0.5"]
        print(f"{name}: IMQ_mad {100 * r['IMQ_mad']:.2f}, IMQ_mse {100 * r['IMQ_mse']:.2f}, RQ {100 * r['RQ']:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
