"""tools/build_detector_pack.py and DetectorGuidedSamples: composites with the detector's masks."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from instmatt_app.nets.lite_train import DetectorGuidedSamples

REPO = Path(__file__).resolve().parents[2]


def _build(data_dir, out: Path, *extra: str) -> Path:
    spec = importlib.util.spec_from_file_location("build_detector_pack", REPO / "tools" / "build_detector_pack.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    rc = tool.main([str(data_dir / "p3m"), str(data_dir / "coco_backgrounds" / "images"), "-o", str(out),
                    "-n", "3", "--seed", "11", "--long-side", "480,560", "--max-people", "3", "--jobs", "1", *extra])
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def pack(data_dir, tmp_path_factory):
    return _build(data_dir, tmp_path_factory.mktemp("det") / "det_pack")


@pytest.fixture(scope="module")
def compact_pack(data_dir, tmp_path_factory):
    return _build(data_dir, tmp_path_factory.mktemp("det") / "det_masks", "--masks-only")


def test_pack_holds_composites_with_the_detectors_masks(pack):
    meta = json.loads((pack / "pack.json").read_text())
    files = sorted(pack.glob("[0-9]*.npz"))
    assert meta["composites"] == len(files) >= 2
    found = 0
    for f in files:
        z = np.load(f)
        h, w = z["image"].shape[:2]
        assert 480 <= max(h, w) <= 560
        k = len(z["alphas"])
        assert 2 <= k <= 3 and z["fgs"].shape == (k, h, w, 3) and z["background"].shape == (h, w, 3)
        assert z["masks"].dtype == np.uint8 and z["masks"].shape[1:] == (h, w)
        assert len(z["scores"]) == len(z["sources"]) == len(z["masks"])
        # Eq. 13 holds on the stored 8-bit planes: I = Σ α'_i F_i + (1 − Σ α'_i) B
        a, fg = z["alphas"] / 255.0, z["fgs"] / 255.0
        recon = (a[..., None] * fg).sum(0) + (1 - a.sum(0))[..., None] * z["background"] / 255.0
        assert np.median(np.abs(recon - z["image"] / 255.0)) < 0.01
        found += len(z["masks"])
    assert found >= 2  # the detector finds people in the composites


def test_detector_guided_samples_invariants(pack):
    data = DetectorGuidedSamples(pack, crop=128, seed=2)
    samples = [s for _ in range(6) for s in data.composite_samples()]
    assert samples
    for s in samples:
        assert all(s[k].shape[-2:] == (128, 128) and s[k].dtype == np.float32 for k in s)
        np.testing.assert_allclose(s["gt"].sum(0), 1.0, atol=1e-4)
        assert 0.0 <= s["trimask"].min() and s["trimask"].max() <= 1.0
        assert s["trimask"][0].max() > 0.5  # the detection itself is in view
        recon = s["gt"][0] * s["fg_t"] + s["gt"][1] * s["fg_r"] + s["gt"][2] * s["background"]
        assert np.median(np.abs(recon - s["image"])) < 0.01


def test_a_detection_belongs_to_the_person_it_covers():
    gt = np.zeros((2, 60, 60), np.float32)
    gt[0, 5:55, 5:25] = 1.0
    gt[1, 5:55, 35:55] = 1.0
    det = np.zeros((4, 60, 60), bool)
    det[0, 5:55, 4:26] = True    # person 0, a little loose
    det[1, 30:55, 36:54] = True  # the lower half of person 1: a fragment (IoU < 0.5, inside)
    det[2, 0:4, 0:60] = True     # a strip above everybody: an object
    det[3, 5:55, 10:50] = True   # spans both people, mostly neither
    owner = DetectorGuidedSamples.assign(det, gt)
    assert owner[:3] == [0, 1, None]
    assert owner[3] in (0, 1)


def test_a_masks_only_pack_gives_the_same_composites_and_guidance(pack, compact_pack):
    """The compact pack stores only the binarised masks; its composites, drawn again from their seeds,
    are the full pack's, and the guidance is the same."""
    meta = json.loads((compact_pack / "pack.json").read_text())
    assert meta["format"] == "masks-only" and meta["threshold"] == 0.3
    full, compact = DetectorGuidedSamples(pack), DetectorGuidedSamples(compact_pack)
    files = sorted(compact_pack.glob("[0-9]*.npz"))
    assert [f.name for f in files] == [f.name for f in sorted(pack.glob("[0-9]*.npz"))]
    for f in files:
        z = np.load(f)
        assert "image" not in z and z["mask_bits"].dtype == np.uint8
        assert f.stat().st_size < 0.05 * (pack / f.name).stat().st_size
        a, b = full.load(pack / f.name), compact.load(f)
        for x, y in zip(a[:3], b[:3]):     # image, background, foregrounds: 8-bit, identical
            np.testing.assert_array_equal(x, y)
        np.testing.assert_allclose(a[3], b[3], atol=1e-6)
        # the full pack thresholds masks rounded to 8 bits (≥ 76/255), the compact one the detector's own
        # values at 0.3 as inference does: a few pixels on the edge differ
        assert a[4].shape == b[4].shape and np.mean(a[4] != b[4]) < 1e-3
    assert compact.mismatched == 0
    assert [s for _ in range(3) for s in compact.composite_samples()]


def test_a_masks_only_composite_drawn_differently_is_skipped(compact_pack, tmp_path):
    import shutil

    copy = tmp_path / "det_masks"
    shutil.copytree(compact_pack, copy)
    f = sorted(copy.glob("[0-9]*.npz"))[0]
    z = dict(np.load(f))
    z["thumb"] = 255 - z["thumb"]          # as if another generator version had drawn another composite
    np.savez_compressed(f, **z)
    data = DetectorGuidedSamples(copy)
    assert data.load(f) is None and data.mismatched == 1


def test_a_masks_only_pack_needs_its_threshold(compact_pack):
    with pytest.raises(ValueError, match="binarised at 0.3"):
        DetectorGuidedSamples(compact_pack, threshold=0.5)
