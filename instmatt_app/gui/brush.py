"""Brush strokes rasterised into photo-sized coverage masks (numpy + OpenCV, no Qt).

A :class:`Stroke` collects the mouse path of one press-drag-release; :meth:`Stroke.coverage` gives the
soft coverage in [0, 1] inside the stroke's bounding box. Hardness 1 gives a hard-edged brush;
lower hardness feathers the edge with a Gaussian of σ = (1 − hardness) · radius / 2.
The GUI turns a finished stroke into ONE document command (one undo step).
"""
from __future__ import annotations

import numpy as np
import cv2

__all__ = ["Stroke", "paint_alpha", "edit_guidance", "GUIDANCE_LABELS"]

GUIDANCE_LABELS = {"this": "This person", "other": "Another person", "background": "Background"}


class Stroke:
    """One stroke on an (H, W) photo. radius in photo pixels (>= 0.5), hardness in [0, 1]."""

    def __init__(self, shape: tuple[int, int], radius: float, hardness: float):
        self.shape = (int(shape[0]), int(shape[1]))
        self.radius = max(float(radius), 0.5)
        self.hardness = float(np.clip(hardness, 0.0, 1.0))
        self.points: list[tuple[float, float]] = []

    def add(self, x: float, y: float) -> None:
        self.points.append((float(x), float(y)))

    @property
    def empty(self) -> bool:
        return not self.points

    def bbox(self) -> tuple[int, int, int, int] | None:
        """(x0, y0, x1, y1) integer pixel box (exclusive end) that holds the coverage, clipped; None if outside."""
        if not self.points:
            return None
        pts = np.asarray(self.points)
        pad = self.radius + 3 * self.radius * (1 - self.hardness) + 2
        h, w = self.shape
        x0, y0 = max(int(np.floor(pts[:, 0].min() - pad)), 0), max(int(np.floor(pts[:, 1].min() - pad)), 0)
        x1, y1 = min(int(np.ceil(pts[:, 0].max() + pad)) + 1, w), min(int(np.ceil(pts[:, 1].max() + pad)) + 1, h)
        if x1 <= x0 or y1 <= y0:
            return None
        return x0, y0, x1, y1

    def coverage(self) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
        """(bbox, (y1-y0, x1-x0) float32 coverage in [0, 1]) or None when the stroke misses the photo."""
        box = self.bbox()
        if box is None:
            return None
        x0, y0, x1, y1 = box
        # the centre line through the pixel centres, then the exact distance of every pixel to it:
        # coverage = clip(r + 0.5 - d, 0, 1), an anti-aliased disc / capsule of radius r
        shift = 4
        line = np.full((y1 - y0, x1 - x0), 255, np.uint8)
        pts = [(int(round((x - x0 - 0.5) * (1 << shift))), int(round((y - y0 - 0.5) * (1 << shift))))
               for x, y in self.points]
        if len(pts) == 1:
            pts = pts * 2
        for a, b in zip(pts[:-1], pts[1:]):
            cv2.line(line, a, b, 0, 1, cv2.LINE_8, shift)
        dist = cv2.distanceTransform(line, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        cov = np.clip(self.radius + 0.5 - dist, 0.0, 1.0).astype(np.float32)
        sigma = (1.0 - self.hardness) * self.radius / 2.0
        if sigma > 0.3:
            cov = cv2.GaussianBlur(cov, (0, 0), sigmaX=sigma, sigmaY=sigma)
        return box, cov


def paint_alpha(alpha: np.ndarray, stroke: Stroke, target: float) -> np.ndarray | None:
    """A new (H, W) float32 alpha: ``alpha`` moved towards ``target`` (1 brush, 0 eraser) by the coverage.

    Returns None when the stroke does not touch the photo; ``alpha`` itself is not modified.
    """
    cov = stroke.coverage()
    if cov is None:
        return None
    (x0, y0, x1, y1), c = cov
    out = alpha.astype(np.float32, copy=True)
    region = out[y0:y1, x0:x1]
    region += c * (float(target) - region)
    np.clip(region, 0.0, 1.0, out=region)
    return out


def edit_guidance(guidance: dict[int, np.ndarray], layer_id: int, cov, label: str) -> None:
    """Apply one guidance stroke to the people's coarse masks, in place.

    guidance: {layer id: (H, W) float32 mask in [0, 1]} (must hold ``layer_id``); cov: the
    stroke's ``(bbox, coverage)`` from :meth:`Stroke.coverage`; label:

    * "this": the painted pixels belong to this person (added to it, taken from everyone else);
    * "other": they belong to another person: taken from this one and given to the neighbour
      whose mask already covers most of the stroke (nobody gets them when there is no neighbour);
    * "background": they belong to nobody (taken from everyone).
    """
    if label not in GUIDANCE_LABELS:
        raise ValueError(f"unknown guidance label {label!r}; use one of {', '.join(GUIDANCE_LABELS)}")
    (x0, y0, x1, y1), c = cov
    g = guidance[layer_id][y0:y1, x0:x1]
    if label == "this":
        np.maximum(g, c, out=g)
        for lid, m in guidance.items():
            if lid != layer_id:
                m[y0:y1, x0:x1] *= 1.0 - c
        return
    g *= 1.0 - c
    if label == "background":
        for m in guidance.values():
            m[y0:y1, x0:x1] *= 1.0 - c
        return
    others = [(float((m[y0:y1, x0:x1] * c).sum()), lid) for lid, m in guidance.items() if lid != layer_id]
    if others:
        _, best = max(others)
        o = guidance[best][y0:y1, x0:x1]
        np.maximum(o, c, out=o)
