#!/usr/bin/env python3
"""Measure the person box detectors (MoveNet-MultiPose, CenterNet, SSDLite, their unions) on the development data.

Development tool (reads ../shared/data; the app never runs it). Produces the tables of docs/detectors.md.

Protocol
* coco: ../shared/data/coco_persons, 110 photos. GT = non-crowd persons whose mask covers >= 2 % of the photo,
  box = COCO ``bbox``. Smaller annotated persons are "ignore" GT: a detection matching one (IoU >= 0.5) is
  neither TP nor FP. Crowd regions (crowd_ignore/<id>_bbox.png): an unmatched detection with >= 50 % of its box
  inside them is neither TP nor FP.
* synthetic: ../shared/data/synthetic, 20 composites, 70 persons; GT box = bbox of visible alpha > 0.1 (0-1).
* Matching: detections sorted by score, each takes the unmatched GT with the highest IoU >= 0.5 (COCO style);
  recall = TP / #GT, precision = TP / (TP + FP).
* Time: wall time and process CPU time of ``detect`` per photo (after one warm-up call), onnxruntime CPU.
* Unions: "union-nms" = each detector at its own threshold, then NMS (IoU 0.5); "fused" =
  ``fuse_person_boxes`` (noisy-OR score of agreeing boxes, MoveNet score weighted), swept over the fused score.
  "min_area" drops boxes smaller than that fraction of the photo.

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
from instmatt_app.nets.person_boxes import (PersonBox, box_iou, fuse_person_boxes,  # noqa: E402
                                            merge_person_boxes)

DATA = REPO.parent / "shared" / "data"
MN = REPO / "models" / "movenet-multipose.onnx"
CN = REPO / "models" / "centernet.onnx"
SSD = REPO / "models" / "ssdlite-persons.onnx"

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
    "ssd300": lambda: _ssd(input_size=300),
    "ssd300-lb": lambda: _ssd(input_size=300, letterbox=True),
    "ssd300-flip": lambda: _ssd(input_size=300, flip=True),
    "ssd400": lambda: _ssd(input_size=400),
    "ssd512": lambda: _ssd(input_size=512),
}


def _mn(**kw):
    from instmatt_app.nets.movenet import MoveNetMultiPose

    return MoveNetMultiPose(MN, score_threshold=0.0, min_box_area=0.0, **kw)


def _cn(**kw):
    from instmatt_app.nets.centernet import CenterNetPersons

    return CenterNetPersons(CN, score_threshold=0.0, min_box_area=0.0, **kw)


def _ssd(**kw):
    from instmatt_app.nets.ssdlite import SSDLitePersons

    return SSDLitePersons(SSD, score_threshold=0.0, min_box_area=0.0, **kw)


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
        rows.append(dict(threshold=round(float(t), 4), tp=tp, fp=fp, n_gt=n_gt, recall=tp / max(1, n_gt),
                         precision=tp / max(1, tp + fp)))
    return rows


def drop_small(per_image: list[list[PersonBox]], items: list[dict], min_box_area: float):
    out = []
    for dets, it in zip(per_image, items):
        w, h = it["size"]
        out.append([d for d in dets if (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) >= min_box_area * w * h])
    return out


def best_at_precision(rows: list[dict], precision: float = 0.9) -> dict | None:
    return max((r for r in rows if r["precision"] >= precision), key=lambda r: (r["recall"], r["precision"]),
               default=None)


def _rp(r: dict | None) -> str:
    return "–" if r is None else f"{r['recall']:.3f} / {r['precision']:.3f}"


def render_markdown(report: dict) -> str:
    """Markdown tables of a results.json: recall / precision per score threshold, and the best settings."""
    lines = []
    for ds, res in report.items():
        singles = [k for k in res if ":" not in k]
        ths = [r["threshold"] for r in res[singles[0]]["table"]] if singles else []
        lines += [f"### {ds}: single detectors, recall / precision per score threshold", "",
                  "| variant | ms/photo (wall, CPU) | " + " | ".join(f"{t:g}" for t in ths) + " |",
                  "|---|---|" + "---|" * len(ths)]
        for k in singles:
            for tab, tag in (("table", ""), ("table_min_box_area_0_01", ", boxes >= 1 %")):
                if tab not in res[k]:
                    continue
                lines.append(f"| {k}{tag} | {res[k]['time_ms_mean']:.0f}, {res[k]['cpu_ms_mean']:.0f} | "
                             + " | ".join(_rp(r) for r in res[k][tab]) + " |")
        fused = [k for k in res if k.startswith("fused:")]
        if fused:
            ths = [r["threshold"] for r in res[fused[0]]["table"]]
            lines += ["", f"### {ds}: MoveNet + CenterNet score fusion, recall / precision per fused-score threshold",
                      "", "| fusion | " + " | ".join(f"{t:g}" for t in ths) + " |", "|---|" + "---|" * len(ths)]
            for k in fused:
                lines.append(f"| {k[6:]} | " + " | ".join(_rp(r) for r in res[k]["table"]) + " |")
        lines += ["", f"### {ds}: best recall at precision >= 0.9", "",
                  "| variant | setting | TP | FP | GT | recall | precision |", "|---|---|---|---|---|---|---|"]
        for k, v in res.items():
            for tab in ("table", "table_min_box_area_0_01"):
                if tab not in v:
                    continue
                b = best_at_precision(v[tab])
                if b is None:
                    lines.append(f"| {k}{' (boxes >= 1 %)' if tab != 'table' else ''} | – | | | | | |")
                    continue
                setting = (f"threshold {b['threshold']:g}" if "threshold" in b else
                           f"MoveNet >= {b['threshold_movenet']:g}, CenterNet >= {b['threshold_centernet']:g}")
                lines.append(f"| {k}{' (boxes >= 1 %)' if tab != 'table' else ''} | {setting} | {b['tp']} | "
                             f"{b['fp']} | {b['n_gt']} | {b['recall']:.3f} | {b['precision']:.3f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--datasets", nargs="+", default=["coco", "synthetic"], choices=["coco", "synthetic"])
    ap.add_argument("--union", nargs=2, action="append", metavar=("MOVENET_VARIANT", "CENTERNET_VARIANT"),
                    default=None, help="union pairs to score (default: every MoveNet variant with cn)")
    ap.add_argument("--out", type=Path, default=REPO / "bench-out" / "detectors")
    ap.add_argument("--render", type=Path, default=None, metavar="RESULTS_JSON",
                    help="only print the markdown tables of an earlier run's results.json")
    args = ap.parse_args(argv)
    if args.render:
        print(render_markdown(json.loads(args.render.read_text())))
        return 0
    thresholds = [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6]
    report: dict = {}
    for ds in args.datasets:
        items = load_coco() if ds == "coco" else load_synthetic()
        for it in items:
            it["size"] = Image.open(it["path"]).size
        raw, res = {}, {}
        for v in args.variants:
            dets, times, cpu = run_variant(v, items)
            raw[v] = dets
            res[v] = dict(time_ms_mean=1000 * float(np.mean(times)), time_ms_median=1000 * float(np.median(times)),
                          cpu_ms_mean=1000 * float(np.mean(cpu)),
                          time_ms_max=1000 * float(np.max(times)), table=score_table(dets, items, thresholds),
                          table_min_box_area_0_01=score_table(drop_small(dets, items, 0.01), items, thresholds))
            print(f"{ds} {v}: {res[v]['time_ms_mean']:.0f} ms/photo (median {res[v]['time_ms_median']:.0f}, "
                  f"CPU {res[v]['cpu_ms_mean']:.0f} ms); best recall at precision >= 0.9: "
                  f"{best_at_precision(res[v]['table'])}; with boxes >= 1 %: "
                  f"{best_at_precision(res[v]['table_min_box_area_0_01'])}", flush=True)
        mn_variants = [v for v in raw if v.startswith("mn")]
        partners = [v for v in raw if v == "cn" or v.startswith("ssd")]
        pairs = args.union or [(m, c) for m in mn_variants for c in partners]
        for m, c in pairs:
            if m not in raw or c not in raw:
                continue
            timing = dict(time_ms_mean=res[m]["time_ms_mean"] + res[c]["time_ms_mean"],
                          cpu_ms_mean=res[m]["cpu_ms_mean"] + res[c]["cpu_ms_mean"])
            # plain union: each detector's own threshold, then NMS (merge_person_boxes)
            rows = []
            for ta in thresholds:
                for tb in thresholds:
                    merged = [merge_person_boxes([[d for d in x if d.score >= ta], [d for d in y if d.score >= tb]],
                                                 0.5) for x, y in zip(raw[m], raw[c])]
                    r = score_table(merged, items, [0.0])[0]
                    r.update(threshold_movenet=ta, threshold_centernet=tb)
                    del r["threshold"]
                    rows.append(r)
            res[f"union-nms:{m}+{c}"] = dict(**timing, table=rows)
            print(f"{ds} union-nms:{m}+{c}: best recall at precision >= 0.9: {best_at_precision(rows)}", flush=True)
            # score fusion (fuse_person_boxes), threshold on the fused score
            for weight in (1.0, 2.0, 3.0):
                for min_area in (0.0, 0.01):
                    fused = [fuse_person_boxes(x, y, it["size"], movenet_weight=weight, min_box_area=min_area)
                             for x, y, it in zip(raw[m], raw[c], items)]
                    key = f"fused:{m}+{c}:w{weight:g}:min_area{min_area:g}"
                    res[key] = dict(**timing, table=score_table(fused, items, thresholds))
                    print(f"{ds} {key}: best recall at precision >= 0.9: {best_at_precision(res[key]['table'])}",
                          flush=True)
        report[ds] = res
    with atomic_open(args.out / "results.json", "w") as fh:
        json.dump(report, fh, indent=1)
    with atomic_open(args.out / "tables.md", "w") as fh:
        fh.write(render_markdown(report))
    print("wrote", args.out / "results.json", "and tables.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
