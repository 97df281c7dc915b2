"""The embedded default detector on a real group photo: every person in a row gets their own pose."""
from __future__ import annotations

import numpy as np
import pytest

from instmatt_app.io.image_io import load_image
from instmatt_app.nets.default_detector import DefaultDetector, _box_fit

GROUP = "coco_persons/images/coco/000000064523.jpg"  # eleven people in two rows, shoulder to shoulder


@pytest.fixture(scope="module")
def group(data_dir):
    image = load_image(data_dir / GROUP)
    assert max(image.shape[:2]) <= 1024  # the detector works on it as it is
    return image


def test_a_box_whose_wide_crop_shows_a_neighbour_gets_its_own_pose(group):
    det = DefaultDetector("cpu")
    box = (206, 214, 294, 442)  # the third person of the front row, a neighbour on each side
    wide = det._poses_in_crop(group, box, 2, "box+pose")
    assert wide and max(_box_fit(c.mask, box) for c in wide) < 0.4   # the landmarker gives a neighbour
    tight = det._poses_in_crop(group, box, 2, "box+pose", tight=True)
    best = max(tight, key=lambda c: _box_fit(c.mask, box))
    assert _box_fit(best.mask, box) >= 0.6
    ys, xs = np.nonzero(best.mask > 0.5)
    assert box[0] <= xs.mean() <= box[2] and best.keypoints is not None
    assert box[0] <= best.keypoints[0, 0] <= box[2]                  # its nose is in the box


def test_a_row_of_people_is_found(group):
    dets = DefaultDetector("cpu").detect(group)
    assert len(dets) >= 9            # 7 before the tight second look
    centres = sorted((d.box[0] + d.box[2]) / 2 for d in dets)
    assert min(np.diff(centres)) > 5  # no person twice


def test_importing_mediapipe_keeps_no_frames_alive():
    """mediapipe stores the ImportError of an optional package with its traceback; that traceback
    kept every frame running at import time alive, with their locals (in the app: the first photo's
    result and document, GBs for a big photo). After our import no mediapipe module holds a
    traceback, and a frame that imported it is freed."""
    import gc
    import sys
    import weakref

    from instmatt_app.nets import pose_landmarker

    class Big:
        pass

    def job():
        big = Big()
        pose_landmarker._MEDIAPIPE = None          # import (again) from inside this frame
        pose_landmarker._import_mediapipe()
        return weakref.ref(big)

    ref = job()
    gc.collect()
    assert ref() is None
    held = [(name, key) for name, module in list(sys.modules.items()) if name.startswith("mediapipe")
            for key, value in list(getattr(module, "__dict__", {}).items())
            if isinstance(value, BaseException) and value.__traceback__ is not None]
    assert held == []
