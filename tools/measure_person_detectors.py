#!/usr/bin/env python3
"""Measure the person box detectors (MoveNet-MultiPose, CenterNet, their union) on the development data.

Development tool (reads ../shared/data; the app never runs it). Produces the tables of docs/detectors.md.

Protocol
* coco: ../shared/data/coco_persons, 110 photos. GT = non-crowd persons whose mask covers >= 2 % of the photo,
  box = COCO ``bbox``. Smaller annotated persons are "ignore" GT: a detection matching one (IoU >= 0.5) is
  neither TP nor FP. Crowd regions (crowd_ignore/<id>_bbox.png): an unmatched detection with >= 50 % of its box
  inside them is neither TP nor FP.
* synthetic: ../shared/data/synthetic, 20 composites, 70 persons; GT box = bbox of visible alpha > 0.1 (0-1).
* Matching: detections sorted by score, each takes the unmatched GT with the highest IoU >= 0.5 (COCO style);
  recall = TP / #GT, precision = TP / (TP + FP).
* Time: wall time of ``detect`` per photo (after one warm-up call), this machine, onnxruntime CPU.

Usage::

    python tools/measure_person_detectors.py                      # all variants, writes bench-out/detectors/
    python tools/measure_person_detectors.py --variants mn256 cn  # some
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from instmatt_app.io.atomic import atomic_open  # noqa: E402
from instmatt_app.nets.person_boxes import PersonBox, box_iou, merge_person_boxes  # noqa: E402

DATA = REPO.parent / "shared" / "data"
MN = REPO / "models" / "movenet-multipose.onnx"
CN = REPO / "models" / "centernet.onnx"

# name -> builder of a detector (threshold 0: every candidate is kept, thresholds are swept afterwards)
VARIANTS = {
    "mn256": lambda: _mn(input_size=256),
    "mn256-flip": lambda: _mn(input_size=256, flip=True),
    "mn256-tiles": lambda: _mn(input_size=256, tiles=True),
    "mn256-flip-tiles": lambda: _mn(input_size=256, flip=True, tiles=True),
    "mn384": lambda: _mn(input_size=384),
    "mn512": lambda: _mn(input_size=512),
    "cn": lambda: _cn(),
    "cn-stretch": lambda: _cn(stretch=True),
    "cn-flip": lambda: _cn(flip=True),
}


def _mn(**kw):
    from instmatt_app.nets.movenet import MoveNetMultiPose

    return MoveNetMultiPose(MN, score_threshold=0.0, **kw)


def _cn(**kw):
    from instmatt_app.nets.centernet import CenterNetPersons

    return CenterNetPersons(CN, score_threshold=0.0, **kw)


# ---------------------------------------------------------------------------------------------------------------
def load_coco() -> list[dict]:
    root = DATA / "coco_persons"
    ann = json.loads((root / "annotations" / "person_instances.json").read_text())
    by_img: dict[int, list] = {}
    for a in ann["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a)
    items = []
    for im in ann["images"]:
        h, w = im["height"], im["width"]
        gt, ignore = [], []
        for a in by_img.get(im["id"], []):
            if a["iscrowd"]:
                continue
            x, y, bw, bh = a["bbox"]
            mask = np.array(Image.open(DATA / a["mask_file"])) > 127
            (gt if mask.mean() >= 0.02 else ignore).append((x, y, x + bw, y + bh))
        crowd_png = root / "crowd_ignore" / "coco" / f"{Path(im['file_name']).stem}_bbox.png"
        crowd = np.array(Image.open(crowd_png)) > 127 if crowd_png.exists() else None
        items.append(dict(name=im["file_name"], path=DATA / im["pack_file"], gt=np.array(gt).reshape(-1, 4),
                          ignore=np.array(ignore).reshape(-1, 4), crowd=crowd))
    return items


def load_synthetic() -> list[dict]:
    root = DATA / "synthetic"
    items = []
    for img in sorted((root / "images" / "comp").glob("*.jpg")):
        gt = []
        for png in sorted((root / "alphas" / "comp" / img.stem).glob("*.png")):
            a = np.array(Image.open(png)) > 0.1 * 255
            ys, xs = np.nonzero(a)
            gt.append((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
        items.append(dict(name=img.name, path=img, gt=np.array(gt, float).reshape(-1, 4),
                          ignore=np.zeros((0, 4)), crowd=None))
    return items


def match(dets: list[PersonBox], item: dict, iou_thr: float = 0.5) -> tuple[int, int]:
    """(TP, FP) of one photo's detections (see the module docstring)."""
    gt, ign, crowd = item["gt"], item["ignore"], item["crowd"]
    dets = sorted(dets, key=lambda d: -d.score)
    boxes = np.array([d.box for d in dets], float).reshape(-1, 4)
    iou_gt = box_iou(boxes, gt)
    iou_ign = box_iou(boxes, ign)
    used = np.zeros(len(gt), bool)
    tp = fp = 0
    for i, b in enumerate(boxes):
        cand = np.where(used, -1, iou_gt[i]) if len(gt) else np.zeros(0)
        if len(cand) and cand.max() >= iou_thr:
            used[int(cand.argmax())] = True
            tp += 1
            continue
        if len(ign) and iou_ign[i].max() >= iou_thr:
            continue
        if crowd is not None:
            x0, y0, x1, y1 = (int(round(v)) for v in b)
            region = crowd[max(0, y0):max(0, y1), max(0, x0):max(0, x1)]
            if region.size and region.mean() >= 0.5:
                continue
        fp += 1
    return tp, fp


