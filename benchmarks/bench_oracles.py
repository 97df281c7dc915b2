"""Where the whole pipeline loses its IMQ: the shipped pipeline against oracles that fix one stage.

    python benchmarks/bench_oracles.py DATASET [--grids 0 28] [--refine parallel] [--limit N]

DATASET is HIM2K-layout (``images/<subset>/<name>.jpg``, ``alphas/<subset>/<name>/NN.png``), e.g. the
held-out composites ``instmatt synth train_pack/cutouts_val train_pack/backgrounds_val -o heldout -n 30
--seed 2026 --max-people 4``. Rows, each through the shipped engine (InstMatt-Lite, the default detector):

* **shipped**: what a user gets (the embedded detector, iterated guidance, merging, refinement).
* **perfect person boxes**: the default detector's person box stage (MoveNet + SSDLite) replaced by the
  GT instances' boxes (score 1, no keypoints); the rest of the detector (pose landmarker, human alpha,
  merging) and the matter as shipped. Measures what a better *box* detector could give.
* **GT masks at N × N**: every GT instance (binarised at 0.5) brought down to N × N pixels inside its
  box and back (bilinear, ≥ 0.5), given to the matter as a user's masks: N = 28 is the resolution of
  Mask R-CNN's mask head, i.e. an instance segmenter of that grade that finds everyone; N = 0 = the
  exact GT masks (matting alone). Measures what an *instance segmenter* could give.

The mattes are scored as the written 8-bit PNGs would be. Prints IMQ ×100 at IoU 0.5, RQ and TP / FP / FN.
"""
from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from instmatt_app.evaluation.imq import pool, read_instance_folder, score_image
from instmatt_app.io.image_io import load_image
from instmatt_app.nets import embedded
from instmatt_app.nets.person_boxes import PersonBox
from instmatt_app.pipeline import Engine, EngineConfig, mask_box


def coarse_mask(mask: np.ndarray, grid: int) -> np.ndarray:
    """``mask`` ((H, W) bool) at ``grid`` × ``grid`` inside its box and back: (H, W) float32 0/1; grid 0: as is."""
    out = mask.astype(np.float32)
    box = mask_box(out, None)
    if grid <= 0 or box is None:
        return out
    x0, y0, x1, y1 = (int(v) for v in box)
    small = cv2.resize(out[y0:y1, x0:x1], (grid, grid), interpolation=cv2.INTER_AREA)
    back = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    out[y0:y1, x0:x1] = back >= 0.5
    return out


class _GivenBoxes:
    """Stands in for the person box detector: returns the boxes it is given, scaled to the image it sees."""

    name = "gt-boxes"

    def __init__(self, boxes: list[tuple[float, float, float, float]], width: int):
        self.boxes, self.width = boxes, width

    def detect(self, image_rgb_uint8: np.ndarray) -> list[PersonBox]:
        s = image_rgb_uint8.shape[1] / self.width
        return [PersonBox(tuple(float(v) * s for v in b), 1.0, None, "gt") for b in self.boxes]


@contextmanager
def given_person_boxes(boxes: list[tuple[float, float, float, float]], width: int):
    """Within the block the default detector's person boxes are ``boxes`` (photo pixels)."""
    with mock.patch.object(embedded, "person_boxes", lambda *a, **k: _GivenBoxes(boxes, width)):
        yield


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", type=Path)
    ap.add_argument("--grids", type=int, nargs="+", default=[0, 28],
                    help="GT-mask rows: N x N per person (0 = exact GT masks)")
    ap.add_argument("--refine", default="parallel", choices=["none", "parallel", "cycle"])
    ap.add_argument("--limit", type=int, default=0)
    args = ap.parse_args()
    photos = sorted((args.dataset / "images").glob("*/*.jpg"))[: args.limit or None]
    if not photos:
        print(f"{args.dataset}: no images/<subset>/*.jpg", file=sys.stderr)
        return 2
    engine = Engine(EngineConfig(device="cpu", matting="lite", refine=args.refine))
    engine.prepare()
    rows = ["shipped", "perfect person boxes"] + [f"GT masks at {g} x {g}" if g else "exact GT masks"
                                                  for g in args.grids]
    scores: dict[str, list] = {r: [] for r in rows}

    def score(row: str, result, gts, name: str) -> None:
        preds = [np.round(a * 255).astype(np.uint8) for a in result.alphas] if result.instances else []
        scores[row].append(score_image(preds, gts, name=name))

    for path in photos:
        image = load_image(path)
        _, gts = read_instance_folder(args.dataset / "alphas" / path.parent.name / path.stem)
        binary = [g > 127 for g in gts]
        score("shipped", engine.run(image), gts, path.stem)
        boxes = [b for b in (mask_box(m, None) for m in binary) if b is not None]
        with given_person_boxes(boxes, image.shape[1]):
            score("perfect person boxes", engine.run(image), gts, path.stem)
        for g, row in zip(args.grids, rows[2:]):
            masks = np.stack([coarse_mask(m, g) for m in binary])
            score(row, engine.run(image, masks=masks), gts, path.stem)
        print(f"{path.stem}", end="  ", flush=True)
    print(f"\n{len(photos)} photos, refine {args.refine}")
    print("| guidance | IMQ_mad | IMQ_mse | RQ | TP / FP / FN |")
    print("| --- | ---: | ---: | ---: | --- |")
    for row in rows:
        r = pool(scores[row], (0.5,))["0.5"]
        print(f"| {row} | {100 * r['IMQ_mad']:.2f} | {100 * r['IMQ_mse']:.2f} | {100 * r['RQ']:.1f} | "
              f"{r['TP']} / {r['FP']} / {r['FN']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
