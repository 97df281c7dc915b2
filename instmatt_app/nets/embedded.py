"""The embedded default models, built once per process and shared by the default detector and matter."""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from instmatt_app.model_manager import ModelError, model_path

if TYPE_CHECKING:
    from instmatt_app.nets.image_context import ImageContext
    from instmatt_app.nets.pose_landmarker import PoseSegmenter
    from instmatt_app.nets.rvm import HumanMatter

__all__ = ["human_matter", "pose_segmenter", "human_alpha", "person_boxes", "EMBEDDED_MODEL_NAMES"]

EMBEDDED_MODEL_NAMES = ("rvm-mobilenetv3", "pose-landmarker-full", "movenet-multipose")


@functools.lru_cache(maxsize=2)
def human_matter(device: str = "cpu") -> "HumanMatter":
    from instmatt_app.nets.rvm import HumanMatter

    return HumanMatter(model_path("rvm-mobilenetv3"), device=device)


@functools.lru_cache(maxsize=1)
def pose_segmenter() -> "PoseSegmenter":
    from instmatt_app.nets.pose_landmarker import PoseSegmenter

    return PoseSegmenter(model_path("pose-landmarker-full"))


@functools.lru_cache(maxsize=2)
def person_boxes(device: str = "cpu"):
    """Person box detector: MoveNet-MultiPose (Apache-2.0), or None when this build does not ship it.

    CenterNet fused with MoveNet finds more people (docs/detectors.md) but its upstream states no
    licence, so it is not shipped; a user who converts it (tools/convert_tfjs_models.py) into the
    models folder as ``centernet.onnx`` gets the fused detector.
    """
    from instmatt_app.nets.movenet import MoveNetMultiPose
    from instmatt_app.nets.person_boxes import FusedPersonDetector

    try:
        movenet_path = model_path("movenet-multipose")
    except ModelError:
        return None
    centernet_path = movenet_path.parent / "centernet.onnx"
    if centernet_path.is_file():
        return FusedPersonDetector.from_files(movenet_path, centernet_path, device)
    return MoveNetMultiPose(movenet_path, device)


def human_alpha(ctx: "ImageContext", device: str = "cpu") -> np.ndarray:
    """(H, W) float32 in [0, 1]: the alpha of all humans in ``ctx.image`` (cached in the context)."""
    return ctx.get("human_alpha", lambda: human_matter(device)(ctx.image), stage="human_alpha")
