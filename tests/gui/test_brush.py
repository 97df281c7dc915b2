"""Brush strokes → coverage → alpha edits (numpy)."""
from __future__ import annotations

import numpy as np

from instmatt_app.gui.brush import Stroke, paint_alpha


def test_hard_stroke_covers_its_disc_only():
    s = Stroke((100, 100), radius=10, hardness=1.0)
    s.add(50, 50)
    (x0, y0, x1, y1), cov = s.coverage()
    full = np.zeros((100, 100), np.float32)
    full[y0:y1, x0:x1] = cov
    assert full[50, 50] == 1.0 and full[50, 57] == 1.0
    assert full[50, 63] == 0.0 and full[20, 20] == 0.0
    area = (full > 0.5).sum()
    assert abs(area - np.pi * 100) < 0.1 * np.pi * 100


def test_soft_stroke_feathers_the_edge():
    hard, soft = Stroke((100, 100), 10, 1.0), Stroke((100, 100), 10, 0.0)
    for s in (hard, soft):
        s.add(50, 50)
    def full(s):
        (x0, y0, x1, y1), c = s.coverage()
        f = np.zeros((100, 100), np.float32)
        f[y0:y1, x0:x1] = c
        return f
    h, so = full(hard), full(soft)
    assert 0.05 < so[50, 61] < 0.6 and h[50, 61] == 0.0
    assert so[50, 50] > 0.8


def test_line_stroke_and_paint_alpha_brush_and_eraser():
    alpha = np.zeros((60, 80), np.float32)
    s = Stroke(alpha.shape, 3, 1.0)
    for x in range(10, 71, 5):
        s.add(x, 30)
    painted = paint_alpha(alpha, s, 1.0)
    assert painted[30, 10:70].min() == 1.0 and painted[10, 40] == 0.0
    assert alpha.max() == 0.0  # input untouched
    erased = paint_alpha(painted, s, 0.0)
    assert erased[28:33, 10:71].max() == 0.0  # fully covered pixels are cleared
    assert (erased <= painted).all() and erased.max() < 0.5  # the anti-aliased rim only partly


def test_stroke_outside_the_photo_does_nothing():
    s = Stroke((20, 20), 3, 1.0)
    s.add(-100, -100)
    assert paint_alpha(np.zeros((20, 20), np.float32), s, 1.0) is None
