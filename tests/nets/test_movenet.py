"""MoveNet-MultiPose runner on real photos: the known people are found, boxes and keypoints in photo pixels."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from instmatt_app.nets.movenet import MoveNetMultiPose
from instmatt_app.nets.person_boxes import box_iou
from tests.nets.person_box_photos import BUS_CUT, BUS_PEOPLE, ZIDANE_PEOPLE, best_iou, load_photo

MODEL = Path(__file__).resolve().parents[2] / "models" / "movenet-multipose.onnx"



@pytest.fixture(scope="module")
def net() -> MoveNetMultiPose:
    return MoveNetMultiPose(MODEL)


def _found(dets, expected, iou=0.5) -> list[bool]:
    return list(best_iou(dets, expected) >= iou)


def test_bus_people_found(net, data_dir):
    image = load_photo(data_dir, "bus.jpg")
    dets = net.detect(image)
    assert all(_found(dets, BUS_PEOPLE)), [(d.box, d.score) for d in dets]
    assert len(dets) <= 5  # no pile of false boxes at the default threshold
    for d in dets:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
        assert 0 <= d.score <= 1
        assert d.keypoints.shape == (17, 3) and d.keypoints.dtype == np.float32
    # keypoints of a found person lie on that person: most confident ones inside its (slightly grown) box
    best = max(dets, key=lambda d: d.score)
    kp = best.keypoints[best.keypoints[:, 2] > 0.3]
    x0, y0, x1, y1 = best.box
    inside = (kp[:, 0] > x0 - 30) & (kp[:, 0] < x1 + 30) & (kp[:, 1] > y0 - 30) & (kp[:, 1] < y1 + 30)
    assert len(kp) >= 8 and inside.mean() > 0.9


def test_bus_cut_person_found_with_tta(data_dir):
    net = MoveNetMultiPose(MODEL, score_threshold=0.03, flip=True, tiles=True)  # the cut person scores ~0.05
    dets = net.detect(load_photo(data_dir, "bus.jpg"))
    assert all(_found(dets, BUS_PEOPLE + [BUS_CUT], iou=0.4)), [(d.box, d.score) for d in dets]


def test_zidane_people_found(net, data_dir):
    dets = net.detect(load_photo(data_dir, "zidane.jpg"))
    assert all(_found(dets, ZIDANE_PEOPLE)), [(d.box, d.score) for d in dets]


def test_flip_maps_back_to_the_photo(net, data_dir):
    """The mirrored photo's detections, mapped back, agree with the photo's own."""
    image = load_photo(data_dir, "zidane.jpg")
    direct = net.detect(image)
    mirrored = net.detect(np.ascontiguousarray(image[:, ::-1]))
    from instmatt_app.nets.person_boxes import flip_boxes

    back = flip_boxes(mirrored, image.shape[1])
    ious = box_iou(np.array([d.box for d in direct]), np.array([d.box for d in back]))
    assert (ious.max(axis=1) > 0.7).all()
    # left/right keypoints are swapped back: the left shoulder (5) stays left of the right shoulder (6)
    j = int(np.argmax(ious[0]))
    assert np.sign(direct[0].keypoints[5, 0] - direct[0].keypoints[6, 0]) == \
        np.sign(back[j].keypoints[5, 0] - back[j].keypoints[6, 0])


def test_empty_scene_and_bad_input(net):
    flat = np.full((300, 400, 3), 127, np.uint8)
    assert all(d.score < 0.2 for d in net.detect(flat))
    with pytest.raises(ValueError, match="uint8"):
        net.detect(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(ValueError, match="multiple of 32"):
        MoveNetMultiPose(MODEL, input_size=250)


def test_missing_model_file_gives_clear_error(tmp_path):
    from instmatt_app.model_manager import ModelError

    with pytest.raises(ModelError, match="missing"):
        MoveNetMultiPose(tmp_path / "nope.onnx")
