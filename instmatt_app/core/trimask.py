"""Tri-masks: the mutual guidance of paper §3.2 (Eq. 5–6), numpy only.

For instance i of n coarse instance masks M_1..M_n (each (H, W) float in [0, 1]):

* ``union`` (paper, Eq. 5–6): M_t = M_i, M_r = ∪_{j≠i} M_j, M_b = 1 − (M_t ∪ M_r), where the
  union of soft masks is the pixel-wise maximum (the fuzzy union; it equals the set union on
  binary masks);
* ``sum`` (official code, §3.3 of the reference digest): M_t = M_i, M_r = Σ_{j≠i} M_j,
  M_b = 1 − Σ_j M_j, **not clamped** (M_r may be 2 and M_b negative where masks overlap).
  This is what the official InstMatt weights were trained with.
"""
from __future__ import annotations

from typing import Literal

import numpy as np

TrimaskMode = Literal["union", "sum"]

__all__ = ["TrimaskMode", "trimask", "trimasks"]


def trimasks(masks: np.ndarray, mode: TrimaskMode = "union", dtype=np.float32) -> np.ndarray:
    """Tri-masks of every instance.

    masks: (n, H, W) float or uint8 (uint8 is divided by 255), values in [0, 1].
    Returns (n, 3, H, W) ``dtype`` (float32, or float16 to store them at half the memory) with
    channels [M_t, M_r, M_b]. n = 0 gives (0, 3, H, W).
    """
    m = np.asarray(masks)
    if m.ndim != 3:
        raise ValueError(f"masks must be (n, H, W), got shape {m.shape}")
    m = m.astype(np.float32) / np.float32(255) if m.dtype == np.uint8 else m.astype(np.float32, copy=False)
    n, h, w = m.shape
    out = np.empty((n, 3, h, w), dtype=dtype)
    if n == 0:
        return out
    if mode == "sum":
        total = m.sum(axis=0)
        for i in range(n):
            out[i, 0] = m[i]
            out[i, 1] = total - m[i]
            out[i, 2] = 1.0 - total
        return out
    if mode != "union":
        raise ValueError(f"unknown tri-mask mode {mode!r} (use 'union' or 'sum')")
    # max over the others, from the largest and second-largest value per pixel: O(n) time and
    # four (H, W) work arrays, all updated in place (a 24 MP photo with many people must not
    # need n extra images)
    top = np.zeros((h, w), np.float32)
    second = np.zeros((h, w), np.float32)
    owner = np.full((h, w), -1, np.int32)
    higher = np.empty((h, w), bool)
    for i in range(n):
        np.greater(m[i], top, out=higher)
        np.maximum(second, m[i], out=second)      # not yet right where m[i] is the new maximum ...
        np.copyto(second, top, where=higher)      # ... there the old maximum becomes the second
        np.copyto(top, m[i], where=higher)
        owner[higher] = i
    others = np.empty((h, w), np.float32)
    for i in range(n):
        np.copyto(others, top)
        np.equal(owner, i, out=higher)
        np.copyto(others, second, where=higher)
        out[i, 0] = m[i]
        out[i, 1] = others
        np.maximum(others, m[i], out=others)
        np.subtract(1.0, others, out=others)
        out[i, 2] = others
    return out


def trimask(masks: np.ndarray, index: int, mode: TrimaskMode = "union") -> np.ndarray:
    """Tri-mask of the single instance ``index``: (3, H, W) float32 (see :func:`trimasks`).

    Costs O(n) for one instance and needs no full-resolution memory beyond its result (the
    engine computes a person's tri-mask only when it is asked for).
    """
    m = np.asarray(masks)
    if m.ndim != 3:
        raise ValueError(f"masks must be (n, H, W), got shape {m.shape}")
    if mode not in ("union", "sum"):
        raise ValueError(f"unknown tri-mask mode {mode!r} (use 'union' or 'sum')")
    n, h, w = m.shape
    if not -n <= index < n:
        raise IndexError(f"instance {index} of {n}")

    def mask(j: int) -> np.ndarray:
        return m[j].astype(np.float32) / np.float32(255) if m.dtype == np.uint8 else m[j].astype(np.float32, copy=False)

    out = np.empty((3, h, w), np.float32)
    target, others, rest = out
    target[...] = mask(index)
    others.fill(0.0)
    combine = np.add if mode == "sum" else np.maximum
    for j in range(n):
        if j != index % n:
            combine(others, mask(j), out=others)
    if mode == "sum":  # the same arithmetic as trimasks(): total = M_t + Σ others, M_r = total − M_t
        np.add(target, others, out=rest)
        np.subtract(rest, target, out=others)
        np.subtract(1.0, rest, out=rest)
    else:
        np.maximum(target, others, out=rest)
        np.subtract(1.0, rest, out=rest)
    return out
