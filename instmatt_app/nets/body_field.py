"""Where a person's body can be, from their skeleton: a soft field around the visible limbs.

A pose landmarker segments "the person in this crop", which bleeds into a neighbour standing in
the same crop; a box cuts people along straight lines. Both are tamed by the skeleton: a pixel far
from every visible limb of a person is not that person. The field is 1 on and near the limbs and
falls to 0 at a distance proportional to the person's shoulder width.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["BLAZEPOSE_LIMBS", "COCO_LIMBS", "skeleton_field"]

# BlazePose GHUM (33 landmarks): nose 0, ears 7/8, shoulders 11/12, elbows 13/14, wrists 15/16,
# hips 23/24, knees 25/26, ankles 27/28, heels 29/30, feet 31/32.
BLAZEPOSE_LIMBS = [(11, 12), (11, 23), (12, 24), (23, 24), (11, 24), (12, 23), (11, 13), (13, 15), (12, 14),
                   (14, 16), (23, 25), (25, 27), (24, 26), (26, 28), (27, 31), (28, 32), (0, 11), (0, 12),
                   (7, 8)]
BLAZEPOSE_SHOULDERS, BLAZEPOSE_HEAD = (11, 12), (0, 7, 8)
# COCO-17 (MoveNet): nose 0, ears 3/4, shoulders 5/6, elbows 7/8, wrists 9/10, hips 11/12, knees 13/14,
# ankles 15/16.
COCO_LIMBS = [(5, 6), (5, 11), (6, 12), (11, 12), (5, 12), (6, 11), (5, 7), (7, 9), (6, 8), (8, 10), (11, 13),
              (13, 15), (12, 14), (14, 16), (0, 5), (0, 6), (3, 4)]
COCO_SHOULDERS, COCO_HEAD = (5, 6), (0, 3, 4)


def skeleton_field(keypoints: np.ndarray, shape: tuple[int, int], min_visibility: float = 0.3,
                   reach: float = 0.75) -> np.ndarray | None:
    """Soft body field of one person.

    keypoints: (33, 3) BlazePose or (17, 3) COCO keypoints (x px, y px, visibility in [0, 1]) in the
    coordinates of an image of ``shape`` (h, w). reach: how far the field extends beyond the limbs,
    in shoulder widths. Returns (h, w) float32 in [0, 1], or None when too few keypoints are
    visible to say anything (the caller then keeps its mask as it is).
    """
    kp = np.asarray(keypoints, np.float32)
    if kp.shape[0] == 33:
        limbs, shoulders, head = BLAZEPOSE_LIMBS, BLAZEPOSE_SHOULDERS, BLAZEPOSE_HEAD
    elif kp.shape[0] == 17:
        limbs, shoulders, head = COCO_LIMBS, COCO_SHOULDERS, COCO_HEAD
    else:
        raise ValueError(f"keypoints must be (33, 3) or (17, 3), got {kp.shape}")
    visible = kp[:, 2] >= min_visibility
    if visible.sum() < 4:
        return None
    pts = kp[visible, :2]
    if visible[list(shoulders)].all():
        scale = float(np.linalg.norm(kp[shoulders[0], :2] - kp[shoulders[1], :2]))
    else:
        scale = 0.0
    # a person seen from the side has narrow shoulders: never less than a quarter of their height
    height = float(np.ptp(pts[:, 1])) if len(pts) > 1 else 0.0
    scale = max(scale, 0.25 * height, 4.0)
    h, w = shape
    canvas = np.zeros((h, w), np.uint8)
    thick = max(1, int(round(0.35 * scale)))
    for a, b in limbs:
        if visible[a] and visible[b]:
            cv2.line(canvas, tuple(int(v) for v in kp[a, :2]), tuple(int(v) for v in kp[b, :2]), 255, thick)
    for j in head:
        if visible[j]:
            cv2.circle(canvas, tuple(int(v) for v in kp[j, :2]), max(1, int(0.45 * scale)), 255, -1)
    if not canvas.any():
        return None
    dist = cv2.distanceTransform(255 - canvas, cv2.DIST_L2, 5)
    return np.clip(1.0 - dist / (reach * scale), 0.0, 1.0).astype(np.float32)
