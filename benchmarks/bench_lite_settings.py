"""InstMatt-Lite inference settings on held-out composites (docs/instmatt-lite.md, "Inference").

    python benchmarks/bench_lite_settings.py [--pack train_pack] [--images 16] [--weights models/instmatt-lite.pth]
                                             [--rows 0 8]

Draws the training-time validation composites (held-out cut-outs and backgrounds of the training pack, fixed
seeds), gives the network the GT instances (alpha >= 0.5) as guidance, and prints IMQ (x100, IoU 0.5, mattes
rounded to 8 bit) and seconds per image for each setting: crop size / network size, deep guided filter or not,
the 2/255 floor and the solid core.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from instmatt_app.evaluation.imq import pool, score_image
from instmatt_app.nets.lite_matter import FLOOR, load_lite, matte_people
from instmatt_app.nets.lite_train import ValidationSet, _to_u8, normalise_sum

# (label, fine_side, base_side, band_only guided filter, floor, solid core, fill holes, trust core)
# (every row fades the crop's inner sides, see lite_matter._taper_crop_edges)
SETTINGS = [
    ("1024 / 512, deep guided filter, no clean-up", 1024, 512, False, 0.0, False, 0.0, 0.0),
    ("1024 / 512, deep guided filter, < 2/255 -> 0", 1024, 512, False, FLOOR, False, 0.0, 0.0),
    ("1024 / 512, guided filter in the band only, < 2/255 -> 0", 1024, 512, True, FLOOR, False, 0.0, 0.0),
    ("768 / 384, no clean-up", 768, 384, False, 0.0, False, 0.0, 0.0),
    ("1280 / 640, no clean-up", 1280, 640, False, 0.0, False, 0.0, 0.0),
    ("512 / 512 + colour guided filter, < 2/255 -> 0", 512, 512, False, FLOOR, False, 0.0, 0.0),
    ("the same + solid core", 512, 512, False, FLOOR, True, 0.0, 0.0),
    ("the same + small mask holes filled", 512, 512, False, FLOOR, True, 0.05, 0.0),
    ("the same + trusted mask core (shipped)", 512, 512, False, FLOOR, True, 0.05, 0.03),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pack", type=Path, default=REPO / "train_pack")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--weights", type=Path, default=REPO / "models" / "instmatt-lite.pth")
    ap.add_argument("--rows", type=int, nargs="*", help="only these rows of the table (0 = the first)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    net = load_lite(args.weights)
    val = ValidationSet(str(args.pack / "cutouts_val"), str(args.pack / "backgrounds_val"), args.images)
    print("| setting (crop px / network px) | IMQ_mad | IMQ_mse | RQ | s / image |")
    print("| --- | ---: | ---: | ---: | ---: |")
    rows = [SETTINGS[i] for i in args.rows] if args.rows else SETTINGS
    for label, fine, base, band_only, floor, core, holes, trust in rows:
        net.band_only = band_only
        scores, t0 = [], time.perf_counter()
        for i, (image, gts) in enumerate(val.items):
            a = normalise_sum(matte_people(net, image, gts >= 0.5, fine_side=fine, base_side=base, floor=floor,
                                           solid_core=core, fill_holes=holes, trust_core=trust))
            scores.append(score_image(list(_to_u8(a)), list(_to_u8(gts)), name=str(i)))
        dt = (time.perf_counter() - t0) / len(val.items)
        r = pool(scores, (0.5,))["0.5"]
        print(f"| {label} | {100 * r['IMQ_mad']:.2f} | {100 * r['IMQ_mse']:.2f} | {r['RQ']:.3f} | {dt:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
