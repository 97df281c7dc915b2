"""Person boxes from box detectors: the result type, letterboxing, IoU, NMS merge, and the score fusion of
MoveNet-MultiPose with a box-only detector (SSDLite or CenterNet; the measured best unions, docs/detectors.md).

All boxes are (x0, y0, x1, y1) float pixel coordinates in the photo (x1, y1 exclusive), as in
:class:`~instmatt_app.core.result.Detection`. Numpy and OpenCV only.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence

import cv2
import numpy as np

__all__ = ["PersonBox", "Letterbox", "check_rgb_image", "letterbox", "box_iou", "nms", "merge_person_boxes",
           "flip_boxes", "boxes_in_photo", "detect_with_flip", "fuse_person_boxes", "grid_tiles",
           "boxes_from_tile", "FusedPersonDetector"]


@dataclass(frozen=True)
class PersonBox:
    """One person found by a box detector; unpacks as ``box, score, keypoints`` (three values).

    box: (x0, y0, x1, y1) floats in photo pixels. score: detector confidence in [0, 1].
    keypoints: (17, 3) float32 COCO-order (x, y, score) in photo pixels, or None (box-only detectors).
    source: name of the detector ("movenet-multipose", "ssdlite", "centernet"), or e.g. "movenet+ssdlite" when
    a fusion of both found it.
    """

    box: tuple[float, float, float, float]
    score: float
    keypoints: np.ndarray | None = None
    source: str = ""

    def __iter__(self):
        return iter((self.box, self.score, self.keypoints))

    def replace(self, **changes) -> "PersonBox":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


class Letterbox(NamedTuple):
    """How a photo was placed into a network input: input = photo * scale + (pad_x, pad_y)."""

    scale: float
    pad_x: int
    pad_y: int

    def to_photo(self, xy: np.ndarray) -> np.ndarray:
        """(..., 2) input-pixel (x, y) -> photo pixels (float32)."""
        xy = np.asarray(xy, np.float32)
        return (xy - np.array([self.pad_x, self.pad_y], np.float32)) / self.scale


def check_rgb_image(image: np.ndarray) -> np.ndarray:
    """``image`` as a C-contiguous (H, W, 3) uint8 array; ValueError with a readable message otherwise."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {image.shape} dtype {image.dtype}")
    if min(image.shape[:2]) < 8:
        raise ValueError(f"image too small for person detection: {image.shape[1]}x{image.shape[0]}")
    return np.ascontiguousarray(image)


