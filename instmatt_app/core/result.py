"""Plain data objects passed between the engine stages (numpy only, no Qt, no torch).

Shapes: H, W are the photo's full resolution; k the number of person instances.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Detection", "Instance", "MattingResult", "PeopleAlphas"]


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


class PeopleAlphas:
    """The consistent alphas of all people of one photo, from which every instance's tri-matte and
    tri-mask are derived on access (nothing (k, 3, H, W) is stored: at 24 MP with 4 people that is
    1.15 GB of tri-mattes and 0.6 GB of float16 tri-masks).

    alphas: (k, H, W) float32 in [0, 1], Σ_i α_i ≤ 1 (after the engine's consistency step), or a
        list of k (H, W) planes after :meth:`MattingResult.adopt_alphas`.
    masks: (k, H, W) float32 in [0, 1], the coarse instance masks (the tri-masks' source).
    trimask_mode: "union" (paper Eq. 5–6) or "sum" (official code), see :mod:`instmatt_app.core.trimask`.
    """

    def __init__(self, alphas: np.ndarray, masks: np.ndarray, trimask_mode: str = "union"):
        if alphas.ndim != 3 or masks.shape != alphas.shape:
            raise ValueError(f"alphas and masks must both be (k, H, W); got {alphas.shape} and {masks.shape}")
        self.alphas = alphas
        self.masks = masks
        self.trimask_mode = trimask_mode
        self._total: np.ndarray | None = None

    @property
    def total(self) -> np.ndarray:
        """(H, W) float32: Σ_i α_i (computed once, then kept)."""
        if self._total is None:
            total = np.zeros(self.masks.shape[1:], np.float32)
            for a in self.alphas:          # a (k, H, W) array or, once adopted, a list of planes
                total += a
            self._total = total
        return self._total

    def trimatte(self, i: int) -> np.ndarray:
        """(3, H, W) float32 in [0, 1] [α_t, α_r, α_b] of person i: α_r = Σ_{j≠i} α_j, α_b = 1 − Σ_j α_j."""
        a = self.alphas[i]
        out = np.empty((3,) + a.shape, np.float32)
        out[0] = a
        np.subtract(self.total, a, out=out[1])
        np.subtract(1.0, self.total, out=out[2])
        np.clip(out, 0.0, 1.0, out=out)
        return out

    def trimask(self, i: int) -> np.ndarray:
        """(3, H, W) float32 [M_t, M_r, M_b] of person i (Eq. 5–6 or the sum form)."""
        from instmatt_app.core.trimask import trimask

        return trimask(self.masks, i, self.trimask_mode)


class Instance:
    """One person of a matting result.

    coarse_mask: (H, W) float32 in [0, 1] (the guidance the matter was given).
    alpha: (H, W) float32 in [0, 1], this person's alpha matte after refinement and the
        consistency step.
    trimatte: (3, H, W) float32 in [0, 1] [α_t, α_r, α_b], ``trimatte[0]`` is ``alpha``.
    trimask: (3, H, W) float [M_t, M_r, M_b] (Eq. 5–6) at full resolution.

    The engine builds instances from a shared :class:`PeopleAlphas` (``people=``, ``index`` is the
    row): then ``trimatte`` and ``trimask`` are computed on every access (a new array each time,
    not kept). Given explicitly (``trimatte=``, ``trimask=``) they are stored as they are (the
    official post-processing keeps the network's own α_r, α_b); ``alpha`` defaults to
    ``trimatte[0]``.
    """

    def __init__(self, index: int, box: tuple[float, float, float, float], score: float,
                 coarse_mask: np.ndarray, trimask: np.ndarray | None = None, trimatte: np.ndarray | None = None,
                 source: str = "", *, alpha: np.ndarray | None = None, people: PeopleAlphas | None = None):
        self.index = index
        self.box = box
        self.score = score
        self.coarse_mask = coarse_mask
        self.source = source
        self._people = people
        self._trimask = trimask
        self._trimatte = trimatte
        if alpha is None:
            if trimatte is not None:
                alpha = trimatte[0]
            elif people is not None:
                alpha = people.alphas[index]
            else:
                raise ValueError("an Instance needs alpha=, trimatte= or people=")
        self._alpha = alpha
        if trimask is None and people is None:
            raise ValueError("an Instance needs trimask= or people=")

    @property
    def alpha(self) -> np.ndarray:
        """(H, W) float32 in [0, 1]: this person's alpha matte."""
        return self._alpha

    @property
    def has_own_trimatte(self) -> bool:
        """Whether the matter gave this person's α_r, α_b itself (``trimatte=``); otherwise the
        tri-matte is derived from the people's alphas on access."""
        return self._trimatte is not None

    @property
    def trimatte(self) -> np.ndarray:
        """(3, H, W) float32 in [0, 1]: [α_t, α_r, α_b] (class docstring)."""
        if self._trimatte is not None:
            return self._trimatte
        return self._people.trimatte(self.index)

    @property
    def trimask(self) -> np.ndarray:
        """(3, H, W) float: [M_t, M_r, M_b] (class docstring)."""
        if self._trimask is not None:
            return self._trimask
        return self._people.trimask(self.index)

    def __repr__(self) -> str:
        return (f"Instance(index={self.index}, box={self.box}, score={self.score:.3f}, "
                f"shape={tuple(self._alpha.shape)}, source={self.source!r})")


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

    def adopt_alphas(self, alphas: list[np.ndarray]) -> None:
        """Make the instances' alphas these k (H, W) float32 arrays (e.g. the document's layers,
        which hold the same values once the result is applied to them) and let the result's own
        go: a GUI that keeps the result as the base of later re-matting then holds every alpha once.
        Tri-mattes are derived from the adopted alphas from then on."""
        if len(alphas) != len(self.instances):
            raise ValueError(f"{len(self.instances)} instances need {len(self.instances)} alphas; got {len(alphas)}")
        shape = self.image.shape[:2]
        for a in alphas:
            if a.shape != shape or a.dtype != np.float32:
                raise ValueError(f"alphas must be float32 {shape}; got {a.dtype} {a.shape}")
        for inst, a in zip(self.instances, alphas):
            inst._alpha = a
        for people in {id(i._people): i._people for i in self.instances if i._people is not None}.values():
            rows = {i.index: i.alpha for i in self.instances if i._people is people}
            if sorted(rows) == list(range(len(people.alphas))):   # every row has its new plane
                people.alphas = [rows[r] for r in range(len(rows))]
                people._total = None

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
