"""CenterNet person boxes on real photos: the known people are found, only class person, NMS applied."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from instmatt_app.nets.centernet import CenterNetPersons
from instmatt_app.nets.person_boxes import PersonBox, box_iou, merge_person_boxes
from tests.nets.person_box_photos import BUS_CUT, BUS_PEOPLE, ZIDANE_PEOPLE, best_iou, load_photo

MODEL = Path(__file__).resolve().parents[2] / "models" / "centernet.onnx"
# CenterNet is not shipped (its upstream states no licence, docs/detectors.md); these tests run where a
# developer converted it into models/ with tools/convert_tfjs_models.py.
pytestmark = pytest.mark.skipif(not MODEL.is_file(), reason="models/centernet.onnx not converted here (not shipped)")


@pytest.fixture(scope="module")
def net() -> CenterNetPersons:
    return CenterNetPersons(MODEL)


def test_bus_people_found(net, data_dir):
    image = load_photo(data_dir, "bus.jpg")
    dets = net.detect(image)
    assert (best_iou(dets, BUS_PEOPLE) >= 0.5).all(), [(d.box, d.score) for d in dets]
    assert len(dets) <= 5
    for d in dets:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
        assert d.keypoints is None and d.source == "centernet"
    # NMS: no two kept boxes overlap much
    ious = box_iou(np.array([d.box for d in dets]), np.array([d.box for d in dets]))
    assert (ious[~np.eye(len(dets), dtype=bool)] <= 0.5).all()


def test_bus_cut_person_found_at_low_threshold(data_dir):
    dets = CenterNetPersons(MODEL, score_threshold=0.1).detect(load_photo(data_dir, "bus.jpg"))
    assert best_iou(dets, [BUS_CUT])[0] >= 0.4, [(d.box, d.score) for d in dets]


def test_zidane_people_found(data_dir):
    dets = CenterNetPersons(MODEL, score_threshold=0.2).detect(load_photo(data_dir, "zidane.jpg"))
    assert (best_iou(dets, ZIDANE_PEOPLE) >= 0.5).all(), [(d.box, d.score) for d in dets]


def test_merge_keeps_one_box_per_person_and_names_sources():
    kp = np.zeros((17, 3), np.float32)
    a = [PersonBox((0, 0, 100, 200), 0.6, kp, "movenet")]
    b = [PersonBox((5, 5, 102, 198), 0.8, None, "centernet"), PersonBox((300, 0, 400, 200), 0.4, None, "centernet")]
    merged = merge_person_boxes([a, b], iou=0.5)
    assert len(merged) == 2
    assert merged[0].score == 0.8 and merged[0].source == "centernet+movenet"
    assert merged[0].keypoints is kp  # keypoints come from the suppressed MoveNet box
    assert merged[1].box == (300, 0, 400, 200)


def test_bad_input_and_wrong_model(net, tmp_path):
    with pytest.raises(ValueError, match="RGB"):
        net.detect(np.zeros((64, 64), np.uint8))
    from instmatt_app.model_manager import ModelError

    with pytest.raises(ModelError, match="not the CenterNet model"):
        CenterNetPersons(Path(__file__).resolve().parents[2] / "models" / "movenet-multipose.onnx")
