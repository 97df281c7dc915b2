"""benchmarks/bench_oracles.py: the oracle guidance it builds from ground truth."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from instmatt_app.nets import embedded

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_oracles", REPO / "benchmarks" / "bench_oracles.py")
oracles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(oracles)


def _person(h=120, w=90) -> np.ndarray:
    """A person-like mask: a head disc over a body rectangle with an arm."""
    m = np.zeros((h, w), bool)
    yy, xx = np.mgrid[:h, :w]
    m |= (yy - 25) ** 2 + (xx - 45) ** 2 <= 12 ** 2
    m[38:110, 30:60] = True
    m[45:52, 60:85] = True
    return m


def test_instance_box_is_exclusive_and_none_when_empty():
    m = np.zeros((10, 12), bool)
    assert oracles.instance_box(m) is None
    m[2:5, 3:9] = True
    assert oracles.instance_box(m) == (3, 2, 9, 5)


def test_coarse_mask_keeps_the_box_and_loses_detail():
    m = _person()
    exact = oracles.coarse_mask(m, 0)
    assert exact.dtype == np.float32 and np.array_equal(exact > 0.5, m)
    c28 = oracles.coarse_mask(m, 28) > 0.5
    c4 = oracles.coarse_mask(m, 4) > 0.5
    box = oracles.instance_box(m)
    assert oracles.instance_box(c28) is not None and oracles.instance_box(c28)[0] >= box[0]
    assert not c28[:box[1]].any() and not c28[box[3]:].any()  # nothing outside the person's box
    iou = lambda a, b: (a & b).sum() / (a | b).sum()  # noqa: E731
    assert iou(c28, m) > 0.85 > iou(c4, m)  # 28 x 28 is close to the mask, 4 x 4 a blob
    assert set(np.unique(oracles.coarse_mask(m, 28))) <= {0.0, 1.0}


def test_given_person_boxes_scale_to_the_detectors_image_and_restore():
    before = embedded.person_boxes
    with oracles.given_person_boxes([(100, 40, 300, 400)], width=1000):
        boxes = embedded.person_boxes("cpu", "auto").detect(np.zeros((250, 500, 3), np.uint8))
        assert [b.box for b in boxes] == [(50.0, 20.0, 150.0, 200.0)] and boxes[0].score == 1.0
    assert embedded.person_boxes is before
