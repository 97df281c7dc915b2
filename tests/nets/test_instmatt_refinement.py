"""Multi-instance refinement: parallel (official) and cycle, on the fixture checkpoint's refiner
with the official arrays as input (no backbone run, fast)."""
from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import pytest
import torch

from instmatt_app.nets.progressive import accept_in_band
from instmatt_app.pipeline import enforce_consistency
from instmatt_app.nets.refinement import WINDOW_MARGIN, duplicate_instances, nms_windows, refine

SHARED = os.environ.get("INSTMATT_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
FIXTURE = os.path.join(SHARED, "fixtures", "instmatt-official-random")


@lru_cache(maxsize=1)
def _refiner():
    from instmatt_app.nets.instmatt_checkpoint import load_instmatt

    torch.set_num_threads(2)
    return load_instmatt(os.path.join(FIXTURE, "checkpoint.pth")).refiner


@lru_cache(maxsize=None)
def _inputs(name: str):
    with np.load(os.path.join(FIXTURE, f"{name}.npz")) as d:
        feature = d["feature"] if "feature" in d.files else d["feature_f16"].astype(np.float32)
        k = len(d["masks"])
        rgb = torch.from_numpy(d["net_image"])[None].expand(k, -1, -1, -1)
        return rgb, torch.from_numpy(d["fused"]), torch.from_numpy(feature), torch.from_numpy(d["unknown_os1"] > 0)


def _interiors(boxes: np.ndarray, shape) -> np.ndarray:
    inside = np.zeros(shape, bool)
    m = WINDOW_MARGIN
    for x1, y1, x2, y2, _ in boxes.astype(int):
        inside[y1 + m:y2 - m, x1 + m:x2 - m] = True
    return inside


def test_cycle_with_one_instance_equals_parallel():
    rgb, fused, feature, _ = _inputs("case_00")
    par = refine(_refiner(), rgb, fused, feature, mode="parallel")
    cyc = refine(_refiner(), rgb, fused, feature, mode="cycle", order=[0])
    assert par.sweeps == cyc.sweeps == 2
    assert torch.equal(par.trimattes, cyc.trimattes)


def test_cycle_first_instance_sees_unrefined_others_like_parallel():
    rgb, fused, feature, _ = _inputs("case_07")   # 3 overlapping people, one window
    par = refine(_refiner(), rgb, fused, feature, mode="parallel", keep_history=True)
    cyc = refine(_refiner(), rgb, fused, feature, mode="cycle", order=[1, 0, 2], keep_history=True)
    assert len(par.boxes) == 1
    # first in the order: same inputs as in parallel -> same first sweep
    torch.testing.assert_close(cyc.history[1][1], par.history[1][1], atol=1e-5, rtol=0)
    # the later ones saw refined tri-mattes of those before them -> different
    for later in (0, 2):
        assert (cyc.history[1][later] - par.history[1][later]).abs().max() > 1e-3


def test_reordering_changes_results_only_inside_windows_and_band():
    rgb, fused, feature, band = _inputs("case_07")
    a = refine(_refiner(), rgb, fused, feature, mode="cycle", order=[0, 1, 2])
    b = refine(_refiner(), rgb, fused, feature, mode="cycle", order=[2, 1, 0])
    np.testing.assert_array_equal(a.boxes, b.boxes)
    diff = (a.trimattes - b.trimattes).abs().amax(dim=(0, 1)).numpy()
    inside = _interiors(a.boxes, diff.shape)
    assert diff.max() > 1e-3, "the order should matter where the overlapping people interact"
    assert diff[~inside].max() == 0.0
    final_a = accept_in_band(fused, a.trimattes, band)
    final_b = accept_in_band(fused, b.trimattes, band)
    final_diff = (final_a - final_b).abs().amax(dim=1).numpy()
    assert final_diff[~(band[:, 0].numpy() & inside[None])].max() == 0.0


def test_parallel_ignores_order_and_rejects_bad_orders():
    rgb, fused, feature, _ = _inputs("case_07")
    a = refine(_refiner(), rgb, fused, feature, mode="parallel", order=[2, 0, 1])
    b = refine(_refiner(), rgb, fused, feature, mode="parallel")
    assert torch.equal(a.trimattes, b.trimattes)
    with pytest.raises(ValueError, match="permutation"):
        refine(_refiner(), rgb, fused, feature, mode="cycle", order=[0, 0, 1])
    with pytest.raises(ValueError, match="mode"):
        refine(_refiner(), rgb, fused, feature, mode="sequential")


@pytest.mark.parametrize("mode", ["parallel", "cycle"])
def test_duplicate_instance_is_skipped(mode):
    rgb, fused, feature, _ = _inputs("case_07")
    rgb4 = torch.cat([rgb, rgb[:1]])
    fused4 = torch.cat([fused, fused[:1]])
    feature4 = torch.cat([feature, feature[:1]])
    result = refine(_refiner(), rgb4, fused4, feature4, mode=mode, order=[3, 2, 1, 0])
    assert result.duplicates.tolist() == [False, False, False, True]
    assert torch.equal(result.trimattes[3], fused4[3])
    assert (result.trimattes[0] - fused4[0]).abs().max() > 1e-3


@pytest.mark.parametrize("mode,order", [("parallel", None), ("cycle", [2, 0, 1])])
def test_consistency_step_keeps_alpha_sum_at_most_one(mode, order):
    rgb, fused, feature, band = _inputs("case_07")
    result = refine(_refiner(), rgb, fused, feature, mode=mode, order=order)
    final = accept_in_band(fused, result.trimattes, band).numpy()
    assert final[:, 0].sum(0).max() > 1.0, "raw network output should overlap somewhere (else the test is empty)"
    tri = enforce_consistency(final.copy())
    total = tri[:, 0].sum(0)
    assert total.max() <= 1.0 + 1e-6
    assert np.all(tri >= 0) and np.all(tri <= 1)
    np.testing.assert_allclose(tri.sum(1), 1.0, atol=1e-5)
    untouched = final[:, 0].sum(0) <= 1.0
    np.testing.assert_allclose(tri[:, 0][:, untouched], np.clip(final[:, 0][:, untouched], 0, 1), atol=1e-6)


def test_converging_sweeps_are_capped():
    rgb, fused, feature, _ = _inputs("case_00")
    one = refine(_refiner(), rgb, fused, feature, max_sweeps=1)
    assert one.sweeps == 1
    three = refine(_refiner(), rgb, fused, feature, max_sweeps=3, keep_history=True)
    assert 1 <= three.sweeps <= 3 and len(three.history) == three.sweeps + 1


def test_duplicate_filter_rules():
    a = torch.zeros(4, 40, 40)
    a[0, 0:20, 0:20] = 1          # person 0
    a[1, 0:20, 0:20] = 1          # same region: duplicate of 0 -> the later one (1) is bad
    a[2, 25:40, 25:40] = 1        # separate person
    a[3, 25:40, 10:40] = 0.5      # overlaps 2 by half of its own area... -> > 0.5 of min area
    bad = duplicate_instances(a)
    assert bad.tolist() == [False, True, False, True]


def test_nms_suppresses_only_near_overlapping_windows():
    dets = np.array([[0, 0, 100, 100, 0.9], [10, 0, 110, 100, 0.8], [200, 0, 300, 100, 0.7]], np.float64)
    assert nms_windows(dets, side=100) == [0, 2]
