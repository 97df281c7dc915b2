"""Ablation and speed of the embedded default's multi-instance refinement (paper Table 3 style).

Rows (the tri-masks / refinement settings of Table 3, on the embedded default):

* ``masks``      — the coarse masks themselves as the alphas (M_t only, no matting);
* ``no-refine``  — the default matter's tri-mattes (tri-mask guidance, no refinement);
* ``parallel``   — + parallel refinement;
* ``cycle-true`` — + cycle refinement in the true front-to-back order;
* ``cycle-rev``  — + cycle refinement in the reversed (back-to-front) order;
* ``cycle-est``  — + cycle refinement in the order ``DefaultRefiner.estimate_order`` guesses;
* ``oracle-split`` — not a method: the unrefined human alpha split by the GT shares, the bound
  for any refinement that, like this one, keeps the human alpha and changes only the split.

Coarse masks are derived from the ground truth to isolate refinement (``--masks``):

* ``visible`` — GT visible alpha > 0.5 (exact, non-overlapping masks);
* ``amodal``  — the person's whole layer alpha > 0.5, cut to where the composite has human alpha
  > 0.5: a back person's mask also covers the front person where it is hidden behind it, which
  is how the embedded detector's masks overlap (measured on the dev set: of the overlap pixels
  that belong to one of the two people, 85 % belong to the one in front);
* ``bleed``   — ``visible`` plus up to 3 % of the long side of ``amodal`` (a mask bleeding a little
  into the people in front of its person, the mild version of ``amodal``);
* ``detector`` — the embedded default detector's own masks, matched to the GT by IoU (unmatched
  detections go last in the order, unmatched GT count as misses in IMQ).

Reported: IMQ_mad / IMQ_mse (×100, threshold 0.5, pooled as the official script) over all
instances, and MAD / MSE (×1000) restricted to the overlap region O: pixels within 1 % of the
long side of the GT alpha (> 0.02) of two or more people. ``--speed`` times refinement on the
largest 4-person composite resized to a 1280-px long side (``--side``): parallel, the first cycle run and a
re-run of cycle after an order change, and cycle with the estimated order after parallel (best of 3; wall-clock and process CPU time, which on
a shared machine is the better measure of what an idle one would take).

Usage::

    python benchmarks/bench_refinement.py --data ../shared/data/synthetic --masks visible amodal
    instmatt synth ../shared/data/p3m ../shared/data/coco_backgrounds/images -o /tmp/synth_more -n 30 --seed 9
    python benchmarks/bench_refinement.py --data /tmp/synth_more --cutouts ../shared/data/p3m
    python benchmarks/bench_refinement.py --data ../shared/data/synthetic --speed

The data folder is HIM2K-layout with a ``composites.json`` (the dev set, or ``instmatt synth``
output); the layer order is read from it (NN.png = composite order, 00 = back-most).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from instmatt_app.evaluation.imq import pool, score_image
from instmatt_app.nets.default_matter import DefaultMatter
from instmatt_app.nets.default_refiner import DefaultRefiner, RefinerConfig
from instmatt_app.nets.image_context import ImageContext

ROWS = ("masks", "no-refine", "parallel", "cycle-true", "cycle-rev", "cycle-est", "oracle-split")


# ----------------------------------------------------------------------------- data
def _read_grey(path: Path) -> np.ndarray:
    a = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if a is None:
        raise SystemExit(f"cannot read {path}")
    return a


def layer_alpha(entry: dict, layer: dict, roots: Sequence[Path]) -> np.ndarray | None:
    """The whole (un-occluded) alpha of one composite layer, re-rendered from composites.json:
    (H, W) float32 in [0, 1], or None when the record lacks the placement fields or the cut-out.
    roots: folders the record's cut-out paths may be relative to."""
    try:
        rel = layer["person_files"]["alpha"]
        path = next((r / rel for r in roots if (r / rel).exists()), None)
        if path is None:
            return None
        src = _read_grey(path).astype(np.float32) / 255.0
        x1, y1, x2, y2 = layer["source_crop_xyxy"]
        pw, ph = layer["pasted_size_wh"]
        ox, oy = layer["paste_offset_xy"]
    except KeyError:
        return None
    crop = src[y1:y2, x1:x2]
    if layer.get("flip"):
        crop = crop[:, ::-1]
    shrink = pw < crop.shape[1]
    crop = cv2.resize(np.ascontiguousarray(crop), (pw, ph),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    crop = np.round(np.clip(crop, 0, 1) * 255) / 255.0
    H, W = entry["height"], entry["width"]
    out = np.zeros((H, W), np.float32)
    fx1, fy1 = max(0, ox), max(0, oy)
    fx2, fy2 = min(W, ox + pw), min(H, oy + ph)
    if fx2 > fx1 and fy2 > fy1:
        out[fy1:fy2, fx1:fx2] = crop[fy1 - oy:fy2 - oy, fx1 - ox:fx2 - ox]
    return out


def load_set(folder: Path, cutouts: Path | None = None) -> list[dict]:
    """Images of a HIM2K-layout folder with composites.json: dicts with name, image (H, W, 3)
    uint8 RGB, gts (k, H, W) float32 visible alphas in composite order, layers (k, H, W) or None.
    cutouts: the cut-out folder ``instmatt synth`` was given (to re-render whole layer alphas)."""
    meta = json.loads((folder / "composites.json").read_text())
    pack = folder.parent
    roots = [pack] + ([cutouts] if cutouts else [])
    items = []
    for e in meta["images"]:
        candidates = [pack / e["image"], folder / e["image"], folder / "images" / "comp" / f"{e['name']}.jpg"]
        img_path = next((p for p in candidates if p.exists()), None)
        if img_path is None:
            raise SystemExit(f"image of {e['name']} not found (tried {candidates[0]})")
        bgr = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise SystemExit(f"cannot read {img_path}")
        layers_meta = e["layers_back_to_front"]
        alpha_dirs = [pack / l["alpha_file"] for l in layers_meta]
        alpha_dirs = [p if p.exists() else folder / "alphas" / "comp" / e["name"] / p.name for p in alpha_dirs]
        gts = np.stack([_read_grey(p).astype(np.float32) / 255.0 for p in alpha_dirs])
        layers = [layer_alpha(e, l, roots) for l in layers_meta]
        items.append({"name": e["name"], "image": cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), "gts": gts,
                      "layers": None if any(l is None for l in layers) else np.stack(layers)})
    return items


