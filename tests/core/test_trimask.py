import numpy as np
import pytest

from instmatt_app.core.trimask import trimask, trimasks


def _masks():
    m = np.zeros((3, 4, 6), np.float32)
    m[0, :, 0:3] = 1
    m[1, :, 2:5] = 1  # overlaps mask 0 in column 2
    m[2, 0, 5] = 0.5  # a soft pixel
    return m


def test_union_form_eq5_eq6():
    m = _masks()
    t = trimasks(m, "union")
    assert t.shape == (3, 3, 4, 6) and t.dtype == np.float32
    np.testing.assert_array_equal(t[:, 0], m)
    # M_r of instance 0 = union of masks 1 and 2; M_b = 1 - (M_t ∪ M_r)
    np.testing.assert_array_equal(t[0, 1], np.maximum(m[1], m[2]))
    np.testing.assert_array_equal(t[0, 2], 1 - np.maximum(m[0], np.maximum(m[1], m[2])))
    assert t.min() >= 0 and t.max() <= 1
    # column 2 belongs to two people: for each, the other one is there too, background is 0
    assert (t[0, 1, :, 2] == 1).all() and (t[1, 1, :, 2] == 1).all() and (t[:, 2, :, 2] == 0).all()


def test_sum_form_matches_official_code_unclamped():
    m = _masks()
    m[2, :, 2] = 1  # three people on column 2
    t = trimasks(m, "sum")
    np.testing.assert_array_equal(t[0, 1, :, 2], 2.0)  # M_r = 2 (sum, not union)
    np.testing.assert_array_equal(t[0, 2, :, 2], -2.0)  # M_b = 1 - 3, not clamped
    np.testing.assert_allclose(t[:, 0] + t[:, 1] + t[:, 2], 1.0)


@pytest.mark.parametrize("mode", ["union", "sum"])
def test_single_instance_and_single_index(mode):
    m = _masks()
    full = trimasks(m, mode)
    for i in range(3):
        np.testing.assert_allclose(trimask(m, i, mode), full[i])
    one = trimasks(m[:1], mode)
    np.testing.assert_array_equal(one[0, 1], 0)
    np.testing.assert_array_equal(one[0, 2], 1 - m[0])


def test_uint8_masks_and_empty():
    m8 = (_masks() * 255).astype(np.uint8)
    np.testing.assert_allclose(trimasks(m8)[:, 0], m8 / 255.0, atol=1e-6)
    assert trimasks(np.zeros((0, 5, 5), np.float32)).shape == (0, 3, 5, 5)
    with pytest.raises(ValueError):
        trimasks(np.zeros((5, 5), np.float32))
    with pytest.raises(ValueError):
        trimasks(_masks(), "bogus")


@pytest.mark.parametrize("n", [1, 2, 3, 6])
def test_union_equals_brute_force_on_soft_masks(n):
    rng = np.random.default_rng(n)
    m = ((rng.random((n, 20, 30)) > 0.5) * rng.random((n, 20, 30))).astype(np.float32)
    m[:, 0, 0] = 0.7  # ties
    t = trimasks(m, "union")
    for i in range(n):
        others = np.max(np.delete(m, i, 0), 0) if n > 1 else np.zeros((20, 30), np.float32)
        np.testing.assert_array_equal(t[i, 1], others)
        np.testing.assert_array_equal(t[i, 2], 1 - np.maximum(m[i], others))
