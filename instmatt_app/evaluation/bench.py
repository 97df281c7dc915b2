"""Benchmark runner: run a predictor over a data set, score it, write a markdown report with plots.

Data sets (detected from the layout):

* HIM2K layout — ``images/<subset>/<name>.jpg`` + ``alphas/<subset>/<name>/NN.png``: every method is
  scored with IMQ (:mod:`.imq`, thresholds 0.5 and 0.75, w = 10).
* COCO-style instance masks — ``images/coco/<id>.jpg`` + ``masks/coco/<id>/NN.png`` (optionally
  ``crowd_ignore/coco/<id>_rle.png``): recognition only. Predicted instances (matte >= 0.5) are
  matched one-to-one to GT masks (Hungarian on IoU, TP at IoU >= 0.5); GT persons under 2 % of the
  image are "ignore" instances (a miss is not a FN, a match is not a FP), and predictions lying
  mostly (> 50 %) in a crowd region or smaller than 2 % of the image and unmatched are not FP.
  Reported: RQ = TP / (TP + FP/2 + FN/2), precision, recall.

A predictor is a callable ``predict(image_rgb_uint8) -> BenchPrediction`` (several methods from one
call, e.g. the engine's mattes and its coarse masks, so baselines are measured in the same run) or
returning the tuple ``(alphas, coarse_masks, timings)``, which is read as methods
``{name: alphas, "masks only": coarse_masks}``. :func:`engine_predictor` wraps
:class:`instmatt_app.pipeline.Engine`.
"""
from __future__ import annotations

import csv
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from instmatt_app.evaluation import imq
from instmatt_app.io.image_io import IMAGE_SUFFIXES, ImageLoadError, load_image

__all__ = [
    "BenchInputError",
    "BenchPrediction",
    "BenchResult",
    "BenchSample",
    "Dataset",
    "engine_predictor",
    "find_dataset",
    "format_table",
    "recognition_counts",
    "run_bench",
    "write_report",
]

MASKS_ONLY = "masks only"
THRESHOLDS = (0.5, 0.75)


class BenchInputError(ValueError):
    """Bad benchmark input (unknown layout, unreadable file); the message names the path."""


@dataclass
class BenchPrediction:
    """mattes: method name -> (k, H, W) float32 [0, 1] instance mattes; timings: stage -> seconds
    (stage names may be prefixed "method:")."""

    mattes: dict[str, np.ndarray]
    timings: dict[str, float] = field(default_factory=dict)


def as_prediction(out: Any, name: str = "default") -> BenchPrediction:
    """Normalise a predictor's return value (BenchPrediction or (alphas, coarse, timings))."""
    if isinstance(out, BenchPrediction):
        return out
    alphas, coarse, timings = out
    return BenchPrediction({MASKS_ONLY: np.asarray(coarse, np.float32), name: np.asarray(alphas, np.float32)},
                           dict(timings or {}))


# --------------------------------------------------------------------------- data sets

@dataclass
class BenchSample:
    """One image of a data set: ``gt`` lists its GT instance files (NN.png), ``ignore`` an optional
    crowd-region PNG (COCO)."""

    name: str
    subset: str
    image: Path
    gt: list[Path]
    ignore: Path | None = None


@dataclass
class Dataset:
    root: Path
    kind: str  # "him2k" or "coco"
    samples: list[BenchSample]


def _read_rgb(path: Path) -> np.ndarray:
    try:
        return load_image(path)
    except ImageLoadError as exc:
        raise BenchInputError(str(exc)) from None


