"""Person-box helpers: letterbox mapping, IoU, NMS merge, flip, and the MoveNet+CenterNet score fusion."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from instmatt_app.nets.person_boxes import (FusedPersonDetector, PersonBox, box_iou, flip_boxes,
                                            fuse_person_boxes, letterbox, nms)

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_letterbox_maps_back_to_the_photo():
    img = np.zeros((100, 300, 3), np.uint8)
    img[40:60, 200:250] = 255
    canvas, lb = letterbox(img, 256, 256)
    assert canvas.shape == (256, 256, 3)
    ys, xs = np.nonzero(canvas[..., 0] > 127)
    (x0, y0), (x1, y1) = lb.to_photo(np.array([[xs.min(), ys.min()], [xs.max() + 1, ys.max() + 1]]))
    assert abs(x0 - 200) < 2 and abs(x1 - 250) < 2 and abs(y0 - 40) < 2 and abs(y1 - 60) < 2


def test_box_iou_and_nms():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], float)
    iou = box_iou(boxes, boxes)
    assert iou[0, 0] == pytest.approx(1.0) and iou[0, 1] == pytest.approx(81 / 100) and iou[0, 2] == 0
    keep = nms(boxes, np.array([0.5, 0.9, 0.3]), 0.5)
    assert list(keep) == [1, 2]


def test_flip_boxes_round_trip():
    kp = np.random.default_rng(0).uniform(0, 100, (17, 3)).astype(np.float32)
    d = PersonBox((10.0, 5.0, 40.0, 90.0), 0.7, kp, "x")
    back = flip_boxes(flip_boxes([d], 200), 200)[0]
    assert back.box == d.box
    np.testing.assert_allclose(back.keypoints, kp, atol=1e-4)


def test_fusion_rewards_agreement_and_drops_small_boxes():
    kp = np.ones((17, 3), np.float32)
    mn = [PersonBox((0, 0, 100, 200), 0.1, kp, "movenet"), PersonBox((300, 0, 400, 200), 0.1, kp, "movenet")]
    cn = [PersonBox((2, 3, 98, 205), 0.3, None, "centernet"), PersonBox((500, 0, 505, 5), 0.9, None, "centernet")]
    fused = fuse_person_boxes(mn, cn, (640, 480), movenet_weight=3.0, min_box_area=0.01)
    assert len(fused) == 2  # the 5x5 box is below 1 % of the photo
    agreed, alone = fused
    assert agreed.source == "movenet+centernet" and agreed.keypoints is kp
    assert agreed.score == pytest.approx(1 - (1 - 0.3) * (1 - 0.3))
    assert alone.source == "movenet" and alone.score == pytest.approx(0.3)


@pytest.mark.skipif(not (MODELS / "centernet.onnx").is_file(), reason="CenterNet is not shipped (no upstream licence)")
@pytest.mark.parametrize("name,expected", [
    ("bus.jpg", [(50, 400, 245, 905), (222, 405, 345, 860), (668, 390, 810, 880)]),
    ("zidane.jpg", [(750, 40, 1140, 720), (120, 200, 1150, 720)]),
])
def test_fused_detector_finds_the_known_people(data_dir, name, expected):
    det = FusedPersonDetector.from_files(MODELS / "movenet-multipose.onnx", MODELS / "centernet.onnx")
    image = np.array(Image.open(data_dir / "qualitative" / "images" / name).convert("RGB"))
    dets = det.detect(image)
    ious = box_iou(np.array(expected, float), np.array([d.box for d in dets], float))
    assert (ious.max(axis=1) >= 0.5).all(), [(d.box, d.score, d.source) for d in dets]
    assert len(dets) <= len(expected) + 2
    assert all(0 <= d.score <= 1 for d in dets)


def test_person_box_unpacks_as_box_score_keypoints():
    """The default detector iterates ``for box, score, kps in net.detect(image)``."""
    kp = np.zeros((17, 3), np.float32)
    box, score, kps = PersonBox((1.0, 2.0, 3.0, 4.0), 0.5, kp, "movenet-multipose")
    assert box == (1.0, 2.0, 3.0, 4.0) and score == 0.5 and kps is kp