def letterbox(image: np.ndarray, out_w: int, out_h: int, centre: bool = True) -> tuple[np.ndarray, Letterbox]:
    """Resize ``image`` (H, W, 3) uint8 keeping its aspect ratio to fit (out_h, out_w), pad with zeros.

    Returns the (out_h, out_w, 3) uint8 canvas and the :class:`Letterbox` mapping. INTER_AREA when shrinking,
    INTER_LINEAR when enlarging. centre=False pads right/bottom only.
    """
    h, w = image.shape[:2]
    s = min(out_w / w, out_h / h)
    nw, nh = max(1, min(out_w, round(w * s))), max(1, min(out_h, round(h * s)))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    px, py = ((out_w - nw) // 2, (out_h - nh) // 2) if centre else (0, 0)
    canvas = np.zeros((out_h, out_w, 3), np.uint8)
    canvas[py:py + nh, px:px + nw] = resized
    return canvas, Letterbox(s, px, py)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4), (x0, y0, x1, y1); returns (N, M) float64."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices of the boxes kept by greedy non-maximum suppression (OpenCV's NMSBoxes), best score first."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = [[float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in boxes]
    keep = cv2.dnn.NMSBoxes(xywh, [float(s) for s in scores], 0.0, float(iou))
    keep = np.asarray(keep, np.int64).reshape(-1)
    return keep[np.argsort(-np.asarray(scores, np.float64)[keep], kind="stable")]


def flip_boxes(dets: Iterable[PersonBox], width: int) -> list[PersonBox]:
    """Map detections found on the horizontally mirrored photo back to the photo (keypoints: x mirrored and
    left/right COCO keypoints swapped)."""
    swap = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
    out = []
    for d in dets:
        x0, y0, x1, y1 = d.box
        kp = None
        if d.keypoints is not None:
            kp = d.keypoints[swap].copy()
            kp[:, 0] = width - kp[:, 0]
        out.append(d.replace(box=(width - x1, y0, width - x0, y1), keypoints=kp))
    return out


def merge_person_boxes(groups: Sequence[Sequence[PersonBox]], iou: float = 0.5) -> list[PersonBox]:
    """Union of several detectors' (or passes') boxes: NMS over all of them, best score first.

    A kept box takes the keypoints of the best suppressed box that has keypoints when it has none itself, and
    its ``source`` lists every detector whose boxes it suppressed (e.g. "movenet+centernet").
    """
    dets = [d for g in groups for d in g]
    if not dets:
        return []
    boxes = np.array([d.box for d in dets], np.float64)
    scores = np.array([d.score for d in dets], np.float64)
    keep = nms(boxes, scores, iou)
    ious = box_iou(boxes[keep], boxes)
    taken = np.zeros(len(dets), bool)
    out = []
    for row, k in enumerate(keep):
        members = [j for j in np.nonzero((ious[row] > iou) & ~taken)[0]] or [k]
        taken[members] = True
        taken[k] = True
        best = dets[k]
        kp = best.keypoints
        if kp is None:
            with_kp = [dets[j] for j in members if dets[j].keypoints is not None]
            if with_kp:
                kp = max(with_kp, key=lambda d: d.score).keypoints
        sources = []
        for j in [k, *members]:
            for s in dets[j].source.split("+"):
                if s and s not in sources:
                    sources.append(s)
        out.append(best.replace(keypoints=kp, source="+".join(sources)))
    return out


def boxes_in_photo(boxes: np.ndarray, scores: np.ndarray, size: tuple[int, int], min_box_area: float, nms_iou: float,
                   source: str) -> list[PersonBox]:
    """A box-only detector's raw boxes as people: boxes (n, 4) (x0, y0, x1, y1) float photo pixels are clipped
    to the photo (``size`` = (w, h)); boxes under 1 px, or under ``min_box_area`` x the photo's area, are
    dropped; NMS at ``nms_iou``; best score first, keypoints None."""
    w, h = size
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    ok = (bw >= 1) & (bh >= 1) & (bw * bh >= min_box_area * w * h)
    boxes, scores = boxes[ok], np.asarray(scores, np.float64)[ok]
    return [PersonBox(tuple(float(v) for v in boxes[k]), float(scores[k]), None, source)
            for k in nms(boxes, scores, nms_iou)]


def detect_with_flip(run, image_rgb_uint8: np.ndarray, flip: bool, nms_iou: float, source: str) -> list[PersonBox]:
    """``run(image) -> list[PersonBox]`` on a checked (H, W, 3) uint8 RGB photo, plus (``flip``) on its mirror
    image mapped back and merged by NMS; best score first, every box's ``source`` set to ``source``."""
    image = check_rgb_image(image_rgb_uint8)
    dets = run(image)
    if flip:
        mirrored = flip_boxes(run(np.ascontiguousarray(image[:, ::-1])), image.shape[1])
        dets = merge_person_boxes([dets, mirrored], nms_iou)
    return [d.replace(source=source) for d in sorted(dets, key=lambda d: -d.score)]


def fuse_person_boxes(movenet: Sequence[PersonBox], partner: Sequence[PersonBox], image_size: tuple[int, int],
                      movenet_weight: float = 3.0, iou: float = 0.5, min_box_area: float = 0.01,
                      min_candidate_score: tuple[float, float] = (0.03, 0.05)) -> list[PersonBox]:
    """Fuse MoveNet-MultiPose boxes with a box-only detector's (``partner``: SSDLite or CenterNet) for one
    photo into one list, best fused score first.

    Candidates (MoveNet score >= min_candidate_score[0], partner >= [1]) are clustered greedily by score:
    a cluster is the best remaining box and every remaining box with IoU >= ``iou``. The cluster keeps the
    best box; its fused score is the noisy-OR of the two detectors' best scores in it,
    ``1 - (1 - min(1, movenet_weight * s_movenet)) * (1 - s_partner)`` (0 for a detector with no box there),
    so a box both detectors found needs a lower score from each. MoveNet's scores run lower than
    the partners' for the same precision, hence the weight (3 measured best for both, docs/detectors.md).
    Boxes smaller than ``min_box_area`` x the photo's area are dropped.

    image_size: (width, height) of the photo. Keypoints come from the best MoveNet box of the cluster; the
    ``source`` is "movenet", the partner's box source, or both joined by "+".
    """
    w, h = image_size
    cand = [(d, 0) for d in movenet if d.score >= min_candidate_score[0]]
    cand += [(d, 1) for d in partner if d.score >= min_candidate_score[1]]
    cand = [(d, k) for d, k in cand if (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) >= min_box_area * w * h]
    if not cand:
        return []
    cand.sort(key=lambda c: -c[0].score)
    ious = box_iou(np.array([d.box for d, _ in cand]), np.array([d.box for d, _ in cand]))
    taken = np.zeros(len(cand), bool)
    out = []
    for i in range(len(cand)):
        if taken[i]:
            continue
        members = np.nonzero((ious[i] >= iou) & ~taken)[0]
        taken[members] = True
        taken[i] = True
        best_mn = max((cand[j][0] for j in members if cand[j][1] == 0), key=lambda d: d.score, default=None)
        s_mn = best_mn.score if best_mn is not None else 0.0
        best_pt = max((cand[j][0] for j in members if cand[j][1] == 1), key=lambda d: d.score, default=None)
        s_pt = best_pt.score if best_pt is not None else 0.0
        fused = 1.0 - (1.0 - min(1.0, movenet_weight * s_mn)) * (1.0 - s_pt)
        source = "+".join(n for n, s in (("movenet", s_mn), (best_pt.source if best_pt else "", s_pt)) if s > 0)
        kp = best_mn.keypoints if best_mn is not None else None
        out.append(PersonBox(cand[i][0].box, float(fused), kp, source))
    return sorted(out, key=lambda d: -d.score)


class FusedPersonDetector:
    """MoveNet-MultiPose + a box-only detector (SSDLite or CenterNet), fused by :func:`fuse_person_boxes`;
    ``detect(image) -> list[PersonBox]``.

    movenet, partner: runner objects with ``detect`` and ``name`` (built with score_threshold=0 or a low one so
    that candidates reach the fusion; :meth:`from_files` does that). score_threshold applies to the fused
    score (0.45 with weight 3 and boxes >= 1 % of the photo measured best for both partners). grid > 1: the
    fusion also runs on grid x grid overlapping tiles (:func:`grid_tiles`), so that small people and crowds
    (MoveNet gives at most 6 people per pass) are found; a tile's box cut by an inner tile border is dropped
    (the whole photo or another tile sees that person whole), and all boxes are merged by NMS. crowd_grid >
    grid: when the photo and its tiles gave at least ``crowd_people`` people, a finer crowd_grid x crowd_grid
    tiling runs as well (a crowd of small people).
    """

    def __init__(self, movenet, partner, score_threshold: float = 0.45, movenet_weight: float = 3.0,
                 min_box_area: float = 0.01, iou: float = 0.5, grid: int = 1, crowd_grid: int = 1,
                 crowd_people: int = 6):
        self.grid, self.crowd_grid, self.crowd_people = int(grid), int(crowd_grid), int(crowd_people)
        self.movenet, self.partner = movenet, partner
        self.name = f"movenet+{partner.name}"
        self.score_threshold = float(score_threshold)
        self.movenet_weight = float(movenet_weight)
        self.min_box_area = float(min_box_area)
        self.iou = float(iou)

    @classmethod
    def from_files(cls, movenet_onnx, partner_onnx, device: str = "cpu", partner: str = "centernet",
                   **options) -> "FusedPersonDetector":
        """partner: "ssdlite" (models/ssdlite-persons.onnx, SSDLite at 400 px) or "centernet"."""
        from instmatt_app.nets.movenet import MoveNetMultiPose

        if partner == "ssdlite":
            from instmatt_app.nets.ssdlite import SSDLitePersons

            second = SSDLitePersons(partner_onnx, device, score_threshold=0.0, min_box_area=0.0, input_size=400)
        elif partner == "centernet":
            from instmatt_app.nets.centernet import CenterNetPersons

            second = CenterNetPersons(partner_onnx, device, score_threshold=0.0, min_box_area=0.0)
        else:
            raise ValueError(f"unknown partner detector {partner!r} (ssdlite, centernet)")
        return cls(MoveNetMultiPose(movenet_onnx, device, score_threshold=0.0, min_box_area=0.0), second, **options)

    def _fused(self, image: np.ndarray, min_box_area: float) -> list[PersonBox]:
        fused = fuse_person_boxes(self.movenet.detect(image), self.partner.detect(image),
                                  (image.shape[1], image.shape[0]), self.movenet_weight, self.iou, min_box_area)
        return [d for d in fused if d.score >= self.score_threshold]

    def _tiled(self, image: np.ndarray, grid: int) -> list[PersonBox]:
        h, w = image.shape[:2]
        out = []
        for tile in grid_tiles(w, h, grid):
            tx0, ty0, tx1, ty1 = tile
            found = self._fused(image[ty0:ty1, tx0:tx1], self.min_box_area * w * h / ((tx1 - tx0) * (ty1 - ty0)))
            out += boxes_from_tile(found, tile, (w, h))
        return out

    def detect(self, image_rgb_uint8: np.ndarray) -> list[PersonBox]:
        """People in a (H, W, 3) uint8 RGB photo, best fused score first (see :func:`fuse_person_boxes`)."""
        image = check_rgb_image(image_rgb_uint8)
        dets = self._fused(image, self.min_box_area)
        if self.grid > 1:
            dets = merge_person_boxes([dets, self._tiled(image, self.grid)], self.iou)
            if self.crowd_grid > self.grid and len(dets) >= self.crowd_people:
                dets = merge_person_boxes([dets, self._tiled(image, self.crowd_grid)], self.iou)
        return sorted(dets, key=lambda d: -d.score)


def boxes_from_tile(dets: Sequence[PersonBox], tile: tuple[int, int, int, int], size: tuple[int, int]
                    ) -> list[PersonBox]:
    """Detections made on a tile (x0, y0, x1, y1) of a photo of ``size`` (w, h), moved to photo pixels (box and
    keypoints). A box cut by an inner tile border (within 2 % of the tile's long side of it) is dropped: a partial
    person, whom the whole photo or a neighbouring tile sees whole."""
    tx0, ty0, tx1, ty1 = tile
    w, h = size
    margin = 0.02 * max(tx1 - tx0, ty1 - ty0)
    out = []
    for d in dets:
        bx0, by0, bx1, by1 = d.box
        if (tx0 > 0 and bx0 <= margin) or (tx1 < w and bx1 >= tx1 - tx0 - margin) or \
                (ty0 > 0 and by0 <= margin) or (ty1 < h and by1 >= ty1 - ty0 - margin):
            continue
        kp = None
        if d.keypoints is not None:
            kp = d.keypoints.copy()
            kp[:, 0] += tx0
            kp[:, 1] += ty0
        out.append(d.replace(box=(bx0 + tx0, by0 + ty0, bx1 + tx0, by1 + ty0), keypoints=kp))
    return out


def grid_tiles(w: int, h: int, n: int, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """n x n tiles (x0, y0, x1, y1) covering a w x h image, neighbours overlapping by ``overlap`` of a tile."""
    tw, th = w / (n - (n - 1) * overlap), h / (n - (n - 1) * overlap)
    out = []
    for r in range(n):
        for c in range(n):
            x0, y0 = round(c * tw * (1 - overlap)), round(r * th * (1 - overlap))
            out.append((x0, y0, min(w, round(x0 + tw)), min(h, round(y0 + th))))
    return out
