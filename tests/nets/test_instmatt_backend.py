"""The ``instmatt`` matter: registry wiring, official post-processing, caching, resolution cap."""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import pytest
import torch

from instmatt_app.nets import registry
from instmatt_app.nets.instmatt_backend import InstMattMatter, prepare

SHARED = os.environ.get("INSTMATT_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
FIXTURE = os.path.join(SHARED, "fixtures", "instmatt-official-random")
CHECKPOINT = os.path.join(FIXTURE, "checkpoint.pth")


@lru_cache(maxsize=None)
def _case(name: str):
    with np.load(os.path.join(FIXTURE, f"{name}.npz")) as d:
        return {k: d[k] for k in d.files}


@lru_cache(maxsize=1)
def _matter() -> InstMattMatter:
    torch.set_num_threads(2)
    return registry.build("matter", "instmatt", weights=CHECKPOINT, device="cpu")


def test_registry_builds_the_matter_and_official_output_is_byte_identical():
    matter = _matter()
    assert isinstance(matter, InstMattMatter)
    d = _case("case_00")
    tri = matter.matte(d["image"], d["masks"].astype(np.float32) / 255, refine="parallel", official_postprocess=True)
    assert tri.shape == (1, 3) + d["image"].shape[:2] and tri.dtype == np.float32
    written = np.round(tri[:, 0] * 255).astype(np.uint8)
    assert np.array_equal(written, d["out_uint8"].transpose(2, 0, 1))
    assert np.array_equal(matter.matte_official_uint8(d["image"], d["masks"]), written)


def test_default_postprocess_is_consistent_and_cache_reused():
    matter = _matter()
    d = _case("case_03")                             # two people, 100x150
    masks = d["masks"].astype(np.float32) / 255
    tri = matter.matte(d["image"], masks, refine="parallel")
    assert tri.shape == (2, 3, 100, 150)
    assert tri[:, 0].sum(0).max() <= 1.0 + 1e-6
    np.testing.assert_allclose(tri.sum(1), 1.0, atol=1e-5)
    first = matter.last_info["backbone_computed"]
    again = matter.matte(d["image"], masks, refine="cycle", order=[1, 0])
    assert matter.last_info["backbone_computed"] == [], "re-refining must reuse the cached backbone outputs"
    assert again.shape == tri.shape
    assert first in ([0, 1], [])                     # [] if another test already cached this photo
    edited = masks.copy()
    empty = np.argwhere(masks.sum(0) == 0)[0]
    edited[1, empty[0], empty[1]] = 1.0              # person 1's mask grows: both tri-masks change
    matter.matte(d["image"], edited, refine="none", recompute=[1])
    assert matter.last_info["backbone_computed"] == [1], "recompute=[1] re-runs only that person"
    matter.matte(d["image"], edited, refine="none")
    assert matter.last_info["backbone_computed"] == [0], "exact mode recomputes the stale tri-mask of person 0"


def test_long_side_cap_and_higher_resolution_option():
    d = _case("case_00")                             # 128x96
    prep = prepare(d["image"], d["masks"], max_side=64)
    assert prep.size == (64, 48) and prep.original == (128, 96)
    assert prep.net_image.shape == (3, 64 + 64, 64 + 64)      # 48 -> 64 (multiple of 32) + 2x32 reflect
    full = prepare(d["image"], d["masks"], max_side=None)
    assert full.size == full.original == (128, 96)
    matter = InstMattMatter(_matter().model, max_side=64)
    tri = matter.matte(d["image"], d["masks"], refine="parallel", official_postprocess=True)
    assert tri.shape == (1, 3, 128, 96)


def test_no_people_and_bad_input():
    matter = _matter()
    d = _case("case_00")
    assert matter.matte(d["image"], np.zeros((0, 128, 96), np.float32)).shape == (0, 3, 128, 96)
    with pytest.raises(ValueError, match="uint8 RGB"):
        matter.matte(d["image"].astype(np.float32), d["masks"])
    with pytest.raises(ValueError, match=r"\(k, H, W\)"):
        matter.matte(d["image"], d["masks"][0])
    with pytest.raises(ValueError, match="refine"):
        matter.matte(d["image"], d["masks"], refine="both")
    with pytest.raises(ValueError, match="absent.pth: no such checkpoint"):
        registry.build("matter", "instmatt", weights=os.path.join(FIXTURE, "absent.pth"))


def test_chunked_backbone_matches_one_batch():
    d = _case("case_03")
    one_batch = InstMattMatter(_matter().model, chunk=None)
    chunked = InstMattMatter(_matter().model, chunk=1)
    a = one_batch.run(d["image"], d["masks"], refine="none")
    b = chunked.run(d["image"], d["masks"], refine="none")
    assert one_batch.last_info["chunk"] == 2 and chunked.last_info["chunk"] == 1
    torch.testing.assert_close(a.final, b.final, atol=1e-5, rtol=0)
    torch.testing.assert_close(a.backbone.feature, b.backbone.feature, atol=1e-4, rtol=0)
