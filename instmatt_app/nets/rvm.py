"""Human alpha of all people at once: Robust Video Matting (MobileNetV3, ONNX, GPL-3.0).

RVM predicts one alpha matte for every human in the frame. It is the "semantic" half of the
embedded default: per-person mattes are obtained by splitting this alpha among the detected
people (:mod:`instmatt_app.nets.default_matter`).

RVM is a recurrent video model; for a still photo we run it ``passes`` times on the same frame,
feeding its recurrent state back (the first pass starts from zeros and is the least accurate).
Its own deep guided filter brings the low-resolution prediction back to the input resolution with
sharp edges; photos larger than ``max_input_side`` are processed at that size and the alpha is
upsampled with a guided filter on the full-resolution photo.
"""
from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from instmatt_app.nets.guided_filter import guided_upsample
from instmatt_app.nets.onnx_session import onnx_session

__all__ = ["HumanMatter"]


class HumanMatter:
    """Callable: ``(H, W, 3) uint8 RGB -> (H, W) float32 alpha in [0, 1]`` of all humans.

    model_path: the RVM ONNX file (``models/rvm_mobilenetv3_fp32.onnx``).
    internal_side: long side of RVM's internal (downsampled) resolution; 512 as the authors advise
        for photos of about 1-2 MP.
    max_input_side: photos are resized to at most this long side before RVM (its refiner works at
        the input resolution; beyond ~2.5 MP it costs time and memory for little gain).
    passes: recurrent passes over the same frame (>= 1).
    """

    def __init__(self, model_path: str | Path, device: str = "cpu", internal_side: int = 512,
                 max_input_side: int = 2048, passes: int = 2):
        self.session = onnx_session(model_path, device)
        self.internal_side = internal_side
        self.max_input_side = max_input_side
        self.passes = max(1, passes)
        self._lock = threading.Lock()  # one ORT session, callers from several threads

    def __call__(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        scale = min(1.0, self.max_input_side / max(h, w))
        work = image if scale >= 1.0 else cv2.resize(
            image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        src = np.ascontiguousarray(work.transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)
        ratio = np.array([min(1.0, self.internal_side / max(work.shape[:2]))], dtype=np.float32)
        rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4
        with self._lock:
            for _ in range(self.passes):
                _fgr, pha, *rec = self.session.run(None, {
                    "src": src, "r1i": rec[0], "r2i": rec[1], "r3i": rec[2], "r4i": rec[3],
                    "downsample_ratio": ratio})
        alpha = np.clip(pha[0, 0], 0.0, 1.0).astype(np.float32)
        if scale < 1.0:
            alpha = guided_upsample(alpha, image)
        return alpha
