"""The embedded default matter: per-person tri-mattes from the human alpha and the tri-masks.

No registry package ships an instance-matting network, so the default builds InstMatt's
tri-mattes from parts (see ``docs/embedded-default.md`` for the reasoning and measurements):

1. **Human alpha** A (RVM, full resolution, sharp edges): how much of each pixel is *some* person.
2. **Mutual guidance → ownership.** From the tri-masks (Eq. 5–6) each instance i gets a soft
   ownership field o_i(x) ∈ [0, 1], Σ_i o_i ≤ 1: its own mask M_t spread a little beyond its
   boundary (hair and edges the coarse mask misses), competing with the other people's masks M_r
   — where two people touch, the split follows the masks' boundary with a soft transition of a few
   pixels. Ownership is computed at a working resolution and upsampled (it is smooth by design).
3. **α_t = A · o_i**, α_r = Σ_{j≠i} α_j, α_b = 1 − Σ_j α_j: the tri-matte satisfies
   α_t + α_r + α_b = 1 exactly (paper Eq. 2 / L_mα).
4. **People the human matter drops.** RVM is a "main subject" matter: it can give a person at the
   back little alpha. Where an instance's mask is confident but A is not, its alpha falls back to
   the mask itself snapped to the photo's edges with a guided filter, so nobody vanishes.

The multi-instance refinement (parallel / cycle) of the embedded default lives in
:mod:`instmatt_app.nets.default_refiner`; this module gives the unrefined tri-mattes.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from instmatt_app.core.consistency import consistent_alphas
from instmatt_app.nets import embedded
from instmatt_app.nets.guided_filter import guided_filter
from instmatt_app.nets.image_context import ImageContext
from instmatt_app.nets.registry import register

__all__ = ["DefaultMatter", "MatterConfig", "ownership"]


@dataclass
class MatterConfig:
    """work_side: long side at which ownership is computed; spread: how far (fraction of the photo's
    long side) a person's ownership reaches beyond its mask; fallback: enable the mask fallback for
    people the human matter drops."""

    work_side: int = 768
    spread: float = 0.03
    sharpness: float = 4.0
    fallback: bool = True


def ownership(masks: np.ndarray, spread_px: float, sharpness: float = 4.0) -> np.ndarray:
    """Soft ownership of every pixel by every instance.

    masks: (k, h, w) float32 in [0, 1]. Returns (k, h, w) float32, Σ_i ≤ 1: each mask is blurred
    (Gaussian, sigma = spread_px / 2) so it reaches past its boundary, raised to ``sharpness`` to
    make the competition between neighbours decisive inside their own masks, and normalised; far
    from every mask the ownership fades to 0 (the blurred union), so human alpha nobody explains is
    not attributed to anyone.
    """
    k = masks.shape[0]
    if k == 0:
        return masks.astype(np.float32)
    sigma = max(0.5, spread_px / 2.0)
    blurred = np.stack([cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma)
                        for m in masks])
    # inside a mask its own value dominates; the blur only decides outside / between masks
    field = np.maximum(masks, blurred)
    powered = np.power(np.clip(field, 1e-6, 1.0), sharpness)
    share = powered / powered.sum(axis=0, keepdims=True)
    reach = np.clip(np.max(field, axis=0) * 1.5, 0.0, 1.0)  # fades out beyond the spread
    return (share * reach[None]).astype(np.float32)


class DefaultMatter:
    """``matte(image, masks, context=None) -> (k, 3, H, W)`` tri-mattes (module docstring)."""

    name = "default"

    def __init__(self, device: str = "cpu", config: MatterConfig | None = None):
        self.device = device
        self.config = config or MatterConfig()

    def matte(self, image: np.ndarray, masks: np.ndarray, context: ImageContext | None = None) -> np.ndarray:
        """image: (H, W, 3) uint8 RGB; masks: (k, H, W) float32 in [0, 1] coarse instance masks.

        Returns (k, 3, H, W) float32 in [0, 1], channels [α_t, α_r, α_b], Σ_i α_t,i ≤ 1.
        (The engine calls :meth:`alphas`: the same α_t without the (k, 3, H, W) array.)
        """
        a = self.alphas(image, masks, context)
        k, H, W = a.shape
        out = np.empty((k, 3, H, W), np.float32)
        out[:, 0] = a
        del a
        total = out[:, 0].sum(axis=0)
        for i in range(k):
            np.subtract(total, out[i, 0], out=out[i, 1])
            np.subtract(1.0, total, out=out[i, 2])
        return out

    def alphas(self, image: np.ndarray, masks: np.ndarray, context: ImageContext | None = None) -> np.ndarray:
        """image: (H, W, 3) uint8 RGB; masks: (k, H, W) float32 in [0, 1] coarse instance masks.

        Returns (k, H, W) float32 in [0, 1]: the unrefined α_t of every instance, Σ_i α_t,i ≤ 1
        (α_r and α_b follow: Σ_{j≠i} α_j and 1 − Σ_j α_j). The only full-resolution memory is the
        result and one (H, W) temporary.
        """
        cfg = self.config
        ctx = context or ImageContext(image)
        H, W = image.shape[:2]
        k = masks.shape[0]
        alphas = np.zeros((k, H, W), np.float32)
        if k == 0:
            return alphas
        A = embedded.human_alpha(ctx, self.device)
        s = min(1.0, cfg.work_side / max(H, W))
        wsize = (max(1, round(W * s)), max(1, round(H * s)))
        small = np.stack([cv2.resize(m.astype(np.float32, copy=False), wsize, interpolation=cv2.INTER_AREA)
                          for m in masks]) if s < 1.0 else masks.astype(np.float32)
        own = ownership(small, cfg.spread * max(wsize), cfg.sharpness)

        # where an instance's mask is confident but the human alpha is weak, the human matter
        # dropped that person: its own alpha source becomes max(A, the mask snapped to the photo's
        # edges), weighted by how much of its mask the human alpha misses.
        fill: dict[int, np.ndarray] = {}
        if cfg.fallback:
            work_img = cv2.resize(image, wsize, interpolation=cv2.INTER_AREA) if s < 1.0 else image
            A_small = cv2.resize(A, wsize, interpolation=cv2.INTER_AREA) if s < 1.0 else A
            r = max(2, round(max(wsize) / 150))
            for i in range(k):
                conf = small[i] > 0.5
                if conf.sum() < 16:
                    continue
                coverage = float(A_small[conf].mean())
                weight = float(np.clip((0.85 - coverage) / 0.35, 0.0, 1.0))
                if weight > 0.0:
                    snapped = np.clip(guided_filter(work_img, small[i], radius=r, eps=1e-3), 0, 1)
                    fill[i] = weight * snapped

        # written in place, one instance at a time; the upsampled ownership and fallback reuse one
        # (H, W) buffer each (fresh full-resolution allocations are what costs at 24 MP)
        o_buf = np.empty((H, W), np.float32) if s < 1.0 else None
        f_buf = np.empty((H, W), np.float32) if s < 1.0 and fill else None
        for i in range(k):
            o = cv2.resize(own[i], (W, H), dst=o_buf, interpolation=cv2.INTER_LINEAR) if s < 1.0 else own[i]
            if i in fill:
                f = cv2.resize(fill[i], (W, H), dst=f_buf, interpolation=cv2.INTER_LINEAR) if s < 1.0 else fill[i]
                np.maximum(f, A, out=f)
                np.multiply(o, f, out=alphas[i])
            else:
                np.multiply(o, A, out=alphas[i])
        del o_buf, f_buf
        return consistent_alphas(alphas)  # clip to [0, 1]; Σ > 1 (fallback masks) scaled down


@register("matter", "default")
def build_default_matter(weights: str | None = None, device: str = "cpu", **options) -> DefaultMatter:
    return DefaultMatter(device=device, config=MatterConfig(**options))
