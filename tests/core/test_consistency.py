"""The multi-instance consistency step on alphas (in place, strip by strip) and on tri-mattes."""
import numpy as np

from instmatt_app.core import consistency
from instmatt_app.core.consistency import consistent_alphas, enforce_consistency


def _alphas(seed: int = 0, k: int = 3, h: int = 40, w: int = 30) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((k, h, w)) * 1.3 - 0.1).astype(np.float32)   # outside [0, 1], Σ often > 1


def test_alphas_clipped_and_scaled_down_where_they_sum_over_one():
    a = _alphas()
    raw = np.clip(a, 0, 1)
    out = consistent_alphas(a)
    assert out is a                                                  # in place
    assert out.min() >= 0 and out.max() <= 1 and (out.sum(0) <= 1 + 1e-6).all()
    over = raw.sum(0) > 1
    assert over.any()
    # proportional, nobody favoured: each α divided by the same Σ, so the sum is exactly 1 there
    np.testing.assert_allclose(out[:, over] * raw.sum(0)[over], raw[:, over], atol=1e-6)
    np.testing.assert_allclose(out[:, over].sum(0), 1.0, atol=1e-6)
    np.testing.assert_array_equal(out[:, ~over], raw[:, ~over])      # untouched where Σ ≤ 1


def test_strips_give_the_same_result_as_one_pass(monkeypatch):
    whole = consistent_alphas(_alphas(1))
    monkeypatch.setattr(consistency, "_STRIP_PIXELS", 7 * 30)        # 7-row strips, the last one short
    np.testing.assert_array_equal(consistent_alphas(_alphas(1)), whole)


def test_tri_matte_form_agrees_with_the_alpha_form():
    a = _alphas(2)
    tri = np.zeros((3, 3) + a.shape[1:], np.float32)
    tri[:, 0] = a
    enforce_consistency(tri)
    alphas = consistent_alphas(a.copy())
    np.testing.assert_array_equal(tri[:, 0], alphas)
    np.testing.assert_allclose(tri[:, 1], alphas.sum(0)[None] - alphas, atol=1e-6)
    np.testing.assert_allclose(tri.sum(1), 1.0, atol=1e-5)
    single = _alphas(3, k=1)
    np.testing.assert_array_equal(consistent_alphas(single.copy()), np.clip(single, 0, 1))
    assert consistent_alphas(np.zeros((0, 4, 4), np.float32)).shape == (0, 4, 4)
