"""The embedded default person detector: every person as a soft coarse mask, from registry models only.

Pipeline (all at a working resolution, long side <= ``work_side``):

1. the pose landmarker on the whole photo (up to 6 people);
2. person boxes from MoveNet-MultiPose fused with SSDLite, on the photo and its tiles (``embedded.person_boxes``):
   each box takes the full-image pose that fits it, else the pose landmarker runs on a square crop
   around it — and where that crop gives a neighbour (a row of people), once more on the box alone with
   the rest of the square black, whose pose must then fill the box — else the box keeps the human alpha
   inside it (feathered);
3. the human alpha (RVM): regions of human alpha that no found person explains are cropped and
   given to the pose landmarker again (people it missed at full scale: small, occluded, at the back);
4. duplicates are merged (mask IoU / containment), and human-alpha regions that still no person
   explains become people of their own, with the human alpha as their mask — a missed person must
   never be merged into a neighbour (the lesson of the registry-parts prototype).

Returns :class:`~instmatt_app.core.result.Detection` objects with full-resolution soft masks.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from instmatt_app.core.result import Detection
from instmatt_app.nets import embedded
from instmatt_app.nets.body_field import skeleton_field
from instmatt_app.nets.image_context import ImageContext
from instmatt_app.nets.registry import register

__all__ = ["DefaultDetector", "DetectorConfig"]


@dataclass
class DetectorConfig:
    """work_side: long side of the working image; min_area: smallest person kept, as a fraction of
    the photo; merge_iou: masks overlapping more than this are one person."""

    work_side: int = 1024
    min_area: float = 0.004
    min_score: float = 0.25
    merge_iou: float = 0.5
    max_people: int = 40
    box_score: float = 0.0  # the fused detector applies its own measured threshold
    pose_only_score: float = 0.25
    crop_score: float = 0.25
    residual_area: float = 0.008
    min_support: float = 0.3
    use_boxes: bool = True
    boxes: str = "auto"  # the person box detector, embedded.BOX_DETECTORS
    residual_instances: bool = True


@dataclass
class _Cand:
    mask: np.ndarray  # (h, w) float32 working resolution
    score: float
    keypoints: np.ndarray | None
    source: str

    def area(self) -> float:
        return float((self.mask > 0.5).sum())


def _shaped(c: _Cand) -> _Cand:
    """Keep a candidate's mask near its own skeleton (see :mod:`instmatt_app.nets.body_field`)."""
    if c.keypoints is not None:
        field = skeleton_field(c.keypoints, c.mask.shape)
        if field is not None:
            c.mask = c.mask * field
    return c