def find_dataset(root: str | os.PathLike, limit: int | None = None) -> Dataset:
    """Detect the layout of ``root`` (HIM2K alphas/ or COCO masks/) and list its images."""
    root = Path(root)
    if not root.is_dir():
        raise BenchInputError(f"{root}: data set folder does not exist")
    images = root / "images"
    if not images.is_dir():
        raise BenchInputError(f"{root}: no images/ folder (expected images/<subset>/<name>.jpg with "
                              "alphas/<subset>/<name>/NN.png or masks/<subset>/<name>/NN.png)")
    kind = "him2k" if (root / "alphas").is_dir() else "coco" if (root / "masks").is_dir() else None
    if kind is None:
        raise BenchInputError(f"{root}: neither alphas/ (HIM2K layout) nor masks/ (COCO-style) found")
    gt_root = root / ("alphas" if kind == "him2k" else "masks")
    samples: list[BenchSample] = []
    for sub in sorted(p for p in images.iterdir() if p.is_dir()):
        for img in sorted(sub.iterdir()):
            if img.suffix.lower() not in IMAGE_SUFFIXES or img.name.startswith("."):
                continue
            gdir = gt_root / sub.name / img.stem
            if not gdir.is_dir():
                continue
            gt = sorted(p for p in gdir.glob("*.png") if not p.name.startswith("."))
            ign = root / "crowd_ignore" / sub.name / f"{img.stem}_rle.png"
            samples.append(BenchSample(img.stem, sub.name, img, gt, ign if ign.is_file() else None))
    if not samples:
        raise BenchInputError(f"{root}: no image has a ground-truth folder under {gt_root}")
    if limit:
        samples = samples[:limit]
    return Dataset(root, kind, samples)


# --------------------------------------------------------------------------- predictors

MATTERS = ("parts", "lite", "instmatt")


def engine_predictor(methods: Sequence[str] = ("masks", "parts", "lite", "instmatt"), device: str = "cpu",
                     refine: str = "parallel", guidance_passes: int | None = None, person_boxes: str = "auto",
                     lite_weights: str | None = None) -> tuple[Callable[[np.ndarray], BenchPrediction], list[str]]:
    """Predictor over the engine: returns (predict, notes).

    The default detector runs once per photo (or ``predict(image, masks=...)`` gives reference
    masks); every matter then works on the same coarse masks.
    "masks": those coarse masks used as mattes (the paper's Mask R-CNN row); "parts": the
    registry-parts matter (RVM's human alpha split among the people; "default" is its old name);
    "lite": our trained InstMatt-Lite network (``guidance_passes``: its iterated guidance on the
    detector's masks, None = its default); "instmatt": the InstMatt network, when its official
    weights are installed (otherwise skipped with a note, or an error when asked for alone).
    person_boxes: the default detector's person box detector (``embedded.BOX_DETECTORS``).
    lite_weights: an InstMatt-Lite weights file for "lite" instead of the shipped one (None).
    """
    from instmatt_app.model_manager import user_model
    from instmatt_app.nets.image_context import ImageContext
    from instmatt_app.pipeline import Engine, EngineConfig

    notes: list[str] = []
    methods = ["parts" if m == "default" else m for m in methods]
    base = Engine(EngineConfig(device=device, matting="parts", refine=refine,
                               detector_options={"boxes": person_boxes}))
    engines: dict[str, Engine] = {}
    for m in MATTERS:
        if m not in methods:
            continue
        if m == "instmatt" and not user_model("instmatt"):
            if len([x for x in methods if x in MATTERS]) == 1:
                raise BenchInputError("--matting instmatt needs the InstMatt weights: add them with "
                                      "`instmatt models add instmatt FILE`")
            notes.append("InstMatt network: weights not installed, not measured")
            continue
        weights = {"lite": lite_weights} if m == "lite" and lite_weights else {}
        if weights:
            notes.append(f"InstMatt-Lite weights: {lite_weights} (not the shipped ones)")
        engines[m] = base if m == "parts" else Engine(EngineConfig(device=device, matting=m, refine=refine,
                                                                   guidance_passes=guidance_passes, weights=weights))

    def predict(image: np.ndarray, masks: np.ndarray | None = None) -> BenchPrediction:
        out: dict[str, np.ndarray] = {}
        timings: dict[str, float] = {}
        H, W = image.shape[:2]
        if masks is not None:           # reference masks: the same guidance for every matter
            coarse = np.asarray(masks, np.float32)
        else:
            t0 = time.perf_counter()
            dets = base.detector.detect(image, context=ImageContext(image))
            coarse = (np.stack([d.mask for d in dets]).astype(np.float32) if dets
                      else np.zeros((0, H, W), np.float32))
            timings[f"{MASKS_ONLY}:detect"] = time.perf_counter() - t0
        if "masks" in methods:
            out[MASKS_ONLY] = coarse
        for name, engine in engines.items():
            r = engine.run(image, masks=coarse, detected=masks is None)
            out[name] = r.alphas if r.instances else np.zeros((0, H, W), np.float32)
            timings.update({f"{name}:{k}": v for k, v in r.timings.items() if k != "detect"})
        return BenchPrediction(out, timings)

    return predict, notes


