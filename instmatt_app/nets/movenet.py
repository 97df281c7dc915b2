"""MoveNet-MultiPose Lightning person detector (ONNX, converted from TF.js by tools/convert_tfjs_models.py).

Model (``models/movenet-multipose.onnx``): input ``input`` int32 (1, H, W, 3), RGB 0-255, H and W multiples
of 32 (the TF.js model was published for 256x256; other sizes run too); output ``output_0`` float32
(1, 6, 56): per candidate person 17 x (y, x, score) COCO keypoints, then (ymin, xmin, ymax, xmax, score),
all coordinates normalised to the input.

The runner letterboxes the photo (aspect kept, zero padding), maps boxes and keypoints back to photo
pixels, and optionally adds test-time augmentation (horizontal flip; square tiles along the long side of
the photo at the network's resolution) merged by NMS. docs/detectors.md has the measurements behind
the defaults.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from instmatt_app.nets.person_boxes import (PersonBox, boxes_from_tile, check_rgb_image, flip_boxes, letterbox,
                                            merge_person_boxes)

__all__ = ["MoveNetMultiPose"]


class MoveNetMultiPose:
    """``MoveNetMultiPose(onnx_path).detect(image_rgb_uint8) -> list[PersonBox]``, best score first.

    score_threshold: smallest person score kept, in [0, 1] (0.15: best recall at precision >= 0.9 on the
    COCO development photos, docs/detectors.md). min_box_area: boxes smaller than this fraction of the
    photo are dropped.
    input_size: side of the square (letterboxed) network input in pixels (multiple of 32; 256 is the
    published size and measured best on COCO).
    flip: also run on the mirrored photo. tiles: also run on square tiles along the long side of the
    photo (side = the short side) when its aspect ratio is at least ``tile_min_aspect``.
    nms_iou: IoU above which two boxes of different passes are one person.
    """

    name = "movenet-multipose"

    def __init__(self, onnx_path: str | Path, device: str = "cpu", score_threshold: float = 0.15,
                 input_size: int = 256, flip: bool = False, tiles: bool = False, tile_min_aspect: float = 1.3,
                 nms_iou: float = 0.5, min_box_area: float = 0.01):
        from instmatt_app.nets.onnx_session import onnx_session

        if input_size % 32 or input_size < 64:
            raise ValueError(f"input_size must be a multiple of 32 and >= 64, got {input_size}")
        self.session = onnx_session(onnx_path, device)
        self.input_name = self.session.get_inputs()[0].name
        self.score_threshold = float(score_threshold)
        self.input_size = int(input_size)
        self.flip = bool(flip)
        self.tiles = bool(tiles)
        self.tile_min_aspect = float(tile_min_aspect)
        self.nms_iou = float(nms_iou)
        self.min_box_area = float(min_box_area)

    # -- one network pass ------------------------------------------------------------------------
    def _run(self, image: np.ndarray) -> list[PersonBox]:
        """One letterboxed pass on (h, w, 3) uint8 RGB; boxes in that image's pixels, all 6 candidates."""
        size = self.input_size
        canvas, lb = letterbox(image, size, size)
        out = self.session.run(None, {self.input_name: canvas[None].astype(np.int32)})[0][0]  # (6, 56)
        h, w = image.shape[:2]
        dets = []
        for row in out:
            kp_yx = row[:51].reshape(17, 3)
            kp = np.empty((17, 3), np.float32)
            kp[:, :2] = lb.to_photo(kp_yx[:, [1, 0]] * size)
            kp[:, 2] = kp_yx[:, 2]
            ymin, xmin, ymax, xmax, score = (float(v) for v in row[51:56])
            (x0, y0), (x1, y1) = lb.to_photo(np.array([[xmin, ymin], [xmax, ymax]]) * size)
            x0, x1 = float(np.clip(x0, 0, w)), float(np.clip(x1, 0, w))
            y0, y1 = float(np.clip(y0, 0, h)), float(np.clip(y1, 0, h))
            if x1 - x0 < 1 or y1 - y0 < 1:
                continue
            dets.append(PersonBox((x0, y0, x1, y1), score, kp, self.name))
        return dets

    def _tiles(self, image: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Square tiles (x0, y0, x1, y1) along the long side, side = short side, overlapping by >= 1/4."""
        h, w = image.shape[:2]
        short, long_ = min(h, w), max(h, w)
        if long_ / short < self.tile_min_aspect:
            return []
        n = int(np.ceil((long_ - short) / (0.75 * short))) + 1
        starts = np.linspace(0, long_ - short, n).round().astype(int)
        return [(s, 0, s + short, h) if w >= h else (0, s, w, s + short) for s in starts]

    # -- public ----------------------------------------------------------------------------------
    def detect(self, image_rgb_uint8: np.ndarray) -> list[PersonBox]:
        """People in a (H, W, 3) uint8 RGB photo: boxes and keypoints in photo pixels, best score first."""
        image = check_rgb_image(image_rgb_uint8)
        h, w = image.shape[:2]
        passes = [self._run(image)]
        if self.flip:
            passes.append(flip_boxes(self._run(np.ascontiguousarray(image[:, ::-1])), w))
        if self.tiles:
            for tile in self._tiles(image):
                tx0, ty0, tx1, ty1 = tile
                passes.append(boxes_from_tile(self._run(image[ty0:ty1, tx0:tx1]), tile, (w, h)))
        min_area = self.min_box_area * h * w
        passes = [[d for d in p if d.score >= self.score_threshold and
                   (d.box[2] - d.box[0]) * (d.box[3] - d.box[1]) >= min_area] for p in passes]
        merged = passes[0] if len(passes) == 1 else merge_person_boxes(passes, self.nms_iou)
        return [d.replace(source=self.name) for d in sorted(merged, key=lambda d: -d.score)]

