"""IMQ against the official script's golden values, the deliberate fix, and bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from scipy import ndimage

from instmatt_app.cli.main import main as cli_main
from instmatt_app.evaluation import imq

TOL = 1e-6


# --------------------------------------------------------------------------- golden fixture

@pytest.fixture(scope="module")
def golden(fixtures_dir: Path, tmp_path_factory) -> tuple[Path, dict]:
    """A copy of imq-golden with the empty folders restored.

    The shared copy lost its empty folders (c09's pred folder, c11's GT folder, c12's both);
    expected.json records them (``pred_files == []`` / ``gt_files == []``), so they are recreated.
    """
    src = fixtures_dir / "imq-golden"
    root = tmp_path_factory.mktemp("golden")
    shutil.copytree(src / "pred", root / "pred")
    shutil.copytree(src / "gt", root / "gt")
    expected = json.loads((src / "expected.json").read_text())
    for name, case in expected["cases"].items():
        (root / "gt" / "alphas" / name).mkdir(exist_ok=True)
        if case.get("evaluated"):
            (root / "pred" / name).mkdir(exist_ok=True)
    return root, expected


@pytest.fixture(scope="module")
def golden_report(golden):
    root, _ = golden
    return imq.score_dirs(root / "pred", root / "gt" / "alphas", official_compat=True, workers=1)


def test_golden_pooled(golden, golden_report):
    _, expected = golden
    for key in ("0.5", "0.75"):
        got, want = golden_report.summary[key], expected["pooled"][key]
        for e in ("mad", "mse", "grad", "conn", "iou"):
            assert got[f"IMQ_{e}"] == pytest.approx(want["IMQ"][e], abs=TOL), (key, e)
            assert got[f"MQ_{e}"] == pytest.approx(want["MQ"][e], abs=TOL), (key, e)
        assert got["RQ"] == pytest.approx(want["RQ"], abs=TOL)
        assert {k: got[k] for k in ("TP", "FP", "FN")} == expected["pooled_counts"][key]


def _golden_case_names(fixtures_dir_path: Path = Path(__file__).resolve().parents[3] / "shared"):
    try:
        return sorted(json.loads((fixtures_dir_path / "fixtures/imq-golden/expected.json").read_text())["cases"])
    except OSError:
        return ["c00_perfect_binary"]  # the fixture fails clearly if the data pack is absent


@pytest.mark.parametrize("case", _golden_case_names())
def test_golden_case(golden, golden_report, case):
    _, expected = golden
    want = expected["cases"][case]
    got = {s.name: s for s in golden_report.images}[case]
    if not want["evaluated"]:
        assert got.status == "skipped"
        assert all(c == {"TP": 0, "FP": 0, "FN": 0} for c in got.counts.values())
        return
    assert got.gt_files == want["gt_files"] and got.pred_files == want["pred_files"]
    if want["pred_files"] and want["gt_files"]:
        np.testing.assert_allclose(got.iou, np.array(want["iou_matrix_pred_x_gt"]), atol=1e-9)
    for key, wt in want["thr"].items():
        assert got.counts[key] == {k: wt[k] for k in ("TP", "FP", "FN")}, key
        for e, v in wt["S_sum"].items():
            assert got.sums[key][e] == pytest.approx(v, abs=TOL), (key, e)
        for pair in wt["pairs"]:
            pi, gi = want["pred_files"].index(pair["pred"]), want["gt_files"].index(pair["gt"])
            (mine,) = [p for p in got.pairs if (p.pred, p.gt) == (pi, gi)]
            assert mine.iou == pytest.approx(pair["iou"], abs=1e-9)
            assert mine.errors["union_px"] == pair["err"]["union_px"]
            for e in imq.ERRORS:
                # raw errors: the official script works in float32 (relative precision ~1e-7)
                assert mine.errors[e] == pytest.approx(pair["err"][e], rel=1e-6, abs=1e-7), (key, e)
                assert mine.similarity[e] == pytest.approx(pair["S"][e], abs=TOL), (key, e)


def test_deliberate_fix_counts_missing_prediction_as_fn(golden, golden_report):
    root, expected = golden
    fixed = imq.score_dirs(root / "pred", root / "gt" / "alphas", official_compat=False, workers=1)
    n_missing_gt = len(expected["cases"]["c10_missing_pred_folder"]["gt_files"])
    assert n_missing_gt > 0
    for key in ("0.5", "0.75"):
        a, b = golden_report.summary[key], fixed.summary[key]
        assert b["FN"] == a["FN"] + n_missing_gt
        assert (b["TP"], b["FP"]) == (a["TP"], a["FP"])
        assert b["IMQ_mad"] < a["IMQ_mad"]
        assert b["images_no_prediction"] == 1 and a["images_skipped"] == 1
    status = {s.name: s.status for s in fixed.images}
    assert status["c10_missing_pred_folder"] == "no_prediction"


def test_two_workers_match_one(golden, golden_report):
    root, _ = golden
    two = imq.score_dirs(root / "pred", root / "gt" / "alphas", official_compat=True, workers=2)
    assert [s.name for s in two.images] == [s.name for s in golden_report.images]
    for key in two.summary:
        for k, v in golden_report.summary[key].items():
            assert two.summary[key][k] == pytest.approx(v, abs=1e-12)


# --------------------------------------------------------------------------- reference §5.7 vectors

def _sq(v, r0, r1, c0, c1, shape=(100, 100)):
    a = np.zeros(shape, np.uint8)
    a[r0:r1, c0:c1] = v
    return a


def test_reference_vectors_section_5_7():
    gt_a = [_sq(255, 10, 50, 10, 50), _sq(128, 60, 90, 60, 90)]
    pr_a = [_sq(255, 10, 50, 10, 50), _sq(141, 60, 90, 60, 90)]
    a = imq.score_image(pr_a, gt_a, name="a")
    q = a.imq("0.5")
    assert q["IMQ_mad"] == pytest.approx(0.745381, abs=1e-6)
    assert q["IMQ_mse"] == pytest.approx(0.987019, abs=1e-6)
    assert q["IMQ_grad"] == pytest.approx(0.984082, abs=1e-6)
    assert q["IMQ_conn"] == pytest.approx(1.0, abs=1e-6)
    pair = [p for p in a.pairs if p.gt == 1][0]
    assert pair.errors["mad"] == pytest.approx(13 / 255 * 900 / 901, abs=1e-12)

    gt_b = [_sq(255, 20, 60, 20, 60)]
    pr_b = [_sq(255, 28, 68, 20, 60), _sq(200, 80, 95, 80, 95)]
    b = imq.score_image(pr_b, gt_b, name="b")
    assert b.counts["0.5"] == {"TP": 1, "FP": 1, "FN": 0}
    assert b.counts["0.75"] == {"TP": 0, "FP": 2, "FN": 1}
    assert b.imq("0.5")["RQ"] == pytest.approx(2 / 3, abs=1e-6)

    gt_c = [_sq(255, 0, 40, 0, 40), _sq(255, 50, 100, 50, 100)]
    pr_c = [_sq(255, 0, 30, 0, 40)]
    c = imq.score_image(pr_c, gt_c, name="c")
    assert c.counts["0.5"] == {"TP": 1, "FP": 0, "FN": 1}
    assert c.counts["0.75"]["TP"] == 0  # IoU exactly 0.75 fails because of the 1e-8

    d = imq._unscored_image("d", 1, ["00.png"], (0.5, 0.75), official_compat=True)
    s = imq.pool([a, b, c, d], (0.5, 0.75))
    assert [s["0.5"][f"IMQ_{e}"] for e in imq.ERRORS] == pytest.approx(
        [0.298152, 0.394808, 0.393633, 0.4], abs=1e-6)
    assert (s["0.5"]["RQ"], s["0.5"]["TP"], s["0.5"]["FP"], s["0.5"]["FN"]) == (
        pytest.approx(0.8, abs=1e-6), 4, 1, 1)
    assert s["0.75"]["RQ"] == pytest.approx(0.4, abs=1e-6)
    assert s["0.75"]["MQ_mad"] == pytest.approx(0.745381, abs=1e-6)
    assert (s["0.75"]["TP"], s["0.75"]["FP"], s["0.75"]["FN"]) == (2, 3, 3)


# --------------------------------------------------------------------------- pieces

def test_separable_gradient_equals_official_2d_kernel():
    rng = np.random.default_rng(0)
    a = cv2.GaussianBlur(rng.random((41, 57)), (0, 0), sigmaX=2.0)
    sigma, half = 1.4, 4
    x = np.arange(-half, half + 1)
    g = np.exp(-x ** 2 / (2 * sigma ** 2)) / (sigma * np.sqrt(2 * np.pi))
    dg = -x * g / sigma ** 2
    hx = g[:, None] * dg[None, :]
    hx /= np.sqrt((hx ** 2).sum())
    gx = ndimage.convolve(a, hx, mode="nearest")
    gy = ndimage.convolve(a, hx.T, mode="nearest")
    np.testing.assert_allclose(imq.gradient_magnitude(a), np.hypot(gx, gy), atol=1e-12)


def test_errors_on_bbox_crop_equal_whole_image():
    """A pair near the border and one in the middle: cropping must not change any error."""
    rng = np.random.default_rng(1)
    for (r0, c0) in [(0, 3), (30, 40)]:
        g = np.zeros((80, 90))
        g[r0:r0 + 25, c0:c0 + 30] = cv2.GaussianBlur(rng.random((25, 30)), (0, 0), sigmaX=1.0)
        p = np.clip(g + (g > 0) * rng.normal(0, 0.05, g.shape), 0, 1)
        got = imq.alpha_errors(p, g)
        region = (p > 0) | (g > 0)
        n = region.sum() + 1.0
        grad = ((imq.gradient_magnitude(p) - imq.gradient_magnitude(g))[region] ** 2).sum() / n
        phi_p, phi_g = imq.connectivity_phi(p, g)
        assert got["grad"] == pytest.approx(grad, abs=1e-12)
        assert got["conn"] == pytest.approx(np.abs(phi_p - phi_g)[region].sum() / n, abs=1e-12)
        assert got["mad"] == pytest.approx(np.abs(p - g).sum() / n, abs=1e-12)


def test_no_match_reports_zero_and_says_so(tmp_path, capsys):
    gt = tmp_path / "gt" / "img"
    pred = tmp_path / "pred" / "img"
    gt.mkdir(parents=True)
    pred.mkdir(parents=True)
    cv2.imwrite(str(gt / "00.png"), _sq(255, 0, 20, 0, 20, (40, 40)))
    cv2.imwrite(str(pred / "00.png"), _sq(255, 20, 40, 20, 40, (40, 40)))
    s = imq.evaluate_dirs(tmp_path / "pred", tmp_path / "gt", workers=1)
    for key in ("0.5", "0.75"):
        assert (s[key]["TP"], s[key]["FP"], s[key]["FN"]) == (0, 1, 1)
        assert s[key]["IMQ_mad"] == 0.0 and s[key]["MQ_mad"] == 0.0
        assert "no instance pair matched" in s[key]["note"]
    assert cli_main(["eval", str(tmp_path / "pred"), str(tmp_path / "gt"), "--workers", "1"]) == 0
    assert "no instance pair matched" in capsys.readouterr().out


# --------------------------------------------------------------------------- bad input

def _one_image_set(tmp_path, pred_img, gt_img=None):
    gt_img = _sq(255, 5, 20, 5, 20, (30, 30)) if gt_img is None else gt_img
    (tmp_path / "gt" / "x").mkdir(parents=True)
    (tmp_path / "pred" / "x").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "gt" / "x" / "00.png"), gt_img)
    cv2.imwrite(str(tmp_path / "pred" / "x" / "00.png"), pred_img)
    return tmp_path / "pred", tmp_path / "gt"


def _cli_error(capsys, *argv) -> str:
    assert cli_main(["eval", *map(str, argv), "--workers", "1"]) == 2
    return capsys.readouterr().err


def test_size_mismatch_names_the_file(tmp_path, capsys):
    pred, gt = _one_image_set(tmp_path, _sq(255, 5, 20, 5, 20, (31, 30)))
    err = _cli_error(capsys, pred, gt)
    assert str(pred / "x" / "00.png") in err and "30x31" in err and "30x30" in err
    assert "Traceback" not in err


def test_colour_png_is_an_error_but_grey_rgb_is_accepted(tmp_path, capsys):
    grey = _sq(200, 5, 20, 5, 20, (30, 30))
    colour = np.dstack([grey, grey, np.zeros_like(grey)])
    pred, gt = _one_image_set(tmp_path, colour)
    err = _cli_error(capsys, pred, gt)
    assert str(pred / "x" / "00.png") in err and "colour" in err
    cv2.imwrite(str(pred / "x" / "00.png"), np.dstack([grey] * 3))
    s = imq.evaluate_dirs(pred, gt, workers=1)
    assert s["0.5"]["TP"] == 1
    rgba = np.dstack([grey] * 3 + [np.full_like(grey, 128)])
    cv2.imwrite(str(pred / "x" / "00.png"), rgba)
    assert "transparency" in _cli_error(capsys, pred, gt)


def test_unreadable_and_empty_folders(tmp_path, capsys):
    pred, gt = _one_image_set(tmp_path, _sq(255, 5, 20, 5, 20, (30, 30)))
    (pred / "x" / "01.png").write_bytes(b"not a png")
    err = _cli_error(capsys, pred, gt)
    assert str(pred / "x" / "01.png") in err and "cannot read" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert f"{empty}: ground-truth folder has no image sub-folders" in _cli_error(capsys, pred, empty)
    assert f"{empty}: prediction folder has no image sub-folders" in _cli_error(capsys, empty, gt)
    flat = tmp_path / "flat"
    flat.mkdir()
    cv2.imwrite(str(flat / "00.png"), _sq(255, 5, 20, 5, 20, (30, 30)))
    assert "one sub-folder per image" in _cli_error(capsys, pred, flat)
    assert "does not exist" in _cli_error(capsys, pred, tmp_path / "nope")


def test_cli_json_and_csv(tmp_path, golden):
    root, expected = golden
    js, cs = tmp_path / "s.json", tmp_path / "s.csv"
    rc = cli_main(["eval", str(root / "pred"), str(root / "gt" / "alphas"), "--official-compat",
                   "--thresholds", "0.5", "--workers", "1", "--json", str(js), "--csv", str(cs)])
    assert rc == 0
    data = json.loads(js.read_text())
    assert list(data) == ["0.5"]
    assert data["0.5"]["IMQ_mad"] == pytest.approx(expected["pooled"]["0.5"]["IMQ"]["mad"], abs=TOL)
    rows = cs.read_text().strip().splitlines()
    assert rows[0].startswith("image,threshold,status")
    assert len(rows) == 1 + len(expected["cases"])


def test_uint8_and_float_inputs_agree(golden):
    """The 8-bit fast path (integer thresholds, crops converted late) equals float input."""
    root, _ = golden
    _, gts = imq.read_instance_folder(root / "gt" / "alphas" / "c24_larger_image")
    _, preds = imq.read_instance_folder(root / "pred" / "c24_larger_image")
    a = imq.score_image(preds, gts)
    b = imq.score_image([p / 255.0 for p in preds], [g / 255.0 for g in gts])
    for pa, pb in zip(a.pairs, b.pairs):
        assert pa.errors == pytest.approx(pb.errors, abs=1e-12)


def test_worker_processes_only_where_they_pay(monkeypatch):
    import sys
    import types

    assert imq._usable_workers(2, 10) == 1  # small set: spawning costs more than it saves
    assert imq._usable_workers(1, 100) == 1
    fake_main = types.ModuleType("__main__")
    fake_main.__file__ = __file__
    monkeypatch.setitem(sys.modules, "__main__", fake_main)
    assert imq._usable_workers(2, 100) == 2
    fake_main.__file__ = "<stdin>"  # spawned workers could not re-import this __main__
    assert imq._usable_workers(2, 100) == 1
