"""Colour guided filter (He et al., TPAMI 2013) and its "fast" upsampling form (He & Sun, 2015).

Used to bring mattes computed at a working resolution back to the photo's full resolution with
edges that follow the photo (not a blurry bilinear upscale), and to snap coarse masks to image
edges. numpy + OpenCV box filters only.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["guided_filter", "guided_filter_coefficients", "guided_upsample"]


def _box(x: np.ndarray, r: int) -> np.ndarray:
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def guided_filter_coefficients(guide: np.ndarray, src: np.ndarray, radius: int, eps: float
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Linear coefficients (a, b) of the colour guided filter: q = Σ_c a_c I_c + b.

    guide: (h, w, 3) float32 in [0, 1]; src: (h, w) float32. Returns a (h, w, 3), b (h, w), both
    float32 and already box-averaged (ready to be upsampled and applied to a larger guide).
    The per-pixel 3x3 system (Σ + εI) a = cov(I, p) is solved in closed form (the inverse of a
    symmetric 3x3 from its cofactors, in float64 so the near-singular colour-line case keeps its
    precision): several times faster than a batched ``np.linalg.solve``, same result to ~1e-7.
    """
    I = guide.astype(np.float32, copy=False)
    p = src.astype(np.float32, copy=False)
    ch = [np.ascontiguousarray(I[..., c]) for c in range(3)]
    mean_c = [_box(c, radius) for c in ch]
    mean_p = _box(p, radius)
    cov = [(_box(c * p, radius) - m * mean_p).astype(np.float64) for c, m in zip(ch, mean_c)]
    var = {}
    for c1, c2 in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)):
        v = _box(ch[c1] * ch[c2], radius) - mean_c[c1] * mean_c[c2]
        if c1 == c2:
            v += np.float32(eps)
        var[c1, c2] = v.astype(np.float64)
    s00, s01, s02, s11, s12, s22 = (var[k] for k in ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)))
    # cofactors of the symmetric matrix [[s00, s01, s02], [s01, s11, s12], [s02, s12, s22]]
    i00 = s11 * s22 - s12 * s12
    i01 = s12 * s02 - s01 * s22
    i02 = s01 * s12 - s11 * s02
    i11 = s00 * s22 - s02 * s02
    i12 = s02 * s01 - s00 * s12
    i22 = s00 * s11 - s01 * s01
    inv_det = 1.0 / (s00 * i00 + s01 * i01 + s02 * i02)
    del var, s00, s01, s02, s11, s12, s22
    a = [((i00 * cov[0] + i01 * cov[1] + i02 * cov[2]) * inv_det).astype(np.float32),
         ((i01 * cov[0] + i11 * cov[1] + i12 * cov[2]) * inv_det).astype(np.float32),
         ((i02 * cov[0] + i12 * cov[1] + i22 * cov[2]) * inv_det).astype(np.float32)]
    b = mean_p - a[0] * mean_c[0] - a[1] * mean_c[1] - a[2] * mean_c[2]
    return np.dstack([_box(x, radius) for x in a]), _box(b, radius)


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
    Memory: 8 bytes per full-resolution pixel (the result and one float32 buffer).
    """
    H, W = image.shape[:2]
    h, w = alpha_low.shape
    if (h, w) == (H, W):
        return alpha_low.astype(np.float32, copy=False)
    small = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    r = radius if radius is not None else max(2, round(max(h, w) / 400))
    a, b = guided_filter_coefficients(small, alpha_low.astype(np.float32), r, eps)
    out = cv2.resize(b, (W, H), interpolation=cv2.INTER_LINEAR)
    a_up = np.empty((H, W), np.float32)
    rows = max(1, (1 << 20) // W)
    guide = np.empty((rows, W), np.float32)  # one strip of the photo's channel, as float in [0, 1]
    for c in range(3):  # channel by channel: no (H, W, 3) float temporary
        cv2.resize(np.ascontiguousarray(a[..., c]), (W, H), dst=a_up, interpolation=cv2.INTER_LINEAR)
        for y0 in range(0, H, rows):
            y1 = min(H, y0 + rows)
            g = guide[:y1 - y0]
            np.multiply(image[y0:y1, :, c], np.float32(1 / 255), out=g)
            np.multiply(a_up[y0:y1], g, out=g)
            out[y0:y1] += g
    del a_up, guide
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out
