"""Click or box to add a person: the one engine call the GUI and ``instmatt pick`` make.

:func:`pick_person` (or :meth:`PickSession.click` for many clicks on one photo) turns positive
clicks ("this is the person"), negative clicks ("not this") and/or a box into one person's mask:

* with a Segment Anything backend (:class:`instmatt_app.nets.sam.SamInteractivePredictor`, or the
  ``("detector", "sam")`` object holding one) SAM answers the prompts; the image embedding is
  computed once per photo;
* without one (the embedded default) OpenCV's GrabCut does, seeded by the prompts: disks around the
  positive clicks are definite foreground, around the negative clicks definite background; the box
  (or, with no box, the connected human region of ``prior`` under the click, or else a
  person-sized box guessed from the click and the photo size) bounds the probable foreground.
  ``prior`` is an (H, W) float32 "all humans" alpha in [0, 1] (the default matter's RVM alpha); it
  also gives the picked person soft edges. GrabCut runs on a copy of the photo downscaled to
  ``work_long_side`` pixels, made once per photo.

Coordinates are photo pixels: x to the right, y down, (0, 0) the top-left pixel's corner.
This module imports only numpy and OpenCV (torch only through a SAM backend).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import cv2
import numpy as np

from instmatt_app.core.result import Detection

__all__ = ["NothingPickedError", "PickSession", "pick_person", "image_fingerprint", "guess_person_box"]

Point = Sequence[float]

# a prior region is cut to the clicked person's pose mask only when that keeps less than this share
# of it (tuned on COCO persons with a ground-truth prior, see docs/interactive.md)
POSE_CUT_SHARE = 0.7


class NothingPickedError(ValueError):
    """The prompts selected no pixels (e.g. a click on plain background that GrabCut rejected)."""


def image_fingerprint(image: np.ndarray) -> tuple:
    """A key identifying a photo by content: (shape, dtype, 128-bit BLAKE2b of the pixels).

    ~4 ms for a 1280x960 RGB photo; used to cache per-photo work (SAM embeddings, working copies).
    """
    digest = hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).hexdigest()
    return (tuple(image.shape), image.dtype.str, digest)


def guess_person_box(points: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """A plausible person box around positive click(s) when the user gave no box and no prior.

    points: (N, 2) float x, y (N >= 1) in an image of ``width`` x ``height``.
    One click is taken as a point on the torso of a person 70 % of the image tall (0.35 of that
    height above the click, 0.65 below, 0.45 of it wide); several clicks span their bounding box,
    padded by a quarter of its size and at least 5 % of the image diagonal.
    Returns (x0, y0, x1, y1) clipped to the image.
    """
    diag = float(np.hypot(width, height))
    if len(points) == 1:
        x, y = float(points[0, 0]), float(points[0, 1])
        hp = 0.7 * height
        wp = min(0.45 * hp, 0.6 * width)
        box = (x - wp / 2, y - 0.35 * hp, x + wp / 2, y + 0.65 * hp)
    else:
        x0, y0 = points.min(axis=0)
        x1, y1 = points.max(axis=0)
        pad_x = max(0.25 * (x1 - x0), 0.05 * diag)
        pad_y = max(0.25 * (y1 - y0), 0.05 * diag)
        box = (x0 - pad_x, y0 - pad_y, x1 + pad_x, y1 + pad_y)
    return (max(0.0, box[0]), max(0.0, box[1]), min(float(width), box[2]), min(float(height), box[3]))


def _points(values: Sequence[Point] | None, what: str, width: int, height: int) -> np.ndarray:
    """(N, 2) float32 x, y, checked to lie inside the photo."""
    if values is None or len(values) == 0:
        return np.zeros((0, 2), np.float32)
    pts = np.asarray(values, np.float32)
    if pts.ndim != 2 or pts.shape[1] != 2 or not np.isfinite(pts).all():
        raise ValueError(f"{what}: expected a list of (x, y) pairs, got {values!r}")
    outside = (pts[:, 0] < 0) | (pts[:, 0] >= width) | (pts[:, 1] < 0) | (pts[:, 1] >= height)
    if outside.any():
        x, y = pts[np.argmax(outside)]
        raise ValueError(f"{what} ({x:g}, {y:g}) is outside the {width}x{height} photo")
    return pts


def _box(box: Sequence[float] | None, width: int, height: int) -> tuple[float, float, float, float] | None:
    if box is None:
        return None
    b = [float(v) for v in box]
    if len(b) != 4 or not np.isfinite(b).all():
        raise ValueError(f"box: expected x0, y0, x1, y1, got {box!r}")
    x0, x1 = sorted(min(max(v, 0.0), float(width)) for v in (b[0], b[2]))
    y0, y1 = sorted(min(max(v, 0.0), float(height)) for v in (b[1], b[3]))
    if x1 - x0 < 2 or y1 - y0 < 2:
        raise ValueError(f"box {tuple(b)} has no area inside the {width}x{height} photo")
    return (x0, y0, x1, y1)


def _mask_box(mask: np.ndarray) -> tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def _sam_predictor(backend: Any):
    """The SamInteractivePredictor inside ``backend`` (itself, or a SamDetector's), or None."""
    if backend is None:
        return None
    predictor = getattr(backend, "predictor", backend)
    if not (hasattr(predictor, "set_image") and hasattr(predictor, "predict")):
        raise TypeError(f"backend must be a SAM predictor or SAM detector, got {type(backend).__name__}")
    return predictor


@dataclass
class _WorkCopy:
    """Per-photo working data for GrabCut (computed on the first click)."""

    scale: float            # working pixels per photo pixel (<= 1)
    image: np.ndarray       # (h, w, 3) uint8 RGB, the downscaled photo
    prior: np.ndarray | None    # (h, w) float32 in [0, 1]
    labels: np.ndarray | None   # (h, w) int32 connected components of prior >= 0.5 (0 = none)


class PickSession:
    """Everything one photo needs for repeated clicks; :meth:`click` returns one person.

    image: (H, W, 3) uint8 RGB. backend: None (GrabCut, the embedded default) or a SAM predictor /
    SAM detector. prior: optional (H, W) float32 human alpha in [0, 1]. others: optional (k, H, W)
    or list of (H, W) masks of people already found; GrabCut treats them as background so a click
    adds a new person (SAM ignores them).
    pose: the embedded pose landmarker used by the default (no SAM) picking: a callable
    ``(crop (h, w, 3) uint8 RGB, num_poses) -> list of objects with .mask (h, w) float32 in [0, 1]``
    (:class:`instmatt_app.nets.pose_landmarker.PoseSegmenter`); "auto" = the embedded one when it
    is installed, None = do without. The pose mask of the person under the click cuts that person
    out of a human region shared with others, and without a prior it replaces GrabCut.
    """

    def __init__(self, image: np.ndarray, backend: Any = None, prior: np.ndarray | None = None,
                 others: Sequence[np.ndarray] | np.ndarray | None = None, work_long_side: int = 400,
                 iterations: int = 3, pose: Any = "auto"):
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
                and image.dtype == np.uint8):
            raise ValueError("image: expected an (H, W, 3) uint8 RGB array, got "
                             f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', type(image).__name__)}")
        self.image = image
        self.height, self.width = image.shape[:2]
        self.predictor = _sam_predictor(backend)
        if prior is not None:
            prior = np.asarray(prior, np.float32)
            if prior.shape != (self.height, self.width):
                raise ValueError(f"prior: shape {prior.shape} does not match the photo {(self.height, self.width)}")
            prior = np.clip(np.nan_to_num(prior), 0.0, 1.0)
        self.prior = prior
        self.others = self._check_others(others)
        self.work_long_side = int(work_long_side)
        self.iterations = int(iterations)
        self._work: _WorkCopy | None = None
        self._pose = pose
        self.key = image_fingerprint(image)

    def _check_others(self, others) -> np.ndarray | None:
        if others is None or len(others) == 0:
            return None
        stack = np.asarray([np.asarray(m, np.float32) for m in others])
        if stack.shape[1:] != (self.height, self.width):
            raise ValueError(f"others: mask shape {stack.shape[1:]} does not match the photo")
        return stack.max(axis=0) >= 0.5

    # ------------------------------------------------------------------ public
    def click(self, points: Sequence[Point] | None = None, negatives: Sequence[Point] | None = None,
              box: Sequence[float] | None = None) -> Detection:
        """The person the prompts select.

        points / negatives: [(x, y), ...] photo pixels; box: (x0, y0, x1, y1) or None. At least one
        positive point or a box is needed.
        Returns a Detection: mask (H, W) float32 in [0, 1], box = the mask's extent (> 0.5),
        score (SAM's predicted IoU; 1.0 for GrabCut), source "click+sam" or "click".
        Raises NothingPickedError when the prompts select nothing, ValueError for bad prompts.
        """
        pos = _points(points, "point", self.width, self.height)
        neg = _points(negatives, "negative point", self.width, self.height)
        bx = _box(box, self.width, self.height)
        if len(pos) == 0 and bx is None:
            raise ValueError("give at least one point on the person or a box around them")
        if self.predictor is not None:
            mask, score, source = *self._sam(pos, neg, bx), "click+sam"
        else:
            mask, score, source = self._grabcut(pos, neg, bx), 1.0, "click"
        hard = mask > 0.5
        if not hard.any():
            raise NothingPickedError("the clicks selected nothing; click on the person's body or draw a box")
        return Detection(box=_mask_box(hard), score=score, mask=mask, source=source)

    # ------------------------------------------------------------------ SAM
    def _sam(self, pos: np.ndarray, neg: np.ndarray, box) -> tuple[np.ndarray, float]:
        self.predictor.set_image(self.image)  # cached by content after the first call
        pts = np.concatenate([pos, neg]) if len(pos) + len(neg) else None
        labels = np.r_[np.ones(len(pos), np.int64), np.zeros(len(neg), np.int64)] if pts is not None else None
        return self.predictor.predict(points=pts, labels=labels, box=box)

    # ------------------------------------------------------------------ GrabCut
    def _work_copy(self) -> _WorkCopy:
        if self._work is None:
            scale = min(1.0, self.work_long_side / max(self.height, self.width))
            size = (max(1, round(self.width * scale)), max(1, round(self.height * scale)))
            small = self.image if scale == 1.0 else cv2.resize(self.image, size, interpolation=cv2.INTER_AREA)
            prior = labels = None
            if self.prior is not None:
                prior = self.prior if scale == 1.0 else cv2.resize(self.prior, size, interpolation=cv2.INTER_AREA)
                _, labels = cv2.connectedComponents((prior >= 0.5).astype(np.uint8), connectivity=8)
                labels = labels.astype(np.int32)
            self._work = _WorkCopy(scale=scale, image=np.ascontiguousarray(small), prior=prior, labels=labels)
        return self._work

    def _grabcut(self, pos: np.ndarray, neg: np.ndarray, box) -> np.ndarray:
        wk = self._work_copy()
        s = wk.scale
        h, w = wk.image.shape[:2]
        ps, ns = pos * s, neg * s
        bs = tuple(v * s for v in box) if box is not None else None
        memo: list = []

        def person() -> np.ndarray | None:  # the pose landmarker runs only where it is needed
            if not memo:
                memo.append(self._pose_at(wk, ps, ns, bs) if len(ps) else None)
            return memo[0]

        if wk.prior is not None:
            region = self._prior_region(wk, ps, ns, bs, person)
            if region is not None:
                return self._to_photo(region.astype(np.float32), wk)
        if not len(ns) and (pose_mask := person()) is not None:
            keep = pose_mask >= 0.5
            if self.others is not None:
                keep &= ~self._others_small(wk)
            keep = self._keep_clicked(keep, ps)
            if keep.any():
                return self._to_photo(keep.astype(np.float32), wk)
        if bs is not None:
            return self._to_photo(self._grabcut_rect(wk, ps, ns, bs, guessed=False), wk)
        return self._to_photo(self._grabcut_rect(wk, ps, ns, guess_person_box(ps, w, h), guessed=True), wk)

    def _pose_model(self):
        if isinstance(self._pose, str) and self._pose == "auto":
            try:
                from instmatt_app.nets.embedded import pose_segmenter

                self._pose = pose_segmenter()
            except Exception:  # not installed / not importable: pick without it
                self._pose = None
        return self._pose

    def _pose_at(self, wk: _WorkCopy, ps: np.ndarray, ns: np.ndarray, bs) -> np.ndarray | None:
        """The pose landmarker's mask (h, w) float32 of the person under the positive clicks, at
        working resolution, or None. Crops tried: the box (padded square) if given, else squares
        centred on the first click of 0.6 and 1.0 x the photo's long side. A pose counts when its
        mask is >= 0.3 at the clicks on average and < 0.5 at every negative click."""
        model = self._pose_model()
        if model is None:
            return None
        h, w = wk.image.shape[:2]
        if bs is not None:
            side = 1.15 * max(bs[2] - bs[0], bs[3] - bs[1])
            centres = [((bs[0] + bs[2]) / 2, (bs[1] + bs[3]) / 2, side)]
        else:
            centres = [(float(ps[0, 0]), float(ps[0, 1]), f * max(h, w)) for f in (0.6, 1.0)]
        for cx, cy, side in centres:
            x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
            x1, y1 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
            if x1 - x0 < 16 or y1 - y0 < 16:
                continue
            try:
                poses = model(np.ascontiguousarray(wk.image[y0:y1, x0:x1]), 3)
            except Exception:  # a failing optional model must not break picking
                return None
            best, best_v = None, 0.3
            for pose in poses:
                m = np.asarray(pose.mask, np.float32)
                if m.shape != (y1 - y0, x1 - x0):
                    continue
                v = float(_values_at(m, ps, x0, y0).mean())
                if v > best_v and not (len(ns) and (_values_at(m, ns, x0, y0) >= 0.5).any()):
                    best, best_v = m, v
            if best is not None:
                out = np.zeros((h, w), np.float32)
                out[y0:y1, x0:x1] = best
                return out
        return None

    def _prior_region(self, wk: _WorkCopy, ps: np.ndarray, ns: np.ndarray, bs,
                      person: Callable[[], np.ndarray | None] = lambda: None) -> np.ndarray | None:
        """The picked person inside the prior's human region (working resolution, bool), or None
        when the prompts touch no human region of the prior.

        The connected region(s) of prior >= 0.5 under the positive clicks (or, with only a box, the
        largest one inside the box), cut to the box, minus the people in ``others``; negative clicks
        inside it split it between the clicks (:meth:`_split_by_clicks`); without them it is cut
        to the pose landmarker's mask of the clicked person (``person()``), or else split where it
        narrows (:func:`_split_at_necks`).
        """
        h, w = wk.labels.shape
        diag = float(np.hypot(h, w))
        box_mask = None
        if bs is not None:
            box_mask = np.zeros((h, w), bool)
            box_mask[int(bs[1]):int(np.ceil(bs[3])), int(bs[0]):int(np.ceil(bs[2]))] = True
        if len(ps):
            ids = self._components_at(wk.labels, ps, max(3, int(0.03 * diag)))
        else:
            inside = wk.labels[box_mask]
            counts = np.bincount(inside[inside > 0]) if (inside > 0).any() else np.zeros(1, int)
            ids = [int(np.argmax(counts))] if counts.max() > 0 else []
        if not ids:
            return None
        region = np.isin(wk.labels, ids)
        if box_mask is not None:
            region &= box_mask
        if self.others is not None:
            region &= ~self._others_small(wk)
        seeds = ps if len(ps) else np.array([_centre_of(region)], np.float32) if region.any() else ps
        region = self._keep_clicked(region, seeds, snap=max(3, int(0.03 * diag)))
        if not region.any():
            return region
        if len(ns):
            inside = [(x, y) for x, y in ns if _touches(region, x, y, max(3, int(0.024 * diag)))]
            if inside:
                region = self._split_by_clicks(wk, region, seeds, np.asarray(inside, np.float32), diag)
        elif self.others is None:
            cut = None
            pose_mask = person() if len(ps) else None
            if pose_mask is not None:
                # the pose landmarker's person, grown by 2 % of the diagonal; used only when it
                # leaves out a good part of the region (several people merged): its edges are coarse
                k = max(3, int(0.02 * diag)) | 1
                near = cv2.dilate((pose_mask >= 0.5).astype(np.uint8), np.ones((k, k), np.uint8)) > 0
                cut = self._keep_clicked(region & near, seeds, snap=max(3, int(0.03 * diag)))
                if not (cut.any() and cut.sum() < POSE_CUT_SHARE * region.sum()):
                    cut = None
            if cut is not None:
                region = cut
            elif box_mask is None:
                region = _split_at_necks(region, seeds)
        return region

    def _split_by_clicks(self, wk: _WorkCopy, region: np.ndarray, ps: np.ndarray, ns: np.ndarray,
                         diag: float) -> np.ndarray:
        """The part of ``region`` that belongs with the positive clicks rather than the negative ones.

        A marker-based watershed (OpenCV) on the photo's colours: disks at the positive clicks,
        disks at the negative clicks, and everything outside the region (painted one flat colour, so
        it floods in last across the region's edge) grow until they meet along colour edges.
        Returns the pixels won by the positive side that are connected to a positive click.
        """
        if not len(ps) or not len(ns):
            return region
        ys, xs = np.nonzero(region)
        pad = 4
        cy0, cy1 = max(0, ys.min() - pad), min(region.shape[0], ys.max() + 1 + pad)
        cx0, cx1 = max(0, xs.min() - pad), min(region.shape[1], xs.max() + 1 + pad)
        reg = region[cy0:cy1, cx0:cx1]
        crop = cv2.cvtColor(wk.image[cy0:cy1, cx0:cx1], cv2.COLOR_RGB2BGR)
        markers = np.where(reg, 0, 3).astype(np.int32)
        radius = max(2, int(round(0.012 * diag)))
        for x, y in ns:  # the disks may reach outside the region (a click on its edge, a hole)
            cv2.circle(markers, (int(x) - cx0, int(y) - cy0), radius, 2, -1)
        for x, y in ps:
            cv2.circle(markers, (int(x) - cx0, int(y) - cy0), radius, 1, -1)
        crop[markers == 3] = (255, 0, 255)  # the click disks keep their colours
        cv2.watershed(np.ascontiguousarray(crop), markers)
        won = reg & (markers != 2) & (markers != -1)
        won = self._keep_clicked(won, ps - (cx0, cy0))
        out = np.zeros_like(region)
        out[cy0:cy1, cx0:cx1] = won
        return out

    def _grabcut_rect(self, wk: _WorkCopy, ps: np.ndarray, ns: np.ndarray, rect, guessed: bool) -> np.ndarray:
        """GrabCut in a rectangle (working resolution): the rectangle is probable foreground, click
        disks definite. Around a user's box a band is definite background (GrabCut's own rule: the
        person is inside the box); around a guessed box the band is only probable background, and
        only the crop's outer frame definite, so the person may extend beyond the guess.
        Returns (h, w) float32 0/1."""
        h, w = wk.image.shape[:2]
        diag = float(np.hypot(h, w))
        radius = max(2, int(round(0.012 * diag)))
        if len(ps):  # the box must hold every positive click
            rect = (min(rect[0], ps[:, 0].min()), min(rect[1], ps[:, 1].min()),
                    max(rect[2], ps[:, 0].max() + 1), max(rect[3], ps[:, 1].max() + 1))
        rx0, ry0 = int(np.floor(rect[0])), int(np.floor(rect[1]))
        rx1, ry1 = int(np.ceil(rect[2])), int(np.ceil(rect[3]))
        # crop = the rectangle plus a band of background for GrabCut's background model
        band = max(8, int((0.3 if guessed else 0.15) * max(rx1 - rx0, ry1 - ry0)))
        cx0, cy0, cx1, cy1 = max(0, rx0 - band), max(0, ry0 - band), min(w, rx1 + band), min(h, ry1 + band)
        crop = np.ascontiguousarray(cv2.cvtColor(wk.image[cy0:cy1, cx0:cx1], cv2.COLOR_RGB2BGR))
        ch, cw = crop.shape[:2]
        gc = np.full((ch, cw), cv2.GC_BGD, np.uint8)
        if guessed:  # definite background only on the frame sides inside the photo
            f = max(2, band // 4)
            gc[f if cy0 > 0 else 0:ch - f if cy1 < h else ch, f if cx0 > 0 else 0:cw - f if cx1 < w else cw] = cv2.GC_PR_BGD
        gc[max(0, ry0 - cy0):ry1 - cy0, max(0, rx0 - cx0):rx1 - cx0] = cv2.GC_PR_FGD
        if self.others is not None:
            gc[self._others_small(wk)[cy0:cy1, cx0:cx1]] = cv2.GC_BGD
        for x, y in ns:
            cv2.circle(gc, (int(x) - cx0, int(y) - cy0), radius, int(cv2.GC_BGD), -1)
        for x, y in ps:
            cv2.circle(gc, (int(x) - cx0, int(y) - cy0), radius, int(cv2.GC_FGD), -1)
        fg_seed = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        if fg_seed.sum() < 2 or (~fg_seed).sum() < 2:
            fg = fg_seed  # the box covers the whole photo: GrabCut has no background to learn from
        else:
            bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
            cv2.grabCut(crop, gc, None, bgd, fgd, self.iterations, cv2.GC_INIT_WITH_MASK)
            fg = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
        fg = self._keep_clicked(fg, ps - (cx0, cy0))
        small = np.zeros((h, w), bool)
        small[cy0:cy1, cx0:cx1] = fg
        inside = [(x, y) for x, y in ns if _touches(small, x, y, 2 * radius)]
        if inside and len(ps):  # GrabCut kept what a negative click excluded: split between the clicks
            small = self._split_by_clicks(wk, small, ps, np.asarray(inside, np.float32), diag)
        return small.astype(np.float32)

    @staticmethod
    def _components_at(labels: np.ndarray, pts: np.ndarray, search: int) -> list[int]:
        """Component ids under the points (or the nearest one within ``search`` pixels)."""
        h, w = labels.shape
        ids = set()
        for x, y in pts:
            xi, yi = min(int(x), w - 1), min(int(y), h - 1)
            if labels[yi, xi] > 0:
                ids.add(int(labels[yi, xi]))
                continue
            y0, y1, x0, x1 = max(0, yi - search), min(h, yi + search + 1), max(0, xi - search), min(w, xi + search + 1)
            win = labels[y0:y1, x0:x1]
            if (win > 0).any():
                yy, xx = np.nonzero(win)
                k = np.argmin((yy + y0 - yi) ** 2 + (xx + x0 - xi) ** 2)
                ids.add(int(win[yy[k], xx[k]]))
        return sorted(ids)

    @classmethod
    def _keep_clicked(cls, fg: np.ndarray, pts: np.ndarray, snap: int = 0) -> np.ndarray:
        """Keep the connected parts of ``fg`` holding a positive click (or, within ``snap`` pixels,
        the part nearest to it); all of ``fg`` when there are no clicks or none is near."""
        if not len(pts) or not fg.any():
            return fg
        _, lab = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
        keep = set(cls._components_at(lab, pts, snap)) if snap else set()
        if not snap:
            h, w = fg.shape
            keep = {int(lab[min(max(int(y), 0), h - 1), min(max(int(x), 0), w - 1)]) for x, y in pts}
            keep.discard(0)
        return np.isin(lab, sorted(keep)) if keep else fg

    def _others_small(self, wk: _WorkCopy) -> np.ndarray:
        if wk.scale == 1.0:
            return self.others
        h, w = wk.image.shape[:2]
        return cv2.resize(self.others.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)

    def _to_photo(self, small: np.ndarray, wk: _WorkCopy) -> np.ndarray:
        """Working-resolution binary mask -> (H, W) float32 soft mask in [0, 1] at photo size.

        Upsampled and smoothed over about one working pixel; with a prior, the prior's alpha inside
        that region (so hair and edges keep the matte's softness).
        """
        sigma = 0.7
        soft = cv2.GaussianBlur(small, (0, 0), sigmaX=sigma)
        if wk.scale != 1.0:
            soft = cv2.resize(soft, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        if self.prior is None:
            return np.clip(soft, 0.0, 1.0).astype(np.float32)
        support = np.clip(2.0 * soft, 0.0, 1.0)  # the region grown by ~half a working pixel
        return (self.prior * support).astype(np.float32)


def _values_at(mask: np.ndarray, pts: np.ndarray, x0: int, y0: int) -> np.ndarray:
    """Values of a crop's ``mask`` at photo points ``pts`` (N, 2) x, y; the crop starts at (x0, y0)."""
    h, w = mask.shape
    return np.array([mask[min(max(int(y) - y0, 0), h - 1), min(max(int(x) - x0, 0), w - 1)] for x, y in pts])


def _touches(mask: np.ndarray, x: float, y: float, r: int) -> bool:
    """Whether ``mask`` has a pixel within ``r`` pixels (square window) of (x, y)."""
    h, w = mask.shape
    xi, yi = int(x), int(y)
    return bool(mask[max(0, yi - r):min(h, yi + r + 1), max(0, xi - r):min(w, xi + r + 1)].any())


def _centre_of(mask: np.ndarray) -> tuple[float, float]:
    """(x, y) of the pixel of ``mask`` farthest from its border (a point well inside it)."""
    dt = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(dt)), dt.shape)
    return float(x), float(y)


def _nearest_marker(markers: np.ndarray) -> np.ndarray:
    """For every pixel, the id of the nearest non-zero pixel of ``markers`` (int32, same shape)."""
    background = (markers == 0).astype(np.uint8)
    _, idx = cv2.distanceTransformWithLabels(background, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    ys, xs = np.nonzero(markers)
    lut = np.zeros(int(idx.max()) + 1, np.int32)
    lut[idx[ys, xs]] = markers[ys, xs]
    return lut[idx]


def _split_at_necks(region: np.ndarray, clicks: np.ndarray, core: float = 0.4,
                    min_ratio: float = 0.3) -> np.ndarray:
    """Split a human region holding several touching people; keep the part of the clicked one.

    region: (h, w) bool; clicks: (N, 2) x, y. The cores of the region (distance to its border >
    ``core`` x the largest such distance) are bodies and heads; cores smaller than ``min_ratio`` x
    the clicked core (or x half the largest core, if the click is on a small one such as a head)
    are not people of their own. Every region pixel goes to its nearest remaining core; the pixels
    of the cores nearest to the clicks are returned.
    Measured on COCO persons with a ground-truth union as the prior (see docs/interactive.md).
    """
    dt = cv2.distanceTransform(region.astype(np.uint8), cv2.DIST_L2, 5)
    n, cores = cv2.connectedComponents((dt > core * float(dt.max())).astype(np.uint8), connectivity=8)
    if n <= 2:
        return region
    h, w = region.shape

    def owners_at(owner: np.ndarray) -> list[int]:
        return sorted({int(owner[min(int(y), h - 1), min(int(x), w - 1)]) for x, y in clicks})

    cores = cores.astype(np.int32)
    areas = np.bincount(cores.ravel(), minlength=n).astype(np.float64)
    areas[0] = 0.0
    clicked = owners_at(_nearest_marker(cores))
    ref = max(max(areas[c] for c in clicked), 0.5 * areas.max())
    big = areas >= min_ratio * ref
    if big.sum() <= 1:
        return region
    owner = _nearest_marker(np.where(big[cores], cores, 0).astype(np.int32))
    return region & np.isin(owner, owners_at(owner))


_LAST: dict[str, Any] = {}


def pick_person(image_rgb_uint8: np.ndarray, points: Sequence[Point] | None = None,
                negatives: Sequence[Point] | None = None, box: Sequence[float] | None = None,
                backend: Any = None, prior: np.ndarray | None = None,
                others: Sequence[np.ndarray] | np.ndarray | None = None, pose: Any = "auto") -> Detection:
    """One person from clicks and/or a box (see :class:`PickSession` and :meth:`PickSession.click`).

    The session of the last photo is kept, so repeated calls on the same photo (same pixels, same
    backend, same prior and others objects) reuse its per-photo work.
    """
    key = (image_fingerprint(image_rgb_uint8), id(backend), id(prior), id(others), id(pose))
    session = _LAST.get("session")
    if session is None or _LAST.get("key") != key:
        session = PickSession(image_rgb_uint8, backend=backend, prior=prior, others=others, pose=pose)
        _LAST.update(session=session, key=key, refs=(backend, prior, others, pose))  # refs keep the ids valid
    return session.click(points=points, negatives=negatives, box=box)
