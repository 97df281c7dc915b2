"""Recolour maths for a person's colour layer: hue, saturation, lightness, tint, exposure.

All functions take and return float32 RGB arrays of shape (..., 3) with values in [0, 1]
(sRGB-encoded, like the photo). numpy only.

Parameters of :class:`Adjustments` (all 0 = no change, and then :func:`apply_adjustments` returns
the input unchanged):

* ``exposure``: photographic stops (EV), applied in linear light: ×2^EV on the linearised
  sRGB values, then re-encoded.
* ``tint``: −1 … 1, a green (−) / magenta (+) white-balance shift applied in linear light as
  channel gains (R, B) × (1 + 0.3 t), G × (1 − 0.3 t), renormalised so that the Rec. 709 luminance of
  grey is unchanged.
* ``hue``: degrees, a rotation of the colour around the grey axis (R = G = B) of RGB space, which
  keeps grey grey and the channel mean unchanged.
* ``saturation``: −1 … 1 (and above): colour distance from the pixel's luma grey scaled by
  (1 + s); −1 gives greyscale.
* ``lightness``: −1 … 1, like Photoshop's Hue/Saturation lightness: towards black
  (x (1 + l)) for l < 0, towards white (x + (1 − x) l) for l > 0.

Order: exposure, tint (linear light), then hue, saturation, lightness (sRGB values); the result
is clipped to [0, 1].
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from instmatt_app.core.boxed_image import BoxedImage

__all__ = ["Adjustments", "apply_adjustments", "srgb_to_linear", "linear_to_srgb", "hue_rotation_matrix"]

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)  # Rec. 709


@dataclass(frozen=True)
class Adjustments:
    """Colour adjustments of one person layer (immutable; make a new one to change it).

    hue: degrees; saturation, lightness, tint: −1 … 1 (saturation may exceed 1); exposure: EV.
    """

    hue: float = 0.0
    saturation: float = 0.0
    lightness: float = 0.0
    tint: float = 0.0
    exposure: float = 0.0

    @property
    def is_identity(self) -> bool:
        return all(getattr(self, f.name) == 0 for f in fields(self))

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "Adjustments":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown adjustment(s): {', '.join(sorted(unknown))}")
        return cls(**{k: float(v) for k, v in d.items()})


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB-encoded [0, 1] -> linear light [0, 1] (IEC 61966-2-1). float32 in, float32 out."""
    x = np.asarray(x, np.float32)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB encoding; values are clipped to [0, 1] first. float32."""
    x = np.clip(np.asarray(x, np.float32), 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055).astype(np.float32)


def hue_rotation_matrix(degrees: float) -> np.ndarray:
    """(3, 3) float32 rotation by ``degrees`` about the (1, 1, 1) axis of RGB space (Rodrigues)."""
    t = np.deg2rad(degrees)
    c, s = np.cos(t), np.sin(t)
    k = np.full(3, 1 / np.sqrt(3))
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    r = c * np.eye(3) + s * kx + (1 - c) * np.outer(k, k)
    return r.astype(np.float32)


def apply_adjustments(rgb: np.ndarray | BoxedImage, adj: Adjustments) -> np.ndarray | BoxedImage:
    """Apply ``adj`` to ``rgb`` (..., 3) float32 in [0, 1]; returns a new float32 array in [0, 1]
    (or ``rgb`` itself when ``adj`` is the identity). A :class:`BoxedImage` gives a BoxedImage
    with the same box."""
    if adj.is_identity:
        return rgb
    if isinstance(rgb, BoxedImage):       # a person's colour layer: adjust the pixels it stores
        return rgb.map(lambda pixels: apply_adjustments(pixels, adj))
    x = np.asarray(rgb, np.float32)
    if adj.exposure != 0 or adj.tint != 0:
        lin = srgb_to_linear(x)
        if adj.exposure != 0:
            lin *= np.float32(2.0 ** adj.exposure)
        if adj.tint != 0:
            g = np.array([1 + 0.3 * adj.tint, 1 - 0.3 * adj.tint, 1 + 0.3 * adj.tint], np.float32)
            g /= float(LUMA @ g)
            lin *= g
        x = linear_to_srgb(lin)
    else:
        x = x.copy()
    if adj.hue != 0:
        x = x @ hue_rotation_matrix(adj.hue).T
    if adj.saturation != 0:
        grey = (x @ LUMA)[..., None]
        x = grey + (x - grey) * np.float32(1.0 + adj.saturation)
    if adj.lightness != 0:
        l = np.float32(adj.lightness)
        x = x * (1 + l) if l < 0 else x + (1 - x) * l
    return np.clip(x, 0.0, 1.0).astype(np.float32, copy=False)
