"""Plain data objects passed between the engine stages (numpy only, no Qt, no torch).

Shapes: H, W are the photo's full resolution; k the number of person instances.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Detection", "Instance", "MattingResult"]


@dataclass
class Detection:
    """One person found by a detector.

    box: (x0, y0, x1, y1) float pixel coordinates in the photo, x1/y1 exclusive.
    score: detector confidence in [0, 1].
    mask: (H, W) float32 in [0, 1], the coarse (soft or binary) instance mask.
    keypoints: optional (17, 3) float32 COCO-order (x, y, score) in photo pixels.
    source: which detector produced it (e.g. "movenet+pose", "masks-dir", "click").
    """

    box: tuple[float, float, float, float]
    score: float
    mask: np.ndarray
    keypoints: np.ndarray | None = None
    source: str = ""


@dataclass
class Instance:
    """One person of a matting result.

    coarse_mask: (H, W) float32 in [0, 1] (the guidance the matter was given).
    trimask: (3, H, W) [M_t, M_r, M_b] (Eq. 5–6) at full resolution; the engine stores it as
        float16 (it is guidance for display and export, not used for further computation).
    trimatte: (3, H, W) float32 in [0, 1] [α_t, α_r, α_b] after refinement and the consistency
        step; ``alpha`` is ``trimatte[0]``.
    """

    index: int
    box: tuple[float, float, float, float]
    score: float
    coarse_mask: np.ndarray
    trimask: np.ndarray
    trimatte: np.ndarray
    source: str = ""

    @property
    def alpha(self) -> np.ndarray:
        """(H, W) float32 in [0, 1]: this person's alpha matte."""
        return self.trimatte[0]


@dataclass
class MattingResult:
    """Everything the engine knows about one photo.

    image: (H, W, 3) uint8 RGB (orientation already applied).
    instances: the people, index = position in the list (stable; equals the mask file order
        when masks were given).
    order: the refinement order used (list of instance indices; cycle refinement processes them
        first to last; parallel refinement ignores the order but it is kept for the GUI).
    refine_mode: "none", "parallel" or "cycle".
    timings: seconds per stage; models: name -> version/sha of every model used.
    """

    image: np.ndarray
    instances: list[Instance]
    order: list[int] = field(default_factory=list)
    refine_mode: str = "none"
    device: str = "cpu"
    timings: dict[str, float] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def alphas(self) -> np.ndarray:
        """(k, H, W) float32 stack of the instance alphas (k may be 0)."""
        h, w = self.image.shape[:2]
        if not self.instances:
            return np.zeros((0, h, w), np.float32)
        return np.stack([inst.alpha for inst in self.instances])

    @property
    def background_alpha(self) -> np.ndarray:
        """(H, W) float32: α_b = 1 − Σ α_i."""
        return np.clip(1.0 - self.alphas.sum(axis=0), 0.0, 1.0)
