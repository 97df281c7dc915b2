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

__all__ = ["human_matter", "pose_segmenter", "human_alpha", "person_boxes", "BOX_DETECTORS", "EMBEDDED_MODEL_NAMES"]

EMBEDDED_MODEL_NAMES = ("rvm-mobilenetv3", "pose-landmarker-full", "movenet-multipose", "ssdlite-persons")


@functools.lru_cache(maxsize=2)
def human_matter(device: str = "cpu") -> "HumanMatter":
    from instmatt_app.nets.rvm import HumanMatter

    return HumanMatter(model_path("rvm-mobilenetv3"), device=device)


@functools.lru_cache(maxsize=1)
def pose_segmenter() -> "PoseSegmenter":
    from instmatt_app.nets.pose_landmarker import PoseSegmenter

    return PoseSegmenter(model_path("pose-landmarker-full"))


BOX_DETECTORS = ("auto", "movenet", "movenet+ssdlite", "movenet+centernet")


@functools.lru_cache(maxsize=4)
def person_boxes(device: str = "cpu", kind: str = "auto"):
    """Person box detector, or None when this build ships none.

    kind: "movenet" (MoveNet-MultiPose alone, Apache-2.0), "movenet+ssdlite" (fused with the SSDLite person
    detector, MIT: more people at the same precision, docs/detectors.md; run on the photo and on 2 x 2 tiles
    of it, 3 x 3 in a crowd), "movenet+centernet" (fused with CenterNet, whose upstream states no licence, so
    it is not shipped: it needs ``centernet.onnx`` converted into the models folder by
    tools/convert_tfjs_models.py), or "auto": SSDLite's fusion, else CenterNet's when that
    file is there, else MoveNet alone (through the whole pipeline SSDLite's fusion measured at least as good as
    CenterNet's on every data set). A kind whose model file is missing raises :class:`ModelError`; so does a
    corrupt file, also for "auto".
    """
    from instmatt_app.nets.movenet import MoveNetMultiPose
    from instmatt_app.nets.person_boxes import FusedPersonDetector

    if kind not in BOX_DETECTORS:
        raise ValueError(f"unknown person box detector {kind!r} (one of {', '.join(BOX_DETECTORS)})")
    try:
        movenet_path = model_path("movenet-multipose")
    except ModelError:
        if kind == "auto":
            return None
        raise
    if kind in ("auto", "movenet+ssdlite"):
        try:
            ssdlite_path = model_path("ssdlite-persons")
        except ModelError:  # missing (a build without it): auto looks further; a corrupt file is an error
            if kind != "auto":
                raise
        else:
            # also on 2 x 2 tiles, and 3 x 3 once 6 people are found: small people and crowds (MoveNet finds at
            # most 6 per pass); measured better (docs/detectors.md)
            return FusedPersonDetector.from_files(movenet_path, ssdlite_path, device, partner="ssdlite", grid=2,
                                                  crowd_grid=3, crowd_people=6)
    centernet_path = movenet_path.parent / "centernet.onnx"
    if kind == "movenet+centernet" or (kind == "auto" and centernet_path.is_file()):
        if not centernet_path.is_file():
            raise ModelError(f"{centernet_path} is missing: convert it with tools/convert_tfjs_models.py")
        return FusedPersonDetector.from_files(movenet_path, centernet_path, device, partner="centernet")
    return MoveNetMultiPose(movenet_path, device)


def human_alpha(ctx: "ImageContext", device: str = "cpu") -> np.ndarray:
    """(H, W) float32 in [0, 1]: the alpha of all humans in ``ctx.image`` (cached in the context)."""
    return ctx.get("human_alpha", lambda: human_matter(device)(ctx.image), stage="human_alpha")
