"""The multi-instance consistency step applied to every matter's output (numpy only)."""
from __future__ import annotations

import numpy as np

__all__ = ["enforce_consistency"]


def enforce_consistency(trimattes: np.ndarray) -> np.ndarray:
    """The multi-instance consistency step: Σ_i α_t,i ≤ 1, α_r,i = Σ_{j≠i} α_t,j, α_b = 1 − Σ α_t.

    trimattes: (k, 3, H, W) float32; modified in place and returned. Where the instance alphas
    sum to more than 1 they are scaled down proportionally (no instance is favoured).
    """
    if trimattes.shape[0] == 0:
        return trimattes
    a = trimattes[:, 0]  # a view: everything below works in place (no full-resolution copies)
    np.clip(a, 0.0, 1.0, out=a)
    total = a.sum(axis=0)
    over = total > 1.0
    if over.any():
        a[:, over] /= total[over]
        total = a.sum(axis=0)
    for i in range(len(a)):
        np.subtract(total, a[i], out=trimattes[i, 1])
        np.subtract(1.0, total, out=trimattes[i, 2])
    np.clip(trimattes, 0.0, 1.0, out=trimattes)
    return trimattes
