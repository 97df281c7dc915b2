"""PNG export: 8- or 16-bit RGBA cut-outs, greyscale alpha mattes, the composite.

All writers take float32 arrays in [0, 1] and quantise to the requested depth
(round(x · (2^bits − 1))); every file is written atomically (:mod:`instmatt_app.io.atomic`).
Encoding uses OpenCV, which writes 16-bit PNGs (PIL cannot write 16-bit RGB/RGBA PNG).
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from instmatt_app.io.atomic import atomic_write_bytes

__all__ = ["quantise", "encode_png", "write_png", "write_rgba_png", "write_alpha_png"]


def quantise(x: np.ndarray, bit_depth: int) -> np.ndarray:
    """float in [0, 1] -> uint8 (bit_depth 8) or uint16 (bit_depth 16), rounded (half to even)
    and clipped. One float32 temporary of x's size (a 60 MP RGBA plane is 0.9 GiB)."""
    if bit_depth not in (8, 16):
        raise ValueError(f"bit depth must be 8 or 16; got {bit_depth}")
    top = 255.0 if bit_depth == 8 else 65535.0
    t = np.multiply(x, np.float32(top), dtype=np.float32)
    np.rint(t, out=t)
    np.clip(t, 0.0, top, out=t)
    return t.astype(np.uint8 if bit_depth == 8 else np.uint16)


def encode_png(arr: np.ndarray, compression: int = 3) -> bytes:
    """PNG bytes of a uint8/uint16 array: (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA."""
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR if arr.shape[2] == 3 else cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", arr, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:  # pragma: no cover
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def write_png(path: str | os.PathLike, rgb: np.ndarray, bit_depth: int = 8) -> Path:
    """Write (H, W, 3) RGB or (H, W, 4) RGBA float32 [0, 1] as a PNG. Returns the path."""
    atomic_write_bytes(path, encode_png(quantise(rgb, bit_depth)))
    return Path(path)


def write_rgba_png(path: str | os.PathLike, rgb: np.ndarray, alpha: np.ndarray, bit_depth: int = 8) -> Path:
    """Write a cut-out: colour (H, W, 3) and straight (not premultiplied) alpha (H, W)."""
    atomic_write_bytes(path, encode_png(np.dstack([quantise(rgb, bit_depth), quantise(alpha, bit_depth)])))
    return Path(path)


def write_alpha_png(path: str | os.PathLike, alpha: np.ndarray, bit_depth: int = 8) -> Path:
    """Write an alpha matte (H, W) float32 [0, 1] as a greyscale PNG."""
    atomic_write_bytes(path, encode_png(quantise(alpha, bit_depth)))
    return Path(path)
