"""Per-person tri-mattes from InstMatt-Lite (:mod:`instmatt_app.nets.lite_model`) and coarse masks.

For every person i (mutual guidance, paper Eq. 5–6, union form): M_t = mask_i, M_r = the union of the
other masks, M_b = 1 − the union of all masks. The network sees a crop around the person (its mask
box grown by ``context`` on each side, so the neighbours that touch it are in view) at up to
``fine_side`` px, internally at up to ``base_side`` px (RVM's guided filter brings it back to the
fine size). α_t of the crop is pasted into the person's full-size alpha; a crop larger than
``fine_side`` is brought back to its full resolution with a guided filter on the photo, so edges
stay sharp on large photos. Outside the crop the person has no alpha (the outer 3 % of a crop side
inside the photo fades to 0, :func:`_taper_crop_edges`), values below ``floor``
(2/255: invisible haze the network leaves around a person) are set to 0, and with ``solid_core``
faint texture deep inside the person is filled (:func:`_fill_core`).

:class:`LiteMatter` is the engine's matter ``lite`` (the default when its weights are installed):
``alphas(image, masks)`` → (k, H, W); ``matte(image, masks)`` → (k, 3, H, W) tri-mattes.

Iterated mutual guidance (:meth:`LiteMatter.settle`, the engine calls it for the detector's masks
only): the network's own alphas, binarised, become the next pass's guidance masks. Trained on the
detector's masks, the network grows a fragment towards the whole person and pulls a mask back from a
neighbour a little in every pass; repeating the passes at a low resolution carries those corrections
much further than one pass (docs/instmatt-lite.md, "Inference"). A person whose guidance barely
changed since the pass that last ran the network on it keeps that pass's alpha (:class:`PassMemo`).

Arrays: image (H, W, 3) uint8 RGB; masks (k, H, W) bool or float in [0, 1] (≥ 0.5 = inside);
returns (k, H, W) float32 alphas in [0, 1] (before the multi-instance consistency step).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from instmatt_app.nets.guided_filter import guided_upsample
from instmatt_app.nets.image_context import ImageContext
from instmatt_app.nets.lite_model import ARCHITECTURE, LiteMatteNet
from instmatt_app.nets.registry import register

__all__ = ["LiteMatter", "LiteWeightsError", "PassMemo", "load_lite", "matte_people", "merge_duplicate_people",
           "person_crop", "scale_down_overlaps"]

FLOOR = 2.0 / 255.0
# passes of iterated mutual guidance on the detector's masks (LiteMatter.settle), chosen on the
# validation composites (docs/instmatt-lite.md, "Inference")
GUIDANCE_PASSES = 8
# how much two detections' alphas (≥ 0.5) must overlap, as a fraction of the smaller, to be one person
# (merge_duplicate_people): chosen on the same validation composites, with and without iterated guidance
MERGE_OVERLAP_ITERATED = 0.6
MERGE_OVERLAP_SINGLE = 0.4
# a guidance pass may give a person the alpha of the pass before (never twice in a row) while their own and
# the others' masks changed by at most this fraction of their area and the crop moved by at most
# PASS_REUSE_SHIFT of its side (PassMemo): measured on the validation composites (docs/instmatt-lite.md)
PASS_REUSE = 0.2
PASS_REUSE_SHIFT = 0.05


class LiteWeightsError(ValueError):
    """The file is not an InstMatt-Lite checkpoint (message names the file and the reason)."""


def load_lite(path: str | Path, device: str = "cpu") -> LiteMatteNet:
    """Load weights written by :mod:`instmatt_app.nets.lite_train` (``weights_only``; any float dtype)."""
    path = Path(path)
    if not path.is_file():
        raise LiteWeightsError(f"{path}: InstMatt-Lite weights not found")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling refused or corrupt file
        raise LiteWeightsError(f"{path}: not a loadable weights file ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict) or "state_dict" not in obj:
        raise LiteWeightsError(f"{path}: no 'state_dict' (not an InstMatt-Lite checkpoint)")
    if obj.get("architecture") != ARCHITECTURE:
        raise LiteWeightsError(f"{path}: architecture {obj.get('architecture')!r}, expected {ARCHITECTURE!r}")
    net = LiteMatteNet()
    sd = {k: v.float() for k, v in obj["state_dict"].items()}
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise LiteWeightsError(f"{path}: keys missing {missing[:5]}, unexpected {unexpected[:5]}")
    # channels-last (weights here, inputs in _matte_crop): faster on the CPU, results equal within float
    # rounding (benchmarks/bench_lite_speed.py)
    return net.to(device).to(memory_format=torch.channels_last).eval()


def person_crop(mask: np.ndarray, shape: tuple[int, int], context: float = 0.25) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the person's mask box grown by ``context`` × its size on each side,
    clipped to the image; the whole image when the mask is empty."""
    h, w = shape
    ys, xs = np.nonzero(mask)
    if ys.size == 0:
        return 0, 0, w, h
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    gx, gy = int(round((x1 - x0) * context)) + 8, int(round((y1 - y0) * context)) + 8
    return max(0, x0 - gx), max(0, y0 - gy), min(w, x1 + gx), min(h, y1 + gy)


