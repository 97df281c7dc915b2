"""Multi-instance refinement (paper §3.3): the refiner module, window proposal, NMS, duplicate
filter and the refinement sweeps, in the two strategies of the paper.

* **parallel** (the official code): in each window, every (non-duplicate) instance is refined at
  once from the same un-refined tri-mattes.
* **cycle**: instances are refined one after another in a given ``order``; when instance i is
  refined, the instances before it in the order already carry their refined tri-mattes (and so
  their refined separated features), those after it still the un-refined ones. With one instance
  (or one per window) cycle equals parallel.

Separation / interaction / aggregation inside a window of n instances (the official code's
version of Eq. 7–9, without the paper's 1/2 factors, see the reference digest §1.6, §9.3):
  F_x,i = split(F_i · P_x,i) for x in {t, r, b} (grouped conv, 16 channels each);
  T~_i = F_t,i + Σ_j F_r,j / max(n − 1, 1) − Σ_{j≠i} F_t,j;  R~_i = F_r,i + Σ_{j≠i} F_t,j;
  B~_i = mean_j F_b,j;  P'_i = (tanh(head(merge([T~, R~, B~, RGB]))) + 1) / 2.
Only the window interior (10 px margin dropped) is written back.

Tensors: k instances, network-input size H×W (multiples of 32). rgb (k, 3, H, W) normalised image
(the same image repeated), trimattes (k, 3, H, W) float32 in [0, 1], feature (k, 32, H, W).
Window boxes are float64 rows (x1, y1, x2, y2, score), x2/y2 exclusive.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MultiInstanceRefiner",
    "RefineMode",
    "RefinementResult",
    "window_side",
    "disagreement_map",
    "propose_windows",
    "nms_windows",
    "duplicate_instances",
    "refine",
    "WINDOW_MARGIN",
]

RefineMode = Literal["parallel", "cycle"]
WINDOW_MARGIN = 10          # pixels of each window border that are computed but not written back
CHANGE_THRESHOLD = 0.01     # an instance whose α_t changed less than this in a sweep has converged
PROPOSAL_MIN_SCORE = np.float32(0.01)
NMS_IOU = 0.3


def _tag(module: nn.Module, official: str) -> nn.Module:
    module.official_name = official
    module.spectral_norm = False
    return module


class MultiInstanceRefiner(nn.Module):
    """The MIR network (38.7 k parameters): grouped split conv, two merge convs, tri-matte head.

    ``separate(feature, trimatte)`` -> (n, 48, h, w) separated features [F_t | F_r | F_b];
    ``interact(separated)`` -> (n, 48, h, w) [T~ | R~ | B~] (sums over the instance axis);
    ``decode(interacted, rgb)`` -> (n, 3, h, w) tri-matte logits.
    """

    def __init__(self, feature_channels: int = 32, split_channels: int = 16):
        super().__init__()
        c, s = feature_channels, split_channels
        self.split_channels = s
        self.split = _tag(nn.Conv2d(3 * c, 3 * s, 3, padding=1, groups=3), "refiner.split")
        self.merge_a = _tag(nn.Conv2d(3 * s + 3, c, 3, padding=1), "refiner.merge.0")
        self.merge_b = _tag(nn.Conv2d(c, c, 3, padding=1), "refiner.merge.2")
        self.head = _tag(nn.Conv2d(c, 3, 3, padding=1), "refiner.head")

    def separate(self, feature: torch.Tensor, trimatte: torch.Tensor) -> torch.Tensor:
        """feature (n, C, h, w), trimatte (n, 3, h, w) -> (n, 3·s, h, w)."""
        gated = torch.cat([feature * trimatte[:, 0:1], feature * trimatte[:, 1:2], feature * trimatte[:, 2:3]], 1)
        return self.split(gated)

    def interact(self, separated: torch.Tensor, rows: Sequence[int] | None = None) -> torch.Tensor:
        """T-, R-, B-reduce over the n instances of ``separated``; ``rows`` picks the outputs wanted."""
        s = self.split_channels
        f_t, f_r, f_b = separated[:, :s], separated[:, s:2 * s], separated[:, 2 * s:]
        n = separated.shape[0]
        sum_t = f_t.sum(0, keepdim=True)
        sum_r = f_r.sum(0, keepdim=True)
        mean_b = f_b.mean(0, keepdim=True)
        if rows is not None:
            f_t, f_r = f_t[list(rows)], f_r[list(rows)]
        t = sum_r / max(n - 1, 1) - sum_t + f_t * 2
        r = sum_t - f_t + f_r
        b = mean_b.expand(f_t.shape[0], -1, -1, -1)
        return torch.cat([t, r, b], 1)

    def decode(self, interacted: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        x = self.merge_a(torch.cat([interacted, rgb], 1))
        x = self.merge_b(F.leaky_relu(x, 0.2))
        return self.head(x)

    def forward(self, feature: torch.Tensor, trimatte: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        """Parallel refinement of one window: all n instances at once. Returns (n, 3, h, w) in [0, 1]."""
        logits = self.decode(self.interact(self.separate(feature, trimatte)), rgb)
        return (torch.tanh(logits) + 1.0) / 2.0


def window_side(k: int, height: int, width: int, training: bool = False) -> int:
    """Refinement window side: 128 in training; at inference 320 (k ≤ 8), 256 (k ≤ 14) or 128,
    never larger than the image."""
    if training:
        side = 128
    else:
        side = 320 if k <= 8 else 256 if k <= 14 else 128
    return min(side, height, width)


def disagreement_map(trimattes: torch.Tensor) -> torch.Tensor:
    """D = |1 − Σ_k α_t,k − mean_k α_b,k|: (k, 3, H, W) -> (1, 1, H, W) float32."""
    background = trimattes[:, 2:3].mean(dim=0, keepdim=True)
    targets = trimattes[:, 0:1].sum(dim=0, keepdim=True)
    return (1 - targets - background).abs()


def nms_windows(dets: np.ndarray, side: int, iou_threshold: float = NMS_IOU) -> list[int]:
    """Greedy NMS over window proposals sorted by score (highest first).

    A box is suppressed by a kept box only if their IoU (inclusive-pixel convention) exceeds
    ``iou_threshold`` AND its centre lies within side//2 of the kept box's centre in both x and y.
    dets: (n, 5) float64 rows (x1, y1, x2, y2, score). Returns the kept row indices in order.
    """
    x1, y1, x2, y2, score = (dets[:, i] for i in range(5))
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    remaining = score.argsort()[::-1]
    keep: list[int] = []
    half = side // 2
    while remaining.size:
        best, rest = remaining[0], remaining[1:]
        keep.append(int(best))
        iw = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + 1)
        ih = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + 1)
        inter = iw * ih
        iou = inter / (areas[best] + areas[rest] - inter)
        near = (np.abs(cx[best] - cx[rest]) < half) & (np.abs(cy[best] - cy[rest]) < half)
        remaining = rest[~((iou > iou_threshold) & near)]
    return keep


def propose_windows(distance: torch.Tensor, side: int) -> np.ndarray:
    """Square windows where the instances disagree.

    distance: (1, 1, H, W) disagreement map. Every cell of D nearest-downsampled by 0.1 proposes a
    side×side window centred at (10x, 10y), shifted to lie inside the image, scored by D there.
    Proposals scoring > 0.01 go through :func:`nms_windows`; if none does, the single best is kept.
    Returns (n, 5) float64 rows (x1, y1, x2, y2, score) in processing order.
    """
    height, width = distance.shape[-2:]
    grid = F.interpolate(distance.float(), scale_factor=0.1, mode="nearest")[0, 0]
    scores = grid.reshape(-1).cpu().numpy()
    gh, gw = grid.shape
    ys, xs = np.meshgrid(np.arange(gh), np.arange(gw), indexing="ij")
    cx, cy = xs.reshape(-1) * 10, ys.reshape(-1) * 10
    x1 = np.clip(cx - side // 2, 0, width - side)
    y1 = np.clip(cy - side // 2, 0, height - side)
    dets = np.stack([x1, y1, x1 + side, y1 + side], 1).astype(np.float64)
    dets = np.concatenate([dets, scores[:, None].astype(np.float64)], 1)
    strong = dets[scores > PROPOSAL_MIN_SCORE]
    if len(strong) == 0:
        return dets[dets[:, 4].argsort()[::-1][:1]]
    return strong[nms_windows(strong, side)]


def duplicate_instances(alpha_t: torch.Tensor) -> np.ndarray:
    """The official duplicate filter (``is_same_instance``): which instances the refiner skips.

    alpha_t: (k, H, W) float. Binarised at > 0.01 (after a 0.5× nearest downsampling when k > 8);
    overlap_ij = |A_i ∩ A_j| / (min(|A_i|, |A_j|) + 1), diagonal 0. Instance i is a duplicate if it
    overlaps > 0.3 with at least two others; for every pair i < j with overlap > 0.5, j is one.
    Returns (k,) bool.
    """
    a = alpha_t.float()[:, None]
    k = a.shape[0]
    if k > 8:
        a = F.interpolate(a, scale_factor=0.5, mode="nearest")
    binary = (a > 0.01).reshape(k, -1).double()
    inter = (binary @ binary.T).float()
    area = binary.sum(1).float()
    overlap = inter / (torch.minimum(area[:, None], area[None, :]) + 1.0)
    overlap.fill_diagonal_(0)
    overlap = overlap.cpu().numpy()
    bad = (overlap > 0.3).sum(1) > 1
    for i in range(k):
        for j in range(i + 1, k):
            if overlap[i, j] > 0.5 or overlap[j, i] > 0.5:
                bad[i if overlap[i, j] > overlap[j, i] else j] = True
    return bad


@dataclass
class RefinementResult:
    """Output of :func:`refine`.

    trimattes: (k, 3, H, W) float32 after the last sweep (before the U1 band is applied).
    boxes: (n, 5) float64 windows in processing order; duplicates: (k,) bool instances skipped;
    sweeps: number of sweeps run; history: tri-mattes after each sweep (only if requested).
    """

    trimattes: torch.Tensor
    boxes: np.ndarray
    duplicates: np.ndarray
    sweeps: int
    history: list[torch.Tensor] = field(default_factory=list)


def _refine_window(refiner: MultiInstanceRefiner, rgb: torch.Tensor, trimattes: torch.Tensor,
                   feature: torch.Tensor, box: np.ndarray, active: np.ndarray, writable: np.ndarray,
                   mode: RefineMode, order: Sequence[int]) -> None:
    """Refine one window in place. active: instances taking part; writable: those updated."""
    x1, y1, x2, y2 = (int(v) for v in box[:4])
    m = WINDOW_MARGIN
    idx = np.flatnonzero(active)
    idx_t = torch.as_tensor(idx, device=trimattes.device)
    feat = feature[idx_t, :, y1:y2, x1:x2].float()
    image = rgb[idx_t, :, y1:y2, x1:x2].float()
    ph, pw = feat.shape[-2:]
    if mode == "parallel":
        rows = np.flatnonzero(writable[idx])
        if not rows.size:
            return
        patch = trimattes[idx_t, :, y1:y2, x1:x2]
        # every active instance takes part in the interaction; only the writable ones are decoded
        interacted = refiner.interact(refiner.separate(feat, patch), rows=None if rows.size == idx.size else rows)
        rows_t = torch.as_tensor(rows, device=image.device)
        logits = refiner.decode(interacted, image if rows.size == idx.size else image[rows_t])
        out = (torch.tanh(logits[:, :, m:ph - m, m:pw - m]) + 1.0) / 2.0
        dst = torch.as_tensor(idx[rows], device=trimattes.device)
        trimattes[dst, :, y1 + m:y2 - m, x1 + m:x2 - m] = out
        return
    # cycle: refine the writable instances one by one in ``order``; the separated features of an
    # instance are recomputed as soon as its tri-matte has been refined.
    position = {int(j): r for r, j in enumerate(idx)}
    separated = refiner.separate(feat, trimattes[idx_t, :, y1:y2, x1:x2])
    for inst in order:
        inst = int(inst)
        if inst not in position or not writable[inst]:
            continue
        r = position[inst]
        logits = refiner.decode(refiner.interact(separated, rows=[r]), image[r:r + 1])
        out = (torch.tanh(logits[:, :, m:ph - m, m:pw - m]) + 1.0) / 2.0
        trimattes[inst, :, y1 + m:y2 - m, x1 + m:x2 - m] = out[0]
        separated = separated.clone()
        separated[r:r + 1] = refiner.separate(feat[r:r + 1], trimattes[inst:inst + 1, :, y1:y2, x1:x2])


@torch.no_grad()
def refine(refiner: MultiInstanceRefiner, rgb: torch.Tensor, trimattes: torch.Tensor, feature: torch.Tensor,
           mode: RefineMode = "parallel", order: Sequence[int] | None = None, max_sweeps: int | None = None,
           keep_history: bool = False, skip_duplicates: bool = True) -> RefinementResult:
    """Multi-instance refinement at inference (``forward_refiner(is_training=False, nostop=False)``).

    rgb (k, 3, H, W), trimattes (k, 3, H, W) float32 [0, 1] (the fused P; not modified),
    feature (k, 32, H, W) (float32 or float16). mode "parallel" or "cycle"; order: a permutation
    of range(k) for cycle (default 0..k-1; ignored by parallel).

    Sweeps: every sweep visits all windows in order; an instance whose α_t changed by > 0.01 in a
    sweep takes part in the next one. ``max_sweeps=None`` reproduces the official code exactly:
    its convergence test compares the second sweep with itself (tensor aliasing), so there is a
    second sweep only if something changed in the first, and never a third. An integer runs the
    intended "until nothing changes by > 0.01", at most that many sweeps.
    """
    k, _, height, width = trimattes.shape
    if mode not in ("parallel", "cycle"):
        raise ValueError(f"unknown refinement mode {mode!r} (use 'parallel' or 'cycle')")
    order = list(range(k)) if order is None else [int(i) for i in order]
    if sorted(order) != list(range(k)):
        raise ValueError(f"order must be a permutation of 0..{k - 1}, got {order}")
    current = trimattes.clone()
    duplicates = duplicate_instances(current[:, 0]) if skip_duplicates else np.zeros(k, bool)
    active = ~duplicates
    side = window_side(k, height, width)
    boxes = propose_windows(disagreement_map(current), side)
    history = [current.clone()] if keep_history else []
    if not active.any():
        return RefinementResult(current, boxes, duplicates, 0, history)
    state = np.ones(k, bool)
    previous = current.clone()
    sweeps = 0
    while True:
        writable = state & active
        for box in boxes:
            _refine_window(refiner, rgb, current, feature, box, active, writable, mode, order)
        sweeps += 1
        change = (current[:, 0] - previous[:, 0]).abs().amax(dim=(1, 2)).cpu().numpy()
        state &= change > CHANGE_THRESHOLD
        if keep_history:
            history.append(current.clone())
        if max_sweeps is None:
            # official: the reference for the next test is the live tensor itself, so any further
            # sweep measures zero change and ends the loop.
            if not state.any() or sweeps >= 2:
                break
        else:
            if not state.any() or sweeps >= max_sweeps:
                break
            previous = current.clone()
    return RefinementResult(current, boxes, duplicates, sweeps, history)
