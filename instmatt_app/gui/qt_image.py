"""numpy uint8 images ↔ QImage (copies, so the numpy buffer can be freed)."""
from __future__ import annotations

import numpy as np
from PySide6.QtGui import QImage

__all__ = ["qimage_from_array", "array_from_qimage"]


def qimage_from_array(arr: np.ndarray) -> QImage:
    """(H, W) grey, (H, W, 3) RGB or (H, W, 4) straight-alpha RGBA uint8 → an independent QImage.

    RGBA becomes premultiplied ARGB for fast drawing.
    """
    arr = np.ascontiguousarray(arr)
    if arr.dtype != np.uint8:
        raise TypeError(f"expected uint8 image, got {arr.dtype}")
    h, w = arr.shape[:2]
    if arr.ndim == 2:
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format_Grayscale8)
    elif arr.shape[2] == 3:
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format_RGB888)
    elif arr.shape[2] == 4:
        img = QImage(arr.data, w, h, arr.strides[0], QImage.Format_RGBA8888)
        return img.convertToFormat(QImage.Format_ARGB32_Premultiplied)
    else:
        raise ValueError(f"unsupported image shape {arr.shape}")
    return img.copy()


def array_from_qimage(img: QImage) -> np.ndarray:
    """QImage → (H, W, 4) uint8 RGBA (straight alpha) copy; used by tests and screenshots."""
    img = img.convertToFormat(QImage.Format_RGBA8888)
    h, w = img.height(), img.width()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.bytesPerLine() * h).reshape(h, img.bytesPerLine())
    return buf[:, : w * 4].reshape(h, w, 4).copy()