@torch.no_grad()
def matte_people(net: LiteMatteNet, image: np.ndarray, masks: np.ndarray, fine_side: int = 1024,
                 base_side: int = 512, context: float = 0.25, device: str | None = None,
                 fuse: bool = True, floor: float = 0.0, solid_core: bool = False,
                 fill_holes: float = 0.0, threshold: float = 0.5, trust_core: float = 0.0,
                 memo: "PassMemo | None" = None) -> np.ndarray:
    """Alphas of every person (see the module docstring). ``fuse``: progressive fusion of the
    OS8/OS4/OS1 heads (default) or the OS1 head alone. ``fill_holes``: holes of a person's mask
    smaller than this fraction of its area, and not claimed by another person, are filled before
    the tri-mask is built (a detector's soft mask often has a weak patch at a hand or a pocket; the
    network was trained on masks without holes). ``threshold``: a soft coarse mask counts as
    the person where it is ≥ this value. ``trust_core`` > 0: deep inside the person's own mask (eroded
    by this fraction of the crop's long side, and nobody else's) α is set to 1 (the briefly
    trained network sometimes leaves a patch of white shirt or skin half transparent). ``memo``: the
    alphas of the previous guidance pass, reused for the people whose guidance barely changed
    (:class:`PassMemo`; updated in place)."""
    h, w = image.shape[:2]
    k = len(masks)
    masks = np.asarray(masks)
    binary = masks if masks.dtype == bool else masks >= threshold
    out = np.zeros((k, h, w), np.float32)
    if k == 0:
        return out
    if fill_holes > 0:
        binary = _fill_mask_holes(binary, fill_holes)
    dev = device or next(net.parameters()).device
    union = binary.any(0)
    count = binary.sum(0, dtype=np.int32)
    for i in range(k):
        x0, y0, x1, y1 = person_crop(binary[i], (h, w), context)
        own = binary[i, y0:y1, x0:x1]
        others = (count[y0:y1, x0:x1] - own) > 0
        alpha = memo.reusable(i, (x0, y0, x1, y1), binary[i], count) if memo is not None else None
        if alpha is None:
            tri = np.stack([own, others, ~union[y0:y1, x0:x1]]).astype(np.float32)
            alpha = _matte_crop(net, image[y0:y1, x0:x1], tri, fine_side, base_side, fuse, dev)
            if memo is not None:
                memo.remember(i, (x0, y0, x1, y1), binary[i], count, alpha)
        _taper_crop_edges(alpha, (x0, y0, x1, y1), (h, w))
        if trust_core > 0:
            alpha[_mask_core(own & ~others, trust_core)] = 1.0
        if floor > 0:
            alpha[alpha < floor] = 0.0
        if solid_core:
            _fill_core(alpha)
        out[i, y0:y1, x0:x1] = alpha
    return out


