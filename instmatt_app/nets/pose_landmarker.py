"""Per-person soft masks from mediapipe's pose landmarker (BlazePose GHUM full, Apache-2.0).

The Tasks-API bundle is built at set-up from the two tflite files inside the mediapipe 0.10.14
wheel (see :mod:`instmatt_app.model_manager`). Each detected person comes with a soft
segmentation mask at the input resolution and 33 landmarks.
"""
from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Pose", "PoseSegmenter"]

os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ logging
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# mediapipe 0.10.14 calls a protobuf API that newer protobuf marks deprecated, once per photo: noise
# a user cannot act on
warnings.filterwarnings("ignore", message=r"SymbolDatabase\.GetPrototype\(\) is deprecated", category=UserWarning)

_MEDIAPIPE = None   # the mediapipe module, once imported by _import_mediapipe


def _import_mediapipe():
    """``import mediapipe`` (and its Tasks API), then let go of the frames its import leaves alive.

    mediapipe keeps the ImportError of an optional package it does not need here (``sounddevice``,
    in ``mediapipe.tasks.python.audio.core.audio_record.sd_error``), and that error's traceback keeps
    every frame that was running when mediapipe was first imported, with all their local variables.
    In the app that import happens inside the first photo's background job, so the first photo's
    whole result and document (GBs for a big photo) stayed in memory for good. The errors are kept,
    their tracebacks dropped.
    """
    global _MEDIAPIPE
    if _MEDIAPIPE is None:
        import sys

        import mediapipe as mp
        import mediapipe.tasks.python  # noqa: F401 - the Tasks API

        for name, module in list(sys.modules.items()):
            if name.startswith("mediapipe"):
                for value in list(getattr(module, "__dict__", {}).values()):
                    if isinstance(value, BaseException):
                        value.__traceback__ = None
        _MEDIAPIPE = mp
    return _MEDIAPIPE


@dataclass
class Pose:
    """One person found by the pose landmarker, in the coordinates of the image it was run on.

    mask: (h, w) float32 in [0, 1]; landmarks: (33, 3) float32 (x px, y px, visibility in [0, 1]);
    score: mean visibility of the torso landmarks (shoulders, hips), in [0, 1].
    """

    mask: np.ndarray
    landmarks: np.ndarray
    score: float

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Bounding box (x0, y0, x1, y1) of the mask above 0.5 (falls back to the landmarks)."""
        ys, xs = np.nonzero(self.mask > 0.5)
        if len(xs):
            return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
        lm = self.landmarks
        return float(lm[:, 0].min()), float(lm[:, 1].min()), float(lm[:, 0].max()), float(lm[:, 1].max())


class PoseSegmenter:
    """Callable ``(h, w, 3) uint8 RGB, num_poses -> list[Pose]``.

    One mediapipe landmarker per ``num_poses`` value is created lazily and reused (creation costs
    ~50 ms). Thread-safe through a lock (mediapipe graphs are not re-entrant).
    """

    TORSO = (11, 12, 23, 24)

    def __init__(self, bundle_path: str | Path, min_confidence: float = 0.2):
        self.bundle_path = str(bundle_path)
        self.min_confidence = min_confidence
        self._landmarkers: dict[int, object] = {}
        self._lock = threading.Lock()

    def _landmarker(self, num_poses: int):
        if num_poses not in self._landmarkers:
            _import_mediapipe()
            from mediapipe.tasks.python import BaseOptions, vision

            opts = vision.PoseLandmarkerOptions(
                base_options=BaseOptions(model_asset_path=self.bundle_path),
                running_mode=vision.RunningMode.IMAGE, num_poses=num_poses,
                min_pose_detection_confidence=self.min_confidence,
                min_pose_presence_confidence=self.min_confidence,
                min_tracking_confidence=self.min_confidence,
                output_segmentation_masks=True)
            self._landmarkers[num_poses] = vision.PoseLandmarker.create_from_options(opts)
        return self._landmarkers[num_poses]

    def __call__(self, image: np.ndarray, num_poses: int = 6) -> list[Pose]:
        mp = _import_mediapipe()

        h, w = image.shape[:2]
        with self._lock:
            result = self._landmarker(num_poses).detect(
                mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
        poses = []
        for i, lms in enumerate(result.pose_landmarks):
            lm = np.array([(p.x * w, p.y * h, p.visibility if p.visibility is not None else 0.0) for p in lms],
                          dtype=np.float32)
            mask = (result.segmentation_masks[i].numpy_view().astype(np.float32)
                    if result.segmentation_masks else np.zeros((h, w), np.float32))
            if mask.ndim == 3:
                mask = mask[..., 0]
            score = float(np.mean(lm[list(self.TORSO), 2]))
            poses.append(Pose(mask=np.clip(mask, 0.0, 1.0), landmarks=lm, score=score))
        return poses

    def close(self) -> None:
        with self._lock:
            for lmk in self._landmarkers.values():
                lmk.close()
            self._landmarkers.clear()
