"""benchmarks/bench_oracles.py: the oracle guidance it builds from ground truth."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from instmatt_app.nets import embedded
from instmatt_app.pipeline import mask_box

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


def test_coarse_mask_keeps_the_box_and_loses_detail():
    m = _person()
    exact = oracles.coarse_mask(m, 0)
    assert exact.dtype == np.float32 and np.array_equal(exact > 0.5, m)
    c28 = oracles.coarse_mask(m, 28) > 0.5
    c4 = oracles.coarse_mask(m, 4) > 0.5
    x0, y0, x1, y1 = (int(v) for v in mask_box(m.astype(np.float32), None))
    assert c28.any() and not c28[:y0].any() and not c28[y1:].any()  # nothing outside the person's box
    assert not c28[:, :x0].any() and not c28[:, x1:].any()
    iou = lambda a, b: (a & b).sum() / (a | b).sum()  # noqa: E731
    assert iou(c28, m) > 0.85 > iou(c4, m)  # 28 x 28 is close to the mask, 4 x 4 a blob
    assert set(np.unique(oracles.coarse_mask(m, 28))) <= {0.0, 1.0}


def test_given_person_boxes_scale_to_the_detectors_image_and_restore():
    before = embedded.person_boxes
    with oracles.given_person_boxes([(100, 40, 300, 400)], width=1000):
        boxes = embedded.person_boxes("cpu", "auto").detect(np.zeros((250, 500, 3), np.uint8))
        assert [b.box for b in boxes] == [(50.0, 20.0, 150.0, 200.0)] and boxes[0].score == 1.0
    assert embedded.person_boxes is before
