"""BoxedImage: an image stored only inside a box (a person's colour layer)."""
from __future__ import annotations

import numpy as np
import pytest

from instmatt_app.core.boxed_image import BoxedImage


@pytest.fixture
def full():
    rng = np.random.default_rng(3)
    img = np.zeros((40, 60, 3), np.float32)
    img[10:30, 20:50] = rng.random((20, 30, 3), dtype=np.float32)
    return img


def test_crop_reads_like_the_full_image(full):
    b = BoxedImage.crop(full, (10, 30, 20, 50))
    assert b.shape == (40, 60, 3) and b.dtype == np.float32 and b.nbytes == 20 * 30 * 3 * 4
    assert np.array_equal(b.full(), full) and np.array_equal(np.asarray(b), full)
    for ys, xs in [(slice(12, 25), slice(22, 48)), (slice(0, 40), slice(0, 60)), (slice(5, 15), slice(45, 58)),
                   (slice(0, 5), slice(0, 5)), (slice(None), slice(30, None)), (slice(3, 38, 4), slice(1, 59, 3))]:
        assert np.array_equal(b[ys, xs], full[ys, xs]), (ys, xs)
    assert np.shares_memory(b[12:25, 22:48], b.pixels)          # inside the box: a view, no copy
    with pytest.raises(TypeError, match="two slices"):
        b[5]
    with pytest.raises(ValueError, match="not inside"):
        BoxedImage((40, 60), (10, 50, 0, 5), np.zeros((40, 5, 3), np.float32))
    with pytest.raises(ValueError, match="do not fill"):
        BoxedImage((40, 60), (10, 30, 0, 5), np.zeros((20, 6, 3), np.float32))


def test_write_grows_the_box(full):
    b = BoxedImage.crop(full, (10, 30, 20, 50))
    patch = np.full((6, 8, 3), 0.5, np.float32)
    b.write(27, 33, 46, 54, patch)                                # sticks out below and right
    assert b.box == (10, 33, 20, 54)
    expect = full.copy()
    expect[27:33, 46:54] = 0.5
    assert np.array_equal(b.full(), expect)
    b.write(12, 14, 22, 24, np.ones((2, 2, 3), np.float32))       # inside: the box stays
    assert b.box == (10, 33, 20, 54) and (b[12:14, 22:24] == 1).all()
    empty = BoxedImage.crop(full, None)
    assert empty.box == (0, 0, 0, 0) and not empty.full().any() and empty[5:9, 5:9].shape == (4, 4, 3)
    empty.write(5, 9, 5, 9, patch[:4, :4])
    assert empty.box == (5, 9, 5, 9) and np.array_equal(empty[5:9, 5:9], patch[:4, :4])
    with pytest.raises(ValueError, match="not inside"):
        b.write(35, 45, 0, 4, np.zeros((10, 4, 3), np.float32))


def test_map_and_copy_keep_the_box(full):
    b = BoxedImage.crop(full, (10, 30, 20, 50))
    half = b.map(lambda p: p * 0.5)
    assert half.box == b.box and np.allclose(half.full(), full * 0.5)
    c = b.copy()
    c.pixels[:] = 0
    assert np.array_equal(b.full(), full)
