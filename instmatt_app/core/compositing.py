"""Compositing equations of the paper (numpy only).

Conventions used throughout the engine:

* images are float32 arrays of shape (H, W, 3) with values in [0, 1] (RGB), unless a function
  says it takes uint8;
* alphas are float32 arrays of shape (H, W) in [0, 1]; a stack of n instance alphas has shape
  (n, H, W);
* colour layers are float32 (n, H, W, 3) in [0, 1].

Equations (InstMatt, CVPR 2022):

* Eq. 1  I = α F + (1 − α) B                         (:func:`composite_two_layer`)
* Eq. 2  I = Σ_{i=0..n} α_i L_i,  Σ α_i = 1          (:func:`composite_layers`)
* Eq. 13 I_i = α_i F_i + (1 − α_i) I_{i−1}           (:func:`composite_sequence`)
* Eq. 14 α'_i = α_i Π_{k>i} (1 − α_k)               (:func:`visible_alphas`)
"""
from __future__ import annotations

import numpy as np

__all__ = [
    "composite_two_layer",
    "composite_layers",
    "composite_sequence",
    "visible_alphas",
    "background_alpha",
]


def composite_two_layer(alpha: np.ndarray, fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Eq. 1: ``alpha * fg + (1 - alpha) * bg``.

    alpha: (H, W) float in [0, 1]; fg, bg: (H, W, 3) float. Returns (H, W, 3) float32.
    """
    a = np.asarray(alpha, dtype=np.float32)[..., None]
    return (a * fg + (1.0 - a) * bg).astype(np.float32, copy=False)


def background_alpha(alphas: np.ndarray) -> np.ndarray:
    """α_0 = 1 − Σ_i α_i, clipped to [0, 1].

    alphas: (n, H, W) float in [0, 1] (n may be 0 with shape (0, H, W)). Returns (H, W) float32.
    """
    alphas = np.asarray(alphas, dtype=np.float32)
    return np.clip(1.0 - alphas.sum(axis=0), 0.0, 1.0)


def composite_layers(alphas: np.ndarray, layers: np.ndarray, background: np.ndarray,
                     background_alpha_map: np.ndarray | None = None) -> np.ndarray:
    """Eq. 2: I = α_0 L_0 + Σ_{i≥1} α_i L_i.

    alphas: (n, H, W) float in [0, 1], Σ α_i ≤ 1; layers: (n, H, W, 3) colour of each instance;
    background: (H, W, 3) colour L_0; background_alpha_map: (H, W) α_0, default 1 − Σ α_i.
    Returns (H, W, 3) float32.
    """
    alphas = np.asarray(alphas, dtype=np.float32)
    a0 = background_alpha(alphas) if background_alpha_map is None else background_alpha_map
    out = a0[..., None] * np.asarray(background, dtype=np.float32)
    for a, layer in zip(alphas, layers):
        out += a[..., None] * layer
    return out.astype(np.float32, copy=False)


def composite_sequence(background: np.ndarray, alphas: np.ndarray, foregrounds: np.ndarray) -> np.ndarray:
    """Eq. 13: paste instances back to front, I_i = α_i F_i + (1 − α_i) I_{i−1}, I_0 = B.

    background: (H, W, 3); alphas: (n, H, W) in composite order (index 0 = back-most);
    foregrounds: (n, H, W, 3). Returns I_n as (H, W, 3) float32.
    """
    out = np.asarray(background, dtype=np.float32).copy()
    for a, f in zip(alphas, foregrounds):
        a3 = np.asarray(a, dtype=np.float32)[..., None]
        out = a3 * f + (1.0 - a3) * out
    return out


def visible_alphas(alphas: np.ndarray) -> np.ndarray:
    """Eq. 14: the visible share of each instance after later (front) layers are pasted.

    alphas: (n, H, W) in composite order (0 = back-most). Returns (n, H, W) float32 with
    α'_i = α_i Π_{k>i} (1 − α_k); Σ_i α'_i ≤ 1 by construction.
    """
    alphas = np.asarray(alphas, dtype=np.float32)
    out = np.empty_like(alphas)
    transmit = np.ones(alphas.shape[1:], dtype=np.float32)
    for i in range(len(alphas) - 1, -1, -1):
        out[i] = alphas[i] * transmit
        transmit = transmit * (1.0 - alphas[i])
    return out
