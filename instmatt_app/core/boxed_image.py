"""An image stored only inside a box: a person's colour layer without the empty rest of the photo.

A person's colour L_i matters only where the person's alpha is above zero (Eq. 2 weighs it by α_i),
and most people cover a small part of the photo. Storing each colour layer cropped to its box
instead of full size is what keeps a 60 MP photo with several people in memory: four full-size
float32 colour layers are 2.9 GB there; cropped to their boxes they were 0.87 GB on the 60 MP
group photo we measured (``docs/benchmarks.md``).

Outside its box a :class:`BoxedImage` reads as zero. The values there are never used, because the
person's alpha is zero there; writing outside the box (a brush stroke that extends a person) grows
the box.

numpy only.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["BoxedImage"]


class BoxedImage:
    """An (H, W, C) image whose pixels are stored only inside ``box``; zero outside.

    size: (H, W) of the whole image. box: (y0, y1, x0, x1), half-open, inside the image (may be
    empty). pixels: (y1 − y0, x1 − x0, C) array (float32 [0, 1] for colour layers); it may be a
    view of a larger buffer (the colour estimation returns all layers as views of one).
    """

    __slots__ = ("size", "box", "pixels")

    def __init__(self, size: tuple[int, int], box: tuple[int, int, int, int], pixels: np.ndarray):
        H, W = int(size[0]), int(size[1])
        y0, y1, x0, x1 = (int(v) for v in box)
        if not (0 <= y0 <= y1 <= H and 0 <= x0 <= x1 <= W):
            raise ValueError(f"box {box} is not inside an image of {H}×{W}")
        if pixels.ndim != 3 or pixels.shape[:2] != (y1 - y0, x1 - x0):
            raise ValueError(f"pixels of shape {pixels.shape} do not fill the box {box}")
        self.size = (H, W)
        self.box = (y0, y1, x0, x1)
        self.pixels = pixels

    # ------------------------------------------------------------------ construction
    @classmethod
    def crop(cls, full: np.ndarray, box: tuple[int, int, int, int] | None) -> "BoxedImage":
        """A copy of ``full`` (H, W, C) inside ``box`` (None: an empty box)."""
        H, W = full.shape[:2]
        y0, y1, x0, x1 = box if box is not None else (0, 0, 0, 0)
        return cls((H, W), (y0, y1, x0, x1), np.array(full[y0:y1, x0:x1]))

    # ------------------------------------------------------------------ array-like view
    @property
    def shape(self) -> tuple[int, int, int]:
        return self.size + (self.pixels.shape[2],)

    @property
    def dtype(self) -> np.dtype:
        return self.pixels.dtype

    @property
    def ndim(self) -> int:
        return 3

    @property
    def nbytes(self) -> int:
        """Bytes actually stored (the box only)."""
        return self.pixels.nbytes

    def full(self) -> np.ndarray:
        """(H, W, C) array: the pixels inside the box, zero outside (a new array)."""
        out = np.zeros(self.shape, self.pixels.dtype)
        y0, y1, x0, x1 = self.box
        out[y0:y1, x0:x1] = self.pixels
        return out

    def __array__(self, dtype=None, copy=None):
        out = self.full()
        return out if dtype is None else out.astype(dtype, copy=False)

    def region(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """(y1 − y0, x1 − x0, C): the image on that rectangle (clipped to the image).

        A view of the stored pixels when the rectangle lies inside the box (do not write to it),
        otherwise a new array, zero outside the box."""
        H, W = self.size
        y0, y1, x0, x1 = max(0, y0), min(H, y1), max(0, x0), min(W, x1)
        y1, x1 = max(y0, y1), max(x0, x1)
        by0, by1, bx0, bx1 = self.box
        if by0 <= y0 and y1 <= by1 and bx0 <= x0 and x1 <= bx1:
            return self.pixels[y0 - by0:y1 - by0, x0 - bx0:x1 - bx0]
        out = np.zeros((y1 - y0, x1 - x0, self.pixels.shape[2]), self.pixels.dtype)
        iy0, iy1, ix0, ix1 = max(y0, by0), min(y1, by1), max(x0, bx0), min(x1, bx1)
        if iy0 < iy1 and ix0 < ix1:
            out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = self.pixels[iy0 - by0:iy1 - by0, ix0 - bx0:ix1 - bx0]
        return out

    def __getitem__(self, key) -> np.ndarray:
        """``img[y0:y1, x0:x1]`` (:meth:`region`) or ``img[y0:y1:s, x0:x1:t]`` (positive steps)."""
        if (isinstance(key, tuple) and len(key) == 2 and all(isinstance(s, slice) for s in key)
                and all(s.step is None or s.step > 0 for s in key)):
            (ys, xs), (H, W) = key, self.size
            y0, y1, sy = ys.indices(H)
            x0, x1, sx = xs.indices(W)
            out = self.region(y0, y1, x0, x1)
            return out if sy == sx == 1 else out[::sy, ::sx]
        raise TypeError("a BoxedImage is indexed by two slices, img[y0:y1, x0:x1]; use .full() for the whole array")

    # ------------------------------------------------------------------ changes
    def write(self, y0: int, y1: int, x0: int, x1: int, values: np.ndarray) -> None:
        """Set the image on a rectangle to ``values`` (y1 − y0, x1 − x0, C), growing the box to
        cover it (new area outside both is zero)."""
        H, W = self.size
        if not (0 <= y0 <= y1 <= H and 0 <= x0 <= x1 <= W):
            raise ValueError(f"rectangle {(y0, y1, x0, x1)} is not inside an image of {H}×{W}")
        if y0 == y1 or x0 == x1:
            return
        by0, by1, bx0, bx1 = self.box
        if by0 == by1 or bx0 == bx1:  # empty: the box becomes the rectangle
            self.box = (y0, y1, x0, x1)
            self.pixels = np.array(values, self.pixels.dtype).reshape(y1 - y0, x1 - x0, self.pixels.shape[2])
            return
        ny0, ny1, nx0, nx1 = min(by0, y0), max(by1, y1), min(bx0, x0), max(bx1, x1)
        if (ny0, ny1, nx0, nx1) != self.box:
            grown = np.zeros((ny1 - ny0, nx1 - nx0, self.pixels.shape[2]), self.pixels.dtype)
            grown[by0 - ny0:by1 - ny0, bx0 - nx0:bx1 - nx0] = self.pixels
            self.box, self.pixels = (ny0, ny1, nx0, nx1), grown
        self.pixels[y0 - ny0:y1 - ny0, x0 - nx0:x1 - nx0] = values

    def map(self, fn: Callable[[np.ndarray], np.ndarray]) -> "BoxedImage":
        """A BoxedImage with ``fn`` (a per-pixel operation) applied to the stored pixels."""
        return BoxedImage(self.size, self.box, fn(self.pixels))

    def copy(self) -> "BoxedImage":
        return BoxedImage(self.size, self.box, self.pixels.copy())

    def __repr__(self) -> str:
        return f"BoxedImage(size={self.size}, box={self.box}, dtype={self.pixels.dtype})"