# --------------------------------------------------------------------------- recognition (COCO)

def recognition_counts(pred: np.ndarray, gt: np.ndarray, ignore: np.ndarray | None = None,
                       min_area: float = 0.02, iou_thr: float = 0.5) -> dict[str, int]:
    """TP/FP/FN of binary instances with ignore rules (see the module docstring).

    pred: (k, H, W) bool; gt: (n, H, W) bool; ignore: (H, W) bool crowd region or None.
    """
    H, W = gt.shape[1:] if gt.size else pred.shape[1:]
    area_min = min_area * H * W
    iou = imq.iou_matrix(list(pred), list(gt))
    gt_small = np.array([g.sum() < area_min for g in gt], bool)
    matched_p, matched_g = set(), set()
    tp = 0
    if iou.size:
        for r, c in zip(*linear_sum_assignment(1.0 - iou)):
            if iou[r, c] >= iou_thr:
                matched_p.add(int(r))
                matched_g.add(int(c))
                tp += 0 if gt_small[c] else 1
    fp = 0
    for i, p in enumerate(pred):
        if i in matched_p:
            continue
        area = p.sum()
        if area < area_min:
            continue
        if ignore is not None and area and (p & ignore).sum() > 0.5 * area:
            continue
        fp += 1
    fn = sum(1 for j in range(len(gt)) if j not in matched_g and not gt_small[j])
    return {"TP": tp, "FP": fp, "FN": fn}


# --------------------------------------------------------------------------- running

@dataclass
class BenchResult:
    dataset: Dataset
    methods: list[str]
    summary: dict[str, dict]  # method -> IMQ summary (HIM2K) or recognition summary (COCO)
    per_image: dict[str, list]  # method -> list of ImageScore (HIM2K) or counts dicts (COCO)
    timings: dict[str, list[float]]  # stage -> seconds per image
    seconds: float
    peak_rss_mb: float
    n_gt: list[int]
    notes: list[str] = field(default_factory=list)
    samples: list[BenchSample] = field(default_factory=list)
    worst: dict[str, dict] = field(default_factory=dict)  # name -> {"image", "gt", method: mattes}


def _peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def _read_gt(paths: Sequence[Path]) -> list[np.ndarray]:
    return [imq.read_alpha_raw(p) for p in paths]


def reference_masks(sample: BenchSample, source: str, shape: tuple[int, int]) -> np.ndarray:
    """Coarse masks given to every method instead of the detector's (``instmatt bench --masks``).

    source "gt": the sample's GT instances binarised at 0.5 (alpha ≥ 128): every matter gets the
    same exact guidance, so the number measures matting alone. Any other value is a folder holding
    ``<name>/NN.png`` per image (masks from another tool, as ``instmatt matte --masks``), ≥ 128 = in.
    Returns (k, H, W) float32 {0, 1}."""
    files = sample.gt if source == "gt" else sorted((Path(source) / sample.name).glob("*.png"))
    if source != "gt" and not files:
        raise BenchInputError(f"{Path(source) / sample.name}: no mask PNGs for image {sample.name}")
    masks = [imq.read_alpha_raw(f) for f in files]
    out = np.zeros((len(masks),) + shape, np.float32)
    for i, (f, m) in enumerate(zip(files, masks)):
        if m.shape != shape:
            raise BenchInputError(f"{f}: size {m.shape[1]}x{m.shape[0]} differs from the image ({shape[1]}x{shape[0]})")
        limit = 128 if m.dtype == np.uint8 else (32768 if m.dtype == np.uint16 else 0.5)
        out[i] = m >= limit
    return out


