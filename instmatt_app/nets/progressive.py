"""Uncertainty bands and progressive fusion of the OS8/OS4/OS1 tri-mattes (MGMatting's PRN as
InstMatt's official inference applies it to all three tri-matte channels jointly).

* band(A, s): pixels where some channel of A lies in [1/255, 1 − 1/255] (float32 compares),
  dilated with an s×s elliptical structuring element (OpenCV ``MORPH_ELLIPSE``), one band for all
  channels. Dilation commutes with the union over channels, so the union is taken first.
* fusion: A = α_os8; U4 = band(A, 15); A = where(U4, α_os4, A); U1 = band(A, 7);
  A = where(U1, α_os1, A). The refiner's output is later accepted only inside U1.

Works on CPU and CUDA tensors; the dilation is an exact integer convolution (counts of 0/1 pixels),
so the bands equal ``cv2.dilate`` bit for bit (zero/“−inf” border outside the image).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["OS4_KERNEL", "OS1_KERNEL", "uncertainty_band", "dilate", "ProgressiveFusion", "progressive_fusion",
           "accept_in_band"]

OS4_KERNEL = 15   # official self_refine_width1 (30) // 2
OS1_KERNEL = 7    # official self_refine_width2 (15) // 2
_LOW = np.float32(1.0 / 255.0)
_HIGH = np.float32(1.0 - 1.0 / 255.0)


@lru_cache(maxsize=8)
def _ellipse(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size)).astype(np.float32)


def dilate(mask: torch.Tensor, size: int) -> torch.Tensor:
    """Binary dilation with an size×size ellipse.

    mask: (N, 1, H, W) bool. Returns (N, 1, H, W) bool; pixels outside the image never count.
    """
    if size <= 1:
        return mask.clone()
    kernel = torch.from_numpy(_ellipse(size)).to(mask.device)[None, None]
    before, after = size // 2, size - 1 - size // 2          # OpenCV's anchor for even sizes too
    padded = F.pad(mask.float(), (before, after, before, after))
    counts = F.conv2d(padded, kernel.float())
    return counts > 0.5  # exact integer counts; 0.5 is robust to any conv algorithm's rounding


def uncertainty_band(alpha: torch.Tensor, size: int) -> torch.Tensor:
    """Band of uncertain pixels of a tri-matte stack.

    alpha: (N, C, H, W) float in [0, 1]. Returns (N, 1, H, W) bool: True where any channel is in
    [1/255, 1 − 1/255], dilated by an size×size ellipse.
    """
    a = alpha.float()
    low = torch.tensor(_LOW, device=a.device)
    high = torch.tensor(_HIGH, device=a.device)
    unknown = ((a >= low) & (a <= high)).any(dim=1, keepdim=True)
    return dilate(unknown, size)


@dataclass
class ProgressiveFusion:
    """Result of :func:`progressive_fusion` for N samples of size H×W.

    fused: (N, 3, H, W) float32 in [0, 1], the refiner's input P.
    band_os4, band_os1: (N, 1, H, W) bool, the U4 and U1 uncertainty bands.
    """

    fused: torch.Tensor
    band_os4: torch.Tensor
    band_os1: torch.Tensor


def progressive_fusion(alpha_os8: torch.Tensor, alpha_os4: torch.Tensor, alpha_os1: torch.Tensor,
                       os4_kernel: int = OS4_KERNEL, os1_kernel: int = OS1_KERNEL) -> ProgressiveFusion:
    """Fuse the three tri-matte predictions (each (N, 3, H, W) float32 in [0, 1])."""
    band4 = uncertainty_band(alpha_os8, os4_kernel)
    coarse = torch.where(band4, alpha_os4, alpha_os8)
    band1 = uncertainty_band(coarse, os1_kernel)
    fused = torch.where(band1, alpha_os1, coarse)
    return ProgressiveFusion(fused=fused, band_os4=band4, band_os1=band1)


def accept_in_band(before: torch.Tensor, refined: torch.Tensor, band: torch.Tensor) -> torch.Tensor:
    """``refined`` inside the band, ``before`` outside (official: MIR output accepted only in U1).

    before, refined: (N, 3, H, W); band: (N, 1, H, W) bool. Returns (N, 3, H, W).
    """
    return torch.where(band, refined, before)
