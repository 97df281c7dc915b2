"""IMQ: Instance Matting Quality (InstMatt, CVPR 2022, §5, Eq. 16-18), numpy + scipy only.

Reproduces the official ``evaluation/IMQ.py`` of nowsyn/InstMatt (see
``docs/evaluation.md``; agreement with the official scores to 1e-6 is tested on the golden cases),
with one deliberate difference: an image whose prediction folder is missing counts its ground-truth
instances as false negatives (the official script silently skips the image). ``official_compat=True``
restores the skip.

Per image (all alphas (H, W) in [0, 1]):

* binarise ``pred > 0`` and ``gt > 0``; IoU matrix ``|inter| / (|union| + 1e-8)`` (n_pred x n_gt);
* one-to-one assignment maximising total IoU (``scipy.optimize.linear_sum_assignment`` on 1 - IoU);
  an assigned pair is a true positive at threshold t when IoU >= t; FP = n_pred - TP,
  FN = n_gt - TP;
* for each TP pair, errors over the union region R (pred > 0 or gt > 0), ``sum_R e / (|R| + 1)``:
  MAD |p - g|, MSE (p - g)^2, Grad (|∇p| - |∇g|)^2 (first-derivative-of-Gaussian, sigma 1.4, 9 x 9,
  edge-replicate), Conn |phi_p - phi_g| (connectivity, thresholds 0.1 .. 1.0, 4-connected largest
  component); similarity ``S = 1 - min(w * error, 1)``.

Pooled over the data set (not averaged per image):
``IMQ_e = sum S_e / (TP + FP/2 + FN/2 + 1e-6)``, ``RQ = TP / (TP + FP/2 + FN/2 + 1e-6)``,
``MQ_e = sum S_e / TP`` (0 when TP = 0, where the official script crashes). Values are fractions.

Python API: :func:`score_image` (arrays of one image), :func:`score_dirs` (HIM2K-layout folders,
per-image details), :func:`evaluate_dirs` (just the pooled summary dict), :func:`pool`.
"""
from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

from instmatt_app.io.image_io import IMAGE_SUFFIXES  # matte files read

__all__ = [
    "ERRORS",
    "IMQInputError",
    "PairScore",
    "ImageScore",
    "IMQReport",
    "alpha_errors",
    "gradient_magnitude",
    "connectivity_phi",
    "iou_matrix",
    "score_image",
    "read_alpha",
    "read_alpha_raw",
    "read_instance_folder",
    "score_dirs",
    "evaluate_dirs",
    "pool",
    "threshold_key",
    "write_json",
    "write_csv",
]

ERRORS = ("mad", "mse", "grad", "conn")
_IOU_EPS = 1e-8
_POOL_EPS = 1e-6
# connectivity thresholds: float64 values equal to the official float32 torch.arange(0, 1.1, 0.1)
# for every k/255 alpha (np.arange(0, 1.1, 0.1) is not: it has 0.6000000000000001)
_CONN_STEPS = tuple(round(0.1 * i, 1) for i in range(11))
# the same comparisons on 8-bit values: k/255 >= t  <=>  k >= smallest such k
_CONN_CUTS_U8 = tuple(next(k for k in range(256) if k / 255.0 >= t) if t <= 1.0 else 256
                      for t in _CONN_STEPS)


class IMQInputError(ValueError):
    """Bad evaluation input (missing/empty folder, unreadable or non-grey file, size mismatch).

    The message names the offending file or folder.
    """


# --------------------------------------------------------------------------- error functions

def _gauss_kernels(sigma: float = 1.4) -> tuple[np.ndarray, np.ndarray]:
    """1-D Gaussian and its derivative, each normalised to unit L2 norm.

    The official 2-D kernel ``hx[i, j] = gauss(i) * dgauss(j) / ||hx||`` is their outer product, so
    the 2-D convolution splits into two 1-D passes. Half size = ceil(sigma sqrt(-2 ln(sqrt(2 pi)
    sigma 0.01))) = 4 for sigma 1.4 (9 taps).
    """
    half = int(math.ceil(sigma * math.sqrt(-2.0 * math.log(math.sqrt(2 * math.pi) * sigma * 1e-2))))
    x = np.arange(-half, half + 1, dtype=np.float64)
    g = np.exp(-x ** 2 / (2 * sigma ** 2)) / (sigma * math.sqrt(2 * math.pi))
    dg = -x * g / sigma ** 2
    return g / np.linalg.norm(g), dg / np.linalg.norm(dg)


