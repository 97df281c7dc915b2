"""The multi-instance consistency step applied to every matter's output (numpy only)."""
from __future__ import annotations

import numpy as np

__all__ = ["consistent_alphas", "enforce_consistency"]

# rows per strip: the step works strip by strip, so its temporaries are (strip, W), not (H, W)
_STRIP_PIXELS = 1 << 20


def consistent_alphas(alphas: np.ndarray) -> np.ndarray:
    """The consistency step on the instance alphas: clipped to [0, 1] and, where Σ_i α_i > 1,
    scaled down proportionally (no instance is favoured), so Σ_i α_i ≤ 1 everywhere.

    alphas: (k, H, W) float32; modified in place and returned. α_r,i = Σ_{j≠i} α_j and
    α_b = 1 − Σ_j α_j follow from the result (:class:`~instmatt_app.core.result.PeopleAlphas`).
    """
    if alphas.shape[0] == 0:
        return alphas
    k, h, w = alphas.shape
    rows = max(1, _STRIP_PIXELS // max(1, w))
    for y0 in range(0, h, rows):
        a = alphas[:, y0:y0 + rows]  # a view: everything below works in place
        np.clip(a, 0.0, 1.0, out=a)
        if k > 1:
            total = a.sum(axis=0)
            over = total > 1.0
            if over.any():
                a[:, over] /= total[over]
    return alphas


def enforce_consistency(trimattes: np.ndarray) -> np.ndarray:
    """The multi-instance consistency step: Σ_i α_t,i ≤ 1, α_r,i = Σ_{j≠i} α_t,j, α_b = 1 − Σ α_t.

    trimattes: (k, 3, H, W) float32; modified in place and returned. Where the instance alphas
    sum to more than 1 they are scaled down proportionally (no instance is favoured).
    """
    if trimattes.shape[0] == 0:
        return trimattes
    a = trimattes[:, 0]  # a view: everything below works in place (no full-resolution copies)
    consistent_alphas(a)
    total = a.sum(axis=0)
    for i in range(len(a)):
        np.subtract(total, a[i], out=trimattes[i, 1])
        np.subtract(1.0, total, out=trimattes[i, 2])
    np.clip(trimattes, 0.0, 1.0, out=trimattes)
    return trimattes
