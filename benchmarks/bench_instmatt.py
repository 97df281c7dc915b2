"""Speed of the InstMatt backend: our batched implementation vs a faithful per-instance fp32 loop.

The "official way" (infer.py) runs the backbone once per person (batch 1, fp32, default memory
format), then progressive fusion and the parallel MIR. Ours runs all people as one batch
(chunked), channels_last, and on CUDA fp16/bf16 autocast. Both share pre-processing, fusion and
refinement code, so the ratio measures the backbone strategy. Random weights are fine for timing
(use --weights to time a real checkpoint).

    python benchmarks/bench_instmatt.py                        # CPU, 512x384, 4 people
    python benchmarks/bench_instmatt.py --device cuda --size 1280x720 --people 4
    python benchmarks/bench_instmatt.py --fidelity ../shared/fixtures/instmatt-official-random

Prints a table (seconds per photo, best of --repeats) and the speed-up ratio; ``--fidelity DIR``
instead prints our largest errors against the official arrays of every fixture case, per stage.
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np
import torch

from instmatt_app.nets.instmatt_backend import InstMattMatter, prepare
from instmatt_app.nets.instmatt_model import InstMattNet
from instmatt_app.nets.progressive import accept_in_band, progressive_fusion
from instmatt_app.nets.refinement import refine


def synthetic_people(height: int, width: int, people: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A textured (H, W, 3) uint8 photo and (people, H, W) float32 masks of overlapping upright ellipses."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), sigmaX=3)
    masks = np.zeros((people, height, width), np.float32)
    for i in range(people):
        cx = int((i + 0.5) * width / people)
        cy = int(height * 0.6)
        axes = (max(4, int(width / people * 0.6)), max(4, int(height * 0.4)))
        cv2.ellipse(masks[i], (cx, cy), axes, 0, 0, 360, 1.0, -1)
    return image, masks


@torch.no_grad()
def official_way(model: InstMattNet, image: np.ndarray, masks: np.ndarray, device: str, max_side: int | None):
    """infer.py's strategy: one fp32 backbone forward per person, then fusion and parallel MIR."""
    prep = prepare(image, masks, max_side)
    net_image = torch.from_numpy(prep.net_image).to(device)[None]
    outs = [model(net_image, torch.from_numpy(prep.net_trimask[i:i + 1]).to(device))
            for i in range(len(prep.net_trimask))]
    os8, os4, os1, feature = (torch.cat([getattr(o, n) for o in outs]) for n in
                              ("alpha_os8", "alpha_os4", "alpha_os1", "feature"))
    fusion = progressive_fusion(os8, os4, os1)
    k = len(masks)
    result = refine(model.refiner, net_image.expand(k, -1, -1, -1), fusion.fused, feature, mode="parallel")
    final = accept_in_band(fusion.fused, result.trimattes, fusion.band_os1)
    return final.cpu()


def timed(fn, repeats: int, device: str) -> float:
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


FLOAT_STAGES = [("enc_out", "encoder"), ("aspp_out", "aspp"), ("feature_os8", "feature_os8"),
                ("alpha_os8", "alpha_os8"), ("alpha_os4", "alpha_os4"), ("alpha_os1", "alpha_os1")]