def run_bench(dataset: Dataset, predict: Callable[..., Any], name: str = "default",
              keep_worst: int = 3, progress: Callable[[int, int, str], None] | None = None,
              masks: str | None = None) -> BenchResult:
    """Run ``predict`` on every image of ``dataset`` and score every method it returns.

    keep_worst: how many of the worst images (per-image IMQ_mad of the first non-baseline
    method) keep their mattes in memory for the report. masks: None (each method finds the people
    itself), "gt" or a folder: ``predict(image, masks=...)`` gets :func:`reference_masks`.
    """
    per_image: dict[str, list] = {}
    timings: dict[str, list[float]] = {}
    n_gt: list[int] = []
    kept: list[tuple[float, str, dict]] = []
    t_start = time.perf_counter()
    for idx, s in enumerate(dataset.samples):
        image = _read_rgb(s.image)
        gts = _read_gt(s.gt)
        for p, g in zip(s.gt, gts):
            if g.shape != image.shape[:2]:
                raise BenchInputError(f"{p}: size {g.shape[1]}x{g.shape[0]} differs from the image "
                                      f"{s.image} ({image.shape[1]}x{image.shape[0]})")
        t0 = time.perf_counter()
        if masks is None:
            pred = as_prediction(predict(image), name)
        else:
            pred = as_prediction(predict(image, masks=reference_masks(s, masks, image.shape[:2])), name)
        wall = time.perf_counter() - t0
        timings.setdefault("wall per image", []).append(wall)
        for k, v in pred.timings.items():
            timings.setdefault(k, []).append(float(v))
        n_gt.append(len(gts))
        for method, mattes in pred.mattes.items():
            mattes = np.clip(np.asarray(mattes, np.float32), 0.0, 1.0)
            if mattes.ndim != 3 or (len(mattes) and mattes.shape[1:] != image.shape[:2]):
                raise BenchInputError(f"{method}: mattes must be (k, {image.shape[0]}, {image.shape[1]}), "
                                      f"got {mattes.shape}")
            if dataset.kind == "him2k":
                # IMQ binarises at > 0: keep the matte's 8-bit values, as if saved as PNG
                p8 = list(np.round(mattes * 255.0).astype(np.uint8))
                sc = imq.score_image(p8, gts, THRESHOLDS, 10.0, name=f"{s.subset}/{s.name}")
                per_image.setdefault(method, []).append(sc)
            else:
                ign = None
                if s.ignore is not None:
                    ign = imq.read_alpha_raw(s.ignore) > 0
                c = recognition_counts(mattes >= 0.5, np.stack(gts) > 127 if gts else
                                       np.zeros((0,) + image.shape[:2], bool), ign)
                per_image.setdefault(method, []).append(c)
        if dataset.kind == "him2k" and keep_worst:
            main = next((m for m in pred.mattes if m != MASKS_ONLY), next(iter(pred.mattes), None))
            if main is not None:
                score = per_image[main][-1].imq("0.5")["IMQ_mad"]
                kept.append((score, s.name, {"image": image, "gt": gts, "mattes": dict(pred.mattes),
                                             "score": score, "method": main}))
                kept.sort(key=lambda x: x[0])
                del kept[keep_worst:]
        if progress:
            progress(idx + 1, len(dataset.samples), s.name)
    seconds = time.perf_counter() - t_start
    methods = list(per_image)
    summary: dict[str, dict] = {}
    for m in methods:
        if dataset.kind == "him2k":
            summary[m] = imq.pool(per_image[m], THRESHOLDS)
        else:
            tp = sum(c["TP"] for c in per_image[m])
            fp = sum(c["FP"] for c in per_image[m])
            fn = sum(c["FN"] for c in per_image[m])
            summary[m] = {"RQ": tp / (tp + 0.5 * fp + 0.5 * fn) if tp + fp + fn else 0.0,
                          "precision": tp / (tp + fp) if tp + fp else 0.0,
                          "recall": tp / (tp + fn) if tp + fn else 0.0, "TP": tp, "FP": fp, "FN": fn}
    return BenchResult(dataset=dataset, methods=methods, summary=summary, per_image=per_image,
                       timings=timings, seconds=seconds, peak_rss_mb=_peak_rss_mb(), n_gt=n_gt,
                       samples=list(dataset.samples), worst={k[1]: k[2] for k in kept})


# --------------------------------------------------------------------------- output

