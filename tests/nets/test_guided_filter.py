"""Guided filter: the closed-form 3x3 solve and the buffer-saving upsampling against direct references."""
import cv2
import numpy as np

from instmatt_app.nets.guided_filter import (
    guided_filter,
    guided_filter_coefficients,
    guided_upsample,
)


def _box(x, r):
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def _reference_coefficients(I, p, r, eps):
    """He et al.'s colour guided filter, in float64 with a batched np.linalg.solve."""
    I, p = I.astype(np.float64), p.astype(np.float64)
    mean_I, mean_p = _box(I, r), _box(p, r)
    cov = _box(I * p[..., None], r) - mean_I * mean_p[..., None]
    sigma = np.empty(I.shape[:2] + (3, 3))
    for c1 in range(3):
        for c2 in range(3):
            sigma[..., c1, c2] = _box(I[..., c1] * I[..., c2], r) - mean_I[..., c1] * mean_I[..., c2]
    a = np.linalg.solve(sigma + eps * np.eye(3), cov[..., None])[..., 0]
    b = mean_p - (a * mean_I).sum(-1)
    return _box(a, r), _box(b, r)


def _photo(h=90, w=120, seed=0):
    """Correlated colour channels (the near-singular colour-line case) with an edge and noise."""
    rng = np.random.default_rng(seed)
    grey = np.where(np.arange(w)[None, :] < w // 2, 0.2, 0.7) + rng.normal(0, 0.02, (h, w))
    img = np.stack([grey, grey * 0.9 + 0.05, grey * 0.8 + 0.1], -1) + rng.normal(0, 0.005, (h, w, 3))
    alpha = np.clip((np.arange(w)[None, :] - w / 2) / 6 + 0.5, 0, 1) * np.ones((h, 1))
    return np.clip(img, 0, 1).astype(np.float32), alpha.astype(np.float32)


def test_closed_form_coefficients_match_the_float64_solve():
    img, alpha = _photo()
    for eps in (1e-4, 1e-3):
        a, b = guided_filter_coefficients(img, alpha, 4, eps)
        ra, rb = _reference_coefficients(img, alpha, 4, eps)
        assert a.shape == img.shape and b.shape == alpha.shape and a.dtype == b.dtype == np.float32
        q, rq = (a * img).sum(-1) + b, (ra * img).sum(-1) + rb
        assert np.abs(q - rq).max() < 1e-4, np.abs(q - rq).max()


def test_guided_filter_keeps_the_photo_s_edges():
    img, _ = _photo(seed=1)
    h, w = img.shape[:2]
    step = (np.arange(w)[None, :] >= w // 2) * np.ones((h, 1), np.float32)   # on the photo's edge
    u8 = (img * 255).astype(np.uint8)
    kept = guided_filter(u8, step, radius=6, eps=1e-4)
    boxed = _box(step, 6)
    assert np.abs(kept - step).mean() < 0.25 * np.abs(boxed - step).mean()  # edge-preserving, not a blur
    np.testing.assert_allclose(guided_filter(u8, np.full((h, w), 0.3, np.float32), 6, 1e-4), 0.3, atol=1e-4)


def test_upsampling_matches_the_direct_full_size_computation():
    rng = np.random.default_rng(2)
    H, W = 301, 437
    img = np.clip(cv2.resize(rng.random((30, 40, 3)).astype(np.float32), (W, H)) * 255 +
                  rng.normal(0, 4, (H, W, 3)), 0, 255).astype(np.uint8)
    low = rng.random((75, 109)).astype(np.float32)
    out = guided_upsample(low, img, radius=3, eps=1e-4)
    small = cv2.resize(img, (109, 75), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
    a, b = guided_filter_coefficients(small, low, 3, 1e-4)
    direct = (cv2.resize(a, (W, H), interpolation=cv2.INTER_LINEAR) * (img.astype(np.float32) / 255)).sum(-1) \
        + cv2.resize(b, (W, H), interpolation=cv2.INTER_LINEAR)
    assert out.shape == (H, W) and out.dtype == np.float32
    np.testing.assert_allclose(out, np.clip(direct, 0, 1), atol=1e-5)
    assert guided_upsample(low, cv2.resize(img, (109, 75))) is not None                 # same size: as is
