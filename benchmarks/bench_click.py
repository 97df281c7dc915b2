"""Click-to-add-a-person: time per click after the first, and pick quality on COCO persons.

    python benchmarks/bench_click.py                 # timing: default (GrabCut, with/without prior), tiny SAM
    python benchmarks/bench_click.py --quality       # IoU distribution on ../shared/data/coco_persons
    python benchmarks/bench_click.py --quality --prior rvm --others

Timing uses the qualitative photos of the development data resized to a long side of ``--size``
(1280 px by default); each backend gets a first click (builds the per-photo cache: working copy,
SAM embedding) and then ``--clicks`` further clicks at different places, whose median and maximum
are printed, with the median CPU time of the process (all threads; a fairer number than wall
time when other work shares the machine). The SAM timed here is a tiny randomly initialised one (the real vit_b encoder costs
seconds per photo on a CPU, once; its per-click decoder cost is what a click costs).

Quality: every COCO person covering >= 2 % of its photo is clicked once at the point farthest
inside its ground-truth mask; printed are the IoU of the picked mask with that person and the
"leak", the share of the picked mask lying on *other* people.
``--prior gt`` uses the union of the ground-truth masks blurred by sigma 2 px as a stand-in for the
default matter's human alpha; ``--prior rvm`` the real RVM alpha (needs models/rvm_mobilenetv3_fp32.onnx);
``--others`` passes the other people's ground-truth masks as already found (the GUI's situation
when the detector missed one person); ``--no-pose`` leaves the embedded pose landmarker out.
"""
from __future__ import annotations

import argparse
import glob
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from instmatt_app.nets.interactive import NothingPickedError, PickSession  # noqa: E402

SHARED = REPO.parent / "shared" / "data"


def _read_rgb(path: str | Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _resize_long(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    s = size / max(h, w)
    return cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)


def tiny_sam(image_size: int = 256):
    """A randomly initialised SAM small enough for a CPU benchmark (no download)."""
    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    torch.manual_seed(0)
    dim, patch = 64, 16
    grid = image_size // patch
    return Sam(
        image_encoder=ImageEncoderViT(img_size=image_size, patch_size=patch, embed_dim=96, depth=2, num_heads=4,
                                      mlp_ratio=2.0, out_chans=dim, qkv_bias=True,
                                      norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), use_rel_pos=True,
                                      window_size=4, global_attn_indexes=(1,)),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(grid, grid),
                                     input_image_size=(image_size, image_size), mask_in_chans=8),
        mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=128, num_heads=8),
                                 transformer_dim=dim, iou_head_depth=3, iou_head_hidden_dim=64),
    ).eval()


def _rvm():
    from instmatt_app.nets.rvm import HumanMatter

    path = REPO / "models" / "rvm_mobilenetv3_fp32.onnx"
    if not path.is_file():
        return None
    return HumanMatter(path)