def format_table(res: BenchResult) -> str:
    """The console table: one row per method (fractions), then mean seconds per stage."""
    lines = []
    if res.dataset.kind == "him2k":
        cols = ["IMQ_mad", "IMQ_mse", "IMQ_grad", "IMQ_conn", "RQ"]
        lines.append(f"{'method':<12} " + " ".join(f"{c:>9}" for c in cols) + "   (IoU 0.5; x100 = paper units)")
        for m in res.methods:
            row = res.summary[m]["0.5"]
            lines.append(f"{m:<12} " + " ".join(f"{row[c]:9.4f}" for c in cols))
    else:
        cols = ["RQ", "precision", "recall"]
        lines.append(f"{'method':<12} " + " ".join(f"{c:>9}" for c in cols) + f" {'TP':>5} {'FP':>5} {'FN':>5}"
                     + "   (recognition at IoU 0.5)")
        for m in res.methods:
            row = res.summary[m]
            lines.append(f"{m:<12} " + " ".join(f"{row[c]:9.4f}" for c in cols)
                         + f" {row['TP']:5d} {row['FP']:5d} {row['FN']:5d}")
    lines.append("")
    lines.append("mean seconds per image and stage:")
    for k, v in res.timings.items():
        lines.append(f"  {k:<36} {np.mean(v):8.3f}")
    lines.append(f"{len(res.samples)} images in {res.seconds:.1f} s; peak RSS {res.peak_rss_mb:.0f} MB")
    return "\n".join(lines)


def _colourise(alphas: Sequence[np.ndarray]) -> np.ndarray:
    """Instances in distinct colours on black: (H, W, 3) float [0, 1]."""
    import matplotlib

    cmap = matplotlib.colormaps["tab10"]
    alphas = [imq._as_unit_float(a) for a in alphas]
    if not alphas:
        return None
    out = np.zeros(alphas[0].shape + (3,))
    for i, a in enumerate(alphas):
        out += a[..., None] * np.asarray(cmap(i % 10)[:3])[None, None, :]
    return np.clip(out, 0, 1)


def _save_fig(fig, path: Path) -> None:
    from instmatt_app.io.atomic import atomic_save

    atomic_save(path, lambda fh: fig.savefig(fh, format="png", dpi=100, bbox_inches="tight"))


def _group_by_people(res: BenchResult, method: str) -> dict[int, dict]:
    groups: dict[int, list] = {}
    for n, sc in zip(res.n_gt, res.per_image[method]):
        groups.setdefault(n, []).append(sc)
    return {n: imq.pool(v, THRESHOLDS)["0.5"] for n, v in sorted(groups.items())}


