"""What the canvas shows, as plain numpy images (no Qt): one function per view.

All inputs are the engine's / document's arrays: photo (H, W, 3) uint8 RGB, alphas (H, W) or
(k, H, W) float32 in [0, 1], tri-mattes (3, H, W) float32 [α_t, α_r, α_b], colours (H, W, 3) float32
in [0, 1]. All outputs are C-contiguous uint8, (H, W, 3) RGB or (H, W, 4) RGBA (straight alpha),
ready to wrap in a QImage.
"""
from __future__ import annotations

import colorsys

import cv2
import numpy as np

__all__ = ["to_uint8", "person_rgba", "alpha_grey", "trimatte_rgb", "people_overlay", "difference_heatmap",
           "thumbnail_rgba", "distinct_colours", "hex_to_rgb"]


def to_uint8(x: np.ndarray) -> np.ndarray:
    """float array in [0, 1] (any shape) → uint8 0..255, rounded and saturated, C-contiguous."""
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    x = np.ascontiguousarray(x, np.float32)
    if x.ndim == 2 or (x.ndim == 3 and x.shape[2] <= 4):  # OpenCV: multi-threaded, no temporaries
        return cv2.convertScaleAbs(cv2.max(x, 0.0), alpha=255.0)
    return np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)


def hex_to_rgb(colour: str) -> tuple[int, int, int]:
    """"#rrggbb" → (r, g, b) 0..255."""
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def distinct_colours(n: int) -> list[str]:
    """n well separated, saturated "#rrggbb" colours (golden-ratio hue steps), stable for a given index."""
    out = []
    for i in range(n):
        h = (0.58 + i * 0.618034) % 1.0
        r, g, b = colorsys.hsv_to_rgb(h, 0.72, 0.98)
        out.append(f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}")
    return out


def person_rgba(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """One person cut out: colour (H, W, 3) float32 [0, 1] or uint8, alpha (H, W) float32 → (H, W, 4) uint8."""
    rgb = to_uint8(colour)
    return np.ascontiguousarray(np.dstack([rgb, to_uint8(alpha)]))


def alpha_grey(alpha: np.ndarray) -> np.ndarray:
    """(H, W) float32 alpha → (H, W, 3) uint8 grey (white = opaque)."""
    a = to_uint8(alpha)
    return np.ascontiguousarray(np.repeat(a[..., None], 3, axis=2))


def trimatte_rgb(trimatte: np.ndarray) -> np.ndarray:
    """(3, H, W) float32 [α_t, α_r, α_b] → (H, W, 3) uint8 with α_t in red, α_r in green, α_b in blue."""
    return to_uint8(np.moveaxis(trimatte, 0, -1))


def people_overlay(image: np.ndarray, alphas: np.ndarray, colours: list[str], strength: float = 0.6) -> np.ndarray:
    """Every person tinted in its own colour over a dimmed grey photo.

    image (H, W, 3) uint8, alphas (k, H, W) float32, colours k "#rrggbb" → (H, W, 3) uint8.
    Each person is blended only inside the box where its alpha is non-zero (fast on 24 MP photos).
    """
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    out = cv2.cvtColor(cv2.convertScaleAbs(grey, alpha=0.45, beta=0.25 * 255), cv2.COLOR_GRAY2RGB)  # uint8
    mix = np.float32(0.65 * strength)
    for a, c in zip(alphas, colours):
        rows, cols = np.flatnonzero(a.any(axis=1)), np.flatnonzero(a.any(axis=0))
        if rows.size == 0:
            continue
        y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
        rgb = hex_to_rgb(c)
        box = np.ascontiguousarray(out[y0:y1, x0:x1])
        w = np.ascontiguousarray(a[y0:y1, x0:x1], np.float32) * mix
        tint = np.empty_like(box)
        tint[:] = rgb
        blended = cv2.blendLinear(box, tint, 1.0 - w, w)  # box (1 − w) + tint w, per pixel
        # a thin bright outline where the alpha crosses 0.5 makes touching people separable
        m = np.zeros((y1 - y0 + 2, x1 - x0 + 2), np.uint8)
        m[1:-1, 1:-1] = a[y0:y1, x0:x1] > 0.5
        edge = cv2.morphologyEx(m, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))[1:-1, 1:-1]
        blended[edge > 0] = rgb
        out[y0:y1, x0:x1] = blended
    return out


def difference_heatmap(image: np.ndarray, alphas: np.ndarray, reference: np.ndarray,
                       full_scale: float = 0.25) -> tuple[np.ndarray, float]:
    """Where two sets of mattes differ: Σ_i |α_i − ref_i| as a heat map over a dimmed photo.

    image (H, W, 3) uint8; alphas, reference: k (H, W) alphas each (arrays or lists), float32 in
    [0, 1] or uint8 (scaled by 1/255). ``full_scale`` is the difference shown at full heat.
    Returns ((H, W, 3) uint8, mean absolute difference per pixel).
    """
    def as_float(a: np.ndarray) -> np.ndarray:
        if a.dtype == np.uint8:
            return a.astype(np.float32) * np.float32(1.0 / 255.0)
        return np.ascontiguousarray(a, np.float32)

    diff = np.zeros(image.shape[:2], np.float32)
    for a, r in zip(alphas, reference):
        diff += cv2.absdiff(as_float(a), as_float(r))
    heat = cv2.convertScaleAbs(diff, alpha=255.0 / full_scale)  # saturates at full_scale
    cmap = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    grey = cv2.cvtColor(cv2.convertScaleAbs(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), alpha=0.35), cv2.COLOR_GRAY2RGB)
    w = np.minimum(heat.astype(np.float32) * (1.5 / 255.0), 1.0)
    return cv2.blendLinear(grey, cmap, 1.0 - w, w), float(diff.mean())


def thumbnail_rgba(colour: np.ndarray, alpha: np.ndarray, box: tuple[float, float, float, float] | None,
                   size: int = 48) -> np.ndarray:
    """A square (size, size, 4) uint8 thumbnail of one person, cropped to ``box`` (x0, y0, x1, y1) if given,
    else to where the alpha is above 0.05. colour: (H, W, 3) float32 [0, 1] or uint8.

    Works on a strided view of big photos (about 4 source pixels per thumbnail pixel), so a 24 MP
    person costs a few milliseconds.
    """
    h, w = alpha.shape
    if box is None or box[2] <= box[0] or box[3] <= box[1]:
        step = max(1, max(h, w) // 1024)
        ys, xs = np.nonzero(alpha[::step, ::step] > 0.05)
        box = ((xs.min() * step, ys.min() * step, xs.max() * step + step, ys.max() * step + step)
               if len(xs) else (0, 0, w, h))
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    side = max(x1 - x0, y1 - y0, 1)
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    x0, y0 = max(cx - side // 2, 0), max(cy - side // 2, 0)
    x1, y1 = min(x0 + side, w), min(y0 + side, h)
    s = max(1, side // (4 * size))
    rgba = person_rgba(colour[y0:y1:s, x0:x1:s], alpha[y0:y1:s, x0:x1:s])
    ch, cw = rgba.shape[:2]
    scale = size / max(ch, cw, 1)
    small = cv2.resize(rgba, (max(1, round(cw * scale)), max(1, round(ch * scale))), interpolation=cv2.INTER_AREA)
    out = np.zeros((size, size, 4), np.uint8)
    oy, ox = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    out[oy:oy + small.shape[0], ox:ox + small.shape[1]] = small
    return out