def bench_timing(size: int, clicks: int) -> None:
    from instmatt_app.nets.sam import SamInteractivePredictor

    photos = [_resize_long(_read_rgb(p), size) for p in sorted((SHARED / "qualitative" / "images").glob("*.jpg"))]
    rvm = _rvm()
    sam = SamInteractivePredictor(tiny_sam())
    fractions = [(0.5, 0.5), (0.3, 0.6), (0.7, 0.55), (0.45, 0.35), (0.6, 0.7), (0.25, 0.45), (0.75, 0.4),
                 (0.55, 0.8), (0.4, 0.6), (0.65, 0.3)]
    backends = [("GrabCut alone", None, False, None), ("default, no prior (pose)", None, False, "auto"),
                ("default, RVM prior + pose", None, True, "auto"), ("tiny random SAM", sam, False, None)]
    print(f"time per click (CPU, {len(photos)} photos at long side {size} px, {clicks} clicks after the first)")
    for name, backend, with_prior, pose in backends:
        if with_prior and rvm is None:
            print(f"  {name:28s} skipped (models/rvm_mobilenetv3_fp32.onnx not installed)")
            continue
        firsts, later, later_cpu = [], [], []
        for image in photos:
            h, w = image.shape[:2]
            prior = rvm(image) if with_prior else None
            session = PickSession(image, backend=backend, prior=prior, pose=pose)
            pts = [(fx * w, fy * h) for fx, fy in (fractions * (clicks // len(fractions) + 1))[: clicks + 1]]
            for k, pt in enumerate(pts):
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    session.click(points=[pt])
                except NothingPickedError:
                    pass
                (firsts if k == 0 else later).append(time.perf_counter() - t0)
                if k:
                    later_cpu.append(time.process_time() - c0)
        print(f"  {name:28s} first {1000 * statistics.median(firsts):7.1f} ms   after the first: median "
              f"{1000 * statistics.median(later):6.1f} ms, max {1000 * max(later):6.1f} ms "
              f"(CPU time median {1000 * statistics.median(later_cpu):6.1f} ms)")
    print(f"  (tiny SAM embeddings computed: {sam.embeddings_computed} for {len(photos)} photos)")


def bench_quality(prior_kind: str, with_others: bool, pose: str | None) -> None:
    root = SHARED / "coco_persons"
    rvm = _rvm() if prior_kind == "rvm" else None
    if prior_kind == "rvm" and rvm is None:
        raise SystemExit("models/rvm_mobilenetv3_fp32.onnx not installed")
    ious, leaks, times = [], [], []
    for path in sorted(glob.glob(str(root / "images" / "coco" / "*.jpg"))):
        pid = Path(path).stem
        masks = [cv2.imread(m, cv2.IMREAD_GRAYSCALE) > 127
                 for m in sorted(glob.glob(str(root / "masks" / "coco" / pid / "*.png")))]
        if not masks:
            continue
        image = _read_rgb(path)
        h, w = image.shape[:2]
        prior = None
        if prior_kind == "gt":
            prior = cv2.GaussianBlur(np.max(masks, axis=0).astype(np.float32), (0, 0), sigmaX=2.0)
        elif prior_kind == "rvm":
            prior = rvm(image)
        session = None
        for i, gt in enumerate(masks):
            if gt.sum() < 0.02 * h * w:
                continue
            others = [m for j, m in enumerate(masks) if j != i]
            if with_others or session is None:
                session = PickSession(image, prior=prior, others=others if with_others else None, pose=pose)
            dt = cv2.distanceTransform(gt.astype(np.uint8), cv2.DIST_L2, 5)
            y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
            t0 = time.perf_counter()
            try:
                picked = session.click(points=[(x + 0.5, y + 0.5)]).mask > 0.5
            except NothingPickedError:
                picked = np.zeros_like(gt)
            times.append(time.perf_counter() - t0)
            ious.append((picked & gt).sum() / max((picked | gt).sum(), 1))
            rest = np.max(others, axis=0) & ~gt if others else np.zeros_like(gt)
            leaks.append((picked & rest).sum() / max(picked.sum(), 1))
    ious, leaks = np.array(ious), np.array(leaks)
    q = lambda a, p: float(np.percentile(a, p))  # noqa: E731
    print(f"COCO persons >= 2 % of the photo: n={len(ious)}  prior={prior_kind}  "
          f"others={'given' if with_others else 'no'}  pose={'yes' if pose else 'no'}")
    print(f"  IoU  mean {ious.mean():.3f}  p10 {q(ious, 10):.3f}  p25 {q(ious, 25):.3f}  median {q(ious, 50):.3f}"
          f"  p75 {q(ious, 75):.3f}   share >= 0.5: {(ious >= 0.5).mean():.2f}  >= 0.8: {(ious >= 0.8).mean():.2f}")
    print(f"  leak onto other people: mean {leaks.mean():.3f}  median {q(leaks, 50):.3f}  p90 {q(leaks, 90):.3f}"
          f"   share <= 0.1: {(leaks <= 0.1).mean():.2f}")
    print(f"  time per click: median {1000 * q(np.array(times), 50):.0f} ms, max {1000 * max(times):.0f} ms")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quality", action="store_true", help="IoU on COCO persons instead of timing")
    ap.add_argument("--prior", choices=["none", "gt", "rvm"], default="none")
    ap.add_argument("--others", action="store_true", help="give the other people's masks as already found")
    ap.add_argument("--no-pose", action="store_true", help="without the embedded pose landmarker")
    ap.add_argument("--size", type=int, default=1280, help="long side of the timing photos (px)")
    ap.add_argument("--clicks", type=int, default=10, help="clicks per photo after the first")
    args = ap.parse_args(argv)
    if args.quality:
        bench_quality(args.prior, args.others, None if args.no_pose else "auto")
    else:
        bench_timing(args.size, args.clicks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