def write_report(res: BenchResult, out_dir: str | os.PathLike, command: str = "") -> Path:
    """Write report.md, summary.json, per_image.csv and plots (PNG) to ``out_dir``; returns report.md."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from instmatt_app.io.atomic import atomic_open

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    him = res.dataset.kind == "him2k"
    plots: list[tuple[str, str]] = []

    if him and res.methods:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for m in res.methods:
            g = _group_by_people(res, m)
            ax.plot(list(g), [100 * (1 - v["IMQ_mad"]) for v in g.values()], marker="o", label=m)
        ax.set_xlabel("people in the image (GT instances)")
        ax.set_ylabel("100 - IMQ_mad (lower is better)")
        ax.set_title("error vs number of people (IoU 0.5)")
        ax.legend()
        ax.grid(alpha=0.3)
        _save_fig(fig, out / "error_vs_people.png")
        plt.close(fig)
        plots.append(("Error vs number of people", "error_vs_people.png"))

    stages = [k for k in res.timings if k != "wall per image" and not k.endswith(":total")]
    if stages:
        fig, ax = plt.subplots(figsize=(6, 0.4 * len(stages) + 1.2))
        ax.barh(stages, [np.mean(res.timings[k]) for k in stages], color="tab:blue")
        ax.set_xlabel("mean seconds per image")
        ax.set_title("time per stage")
        ax.invert_yaxis()
        _save_fig(fig, out / "time_per_stage.png")
        plt.close(fig)
        plots.append(("Time per stage", "time_per_stage.png"))

    for rank, (name, w) in enumerate(sorted(res.worst.items(), key=lambda kv: kv[1]["score"])):
        methods = list(w["mattes"])
        fig, axes = plt.subplots(1, 2 + len(methods), figsize=(3.2 * (2 + len(methods)), 3.2))
        panels = [("photo", w["image"] / 255.0), ("ground truth", _colourise(w["gt"]))]
        panels += [(m, _colourise(list(w["mattes"][m]))) for m in methods]
        for ax, (title, img) in zip(axes, panels):
            if img is not None:
                ax.imshow(img)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        fig.suptitle(f"{name}: per-image IMQ_mad of {w['method']} = {w['score']:.3f}", fontsize=10)
        fname = f"worst_{rank + 1}.png"
        _save_fig(fig, out / fname)
        plt.close(fig)
        plots.append((f"Worst image {rank + 1}: {name}", fname))

    # summary.json and per-image CSV
    data = {"dataset": str(res.dataset.root), "kind": res.dataset.kind, "images": len(res.samples),
            "methods": res.summary, "timings_mean_s": {k: float(np.mean(v)) for k, v in res.timings.items()},
            "seconds": res.seconds, "peak_rss_mb": res.peak_rss_mb, "notes": res.notes, "command": command}
    with atomic_open(out / "summary.json", "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    with atomic_open(out / "per_image.csv", "w") as fh:
        wr = csv.writer(fh, lineterminator="\n")
        if him:
            wr.writerow(["image", "method", "n_gt", "n_pred", "TP", "FP", "FN", "IMQ_mad", "IMQ_mse",
                         "IMQ_grad", "IMQ_conn", "RQ"])
            for m in res.methods:
                for sc in res.per_image[m]:
                    c, q = sc.counts["0.5"], sc.imq("0.5")
                    wr.writerow([sc.name, m, sc.n_gt, sc.n_pred, c["TP"], c["FP"], c["FN"],
                                 *(f"{q[k]:.6f}" for k in ("IMQ_mad", "IMQ_mse", "IMQ_grad", "IMQ_conn", "RQ"))])
        else:
            wr.writerow(["image", "method", "TP", "FP", "FN"])
            for m in res.methods:
                for s, c in zip(res.samples, res.per_image[m]):
                    wr.writerow([s.name, m, c["TP"], c["FP"], c["FN"]])

    # markdown
    md = [f"# Benchmark: {res.dataset.root}", ""]
    md.append(f"{len(res.samples)} images ({res.dataset.kind} layout), {res.seconds:.1f} s, "
              f"peak RSS {res.peak_rss_mb:.0f} MB, {platform.machine()} / Python {platform.python_version()}.")
    if command:
        md += ["", "Command:", "", f"    {command}"]
    md.append("")
    if him:
        md.append("IMQ (InstMatt §5, w = 10), x100 as in the paper; RQ/MQ fractions x100 too.")
        md.append("")
        for key in ("0.5", "0.75"):
            md.append(f"**IoU >= {key}**")
            md.append("")
            md.append("| method | IMQ_mad | IMQ_mse | IMQ_grad | IMQ_conn | RQ | MQ_mad | TP | FP | FN |")
            md.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
            for m in res.methods:
                r = res.summary[m][key]
                md.append(f"| {m} | " + " | ".join(f"{100 * r[c]:.2f}" for c in
                          ("IMQ_mad", "IMQ_mse", "IMQ_grad", "IMQ_conn", "RQ", "MQ_mad"))
                          + f" | {r['TP']} | {r['FP']} | {r['FN']} |")
            md.append("")
    else:
        md.append("Recognition only (binary COCO polygons): predicted matte >= 0.5 vs GT mask, IoU >= 0.5; "
                  "GT persons < 2 % of the image and crowd regions ignored.")
        md.append("")
        md.append("| method | RQ | precision | recall | TP | FP | FN |")
        md.append("| --- | --- | --- | --- | --- | --- | --- |")
        for m in res.methods:
            r = res.summary[m]
            md.append(f"| {m} | {r['RQ']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | "
                      f"{r['TP']} | {r['FP']} | {r['FN']} |")
        md.append("")
    md.append("Mean seconds per image:")
    md.append("")
    md.append("| stage | seconds |")
    md.append("| --- | --- |")
    for k, v in res.timings.items():
        md.append(f"| {k} | {np.mean(v):.3f} |")
    md.append("")
    for note in res.notes:
        md.append(f"- note: {note}")
    if res.notes:
        md.append("")
    for title, fname in plots:
        md += [f"## {title}", "", f"![{title}]({fname})", ""]
    with atomic_open(out / "report.md", "w") as fh:
        fh.write("\n".join(md))
    return out / "report.md"