def run_variant(name: str, items: list[dict]) -> tuple[list[list[PersonBox]], list[float]]:
    det = VARIANTS[name]()
    images = [np.array(Image.open(it["path"]).convert("RGB")) for it in items]
    det.detect(images[0])  # warm-up
    out, times, cpu = [], [], []
    for im in images:
        t, c = time.perf_counter(), time.process_time()
        out.append(det.detect(im))
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return out, times, cpu


def score_table(per_image: list[list[PersonBox]], items: list[dict], thresholds) -> list[dict]:
    n_gt = sum(len(it["gt"]) for it in items)
    rows = []
    for t in thresholds:
        tp = fp = 0
        for dets, it in zip(per_image, items):
            a, b = match([d for d in dets if d.score >= t], it)
            tp, fp = tp + a, fp + b
        rows.append(dict(threshold=float(t), tp=tp, fp=fp, n_gt=n_gt, recall=tp / max(1, n_gt),
                         precision=tp / max(1, tp + fp)))
    return rows


def union(a: list[list[PersonBox]], b: list[list[PersonBox]], ta: float, tb: float, iou: float = 0.5):
    return [merge_person_boxes([[d for d in x if d.score >= ta], [d for d in y if d.score >= tb]], iou)
            for x, y in zip(a, b)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--datasets", nargs="+", default=["coco", "synthetic"], choices=["coco", "synthetic"])
    ap.add_argument("--union", nargs=2, action="append", metavar=("MOVENET_VARIANT", "CENTERNET_VARIANT"),
                    default=None, help="union pairs to score (default: mn256 cn, and the best TTA pair)")
    ap.add_argument("--out", type=Path, default=REPO / "bench-out" / "detectors")
    args = ap.parse_args(argv)
    thresholds = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5]
    report: dict = {}
    for ds in args.datasets:
        items = load_coco() if ds == "coco" else load_synthetic()
        raw, res = {}, {}
        for v in args.variants:
            dets, times, cpu = run_variant(v, items)
            raw[v] = dets
            res[v] = dict(time_ms_mean=1000 * float(np.mean(times)), time_ms_median=1000 * float(np.median(times)),
                          cpu_ms_mean=1000 * float(np.mean(cpu)),
                          time_ms_max=1000 * float(np.max(times)), table=score_table(dets, items, thresholds))
            best = max((r for r in res[v]["table"] if r["precision"] >= 0.9), key=lambda r: r["recall"],
                       default=None)
            print(f"{ds} {v}: {res[v]['time_ms_mean']:.0f} ms/photo (median {res[v]['time_ms_median']:.0f}, "
                  f"CPU {res[v]['cpu_ms_mean']:.0f} ms); "
                  f"best recall at precision >= 0.9: {best}", flush=True)
        pairs = args.union or [(m, c) for m in ("mn256", "mn256-flip-tiles") for c in ("cn", "cn-flip")]
        for m, c in pairs:
            if m not in raw or c not in raw:
                continue
            rows = []
            for ta in thresholds:
                for tb in thresholds:
                    r = score_table(union(raw[m], raw[c], ta, tb), items, [0.0])[0]
                    r.update(threshold_movenet=ta, threshold_centernet=tb)
                    del r["threshold"]
                    rows.append(r)
            key = f"union:{m}+{c}"
            res[key] = dict(time_ms_mean=res[m]["time_ms_mean"] + res[c]["time_ms_mean"],
                            cpu_ms_mean=res[m]["cpu_ms_mean"] + res[c]["cpu_ms_mean"], table=rows)
            best = max((r for r in rows if r["precision"] >= 0.9), key=lambda r: (r["recall"], r["precision"]),
                       default=None)
            print(f"{ds} {key}: best recall at precision >= 0.9: {best}", flush=True)
        report[ds] = res
    with atomic_open(args.out / "results.json", "w") as fh:
        json.dump(report, fh, indent=1)
    print("wrote", args.out / "results.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