def coarse_masks(item: dict, kind: str, detector=None) -> tuple[np.ndarray, list[int], np.ndarray]:
    """(masks (n, H, W) float32, true front-to-back order of the masks, gt index of each mask or −1)."""
    gts = item["gts"]
    k = len(gts)
    if kind == "visible":
        return (gts > 0.5).astype(np.float32), list(range(k))[::-1], np.arange(k)
    if kind == "amodal":
        if item["layers"] is None:
            raise SystemExit(f"{item['name']}: composites.json has no placement to re-render layer alphas")
        human = gts.sum(axis=0) > 0.5
        return ((item["layers"] > 0.5) & human[None]).astype(np.float32), list(range(k))[::-1], np.arange(k)
    if kind == "bleed":
        # a detector's bleeding: each mask reaches up to 3 % of the long side into the people
        # in front of it (behind whom its person continues)
        if item["layers"] is None:
            raise SystemExit(f"{item['name']}: composites.json has no placement to re-render layer alphas")
        human = gts.sum(axis=0) > 0.5
        r = max(2, round(0.03 * max(gts.shape[1:])))
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        vis = gts > 0.5
        reach = np.stack([cv2.dilate(v.astype(np.uint8), kernel) > 0 for v in vis])
        return (vis | ((item["layers"] > 0.5) & human[None] & reach)).astype(np.float32), \
            list(range(k))[::-1], np.arange(k)
    if kind == "detector":
        from scipy.optimize import linear_sum_assignment

        dets = detector.detect(item["image"], context=item["ctx"])
        if not dets:
            return np.zeros((0,) + gts.shape[1:], np.float32), [], np.zeros(0, int)
        masks = np.stack([d.mask for d in dets]).astype(np.float32)
        db, gb = masks > 0.5, gts > 0.5
        iou = np.array([[(d & g).sum() / ((d | g).sum() + 1.0) for g in gb] for d in db])
        rows, cols = linear_sum_assignment(-iou)
        match = -np.ones(len(masks), int)
        for r, c in zip(rows, cols):
            if iou[r, c] > 0.1:
                match[r] = c
        order = sorted(range(len(masks)), key=lambda i: (match[i] < 0, -match[i]))
        return masks, order, match
    raise SystemExit(f"unknown mask kind {kind!r}")


def overlap_region(gts: np.ndarray) -> np.ndarray:
    """(H, W) bool: within 1 % of the long side of the GT alpha (> 0.02) of two or more people."""
    r = max(3, round(0.01 * max(gts.shape[1:])))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    count = np.zeros(gts.shape[1:], np.int32)
    for g in gts:
        count += cv2.dilate((g > 0.02).astype(np.uint8), kernel) > 0
    return count >= 2


# ----------------------------------------------------------------------------- ablation
def build_matter(name: str):
    """The matter under test: "parts" (registry parts, the default before InstMatt-Lite) or "lite"."""
    if name == "parts":
        return DefaultMatter()
    from instmatt_app.nets import registry
    return registry.build("matter", name)