_GAUSS, _DGAUSS = _gauss_kernels()
_GRAD_HALF = len(_GAUSS) // 2


def gradient_magnitude(alpha: np.ndarray) -> np.ndarray:
    """|∇alpha| with the official first-derivative-of-Gaussian filters (sigma 1.4, 9 x 9).

    alpha: (H, W) float in [0, 1]. Returns (H, W) float64. Edge-replicate borders; two separable
    passes per direction (OpenCV ``sepFilter2D`` in float64, a correlation: the flipped
    derivative kernel only changes the sign of the derivative, not the magnitude).
    """
    import cv2

    a = np.ascontiguousarray(alpha, dtype=np.float64)
    gx = cv2.sepFilter2D(a, cv2.CV_64F, _DGAUSS, _GAUSS, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.sepFilter2D(a, cv2.CV_64F, _GAUSS, _DGAUSS, borderType=cv2.BORDER_REPLICATE)
    return np.hypot(gx, gy)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """Largest 4-connected component of a bool (H, W) mask; all False if the mask is empty.

    On a size tie the component met first in raster order wins (the official script's
    ``argmax`` over raster-ordered labels). OpenCV labels; scipy only to break ties.
    """
    import cv2

    n, labels = cv2.connectedComponents(np.ascontiguousarray(mask, dtype=np.uint8),
                                        connectivity=4, ltype=cv2.CV_32S)
    if n <= 1:
        return np.zeros(mask.shape, dtype=bool)
    areas = np.bincount(labels.ravel(), minlength=n)[1:]
    best = int(np.argmax(areas))
    if np.count_nonzero(areas == areas[best]) > 1:
        sc_labels, _ = ndimage.label(mask)  # raster-ordered labels
        sizes = np.bincount(sc_labels.ravel())
        sizes[0] = 0
        return sc_labels == int(np.argmax(sizes))
    return labels == best + 1


def connectivity_phi(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Connectivity degrees phi of pred and gt (standard definition, step 0.1).

    pred, gt: (H, W) float in [0, 1], or both uint8 (value/255; the threshold comparisons are then
    done on the integers, with the same outcome). For thresholds t = 0.1 .. 1.0, omega_t = largest
    4-connected component of (pred >= t AND gt >= t); l(x) = the previous threshold at the first t
    where x leaves omega_t (1 if never); d = alpha - l; phi = 1 - d [d >= 0.15].
    Returns (phi_pred, phi_gt), each (H, W) float64.
    """
    if pred.dtype == np.uint8 and gt.dtype == np.uint8:
        cuts = _CONN_CUTS_U8
    else:
        pred, gt = _as_unit_float(pred), _as_unit_float(gt)
        cuts = _CONN_STEPS
    alive = np.ones(pred.shape, dtype=bool)  # inside every omega so far
    count = np.zeros(pred.shape, dtype=np.intp)  # number of leading omegas holding the pixel
    for i in range(1, len(_CONN_STEPS)):
        t = cuts[i]
        full = (pred >= t) & (gt >= t)
        if not (full & alive).any():  # every pixel is settled
            break
        fbox = _bbox(full)  # label only the mask's bounding box (same components)
        omega = np.zeros(pred.shape, dtype=bool)
        omega[fbox] = _largest_component(full[fbox])
        alive &= omega
        count += alive
    level = np.asarray(_CONN_STEPS)[count]  # count = 10 (never left) -> 1.0
    pred, gt = _as_unit_float(pred), _as_unit_float(gt)
    dp = pred - level
    dg = gt - level
    return 1.0 - dp * (dp >= 0.15), 1.0 - dg * (dg >= 0.15)


def _bbox(mask: np.ndarray) -> tuple[slice, slice] | None:
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def alpha_errors(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Raw errors of one matched pair over the union region R = (pred > 0) | (gt > 0).

    pred, gt: (H, W) alphas of the same shape, float in [0, 1] or uint8 (/255) or uint16
    (/65535). Returns {"mad", "mse", "grad", "conn": float
    (sum over R / (|R| + 1), alpha units, no scaling), "union_px": int |R|}.
    Work is restricted to R's bounding box (plus the gradient filter's reach), which gives exactly
    the whole-image result.
    """
    pred, gt = np.asarray(pred), np.asarray(gt)
    region = (pred > 0) | (gt > 0)
    box = _bbox(region)
    if box is None:
        return {"mad": 0.0, "mse": 0.0, "grad": 0.0, "conn": 0.0, "union_px": 0}
    (rs, cs) = box
    h, w = pred.shape
    # gradient: crop with a margin of the filter half size (clipped at the image border, where
    # edge-replicate padding then sees the same pixels as on the whole image)
    r0, r1 = max(rs.start - _GRAD_HALF, 0), min(rs.stop + _GRAD_HALF, h)
    c0, c1 = max(cs.start - _GRAD_HALF, 0), min(cs.stop + _GRAD_HALF, w)
    inner = (slice(rs.start - r0, rs.stop - r0), slice(cs.start - c0, cs.stop - c0))
    gp = gradient_magnitude(_as_unit_float(pred[r0:r1, c0:c1]))[inner]
    gg = gradient_magnitude(_as_unit_float(gt[r0:r1, c0:c1]))[inner]
    p, g, r = _as_unit_float(pred[box]), _as_unit_float(gt[box]), region[box]
    n = int(np.count_nonzero(r))
    denom = n + 1.0
    diff = (p - g)[r]
    phi_p, phi_g = connectivity_phi(pred[box], gt[box])
    return {
        "mad": float(np.abs(diff).sum() / denom),
        "mse": float((diff * diff).sum() / denom),
        "grad": float(((gp - gg)[r] ** 2).sum() / denom),
        "conn": float(np.abs(phi_p - phi_g)[r].sum() / denom),
        "union_px": n,
    }


def iou_matrix(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray]) -> np.ndarray:
    """IoU of binarised (> 0) instances: (n_pred, n_gt) float64, ``inter / (union + 1e-8)``.

    preds, gts: (H, W) alphas (any dtype; only ``> 0`` matters). Intersections are counted only
    inside the overlap of the two instances' bounding boxes.
    """
    out = np.zeros((len(preds), len(gts)))
    if len(preds) == 0 or len(gts) == 0:
        return out
    pm = [np.asarray(a) > 0 for a in preds]
    gm = [np.asarray(a) > 0 for a in gts]
    pb, gb = [_bbox(m) for m in pm], [_bbox(m) for m in gm]
    pn = [int(np.count_nonzero(m[b])) if b else 0 for m, b in zip(pm, pb)]
    gn = [int(np.count_nonzero(m[b])) if b else 0 for m, b in zip(gm, gb)]
    for i, (m, b) in enumerate(zip(pm, pb)):
        for j, (n, c) in enumerate(zip(gm, gb)):
            inter = 0
            if b is not None and c is not None:
                r0, r1 = max(b[0].start, c[0].start), min(b[0].stop, c[0].stop)
                c0, c1 = max(b[1].start, c[1].start), min(b[1].stop, c[1].stop)
                if r0 < r1 and c0 < c1:
                    inter = int(np.count_nonzero(m[r0:r1, c0:c1] & n[r0:r1, c0:c1]))
            out[i, j] = inter / (pn[i] + gn[j] - inter + _IOU_EPS)
    return out


# --------------------------------------------------------------------------- per image

@dataclass
class PairScore:
    """One assigned (pred, gt) pair. errors/similarity are filled when IoU >= the lowest threshold."""

    pred: int
    gt: int
    iou: float
    errors: dict[str, float] | None = None
    similarity: dict[str, float] | None = None


@dataclass
class ImageScore:
    """Scores of one image.

    status: "evaluated", "no_prediction" (prediction folder missing: every GT instance is a FN) or
    "skipped" (same, with official_compat: not counted at all).
    counts[thr_key] = {"TP", "FP", "FN"}; sums[thr_key] = {e: sum of S_e over the TP pairs, "iou": sum
    of matched IoUs}.
    """

    name: str
    status: str
    n_pred: int
    n_gt: int
    pred_files: list[str] = field(default_factory=list)
    gt_files: list[str] = field(default_factory=list)
    iou: np.ndarray | None = None
    pairs: list[PairScore] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    sums: dict[str, dict[str, float]] = field(default_factory=dict)
    cpu_seconds: float = 0.0  # CPU time spent reading and scoring this image (score_dirs)

    def imq(self, thr: float | str, w_errors: Iterable[str] = ERRORS) -> dict[str, float]:
        """This image alone, pooled like the data set (IMQ_e, RQ)."""
        key = thr if isinstance(thr, str) else threshold_key(thr)
        c, s = self.counts[key], self.sums[key]
        denom = c["TP"] + 0.5 * c["FP"] + 0.5 * c["FN"] + _POOL_EPS
        out = {f"IMQ_{e}": s[e] / denom for e in w_errors}
        out["RQ"] = c["TP"] / denom
        return out


def threshold_key(thr: float) -> str:
    """JSON key of a threshold: 0.5 -> "0.5", 0.75 -> "0.75"."""
    return f"{float(thr):g}"


def _as_unit_float(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    if a.dtype == np.uint16:
        return a.astype(np.float64) / 65535.0
    return a.astype(np.float64, copy=False)


def _check_alpha(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise IMQInputError(f"{name or 'image'}: an instance alpha must be 2-D (H, W), got shape {a.shape}")
    if a.dtype not in (np.uint8, np.uint16) and a.dtype.kind != "f":
        a = a.astype(np.float64)
    return a


def score_image(preds: Sequence[np.ndarray], gts: Sequence[np.ndarray],
                thresholds: Sequence[float] = (0.5, 0.75), w: float = 10.0, name: str = "",
                pred_files: Sequence[str] | None = None, gt_files: Sequence[str] | None = None,
                ) -> ImageScore:
    """Score one image's predicted instances against its GT instances.

    preds: sequence of n_pred (H, W) alphas; gts: n_gt (H, W) alphas. Each either float in [0, 1]
    or uint8 (0-255, divided by 255). All must share one shape (checked). Order is irrelevant:
    matching is by content. Returns an :class:`ImageScore` with status "evaluated".
    """
    preds = [_check_alpha(a, name) for a in preds]
    gts = [_check_alpha(a, name) for a in gts]
    shapes = {a.shape for a in preds + gts}
    if len(shapes) > 1:
        raise IMQInputError(f"{name or 'image'}: instance alphas differ in size: {sorted(shapes)}")
    thresholds = [float(t) for t in thresholds]
    iou = iou_matrix(preds, gts)
    pairs: list[PairScore] = []
    if iou.size:
        rows, cols = linear_sum_assignment(1.0 - iou)
        for r, c in zip(rows, cols):
            pairs.append(PairScore(int(r), int(c), float(iou[r, c])))
    t_min = min(thresholds) if thresholds else 1.0
    for pr in pairs:
        if pr.iou >= t_min:
            pr.errors = alpha_errors(preds[pr.pred], gts[pr.gt])
            pr.similarity = {e: 1.0 - min(w * pr.errors[e], 1.0) for e in ERRORS}
    score = ImageScore(name=name, status="evaluated", n_pred=len(preds), n_gt=len(gts),
                       pred_files=list(pred_files or []), gt_files=list(gt_files or []),
                       iou=iou, pairs=pairs)
    for t in thresholds:
        tp_pairs = [pr for pr in pairs if pr.iou >= t]
        tp = len(tp_pairs)
        key = threshold_key(t)
        score.counts[key] = {"TP": tp, "FP": len(preds) - tp, "FN": len(gts) - tp}
        sums = {e: float(sum(pr.similarity[e] for pr in tp_pairs)) for e in ERRORS}
        sums["iou"] = float(sum(pr.iou for pr in tp_pairs))
        score.sums[key] = sums
    return score


def _unscored_image(name: str, n_gt: int, gt_files: list[str], thresholds: Sequence[float],
                    official_compat: bool) -> ImageScore:
    status = "skipped" if official_compat else "no_prediction"
    s = ImageScore(name=name, status=status, n_pred=0, n_gt=n_gt, gt_files=gt_files)
    for t in thresholds:
        key = threshold_key(t)
        s.counts[key] = {"TP": 0, "FP": 0, "FN": 0 if official_compat else n_gt}
        s.sums[key] = {e: 0.0 for e in (*ERRORS, "iou")}
    return s


# --------------------------------------------------------------------------- reading files

def read_alpha(path: str | os.PathLike) -> np.ndarray:
    """Read one instance matte as float64 (H, W) in [0, 1] (see :func:`read_alpha_raw`)."""
    return _as_unit_float(read_alpha_raw(path))


def read_alpha_raw(path: str | os.PathLike) -> np.ndarray:
    """Read one instance matte as stored: (H, W) uint8 (value/255) or uint16 (value/65535).

    Accepted: 8-bit grey (/255, as the official script), 16-bit grey (/65535), and 3- or 4-channel
    images whose colour channels are all equal and whose alpha channel, if any, is fully opaque
    (a grey matte saved as RGB). Anything else raises :class:`IMQInputError` naming the file: a
    colour image is not a matte, and silently converting it to luminance (the official script's
    ``cv2.IMREAD_GRAYSCALE``) hides mistakes such as passing the photo instead of its mattes.
    """
    import cv2

    path = Path(path)
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if img is None:
        raise IMQInputError(f"{path}: cannot read this file as an image")
    if img.dtype not in (np.uint8, np.uint16):
        raise IMQInputError(f"{path}: unsupported pixel type {img.dtype} (expected 8- or 16-bit grey)")
    if img.ndim == 3:
        if img.shape[2] == 1:
            img = img[..., 0]
        elif img.shape[2] in (3, 4):
            if img.shape[2] == 4:
                full = np.iinfo(img.dtype).max
                if not np.all(img[..., 3] == full):
                    raise IMQInputError(
                        f"{path}: 4-channel image with transparency; an instance matte must be a "
                        "grey image (save the alpha channel as a grey PNG)")
            c = img[..., :3]
            if not (np.array_equal(c[..., 0], c[..., 1]) and np.array_equal(c[..., 0], c[..., 2])):
                raise IMQInputError(
                    f"{path}: colour image (channels differ); an instance matte must be grey")
            img = c[..., 0]
        else:
            raise IMQInputError(f"{path}: {img.shape[2]}-channel image; expected a grey matte")
    return img


def _instance_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES)


def read_instance_folder(folder: Path) -> tuple[list[str], list[np.ndarray]]:
    """All instance mattes of one image folder, sorted by file name, as stored (uint8/uint16,
    see :func:`read_alpha_raw`); sizes checked to agree. Returns (file names, arrays)."""
    files = _instance_files(folder)
    alphas = [read_alpha_raw(p) for p in files]
    for p, a in zip(files[1:], alphas[1:]):
        if a.shape != alphas[0].shape:
            raise IMQInputError(f"{p}: size {a.shape[1]}x{a.shape[0]} differs from "
                                f"{files[0]} ({alphas[0].shape[1]}x{alphas[0].shape[0]})")
    return [p.name for p in files], alphas


def _score_one(task: tuple) -> ImageScore:
    import time

    t0 = time.process_time()
    score = _score_one_timed(task)
    score.cpu_seconds = time.process_time() - t0
    return score


def _score_one_timed(task: tuple) -> ImageScore:
    name, pred_folder, gt_folder, thresholds, w, official_compat = task
    gt_files, gts = read_instance_folder(gt_folder)
    if pred_folder is None:
        return _unscored_image(name, len(gts), gt_files, thresholds, official_compat)
    pred_files, preds = read_instance_folder(pred_folder)
    if preds and gts and preds[0].shape != gts[0].shape:
        ph, pw = preds[0].shape
        gh, gw = gts[0].shape
        raise IMQInputError(f"{pred_folder / pred_files[0]}: prediction is {pw}x{ph} but the ground "
                            f"truth {gt_folder / gt_files[0]} is {gw}x{gh} (IMQ is computed at the "
                            "ground-truth resolution; resize predictions back first)")
    return score_image(preds, gts, thresholds, w, name=name, pred_files=pred_files, gt_files=gt_files)


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


# --------------------------------------------------------------------------- data set

@dataclass
class IMQReport:
    """Result of :func:`score_dirs`: the pooled ``summary`` (one dict per threshold key) and the
    per-image scores in GT folder order, plus notes (e.g. unmatched prediction folders)."""

    summary: dict[str, dict]
    images: list[ImageScore]
    thresholds: list[float]
    w: float
    official_compat: bool
    notes: list[str] = field(default_factory=list)


def pool(images: Sequence[ImageScore], thresholds: Sequence[float]) -> dict[str, dict]:
    """Pool per-image scores over the data set (Eq. 16-18 as the official script).

    Returns {thr_key: {"IMQ_mad", "IMQ_mse", "IMQ_grad", "IMQ_conn", "IMQ_iou", "RQ", "MQ_mad",
    "MQ_mse", "MQ_grad", "MQ_conn", "MQ_iou", "TP", "FP", "FN", "images", "images_no_prediction",
    "images_skipped"[, "note"]}}; fractions, not x100.
    """
    out: dict[str, dict] = {}
    for t in thresholds:
        key = threshold_key(t)
        tp = sum(s.counts[key]["TP"] for s in images)
        fp = sum(s.counts[key]["FP"] for s in images)
        fn = sum(s.counts[key]["FN"] for s in images)
        sums = {e: float(sum(s.sums[key][e] for s in images)) for e in (*ERRORS, "iou")}
        denom = tp + 0.5 * fp + 0.5 * fn + _POOL_EPS
        row: dict = {f"IMQ_{e}": sums[e] / denom for e in (*ERRORS, "iou")}
        row["RQ"] = tp / denom
        row.update({f"MQ_{e}": (sums[e] / tp if tp else 0.0) for e in (*ERRORS, "iou")})
        row.update({"TP": tp, "FP": fp, "FN": fn,
                    "images": sum(s.status != "skipped" for s in images),
                    "images_no_prediction": sum(s.status == "no_prediction" for s in images),
                    "images_skipped": sum(s.status == "skipped" for s in images)})
        if tp == 0:
            row["note"] = (f"no instance pair matched at IoU >= {key}: IMQ and MQ are 0 "
                           "(the official script raises ZeroDivisionError here)")
        out[key] = row
    return out


def _check_dir(path: Path, what: str) -> list[Path]:
    if not path.exists():
        raise IMQInputError(f"{path}: {what} folder does not exist")
    if not path.is_dir():
        raise IMQInputError(f"{path}: {what} is not a folder")
    subs = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subs:
        hint = ""
        if _instance_files(path):
            hint = (" (it holds image files directly: expected one sub-folder per image, "
                    "<name>/NN.png, e.g. HIM2K's alphas/<subset>)")
        raise IMQInputError(f"{path}: {what} folder has no image sub-folders{hint}")
    return subs


def _usable_workers(workers: int, n_tasks: int) -> int:
    """Processes worth starting: none for small sets (starting 2 spawned workers costs ~1.5 s, about
    15 images of scoring), and none when ``__main__`` was read from stdin (``python - <<EOF``):
    spawned workers re-import ``__main__`` by path and would fail in a loop."""
    import sys

    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if workers <= 1 or n_tasks < 16 or (main_file and not os.path.exists(main_file)):
        return 1
    return min(workers, n_tasks)


def score_dirs(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike,
               thresholds: Sequence[float] = (0.5, 0.75), w: float = 10.0,
               official_compat: bool = False, workers: int = 2, progress: bool = False,
               ) -> IMQReport:
    """Score a prediction folder against a HIM2K-layout GT folder.

    gt_dir: one sub-folder per image (``<name>/NN.png``, e.g. HIM2K ``alphas/comp``); pred_dir: the
    same ``<name>/`` sub-folders holding the predicted instance mattes (any file names).
    workers: processes (1 = in this process; sets under 16 images are always scored in this
    process). Raises :class:`IMQInputError` on bad input.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    thresholds = [float(t) for t in thresholds]
    if not thresholds or any(not 0.0 < t <= 1.0 for t in thresholds):
        raise IMQInputError(f"thresholds must be in (0, 1]: {thresholds}")
    gt_subs = _check_dir(gt_dir, "ground-truth")
    pred_names = {p.name for p in _check_dir(pred_dir, "prediction")}
    tasks = [(g.name, (pred_dir / g.name) if g.name in pred_names else None, g, thresholds, float(w),
              official_compat) for g in gt_subs]
    notes = []
    extra = sorted(pred_names - {g.name for g in gt_subs})
    if extra:
        notes.append(f"{len(extra)} prediction folder(s) have no ground truth and were ignored "
                     f"(e.g. {extra[0]})")
    missing = sum(t[1] is None for t in tasks)
    if missing:
        notes.append(f"{missing} image(s) have no prediction folder: " +
                     ("skipped (--official-compat)" if official_compat else
                      "their ground-truth instances count as false negatives"))
    workers = _usable_workers(int(workers), len(tasks))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(tasks), unit="img", desc="IMQ", disable=None)
    images: list[ImageScore] = []
    if workers == 1:
        _worker_init()
        for task in tasks:
            images.append(_score_one(task))
            if bar:
                bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")  # safe even when torch threads exist in the parent
        with ctx.Pool(workers, initializer=_worker_init) as workers_pool:
            for s in workers_pool.imap(_score_one, tasks, chunksize=max(1, min(8, len(tasks) // (4 * workers)))):
                images.append(s)
                if bar:
                    bar.update()
    if bar:
        bar.close()
    return IMQReport(summary=pool(images, thresholds), images=images, thresholds=thresholds,
                     w=float(w), official_compat=official_compat, notes=notes)


def evaluate_dirs(pred_dir: str | os.PathLike, gt_dir: str | os.PathLike,
                  thresholds: Sequence[float] = (0.5, 0.75), w: float = 10.0,
                  official_compat: bool = False, workers: int = 2) -> dict[str, dict]:
    """Pooled IMQ summary of a prediction folder against a GT folder (see :func:`score_dirs`)."""
    return score_dirs(pred_dir, gt_dir, thresholds, w, official_compat, workers).summary


# --------------------------------------------------------------------------- output files

def write_json(report: IMQReport, path: str | os.PathLike) -> None:
    """Write the pooled summary as JSON (atomically): {thr_key: {...}} plus nothing else."""
    from instmatt_app.io.atomic import atomic_open

    with atomic_open(path, "w") as fh:
        json.dump(report.summary, fh, indent=2)
        fh.write("\n")


CSV_COLUMNS = ("image", "threshold", "status", "n_gt", "n_pred", "TP", "FP", "FN",
               "S_mad", "S_mse", "S_grad", "S_conn", "S_iou",
               "IMQ_mad", "IMQ_mse", "IMQ_grad", "IMQ_conn", "RQ")


def write_csv(report: IMQReport, path: str | os.PathLike) -> None:
    """Per-image CSV (atomically), one row per image and threshold: counts, sums of S over the
    TP pairs (S_*), and the image's own IMQ/RQ."""
    from instmatt_app.io.atomic import atomic_open

    with atomic_open(path, "w") as fh:
        wr = csv.writer(fh, lineterminator="\n")
        wr.writerow(CSV_COLUMNS)
        for s in report.images:
            for t in report.thresholds:
                key = threshold_key(t)
                c, sm, q = s.counts[key], s.sums[key], s.imq(key)
                wr.writerow([s.name, key, s.status, s.n_gt, s.n_pred, c["TP"], c["FP"], c["FN"],
                             *(f"{sm[e]:.8g}" for e in (*ERRORS, "iou")),
                             *(f"{q['IMQ_' + e]:.8g}" for e in ERRORS), f"{q['RQ']:.8g}"])