def _box_fit(mask: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """IoU between a person box and the bounding box of ``mask > 0.5`` (0 for an empty mask)."""
    ys, xs = np.nonzero(mask > 0.5)
    if not len(xs):
        return 0.0
    mx0, my0, mx1, my1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    x0, y0, x1, y1 = box
    iw = max(0, min(x1, mx1) - max(x0, mx0))
    ih = max(0, min(y1, my1) - max(y0, my0))
    inter = iw * ih
    union = (x1 - x0) * (y1 - y0) + (mx1 - mx0) * (my1 - my0) - inter
    return inter / max(union, 1)


def _best_fit(cands: list, box: tuple[int, int, int, int]) -> tuple[float, "_Cand | None"]:
    """(fit, candidate) of the candidate whose mask fits ``box`` best (:func:`_box_fit`); (0, None) if none."""
    return max(((_box_fit(c.mask, box), c) for c in cands), default=(0.0, None), key=lambda t: t[0])


def _box_alpha(alpha: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """The human alpha inside a person box, the box border feathered so no straight cut is hard."""
    h, w = alpha.shape
    x0, y0, x1, y1 = max(0, box[0]), max(0, box[1]), min(w, box[2]), min(h, box[3])
    window = np.zeros((h, w), np.float32)
    window[y0:y1, x0:x1] = 1.0
    sigma = max(1.0, 0.04 * max(x1 - x0, y1 - y0))
    window = np.minimum(window, cv2.GaussianBlur(window, (0, 0), sigmaX=sigma, sigmaY=sigma) * 2.0)
    return (alpha * window).astype(np.float32)


class DefaultDetector:
    """``detect(image_rgb_uint8, context=None) -> list[Detection]`` (see module docstring)."""

    name = "default"

    def __init__(self, device: str = "cpu", config: DetectorConfig | None = None):
        self.device = device
        self.config = config or DetectorConfig()

    @property
    def box_detector_name(self) -> str:
        """The person box detector in use ("movenet+ssdlite", "movenet-multipose", ...), "none" without one."""
        net = embedded.person_boxes(self.device, self.config.boxes) if self.config.use_boxes else None
        return net.name if net is not None else "none"

    # -- helpers -----------------------------------------------------------------------------
    def _poses_in_crop(self, work: np.ndarray, box: tuple[int, int, int, int], num: int, source: str,
                       tight: bool = False) -> list[_Cand]:
        """Run the pose landmarker on a square crop; masks pasted back at working resolution.

        The crop is the square around the box grown by 25 %; with ``tight`` only the box grown by 8 % per side
        is photo, the rest of the square black: in a row of people the wide square holds the neighbours too,
        and the landmarker may give one of them instead of the person in the box."""
        h, w = work.shape[:2]
        x0, y0, x1, y1 = box
        side = int(max(x1 - x0, y1 - y0) * 1.25) + 8
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        sx0, sy0 = int(round(cx - side / 2)), int(round(cy - side / 2))
        pad = ((max(0, -sy0), max(0, sy0 + side - h)), (max(0, -sx0), max(0, sx0 + side - w)))
        crop = work[max(0, sy0):min(h, sy0 + side), max(0, sx0):min(w, sx0 + side)]
        if min(crop.shape[:2]) < 16:
            return []
        if tight:
            mx, my = 0.08 * (x1 - x0), 0.08 * (y1 - y0)
            keep = np.zeros(crop.shape[:2], bool)
            keep[max(0, int(y0 - my) - max(0, sy0)):max(0, int(np.ceil(y1 + my)) - max(0, sy0)),
                 max(0, int(x0 - mx) - max(0, sx0)):max(0, int(np.ceil(x1 + mx)) - max(0, sx0))] = True
            crop = np.where(keep[..., None], crop, 0).astype(crop.dtype)
        crop = np.pad(crop, pad + ((0, 0),), mode="constant")  # keep the crop square, person centred
        out = []
        for pose in embedded.pose_segmenter()(crop, num_poses=num):
            full = np.zeros((h, w), np.float32)
            inner = pose.mask[pad[0][0]:pad[0][0] + (min(h, sy0 + side) - max(0, sy0)),
                              pad[1][0]:pad[1][0] + (min(w, sx0 + side) - max(0, sx0))]
            full[max(0, sy0):min(h, sy0 + side), max(0, sx0):min(w, sx0 + side)] = inner
            kp = pose.landmarks.copy()
            kp[:, 0] += sx0
            kp[:, 1] += sy0
            out.append(_shaped(_Cand(full, pose.score, kp, source)))
        return out

    @staticmethod
    def _iou_contain(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
        inter = float(np.logical_and(a, b).sum())
        union = float(np.logical_or(a, b).sum())
        small = float(min(a.sum(), b.sum()))
        return inter / max(union, 1.0), inter / max(small, 1.0)

    def _merge(self, cands: list[_Cand]) -> list[_Cand]:
        """Greedy duplicate removal: higher score first; IoU > merge_iou or a mask 85 % inside another."""
        cands = sorted(cands, key=lambda c: (c.score, c.area()), reverse=True)
        kept: list[_Cand] = []
        binm: list[np.ndarray] = []
        for c in cands:
            b = c.mask > 0.5
            if b.sum() == 0:
                continue
            dup = False
            for k, kb in zip(kept, binm):
                iou, contain = self._iou_contain(b, kb)
                if iou > self.config.merge_iou or contain > 0.85:
                    dup = True
                    break
            if not dup:
                kept.append(c)
                binm.append(b)
        return kept

    @staticmethod
    def _covered(shape: tuple[int, int], cands: list[_Cand]) -> np.ndarray:
        """Boolean (h, w): pixels some candidate claims (mask > 0.3), dilated by 1 % of the image."""
        covered = np.zeros(shape, bool)
        for c in cands:
            covered |= c.mask > 0.3
        if covered.any():
            r = max(3, int(0.01 * max(shape)))
            covered = cv2.dilate(covered.astype(np.uint8),
                                 cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0
        return covered

    def _unexplained(self, alpha: np.ndarray, cands: list[_Cand], min_px: float) -> list[np.ndarray]:
        """Connected regions of human alpha (> 0.5) that no candidate covers; boolean masks."""
        human = alpha > 0.5
        rest = (human & ~self._covered(alpha.shape, cands)).astype(np.uint8)
        rest = cv2.morphologyEx(rest, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
        n, labels, stats, _ = cv2.connectedComponentsWithStats(rest, connectivity=8)
        return [labels == i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_px]

    def _with_human_support(self, c: _Cand, alpha: np.ndarray) -> _Cand | None:
        """Check a candidate against the human alpha and tighten its mask to it.

        Pose masks bleed into neighbours and the pose landmarker sometimes sees a person in a toy
        or a pattern; the human alpha (a different model) says where people are. A candidate whose
        confident mask has almost no human alpha is dropped (unless a person box supports it); one
        the human alpha covers well is tightened to it (mask ≤ 1.5·A).
        """
        core = c.mask > 0.5
        if not core.any():
            return None
        support = float(alpha[core].mean())
        if support < self.config.min_support and not c.source.startswith(("movenet", "box")):
            return None
        if support >= 0.5:
            c.mask = np.minimum(c.mask, np.clip(alpha * 1.5, 0.0, 1.0))
        return c

    # -- main --------------------------------------------------------------------------------
    def detect(self, image: np.ndarray, context: ImageContext | None = None) -> list[Detection]:
        cfg = self.config
        ctx = context or ImageContext(image)
        H, W = image.shape[:2]
        s = min(1.0, cfg.work_side / max(H, W))
        wsize = (max(1, round(W * s)), max(1, round(H * s)))
        work = image if s >= 1.0 else cv2.resize(image, wsize, interpolation=cv2.INTER_AREA)
        h, w = work.shape[:2]
        min_px = cfg.min_area * h * w
        alpha_full = embedded.human_alpha(ctx, self.device)
        alpha = alpha_full if s >= 1.0 else cv2.resize(alpha_full, wsize, interpolation=cv2.INTER_AREA)

        seg = embedded.pose_segmenter()
        full_poses = [_shaped(_Cand(p.mask, p.score, p.landmarks, "pose")) for p in seg(work, num_poses=6)]
        full_poses = [c for c in full_poses if c.score >= cfg.min_score]
        cands: list[_Cand] = []

        # person boxes (MoveNet): each box gets the full-image pose that fits it, else a pose found
        # in a square crop around it, else the human alpha inside the (feathered) box
        net = embedded.person_boxes(self.device, cfg.boxes) if cfg.use_boxes else None
        used: set[int] = set()
        box_only: list = []  # boxes no pose explains: resolved once the posed people are known
        if net is not None:
            for pb in net.detect(work):
                if pb.score < cfg.box_score:
                    continue
                box = tuple(int(round(v)) for v in pb.box)
                if (box[2] - box[0]) * (box[3] - box[1]) < min_px:
                    continue
                fits = [(_box_fit(c.mask, box), j) for j, c in enumerate(full_poses) if j not in used]
                fit, j = max(fits, default=(0.0, -1))
                if fit >= 0.5:
                    used.add(j)
                    c = full_poses[j]
                    c.score = max(c.score, float(pb.score))
                    c.source = "box+pose"
                    cands.append(c)
                    continue
                found = self._poses_in_crop(work, box, 2, "box+pose")
                fit, best = _best_fit(found, box)
                if fit < 0.4 and found:
                    # a neighbour was found instead (a row of people): again, with the neighbours blacked out
                    found = self._poses_in_crop(work, box, 2, "box+pose", tight=True)
                    fit, best = _best_fit(found, box)
                    if fit < 0.6:  # the crop is the box, so its person fills it; less is a misplaced pose
                        fit, best = 0.0, None
                if best is not None and fit >= 0.4:
                    best.score = max(best.score, float(pb.score))
                    cands.append(best)
                else:
                    box_only.append((box, float(pb.score), pb.keypoints))
        # people the pose landmarker found and no box explains
        cands.extend(c for j, c in enumerate(full_poses) if j not in used and c.score >= cfg.pose_only_score)
        cands = self._merge(cands)

        # human alpha that nobody explains: look again, closer
        for region in self._unexplained(alpha, cands, min_px):
            ys, xs = np.nonzero(region)
            cands.extend(c for c in self._poses_in_crop(work, (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), 3,
                                                        "alpha+pose") if c.score >= cfg.crop_score)
        cands = self._merge(cands)

        # boxes without a pose keep the human alpha inside them that no other person explains
        for box, score, kps in box_only:
            m = _box_alpha(alpha, box) * (1.0 - self._covered(alpha.shape, cands))
            c = _shaped(_Cand(m.astype(np.float32), score * 0.9, kps, "box+alpha"))
            # what is left must fill a fair part of its box; a sliver is a neighbour's arm, not a person
            if c.area() >= max(min_px, 0.2 * (box[2] - box[0]) * (box[3] - box[1])):
                cands.append(c)

        # what is still unexplained becomes a person of its own (never given to a neighbour)
        if cfg.residual_instances:
            for region in self._unexplained(alpha, cands, cfg.residual_area * h * w):
                m = np.where(region, alpha, 0).astype(np.float32)
                m = cv2.dilate(m, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
                cands.append(_Cand(np.minimum(m, alpha), 0.3, None, "human-alpha"))

        cands = [c for c in (self._with_human_support(c, alpha) for c in cands) if c is not None]
        cands = [c for c in self._merge(cands) if c.area() >= min_px][: cfg.max_people]
        dets = []
        for c in cands:
            mask = c.mask if s >= 1.0 else cv2.resize(c.mask, (W, H), interpolation=cv2.INTER_LINEAR)
            ys, xs = np.nonzero(mask > 0.5)
            if not len(xs):
                continue
            kp = None
            if c.keypoints is not None:
                kp = c.keypoints.copy()
                kp[:, :2] /= s
            dets.append(Detection(box=(float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)),
                                  score=float(c.score), mask=np.clip(mask, 0, 1).astype(np.float32),
                                  keypoints=kp, source=c.source))
        # stable, readable order: left to right
        dets.sort(key=lambda d: (d.box[0] + d.box[2]) / 2)
        return dets


@register("detector", "default")
def build_default_detector(weights: str | None = None, device: str = "cpu", **options) -> DefaultDetector:
    return DefaultDetector(device=device, config=DetectorConfig(**options))