def run_ablation(items: list[dict], kind: str, config: RefinerConfig, detector=None, verbose=False,
                 matter_name: str = "parts") -> dict:
    matter = build_matter(matter_name)
    refiner = DefaultRefiner(config=config)
    scores = {r: [] for r in ROWS}
    ov_err = {r: [0.0, 0.0, 0] for r in ROWS}  # sum |e|, sum e², count (instance-pixels)
    times = {"parallel": [], "cycle": []}
    pairs = [0, 0]  # pairs of instances whose masks overlap, of them ordered right by estimate_order
    for item in items:
        ctx = item.setdefault("ctx", ImageContext(item["image"]))
        masks, order, match = coarse_masks(item, kind, detector)
        gts = item["gts"]
        ov = overlap_region(gts)
        if len(masks) == 0:
            preds = {r: [] for r in ROWS}
        else:
            tri = matter.matte(item["image"], masks, context=ctx)
            preds = {"masks": list(masks), "no-refine": list(tri[:, 0])}
            t0 = time.perf_counter()
            preds["parallel"] = list(refiner.refine(item["image"], tri, masks, "parallel", context=ctx)[:, 0])
            times["parallel"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            preds["cycle-true"] = list(refiner.refine(item["image"], tri, masks, "cycle", order, ctx)[:, 0])
            times["cycle"].append(time.perf_counter() - t0)
            preds["cycle-rev"] = list(refiner.refine(item["image"], tri, masks, "cycle", order[::-1], ctx)[:, 0])
            total = tri[:, 0].sum(axis=0)
            gt_total = gts[np.maximum(match, 0)].sum(axis=0) if (match >= 0).any() else np.zeros_like(total)
            oracle = [np.where(gt_total > 1e-3, total * gts[m] / np.maximum(gt_total, 1e-3), tri[i, 0])
                      if m >= 0 else tri[i, 0] for i, m in enumerate(match)]
            preds["oracle-split"] = oracle
            est = refiner.estimate_order(item["image"], tri, masks, ctx)
            preds["cycle-est"] = list(refiner.refine(item["image"], tri, masks, "cycle", est, ctx)[:, 0])
            pos, tpos = {g: p for p, g in enumerate(est)}, {g: p for p, g in enumerate(order)}
            inside = masks > 0.5
            for a in range(len(masks)):
                for b in range(a + 1, len(masks)):
                    if match[a] >= 0 and match[b] >= 0 and (inside[a] & inside[b]).sum() >= 20:
                        pairs[0] += 1
                        pairs[1] += (pos[a] < pos[b]) == (tpos[a] < tpos[b])
        # predictions are scored as the 8-bit PNGs a user would get
        preds = {r: [np.round(np.clip(p, 0, 1) * 255) / 255 for p in v] for r, v in preds.items()}
        for r in ROWS:
            scores[r].append(score_image(preds[r], list(gts), thresholds=(0.5,), name=item["name"]))
            # overlap-region error: each GT instance against its matched prediction (0 if none)
            for g in range(len(gts)):
                idx = np.flatnonzero(match == g) if len(masks) else []
                p = preds[r][idx[0]] if len(idx) else np.zeros_like(gts[g])
                e = (p - gts[g])[ov]
                ov_err[r][0] += float(np.abs(e).sum())
                ov_err[r][1] += float((e ** 2).sum())
                ov_err[r][2] += e.size
        if verbose:
            print(item["name"], {r: round(1000 * float(np.mean([np.abs(preds[r][i] - gts[match[i]])[ov].mean()
                                                                for i in range(len(match)) if match[i] >= 0]))
                                          if len(match) and ov.any() else 0, 2) for r in ROWS}, flush=True)
    table = {}
    for r in ROWS:
        pooled = pool(scores[r], (0.5,))["0.5"]
        s, s2, n = ov_err[r]
        table[r] = {"IMQ_mad": 100 * pooled["IMQ_mad"], "IMQ_mse": 100 * pooled["IMQ_mse"],
                    "RQ": 100 * pooled["RQ"], "MQ_mad": 100 * pooled["MQ_mad"], "TP": pooled["TP"],
                    "overlap_MAD_x1000": 1000 * s / max(n, 1), "overlap_MSE_x1000": 1000 * s2 / max(n, 1)}
    table["_time_s"] = {m: float(np.mean(v)) if v else 0.0 for m, v in times.items()}
    table["_order_estimate"] = {"overlapping_pairs": pairs[0], "ordered_right": pairs[1]}
    return table


def print_table(title: str, table: dict) -> None:
    print(f"\n{title}")
    print("| row | IMQ_mad | IMQ_mse | RQ | MQ_mad | overlap MAD ×1e3 | overlap MSE ×1e3 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in ROWS:
        t = table[r]
        print(f"| {r} | {t['IMQ_mad']:.2f} | {t['IMQ_mse']:.2f} | {t['RQ']:.1f} | {t['MQ_mad']:.2f} | "
              f"{t['overlap_MAD_x1000']:.2f} | "
              f"{t['overlap_MSE_x1000']:.2f} |")
    print(f"mean refine time (s): {table['_time_s']}; estimate_order on pairs with overlapping "
          f"masks: {table['_order_estimate']}")


# ----------------------------------------------------------------------------- speed
def run_speed(items: list[dict], config: RefinerConfig, kind: str = "bleed", repeats: int = 3,
              side: int = 1280) -> dict:
    """Refinement time for the largest composite with >= 4 people resized to a ``side``-px long
    side (masks of ``kind``)."""
    four = [it for it in items if len(it["gts"]) >= 4] or items
    item = max(four, key=lambda it: it["image"].shape[0] * it["image"].shape[1])
    H, W = item["image"].shape[:2]
    s = side / max(H, W)
    size = (round(W * s), round(H * s))
    image = cv2.resize(item["image"], size, interpolation=cv2.INTER_LINEAR)
    coarse, _, _ = coarse_masks(item, kind)
    masks = np.stack([cv2.resize(m, size, interpolation=cv2.INTER_LINEAR) for m in coarse])
    k = len(masks)
    refiner = DefaultRefiner(config=config)
    result = {"image": item["name"], "size": f"{size[0]}x{size[1]}", "people": k, "masks": kind}
    best: dict[str, float] = {}
    for _ in range(repeats):
        ctx = ImageContext(image)
        tri = DefaultMatter().matte(image, masks, context=ctx)
        ctx2 = ImageContext(image)
        ctx2.cache["human_alpha"] = ctx.cache["human_alpha"]
        runs = (("parallel_first", ctx, "parallel", None), ("cycle_first", ctx2, "cycle", list(range(k))),
                ("cycle_reorder", ctx2, "cycle", list(range(k))[::-1]))
        for name, c, mode, order in runs:
            w0, c0 = time.perf_counter(), time.process_time()
            refiner.refine(image, tri, masks, mode, order, context=c)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            best[name + "_wall"] = min(best.get(name + "_wall", 1e9), wall)
            best[name + "_cpu"] = min(best.get(name + "_cpu", 1e9), cpu)
        # cycle with no order given: estimate_order on the cached preparation, then the solves
        for name, c in (("cycle_estimated_order_after_parallel", ctx),):
            w0, c0 = time.perf_counter(), time.process_time()
            refiner.refine(image, tri, masks, "cycle", None, context=c)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
            best[name + "_wall"] = min(best.get(name + "_wall", 1e9), wall)
            best[name + "_cpu"] = min(best.get(name + "_cpu", 1e9), cpu)
    result.update({k2: round(v, 3) for k2, v in best.items()})
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "synthetic")
    ap.add_argument("--masks", nargs="+", default=["visible", "amodal"], choices=["visible", "bleed", "amodal", "detector"])
    ap.add_argument("--cutouts", type=Path, default=REPO.parent / "shared" / "data" / "p3m",
                    help="cut-out folder of an `instmatt synth` set (to re-render layer alphas)")
    ap.add_argument("--limit", type=int, default=0, help="first N images only")
    ap.add_argument("--speed", action="store_true", help="time refinement instead of the ablation")
    ap.add_argument("--side", type=int, default=1280, help="long side of the --speed photo (px)")
    ap.add_argument("--json", type=Path, help="also write the tables here")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--matter", default="parts", choices=["parts", "lite"],
                    help="matter whose tri-mattes are refined: parts (registry parts) or lite (InstMatt-Lite)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="RefinerConfig overrides")
    args = ap.parse_args(argv)
    opts = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        opts[k] = type(getattr(RefinerConfig(), k))(v)
    config = RefinerConfig(**opts)
    if not (args.data / "composites.json").exists():
        print(f"error: {args.data / 'composites.json'} not found", file=sys.stderr)
        return 2
    items = load_set(args.data, args.cutouts)
    if args.limit:
        items = items[:args.limit]
    out = {"data": str(args.data), "config": opts, "matter": args.matter}
    if args.speed:
        DefaultRefiner(config=config)  # import cost outside the timing
        from pymatting import cf_laplacian  # noqa: F401  (numba compile cache)
        out["speed"] = run_speed(items, config, args.masks[0], side=args.side, repeats=3 if args.side <= 2000 else 1)
        print(json.dumps(out["speed"]))
    else:
        detector = None
        if "detector" in args.masks:
            from instmatt_app.nets import registry
            detector = registry.build("detector", "default")
        for kind in args.masks:
            table = run_ablation(items, kind, config, detector, args.verbose, matter_name=args.matter)
            out[kind] = table
            print_table(f"{args.data.name}: {len(items)} images, masks = {kind}, matter = {args.matter}", table)
    if args.json:
        from instmatt_app.io.atomic import atomic_open
        with atomic_open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