@dataclass
class _PassCrop:
    box: tuple[int, int, int, int]  # (x0, y0, x1, y1) of the crop in the pass's photo
    own: np.ndarray  # (h, w) bool: the person's guidance mask on the pass's photo
    others: np.ndarray  # (h, w) bool: anybody else's
    alpha: np.ndarray  # (y1 - y0, x1 - x0) float32: the network's alpha of the crop (before tapering)
    reused: bool = False  # given again in a pass already: the next pass runs the network


@dataclass
class PassMemo:
    """What the network saw and gave for each person in the passes of :meth:`LiteMatter.settle`.

    A person whose crop moved by at most ``shift`` × its side and whose own and others' masks
    changed by at most ``tolerance`` × their own area (pixels that differ, counted over both crops)
    since the pass that last ran the network on them gets that pass's alpha again, moved into the
    new crop: the network would give nearly the same, and the passes binarise it at 0.5. Never twice
    in a row: a reused alpha is the next pass's guidance unchanged, so without a fresh run the person
    would stay frozen where a slow drift (a false person shrinking away) had not finished. With
    ``tolerance`` 0 only unchanged guidance is reused (then the result is exactly the same).
    Indices are the people of the current pass; :meth:`keep` follows the survivors between passes.
    """

    tolerance: float = PASS_REUSE
    shift: float = PASS_REUSE_SHIFT
    crops: list = field(default_factory=list)
    run: int = 0  # crops the network ran on
    reused: int = 0  # crops that took an earlier pass's alpha

    def reusable(self, i: int, box: tuple[int, int, int, int], own: np.ndarray,
                 count: np.ndarray) -> np.ndarray | None:
        """Person i's earlier alpha moved into ``box`` ((bh, bw) float32), or None when the network must
        run. own: (h, w) bool mask of the person; count: (h, w) int, how many masks cover each pixel."""
        prev = self.crops[i] if i < len(self.crops) else None
        if prev is None or prev.reused:
            return None
        x0, y0, x1, y1 = box
        px0, py0, px1, py1 = prev.box
        if max(abs(a - b) for a, b in zip(prev.box, box)) > self.shift * max(x1 - x0, y1 - y0):
            return None
        ux0, uy0, ux1, uy1 = min(px0, x0), min(py0, y0), max(px1, x1), max(py1, y1)
        own_u = own[uy0:uy1, ux0:ux1]
        others_u = (count[uy0:uy1, ux0:ux1] - own_u) > 0
        changed = np.count_nonzero(prev.own[uy0:uy1, ux0:ux1] != own_u) + \
            np.count_nonzero(prev.others[uy0:uy1, ux0:ux1] != others_u)
        if changed > self.tolerance * max(1, np.count_nonzero(own_u)):
            return None
        alpha = np.zeros((y1 - y0, x1 - x0), np.float32)
        ix0, iy0, ix1, iy1 = max(x0, px0), max(y0, py0), min(x1, px1), min(y1, py1)
        alpha[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = prev.alpha[iy0 - py0:iy1 - py0, ix0 - px0:ix1 - px0]
        self.reused += 1
        prev.reused = True
        return alpha

    def remember(self, i: int, box: tuple[int, int, int, int], own: np.ndarray, count: np.ndarray,
                 alpha: np.ndarray) -> None:
        """Record what the network saw (own: (h, w) bool; count: (h, w) int) and gave (alpha: the crop's
        (bh, bw) float32) for person i."""
        self.crops.extend([None] * (i + 1 - len(self.crops)))
        self.crops[i] = _PassCrop(box, own.copy(), (count - own) > 0, alpha.copy())
        self.run += 1

    def keep(self, live: list[int]) -> None:
        """The pass's people ``live`` (indices, in order) go on to the next pass."""
        self.crops = [self.crops[i] if i < len(self.crops) else None for i in live]


def merge_duplicate_people(alphas: np.ndarray, overlap: float = 0.4, level: float = 0.5) -> list[int]:
    """Detections that are the same person, merged in place; returns the indices emptied.

    The embedded detector sometimes splits a person into fragments; InstMatt-Lite, trained on the
    detector's own masks (``tools/build_detector_pack.py``), grows each fragment to the whole person.
    Where two people's alphas (≥ ``level``) overlap by more than ``overlap`` of the smaller one,
    the larger becomes the maximum of both and the smaller is set to 0. alphas: (k, H, W) float32.
    """
    k = len(alphas)
    if k < 2:
        return []
    boxes, area = [], np.zeros(k, np.int64)  # each pair is compared inside its shared box only
    for i, a in enumerate(alphas):
        inside = a >= level
        rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
        boxes.append((rows[0], rows[-1] + 1, cols[0], cols[-1] + 1) if rows.size else None)
        area[i] = np.count_nonzero(inside[rows[0]:rows[-1] + 1]) if rows.size else 0
    emptied: list[int] = []
    for i in np.argsort(-area, kind="stable"):
        if i in emptied or boxes[i] is None:
            continue
        for j in range(k):
            if j == i or j in emptied or boxes[j] is None:
                continue
            bi, bj = boxes[i], boxes[j]
            y0, y1, x0, x1 = max(bi[0], bj[0]), min(bi[1], bj[1]), max(bi[2], bj[2]), min(bi[3], bj[3])
            if y0 >= y1 or x0 >= x1:
                continue
            inter = np.logical_and(alphas[i, y0:y1, x0:x1] >= level, alphas[j, y0:y1, x0:x1] >= level).sum()
            if inter > overlap * min(area[i], area[j]):
                np.maximum(alphas[i], alphas[j], out=alphas[i])
                alphas[j] = 0.0
                emptied.append(j)
                boxes[i] = (min(bi[0], bj[0]), max(bi[1], bj[1]), min(bi[2], bj[2]), max(bi[3], bj[3]))
                area[i] = np.count_nonzero(alphas[i] >= level)
    return sorted(emptied)


def _masks_settled(before: np.ndarray, after: np.ndarray, tolerance: float) -> bool:
    """Whether every person's mask ((k, h, w) bool, same people in both) changed by at most
    ``tolerance`` × its area (at least 1 px) from ``before`` to ``after``."""
    for b, a in zip(before, after):
        if np.count_nonzero(b != a) > tolerance * max(np.count_nonzero(a), 1):
            return False
    return True


def scale_down_overlaps(alphas: np.ndarray) -> np.ndarray:
    """Where the people's alphas ((k, H, W) float32) add up to more than 1, scale them down to a sum
    of 1, in place; returns ``alphas``."""
    if len(alphas):
        total = alphas.sum(0)
        over = total > 1.0
        if over.any():
            alphas[:, over] /= total[over]
    return alphas


def _matte_crop(net: LiteMatteNet, img: np.ndarray, tri: np.ndarray, fine_side: int, base_side: int, fuse: bool,
                dev) -> np.ndarray:
    """α_t of one crop: img (ch, cw, 3) uint8, tri (3, ch, cw) float32 → (ch, cw) float32 in [0, 1]."""
    ch, cw = img.shape[:2]
    f = min(1.0, fine_side / max(cw, ch))
    fw, fh = max(32, round(cw * f)), max(32, round(ch * f))
    small = img
    if (fw, fh) != (cw, ch):
        small = cv2.resize(img, (fw, fh), interpolation=cv2.INTER_AREA)
        tri = np.stack([cv2.resize(t, (fw, fh), interpolation=cv2.INTER_LINEAR) for t in tri])
    ratio = min(1.0, base_side / max(fw, fh))
    cl = torch.channels_last
    x = (torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1))[None]).to(dev).float() / 255.0
         ).contiguous(memory_format=cl)
    t = torch.from_numpy(tri[None]).to(dev).contiguous(memory_format=cl)
    alpha = net(x, t, downsample_ratio=ratio, fuse=fuse).fused[0, 0].float().cpu().numpy()
    if (fw, fh) != (cw, ch):
        alpha = guided_upsample(np.clip(alpha, 0.0, 1.0), img)
    return np.clip(alpha, 0.0, 1.0)


