"""Colour guided filter (He et al., TPAMI 2013) and its "fast" upsampling form (He & Sun, 2015).

Used to bring mattes computed at a working resolution back to the photo's full resolution with
edges that follow the photo (not a blurry bilinear upscale), and to snap coarse masks to image
edges. numpy + OpenCV box filters only.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["guided_filter_coefficients", "guided_filter", "guided_upsample"]


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter_coefficients(guide: np.ndarray, src: np.ndarray, radius: int, eps: float
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Linear coefficients (a, b) of the colour guided filter: q = Σ_c a_c I_c + b.

    guide: (h, w, 3) float32 in [0, 1]; src: (h, w) float32. Returns a (h, w, 3), b (h, w), both
    already box-averaged (ready to be upsampled and applied to a larger guide).
    """
    I = guide.astype(np.float32, copy=False)
    p = src.astype(np.float32, copy=False)
    mean_I = _box(I, radius)
    mean_p = _box(p, radius)
    mean_Ip = _box(I * p[..., None], radius)
    cov_Ip = mean_Ip - mean_I * mean_p[..., None]
    # covariance of the guide, 3x3 per pixel (symmetric)
    idx = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
    var = {}
    for c1, c2 in idx:
        var[(c1, c2)] = _box(I[..., c1] * I[..., c2], radius) - mean_I[..., c1] * mean_I[..., c2]
    s = np.empty(I.shape[:2] + (3, 3), np.float32)
    for c1, c2 in idx:
        s[..., c1, c2] = var[(c1, c2)]
        s[..., c2, c1] = var[(c1, c2)]
    s += np.eye(3, dtype=np.float32) * np.float32(eps)
    a = np.linalg.solve(s, cov_Ip[..., None])[..., 0]
    b = mean_p - np.einsum("hwc,hwc->hw", a, mean_I)
    return _box(a, radius), _box(b, radius)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int = 8, eps: float = 1e-4) -> np.ndarray:
    """Edge-aware smoothing of ``src`` (h, w) float32 guided by ``guide`` (h, w, 3) uint8 or float in [0, 1]."""
    g = guide.astype(np.float32) / 255.0 if guide.dtype == np.uint8 else guide.astype(np.float32, copy=False)
    a, b = guided_filter_coefficients(g, src, radius, eps)
    return np.einsum("hwc,hwc->hw", a, g) + b


def guided_upsample(alpha_low: np.ndarray, image: np.ndarray, radius: int | None = None,
                    eps: float = 1e-4, clip: bool = True) -> np.ndarray:
    """Upsample a low-resolution matte to the resolution of ``image`` following its edges.

    alpha_low: (h, w) float32 in [0, 1]; image: (H, W, 3) uint8 RGB with H >= h. The filter's
    coefficients are computed at (h, w) against the downscaled photo, upsampled bilinearly and
    applied to the full-resolution photo (fast guided filter). Returns (H, W) float32 in [0, 1].
    Memory: about 20 bytes per full-resolution pixel.
    """
    H, W = image.shape[:2]
    h, w = alpha_low.shape
    if (h, w) == (H, W):
        return alpha_low.astype(np.float32, copy=False)
    small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    r = radius if radius is not None else max(2, round(max(h, w) / 400))
    a, b = guided_filter_coefficients(small, alpha_low.astype(np.float32), r, eps)
    a_up = cv2.resize(a, (W, H), interpolation=cv2.INTER_LINEAR)
    b_up = cv2.resize(b, (W, H), interpolation=cv2.INTER_LINEAR)
    out = b_up
    for c in range(3):  # channel by channel: no (H, W, 3) float temporary of the photo
        out += a_up[..., c] * (image[..., c].astype(np.float32) * np.float32(1 / 255))
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out
