"""Fill the part of the background that people hide, so that removing a person looks plausible.

The background colour layer L_0 of Eq. 2 is only observed where its weight α_0 = 1 − Σ α_i is
large; behind an opaque person it is unknown. :func:`fill_hidden_background` replaces it there
with a push-pull (pyramid) membrane fill — or OpenCV's fast-marching inpainting — computed at a reduced resolution (inpainting a
24 MP hole at full resolution would take minutes and adds nothing a smooth fill of a hidden area
needs), then upsampled and blended in with a soft edge.

numpy + OpenCV only (no Qt, no torch).
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["fill_hidden_background", "hidden_mask"]


def hidden_mask(background_alpha: np.ndarray, threshold: float = 0.05) -> np.ndarray:
    """Where the background is hidden: ``background_alpha < threshold``.

    background_alpha: (H, W) float in [0, 1] (α_0). Returns (H, W) bool.
    """
    return np.asarray(background_alpha) < threshold


def pyramid_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Push-pull fill: every hole pixel gets the known colours around it, averaged over the
    smallest scale at which there are any (a smooth, streak-free membrane).

    image: (h, w, 3) float32; hole: (h, w) bool. Returns a new (h, w, 3) float32 array, equal to
    ``image`` outside the hole.
    """
    known = (~hole).astype(np.float32)
    levels = [(image * known[..., None], known)]
    while min(levels[-1][1].shape) > 1 and (levels[-1][1] <= 0).any():
        col, wgt = levels[-1]
        levels.append((cv2.pyrDown(col), cv2.pyrDown(wgt)))
    col, wgt = levels[-1]
    filled = col / np.maximum(wgt, 1e-6)[..., None]
    if (wgt <= 0).any():  # not even one known pixel at the coarsest level (caller prevents this)
        filled[wgt <= 0] = image[~hole].mean(axis=0)
    for col, wgt in reversed(levels[:-1]):
        up = cv2.resize(filled, (wgt.shape[1], wgt.shape[0]), interpolation=cv2.INTER_LINEAR)
        own = col / np.maximum(wgt, 1e-6)[..., None]
        conf = np.clip(wgt, 0.0, 1.0)[..., None]  # how much of this pixel is known at this scale
        filled = conf * own + (1.0 - conf) * up
    out = image.copy()
    out[hole] = filled[hole]
    return out


def fill_hidden_background(background: np.ndarray, background_alpha: np.ndarray, *,
                           threshold: float = 0.05, max_side: int = 768, radius: int = 5,
                           method: str = "pyramid") -> np.ndarray:
    """Inpaint the background colour where people hide it.

    background: (H, W, 3) float32 in [0, 1], the current background colour estimate (its values
        where ``background_alpha < threshold`` are ignored).
    background_alpha: (H, W) float in [0, 1], α_0 = 1 − Σ α_i.
    threshold: α_0 below this counts as hidden.
    max_side: the inpainting runs on a copy whose long side is at most this many pixels.
    radius: inpainting neighbourhood radius in pixels at that working resolution.
    method: "pyramid" (push-pull membrane fill, :func:`pyramid_fill`: smooth, no streaks; the
        default, as hidden backgrounds are mostly out-of-focus), "telea" (cv2.INPAINT_TELEA) or
        "ns" (cv2.INPAINT_NS); the two fast-marching methods smear edge colours into long streaks
        across a person-sized hole.

    Returns a new (H, W, 3) float32 array in [0, 1]: equal to ``background`` where α_0 ≥
    threshold (up to a one-working-pixel feather at the hole edge) and the inpainted fill where
    hidden. If nothing is hidden the input is returned unchanged (a copy); if everything is
    hidden there is nothing to inpaint from and the mean colour of ``background`` is used.
    """
    bg = np.asarray(background, dtype=np.float32)
    a0 = np.asarray(background_alpha, dtype=np.float32)
    if bg.ndim != 3 or bg.shape[2] != 3 or a0.shape != bg.shape[:2]:
        raise ValueError(f"background must be (H, W, 3) and alpha (H, W); got {bg.shape} and {a0.shape}")
    flag = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS, "pyramid": None}.get(method, -1)
    if flag == -1:
        raise ValueError(f"unknown inpainting method {method!r} (use 'pyramid', 'telea' or 'ns')")
    hole = hidden_mask(a0, threshold)
    if not hole.any():
        return bg.copy()
    out = bg.copy()
    if hole.all():
        out[:] = bg.reshape(-1, 3).mean(axis=0)
        return out

    h, w = a0.shape
    scale = min(1.0, max_side / max(h, w))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    if scale < 1.0:
        small_bg = cv2.resize(bg, (sw, sh), interpolation=cv2.INTER_AREA)
        # a working pixel is a hole if any of its full-resolution pixels is hidden
        small_hole = cv2.resize(hole.astype(np.float32), (sw, sh), interpolation=cv2.INTER_AREA) > 0.0
    else:
        small_bg, small_hole = bg, hole
    if flag is None:
        filled = pyramid_fill(np.ascontiguousarray(small_bg, np.float32), small_hole)
    else:
        bg8 = np.clip(small_bg * 255.0 + 0.5, 0, 255).astype(np.uint8)
        filled = cv2.inpaint(bg8, small_hole.astype(np.uint8) * 255, radius, flag).astype(np.float32) / 255.0

    # box of the hole: only that part needs upsampling (keeps 24 MP memory low)
    ys, xs = np.nonzero(hole.any(axis=1))[0], np.nonzero(hole.any(axis=0))[0]
    y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    if scale < 1.0:
        # map the full-res box to working coordinates (with a 1-pixel margin) and upsample that
        sy0, sx0 = max(0, int(y0 * scale) - 1), max(0, int(x0 * scale) - 1)
        sy1, sx1 = min(sh, int(np.ceil(y1 * scale)) + 1), min(sw, int(np.ceil(x1 * scale)) + 1)
        # affine map: box pixel (x, y) -> working-patch pixel (pixel-centre convention)
        kx, ky = sw / w, sh / h
        m = np.array([[kx, 0.0, (x0 + 0.5) * kx - 0.5 - sx0],
                      [0.0, ky, (y0 + 0.5) * ky - 0.5 - sy0]], np.float64)
        patch = cv2.warpAffine(filled[sy0:sy1, sx0:sx1], m, (int(x1 - x0), int(y1 - y0)),
                               flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                               borderMode=cv2.BORDER_REPLICATE)
    else:
        patch = filled[y0:y1, x0:x1]
    # soft blend: weight 1 deep inside the hole, 0 where α_0 ≥ threshold
    sub_hole = hole[y0:y1, x0:x1]
    wgt = sub_hole.astype(np.float32)
    wgt = cv2.blur(wgt, (3, 3)) * wgt  # 1 inside, slightly < 1 on the hole's rim
    wgt = wgt[..., None]
    out[y0:y1, x0:x1] = wgt * patch + (1.0 - wgt) * out[y0:y1, x0:x1]
    return out