def _mask_core(mask: np.ndarray, fraction: float, work_side: int = 512) -> np.ndarray:
    """``mask`` ((h, w) bool) eroded by ``fraction`` of its long side (an ellipse), computed at most
    ``work_side`` px (large erosions at full resolution are slow) and brought back by nearest
    neighbour. Returns (h, w) bool."""
    h, w = mask.shape
    f = min(1.0, work_side / max(h, w))
    small = mask.astype(np.uint8)
    if f < 1.0:
        small = (cv2.resize(small, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA) > 0)
        small = small.astype(np.uint8)
    r = max(2, round(fraction * max(small.shape)))
    core = cv2.erode(small, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
    if f < 1.0:
        core = cv2.resize(core, (w, h), interpolation=cv2.INTER_NEAREST)
    return core > 0


def _taper_crop_edges(alpha: np.ndarray, box: tuple[int, int, int, int], shape: tuple[int, int]) -> None:
    """Fade α to 0 over the outer 3 % (≥ 4 px) of every crop side that lies inside the photo, in place.
    The network sees nothing beyond its crop, and whatever faint alpha it leaves at a side would
    otherwise end in a straight line (visible as a seam in this person's or, after Σα ≤ 1, a
    neighbour's matte); the crop's 25 % context keeps the person itself away from its sides."""
    x0, y0, x1, y1 = box
    h, w = shape
    ch, cw = alpha.shape
    for side, inside in (("left", x0 > 0), ("right", x1 < w), ("top", y0 > 0), ("bottom", y1 < h)):
        if not inside:
            continue
        n = max(4, round(0.03 * (cw if side in ("left", "right") else ch)))
        n = min(n, cw if side in ("left", "right") else ch)
        ramp = np.linspace(0.0, 1.0, n + 1, dtype=np.float32)[:-1]
        if side == "left":
            alpha[:, :n] *= ramp[None]
        elif side == "right":
            alpha[:, cw - n:] *= ramp[::-1][None]
        elif side == "top":
            alpha[:n] *= ramp[:, None]
        else:
            alpha[ch - n:] *= ramp[::-1][:, None]


def _fill_mask_holes(binary: np.ndarray, max_fraction: float, work_side: int = 1024) -> np.ndarray:
    """(k, H, W) bool masks with each mask's small enclosed holes filled (see :func:`matte_people`).
    Works on each mask's bounding box, found at most ``work_side`` px; the input is not changed."""
    from scipy import ndimage

    out = binary.copy()
    count = None
    for i in range(len(binary)):
        m = binary[i]
        rows, cols = np.flatnonzero(m.any(1)), np.flatnonzero(m.any(0))
        if rows.size == 0:
            continue
        sl = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        box = m[sl]
        area = int(np.count_nonzero(box))
        f = min(1.0, work_side / max(box.shape))
        if f < 1.0:  # large photos: find the holes at a working size (the masks are smooth anyway)
            small = cv2.resize(box.astype(np.uint8), (max(1, round(box.shape[1] * f)), max(1, round(box.shape[0] * f))),
                               interpolation=cv2.INTER_AREA) > 0
            filled = ndimage.binary_fill_holes(small).astype(np.uint8)
            holes = cv2.resize(filled, (box.shape[1], box.shape[0]), interpolation=cv2.INTER_NEAREST) > 0
        else:
            holes = ndimage.binary_fill_holes(box)
        holes &= ~box
        if not holes.any():
            continue
        labels, n = ndimage.label(holes)
        sizes = ndimage.sum_labels(holes, labels, range(1, n + 1))
        claimed = np.zeros(n + 1, bool)
        if len(binary) > 1:  # a hole pixel covered by another person's mask claims the hole
            if count is None:
                count = binary.sum(0, dtype=np.uint8)
            others = count[sl] > box
            claimed[np.unique(labels[others & holes])] = True
        keep = (sizes <= max_fraction * area) & ~claimed[1:]
        if keep.any():
            fill = np.concatenate([[False], keep])[labels]
            out[i][sl] |= fill
    return out


def _fill_core(alpha: np.ndarray, level: float = 0.8) -> None:
    """Set α = 1 deep inside the person, in place: where α ≥ ``level`` and every pixel within r of
    it has α ≥ 0.5 (r = 1.5 % of the crop's long side, ≥ 3 px). The network, briefly trained,
    leaves faint photo texture (α ≈ 0.9–0.98) inside clothing; edges, hair and any region near the
    person's outline are untouched."""
    core = _mask_core(alpha >= 0.5, 0.015)
    alpha[core & (alpha >= level)] = 1.0


class LiteMatter:
    """The engine's ``lite`` matter: InstMatt-Lite on every person (module docstring).

    weights: an InstMatt-Lite weights file (default: the shipped ``models/instmatt-lite.pth``).
    fine_side / base_side / context / floor / solid_core / fill_holes / threshold / trust_core: see
    :func:`matte_people` (a detector's soft masks count from 0.3: their weak patches are usually the
    person's hands, pockets and edges, and the network was trained to shrink too-large guidance). The defaults run
    the network on crops of at most 512 px without RVM's guided filter (measured best on held-out
    composites, docs/instmatt-lite.md), then upsample with a guided filter on the photo. On CUDA the network runs in
    fp32 (the engine's CPU fallback rebuilds it on the CPU after an out-of-memory error).
    guidance_passes / pass_side / pass_crop_side / settle_tolerance / pass_reuse: iterated mutual guidance
    for the detector's masks (:meth:`settle`; 1 = a single pass, as before it existed; pass_reuse: the
    :class:`PassMemo` tolerance, None = run the network on every person in every pass). merge_overlap: see
    :meth:`alphas` (None: 0.6 with iterated guidance, 0.4 with a single pass).
    """

    name = "lite"
    # the engine may ask alphas() to merge detections that grew into the same person
    merges_duplicates = True

    def __init__(self, weights: str | Path | None = None, device: str = "cpu", fine_side: int = 512,
                 base_side: int = 512, context: float = 0.25, floor: float = FLOOR, solid_core: bool = True,
                 fill_holes: float = 0.05, threshold: float = 0.3, trust_core: float = 0.03,
                 merge_overlap: float | None = None, guidance_passes: int = GUIDANCE_PASSES, pass_side: int = 512,
                 pass_crop_side: int = 256, settle_tolerance: float = 0.0,
                 pass_reuse: float | None = PASS_REUSE):
        if weights is None:
            from instmatt_app.model_manager import model_path

            weights = model_path("instmatt-lite")
        self.weights = Path(weights)
        self.device = device
        self.net = load_lite(self.weights, device)
        self.options = {"fine_side": fine_side, "base_side": base_side, "context": context, "floor": floor,
                        "solid_core": solid_core, "fill_holes": fill_holes, "threshold": threshold,
                        "trust_core": trust_core}
        if int(guidance_passes) < 1:
            raise ValueError(f"guidance_passes must be at least 1, got {guidance_passes}")
        self.guidance_passes = int(guidance_passes)
        if merge_overlap is None:  # each the best on the validation composites for its number of passes
            merge_overlap = MERGE_OVERLAP_ITERATED if self.guidance_passes > 1 else MERGE_OVERLAP_SINGLE
        self.merge_overlap = merge_overlap
        self.pass_side = int(pass_side)
        self.pass_crop_side = int(pass_crop_side)
        self.settle_tolerance = float(settle_tolerance)
        self.pass_reuse = None if pass_reuse is None else float(pass_reuse)
        # what the last settle() did: passes made, crops the network ran on, crops reused (PassMemo)
        self.last_settle: dict[str, int] = {}

    def alphas(self, image: np.ndarray, masks: np.ndarray, context: ImageContext | None = None,
               merge_duplicates: bool = False) -> np.ndarray:
        """image: (H, W, 3) uint8 RGB; masks: (k, H, W) float32 in [0, 1] coarse instance masks.

        Returns (k, H, W) float32 in [0, 1], Σ_i ≤ 1 (scaled down where the people's alphas add up
        to more than 1; the refiner then settles contested pixels). merge_duplicates (the engine
        sets it for the detector's masks, never for a user's): people whose alphas overlap by more
        than ``merge_overlap`` are one person (:func:`merge_duplicate_people`; the merged one's alpha is 0)."""
        a = matte_people(self.net, image, masks, device=self.device, **self.options)
        if merge_duplicates and self.merge_overlap > 0:
            merge_duplicate_people(a, self.merge_overlap)
        return scale_down_overlaps(a)

    def settle(self, image: np.ndarray, masks: np.ndarray, min_area: float = 0.0) -> list[int]:
        """Iterated mutual guidance for the detector's masks: ``guidance_passes − 1`` passes of the
        network on the photo brought down to ``pass_side`` px (crops of at most ``pass_crop_side``
        px), each pass's alphas binarised at 0.5 guiding the next; after every pass people merged
        into another (:func:`merge_duplicate_people`) or with less than ``min_area`` of the photo at
        α ≥ 0.5 are dropped. The passes stop early once nobody was dropped and no person's mask
        changed by more than ``settle_tolerance`` of its area (0: not at all, when a further pass
        would give exactly the same). A person whose guidance barely changed keeps the alpha of the pass
        that last ran the network on them (``pass_reuse``, :class:`PassMemo`). The final, full-resolution
        pass (:meth:`alphas`) is the caller's.

        image: (H, W, 3) uint8 RGB; masks: (k, H, W) float32 in [0, 1], overwritten in place: its
        first ``len(kept)`` rows become the settled masks (0/1) of the surviving people (no copy of
        the full-size array). Returns kept: the surviving people's original indices, in order. With
        ``guidance_passes`` = 1 nothing changes and all are kept. Never use it on a user's masks:
        they are meant as they are (and from exact masks the passes drift away from them)."""
        k = len(masks)
        kept = list(range(k))
        self.last_settle = {"passes": 0, "crops_run": 0, "crops_reused": 0}
        if self.guidance_passes <= 1 or k == 0:
            return kept
        h, w = image.shape[:2]
        f = min(1.0, self.pass_side / max(h, w))
        size = (max(1, round(w * f)), max(1, round(h * f)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if f < 1.0 else image
        guide = np.stack([cv2.resize(m, size, interpolation=cv2.INTER_AREA) for m in masks]) if f < 1.0 \
            else np.array(masks, np.float32)
        opts = dict(self.options, fine_side=self.pass_crop_side, base_side=self.pass_crop_side)
        memo = PassMemo(self.pass_reuse) if self.pass_reuse is not None else None
        for n in range(1, self.guidance_passes):
            self.last_settle["passes"] = n
            before = guide >= 0.5
            a = matte_people(self.net, small, guide, device=self.device, memo=memo, **opts)
            if self.merge_overlap > 0:
                merge_duplicate_people(a, self.merge_overlap)
            scale_down_overlaps(a)
            inside = a >= 0.5
            area = inside.reshape(len(a), -1).sum(1)
            live = [i for i in range(len(a)) if area[i] > 0 and area[i] >= min_area * inside[i].size]
            kept = [kept[i] for i in live]
            guide = inside[live].astype(np.float32)
            if memo is not None:
                memo.keep(live)
            if not kept or (len(live) == len(before) and _masks_settled(before, inside, self.settle_tolerance)):
                break
        if memo is not None:
            self.last_settle.update(crops_run=memo.run, crops_reused=memo.reused)
        for i, g in enumerate(guide):
            big = cv2.resize(g, (w, h), interpolation=cv2.INTER_LINEAR) if f < 1.0 else g
            np.greater_equal(big, 0.5, out=masks[i], casting="unsafe")
        return kept

    def matte(self, image: np.ndarray, masks: np.ndarray, context: ImageContext | None = None) -> np.ndarray:
        """(k, 3, H, W) float32 tri-mattes [α_t, α_r, α_b] built from :meth:`alphas`."""
        a = self.alphas(image, masks, context)
        total = a.sum(0)
        return np.stack([np.stack([a[i], total - a[i], 1.0 - total]) for i in range(len(a))]) if len(a) \
            else np.zeros((0, 3) + a.shape[1:], np.float32)


@register("matter", "lite")
def build_lite_matter(weights: str | None = None, device: str = "cpu", **options) -> LiteMatter:
    return LiteMatter(weights, device=device, **options)
