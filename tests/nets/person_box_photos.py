"""Shared by the person box detector tests: the hand-checked people of two qualitative photos, loading them,
and the best IoU of each expected box with the detections."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from instmatt_app.nets.person_boxes import box_iou

# hand-checked person boxes (x0, y0, x1, y1) in the photos of ../shared/data/qualitative/images
BUS_PEOPLE = [(50, 400, 245, 905), (222, 405, 345, 860), (668, 390, 810, 880)]  # fully visible
BUS_CUT = (0, 550, 75, 875)  # cut by the left edge
ZIDANE_PEOPLE = [(750, 40, 1140, 720), (120, 200, 1150, 720)]  # Ancelotti; Zidane incl. his arm


def load_photo(data_dir: Path, name: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB of ../shared/data/qualitative/images/<name>."""
    return np.array(Image.open(data_dir / "qualitative" / "images" / name).convert("RGB"))


def best_iou(dets, expected) -> np.ndarray:
    """(len(expected),) float: each expected box's best IoU with the detections' boxes (0 without any)."""
    if not dets:
        return np.zeros(len(expected))
    return box_iou(np.array(expected, float), np.array([d.box for d in dets], float)).max(axis=1)
