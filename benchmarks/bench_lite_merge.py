"""How much two detections' InstMatt-Lite alphas must overlap to be merged into one person, and how
many passes of iterated guidance to make.

    python benchmarks/bench_lite_merge.py DATASET [--overlaps 0 0.3 0.4 0.5] [--passes 1 8] [--refine none]
                                          [--limit N] [--weights models/instmatt-lite.pth] [--gt-masks given|detected]
                                          [--option pass_side=640 ...] [--person-boxes movenet]

DATASET is HIM2K-layout (``images/<subset>/<name>.jpg``, ``alphas/<subset>/<name>/NN.png``), e.g. the
validation composites ``instmatt synth train_pack/cutouts_val train_pack/backgrounds_val -o valdet -n 20
--seed 5050 --max-people 4``. The embedded detector runs once per photo; for every overlap the engine
mattes those detections as its own (``Engine.run(..., detected=True)``: merged at that overlap, people
whose alpha ≥ 0.5 covers < 0.2 % of the photo dropped) and the mattes are scored as the written 8-bit
PNGs. 0 = no merging (empty people are still dropped). Every overlap is measured with every number of
guidance passes (``LiteMatter.settle``; 1 = a single pass; default: the engine's default only).
``--gt-masks`` guides with the GT instances binarised at 0.5 instead of the detector's masks: ``given``
as a user's masks (no passes, no merging: measures matting alone), ``detected`` treated as if the
detector had found them (what the passes do to exact masks).
``--person-boxes`` picks the default detector's person box detector (the tables in docs/instmatt-lite.md were
measured with ``movenet``, before SSDLite's boxes were fused in). Prints IMQ ×100 at IoU 0.5, RQ and TP / FP / FN.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from instmatt_app.evaluation.imq import pool, read_instance_folder, score_image
from instmatt_app.io.image_io import load_image
from instmatt_app.nets.embedded import BOX_DETECTORS
from instmatt_app.pipeline import Engine, EngineConfig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--overlaps", type=float, nargs="+", default=[0.0, 0.3, 0.4, 0.5])
    ap.add_argument("--passes", type=int, nargs="+", default=[None],
                    help="passes of iterated guidance (default: the engine's default)")
    ap.add_argument("--refine", default="none", choices=["none", "parallel", "cycle"])
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--weights", help="InstMatt-Lite weights (default: the shipped ones)")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="another InstMatt-Lite option (LiteMatter's keyword arguments; VALUE as JSON), e.g. pass_side=640")
    ap.add_argument("--gt-masks", choices=["given", "detected"], default=None,
                    help="guide with the GT instances (binarised at 0.5) instead of the detector's masks")
    ap.add_argument("--person-boxes", default="auto", choices=BOX_DETECTORS,
                    help="the default detector's person box detector (default auto)")
    args = ap.parse_args()
    photos = sorted((args.dataset / "images").glob("*/*.jpg"))[: args.limit or None]
    if not photos:
        print(f"{args.dataset}: no images/<subset>/*.jpg", file=sys.stderr)
        return 2
    weights = {"lite": args.weights} if args.weights else {}
    extra = {}
    for item in args.option:
        key, _, value = item.partition("=")
        extra[key] = json.loads(value)
    grid = [(n, o) for n in args.passes for o in args.overlaps]
    engines = {(n, o): Engine(EngineConfig(device="cpu", matting="lite", refine=args.refine, weights=weights,
                                           guidance_passes=n, matter_options={"merge_overlap": o, **extra},
                                           detector_options={"boxes": args.person_boxes}))
               for n, o in grid}
    detector = engines[grid[0]].detector
    scores: dict[tuple, list] = {key: [] for key in grid}
    for path in photos:
        image = load_image(path)
        _, gts = read_instance_folder(args.dataset / "alphas" / path.parent.name / path.stem)
        if args.gt_masks:
            masks = np.stack([g > 127 for g in gts]).astype(np.float32)
        else:
            dets = detector.detect(image)
            masks = np.stack([d.mask for d in dets]) if dets else np.zeros((0,) + image.shape[:2], np.float32)
        for key, engine in engines.items():
            r = engine.run(image, masks=masks.copy(), detected=args.gt_masks != "given")
            preds = [np.round(a * 255).astype(np.uint8) for a in r.alphas] if r.instances else []
            scores[key].append(score_image(preds, gts, name=path.stem))
    print(f"{len(photos)} photos, refine {args.refine}"
          + (f", GT masks {args.gt_masks}" if args.gt_masks else ", the detector's masks"))
    print("| guidance passes | merge overlap | IMQ_mad | IMQ_mse | RQ | TP / FP / FN |")
    print("| ---: | ---: | ---: | ---: | ---: | --- |")
    for n, o in grid:
        r = pool(scores[(n, o)], (0.5,))["0.5"]
        passes = engines[(n, o)].matter.guidance_passes
        print(f"| {passes} | {o:.2f} | {100 * r['IMQ_mad']:.2f} | {100 * r['IMQ_mse']:.2f} | {100 * r['RQ']:.1f} | "
              f"{r['TP']} / {r['FP']} / {r['FN']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