def fidelity(fixture_dir: str, channels_last: bool = False, precision: str = "fp32") -> int:
    """Largest abs error per float stage and mismatch counts per discrete stage, all cases."""
    import glob
    import os

    from instmatt_app.nets.instmatt_backend import official_uint8
    from instmatt_app.nets.instmatt_checkpoint import load_instmatt

    model = load_instmatt(os.path.join(fixture_dir, "checkpoint.pth"))
    matter = InstMattMatter(model, channels_last=channels_last, precision=precision)
    worst: dict[str, float] = {}
    for path in sorted(glob.glob(os.path.join(fixture_dir, "case_*.npz"))):
        with np.load(path) as z:
            d = {k: z[k] for k in z.files}
        run = matter.run(d["image"], d["masks"], refine="parallel", keep_history=True,
                         keep_intermediate="enc_out" in d)
        r = run.refinement
        row: dict[str, float] = {
            "net_input differs": float(not (np.array_equal(run.prepared.net_image, d["net_image"]) and
                                            np.array_equal(run.prepared.net_trimask, d["net_trimask"]))),
        }
        for key, attr in FLOAT_STAGES:
            if key in d:
                row[key] = float(np.abs(getattr(run.backbone, attr).numpy() - d[key]).max())
        y0, x0 = (int(v) for v in d["feature_crop_yx"])
        row["feature_crop"] = float(np.abs(run.backbone.feature[:, :, y0:y0 + 32, x0:x0 + 32].numpy()
                                           - d["feature_crop"]).max())
        row["unknown_os4 px"] = float((run.fusion.band_os4.numpy() != d["unknown_os4"].astype(bool)).sum())
        row["unknown_os1 px"] = float((run.fusion.band_os1.numpy() != d["unknown_os1"].astype(bool)).sum())
        fused = run.fusion.fused.numpy()
        row["fused"] = float(np.abs(fused - d["fused"]).max() if "fused" in d else
                             np.abs(fused[:, 0] - d["fused_t"]).max())
        row["mir_bad/boxes/sweeps differ"] = float(not (np.array_equal(r.duplicates, d["mir_bad"].astype(bool)) and
                                                        np.array_equal(r.boxes[:, :4], d["mir_boxes"][:, :4]) and
                                                        r.sweeps == int(d["mir_sweeps"])))
        mir = r.trimattes.numpy()
        row["mir_out"] = float(np.abs(mir - d["mir_out"]).max() if "mir_out" in d else
                               np.abs(mir[:, 0] - d["mir_out_t"]).max())
        ours = official_uint8(run.final[:, 0].numpy(), run.prepared)
        row["out_uint8 px"] = float((ours != d["out_uint8"].transpose(2, 0, 1)).sum())
        print(os.path.basename(path), "  ".join(f"{k} {v:.2g}" for k, v in row.items()))
        for k, v in row.items():
            worst[k] = max(worst.get(k, 0.0), v)
    print("worst over all cases:", "  ".join(f"{k} {v:.2g}" for k, v in worst.items()))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="512x384", help="photo WIDTHxHEIGHT (default 512x384)")
    ap.add_argument("--people", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = leave as is)")
    ap.add_argument("--weights", default=None, help="official-format checkpoint (default: random weights)")
    ap.add_argument("--max-side", type=int, default=1280)
    ap.add_argument("--fidelity", metavar="FIXTURE_DIR", help="compare with the official fixture arrays instead")
    ap.add_argument("--channels-last", action="store_true",
                    help="with --fidelity: use the matter's default channels_last format (default NCHW)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.fidelity:
        return fidelity(args.fidelity, channels_last=args.channels_last,
                        precision="fp32" if args.precision == "auto" else args.precision)
    width, height = (int(v) for v in args.size.lower().split("x"))
    image, masks = synthetic_people(height, width, args.people)
    if args.weights:
        from instmatt_app.nets.instmatt_checkpoint import load_instmatt

        model = load_instmatt(args.weights)
    else:
        torch.manual_seed(0)
        model = InstMattNet()
    model = model.eval().to(args.device)
    matter = InstMattMatter(model, device=args.device, precision=args.precision, max_side=args.max_side)
    baseline_model = InstMattNet().eval().to(args.device)
    baseline_model.load_state_dict(model.state_dict())      # same weights, default memory format

    def ours():
        matter.clear_cache()
        matter.run(image, masks, refine="parallel")

    def theirs():
        official_way(baseline_model, image, masks, args.device, args.max_side)

    # warm-up (oneDNN / cuDNN autotuning), then best of N
    ours()
    theirs()
    t_ours = timed(ours, args.repeats, args.device)
    t_theirs = timed(theirs, args.repeats, args.device)
    prep = prepare(image, masks, args.max_side)
    dev = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else \
        f"CPU ({torch.get_num_threads()} threads)"
    print(f"InstMatt backend speed — {dev}, photo {width}x{height}, {args.people} people, "
          f"network input {prep.net_image.shape[2]}x{prep.net_image.shape[1]}, best of {args.repeats}")
    print(f"{'implementation':<48} {'s / photo':>10}")
    print(f"{'per-instance fp32 loop (official infer.py way)':<48} {t_theirs:>10.3f}")
    dtype = matter._autocast_dtype()
    label = f"batched ({matter.last_info.get('chunk')} per batch), channels_last" + \
        (f", autocast {str(dtype).replace('torch.', '')}" if dtype is not None else ", fp32")
    print(f"{label:<48} {t_ours:>10.3f}")
    print(f"speed-up: {t_theirs / t_ours:.2f}x")
    stages = matter.last_info.get("timings", {})
    print("our stages (last run): " + ", ".join(f"{k} {v:.3f}s" for k, v in stages.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
