"""CenterNet (MobileNetV3-large 0.75, COCO, 80 classes) person boxes (ONNX, converted from TF.js by
tools/convert_tfjs_models.py).

Model (``models/centernet.onnx``): input ``tower_0/images:0`` float32 (1, 512, 512, 3), RGB 0-255; output
``tower_0/detections`` float32 (1, 100, 6): the 100 best heat-map peaks as (x1, y1, x2, y2) in input pixels,
score in [0, 1], COCO class index (0 = person). The model does its own peak picking (3x3 max pool), not NMS.

The runner letterboxes the photo (aspect kept, zero padding; ``stretch=True`` resizes without keeping the
aspect, like the TF.js library does), keeps class 0, applies NMS, and can add a horizontal-flip pass.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from instmatt_app.nets.person_boxes import PersonBox, boxes_in_photo, detect_with_flip, letterbox

__all__ = ["CenterNetPersons"]

_SIZE = 512
_PERSON = 0


class CenterNetPersons:
    """``CenterNetPersons(onnx_path).detect(image_rgb_uint8) -> list[PersonBox]`` (keypoints None), best first.

    score_threshold: smallest score kept, in [0, 1] (0.4 with min_box_area 0.01: best recall at precision
    >= 0.9 on the COCO development photos, docs/detectors.md). nms_iou: NMS IoU. flip: also run on the
    mirrored photo. stretch: resize to 512x512 ignoring the aspect ratio instead of letterboxing (measured
    worse). min_box_area: boxes smaller than this fraction of the photo are dropped.
    """

    name = "centernet"

    def __init__(self, onnx_path: str | Path, device: str = "cpu", score_threshold: float = 0.4,
                 nms_iou: float = 0.5, flip: bool = False, stretch: bool = False, min_box_area: float = 0.01):
        from instmatt_app.nets.onnx_session import onnx_session

        self.session = onnx_session(onnx_path, device)
        self.input_name = self.session.get_inputs()[0].name
        outs = [o.name for o in self.session.get_outputs()]
        self.output_name = next((o for o in outs if o.endswith("detections")), None)
        if self.output_name is None:
            from instmatt_app.model_manager import ModelError

            raise ModelError(f"{onnx_path}: not the CenterNet model (outputs {outs}, no 'detections')")
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.flip = bool(flip)
        self.stretch = bool(stretch)
        self.min_box_area = float(min_box_area)

    def _run(self, image: np.ndarray) -> list[PersonBox]:
        """One pass on (h, w, 3) uint8 RGB: person boxes in that image's pixels, after NMS."""
        h, w = image.shape[:2]
        if self.stretch:
            inp = cv2.resize(image, (_SIZE, _SIZE), interpolation=cv2.INTER_AREA if max(h, w) > _SIZE
                             else cv2.INTER_LINEAR)
            sx, sy, px, py = _SIZE / w, _SIZE / h, 0.0, 0.0
        else:
            inp, lb = letterbox(image, _SIZE, _SIZE)
            sx = sy = lb.scale
            px, py = lb.pad_x, lb.pad_y
        det = self.session.run([self.output_name], {self.input_name: inp[None].astype(np.float32)})[0][0]
        det = det[(det[:, 5] == _PERSON) & (det[:, 4] >= self.score_threshold)]
        boxes = np.empty((len(det), 4), np.float64)
        boxes[:, [0, 2]] = (det[:, [0, 2]] - px) / sx
        boxes[:, [1, 3]] = (det[:, [1, 3]] - py) / sy
        return boxes_in_photo(boxes, det[:, 4], (w, h), self.min_box_area, self.nms_iou, self.name)

    def detect(self, image_rgb_uint8: np.ndarray) -> list[PersonBox]:
        """People in a (H, W, 3) uint8 RGB photo: boxes in photo pixels, best score first."""
        return detect_with_flip(self._run, image_rgb_uint8, self.flip, self.nms_iou, self.name)
