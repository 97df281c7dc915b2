import numpy as np

from instmatt_app.core.compositing import (background_alpha, composite_layers, composite_sequence,
                                           composite_two_layer, visible_alphas)

rng = np.random.default_rng(0)


def test_eq1_two_layer_endpoints_and_mix():
    fg = rng.random((4, 5, 3), dtype=np.float32)
    bg = rng.random((4, 5, 3), dtype=np.float32)
    a = np.array([[0, 1, 0.25, 0.5, 0.75]] * 4, np.float32)
    out = composite_two_layer(a, fg, bg)
    np.testing.assert_allclose(out[:, 0], bg[:, 0])
    np.testing.assert_allclose(out[:, 1], fg[:, 1])
    np.testing.assert_allclose(out[:, 2], 0.25 * fg[:, 2] + 0.75 * bg[:, 2], rtol=1e-6)


def test_eq14_visible_alphas_sum_at_most_one_and_front_layer_unchanged():
    alphas = rng.random((4, 6, 7), dtype=np.float32)
    vis = visible_alphas(alphas)
    assert (vis.sum(0) <= 1 + 1e-6).all()
    np.testing.assert_allclose(vis[-1], alphas[-1])  # nothing in front of the last layer
    np.testing.assert_allclose(vis[0], alphas[0] * (1 - alphas[1]) * (1 - alphas[2]) * (1 - alphas[3]), rtol=1e-5)


def test_eq13_sequence_equals_eq2_with_visible_alphas():
    """Sequential pasting (Eq. 13) equals the layered form Σ α'_i F_i + (1 − Σ α'_i) B (Eq. 2 + 14)."""
    n, h, w = 3, 8, 9
    alphas = rng.random((n, h, w), dtype=np.float32)
    fgs = rng.random((n, h, w, 3), dtype=np.float32)
    bg = rng.random((h, w, 3), dtype=np.float32)
    seq = composite_sequence(bg, alphas, fgs)
    vis = visible_alphas(alphas)
    layered = composite_layers(vis, fgs, bg)
    np.testing.assert_allclose(seq, layered, atol=1e-5)
    np.testing.assert_allclose(background_alpha(vis), 1 - vis.sum(0), atol=1e-6)


def test_eq2_no_people_is_background():
    bg = rng.random((3, 4, 3), dtype=np.float32)
    out = composite_layers(np.zeros((0, 3, 4), np.float32), np.zeros((0, 3, 4, 3), np.float32), bg)
    np.testing.assert_allclose(out, bg)
