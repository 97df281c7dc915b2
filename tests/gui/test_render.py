"""The numpy view images (no Qt)."""
from __future__ import annotations

import numpy as np

from instmatt_app.gui import render


def _scene():
    img = np.full((40, 60, 3), 128, np.uint8)
    a = np.zeros((2, 40, 60), np.float32)
    a[0, 5:30, 5:25] = 1.0
    a[1, 10:35, 30:55] = 0.6
    return img, a


def test_trimatte_channels_map_to_rgb():
    tri = np.zeros((3, 4, 5), np.float32)
    tri[0, 0, 0] = 1.0
    tri[1, 1, 1] = 0.5
    tri[2, 2, 2] = 1.0
    rgb = render.trimatte_rgb(tri)
    assert rgb.shape == (4, 5, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0, 0]) == (255, 0, 0)
    assert tuple(rgb[1, 1]) == (0, 128, 0)
    assert tuple(rgb[2, 2]) == (0, 0, 255)


def test_people_overlay_tints_each_person_in_its_colour():
    img, a = _scene()
    out = render.people_overlay(img, a, ["#ff0000", "#0000ff"])
    inside0, inside1, outside = out[15, 15].astype(int), out[20, 40].astype(int), out[38, 2].astype(int)
    assert inside0[0] > inside0[2] + 60  # red person
    assert inside1[2] > inside1[0] + 40  # blue person
    assert abs(outside[0] - outside[2]) < 3  # background stays grey


def test_difference_heatmap_is_dark_where_equal_and_bright_where_different():
    img, a = _scene()
    same, mean0 = render.difference_heatmap(img, a, a.copy())
    assert mean0 == 0.0
    b = a.copy()
    b[0, 5:30, 5:25] = 0.5
    diff, mean1 = render.difference_heatmap(img, a, b)
    assert mean1 > 0
    assert diff[15, 15].astype(int).sum() > same[15, 15].astype(int).sum() + 200
    np.testing.assert_array_equal(diff[38, 58], same[38, 58])
    # the window keeps the parallel reference as 8-bit: the same picture, from lists of planes
    b8 = [np.round(p * 255).astype(np.uint8) for p in b]
    diff8, mean8 = render.difference_heatmap(img, list(a), b8)
    assert abs(mean8 - mean1) < 1 / 255 and np.abs(diff8.astype(int) - diff.astype(int)).max() <= 2


def test_person_rgba_and_thumbnail():
    img, a = _scene()
    rgba = render.person_rgba(img.astype(np.float32) / 255, a[0])
    assert rgba.shape == (40, 60, 4) and rgba[15, 15, 3] == 255 and rgba[38, 58, 3] == 0
    th = render.thumbnail_rgba(img, a[0], None, 32)
    assert th.shape == (32, 32, 4)
    assert th[..., 3].max() == 255  # the person fills the thumbnail (cropped to its box)


def test_distinct_colours_are_distinct():
    cols = render.distinct_colours(8)
    assert len(set(cols)) == 8
    rgb = np.array([render.hex_to_rgb(c) for c in cols], float)
    d = np.linalg.norm(rgb[:, None] - rgb[None], axis=2) + np.eye(8) * 1e9
    assert d.min() > 40
