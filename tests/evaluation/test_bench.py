"""Benchmark runner on tiny data sets with small stand-in predictors (the engine is not needed)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from instmatt_app.cli.main import main as cli_main
from instmatt_app.evaluation import bench


def _blob(h, w, cy, cx, ry, rx):
    a = np.zeros((h, w), np.uint8)
    cv2.ellipse(a, (cx, cy), (rx, ry), 0, 0, 360, 255, -1)
    return cv2.GaussianBlur(a, (0, 0), sigmaX=1.5)


@pytest.fixture()
def tiny_him2k(tmp_path):
    """3 images (1, 2 and 3 people) in HIM2K layout."""
    root = tmp_path / "tiny"
    rng = np.random.default_rng(0)
    for i, n in enumerate((1, 2, 3)):
        img = rng.integers(0, 255, (60, 90, 3), dtype=np.uint8)
        (root / "images" / "comp").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "images" / "comp" / f"im{i}.jpg"), img)
        for k in range(n):
            d = root / "alphas" / "comp" / f"im{i}"
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"{k:02d}.png"), _blob(60, 90, 30, 15 + 30 * k, 20, 12))
    return root


def _oracle(root):
    """Predictor that knows the GT: exact mattes as 'default', binarised ones as coarse masks."""
    def predict(image):
        h, w = image.shape[:2]
        for d in sorted((root / "alphas" / "comp").iterdir()):
            gts = [cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in sorted(d.glob("*.png"))]
            img = cv2.imread(str(root / "images" / "comp" / f"{d.name}.jpg"))[..., ::-1]
            if np.abs(img.astype(int) - image).max() == 0:
                a = np.stack(gts).astype(np.float32) / 255
                return a, (a > 0.5).astype(np.float32), {"detect": 0.01, "matte": 0.02}
        raise AssertionError("unknown image")
    return predict


def test_bench_scores_an_oracle_and_the_masks_baseline(tiny_him2k, tmp_path):
    ds = bench.find_dataset(tiny_him2k)
    assert ds.kind == "him2k" and [s.name for s in ds.samples] == ["im0", "im1", "im2"]
    res = bench.run_bench(ds, _oracle(tiny_him2k), name="default", keep_worst=2)
    assert set(res.methods) == {"default", bench.MASKS_ONLY}
    best = res.summary["default"]["0.5"]
    assert best["TP"] == 6 and best["FP"] == 0 and best["FN"] == 0
    assert best["IMQ_mad"] == pytest.approx(1.0, abs=1e-5)
    base = res.summary[bench.MASKS_ONLY]["0.5"]
    assert base["TP"] == 6 and base["IMQ_mad"] < 0.9  # hard masks lose the soft edges
    assert res.n_gt == [1, 2, 3]
    assert set(res.timings) >= {"detect", "matte", "wall per image"}
    report = bench.write_report(res, tmp_path / "rep", command="instmatt bench tiny")
    text = report.read_text()
    assert "| default | 100.00 |" in text and "instmatt bench tiny" in text
    for f in ("error_vs_people.png", "time_per_stage.png", "worst_1.png", "worst_2.png",
              "summary.json", "per_image.csv"):
        assert (tmp_path / "rep" / f).is_file(), f
    data = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert data["methods"]["default"]["0.5"]["TP"] == 6
    assert "IMQ" in bench.format_table(res)


def test_bench_limit_and_missed_people(tiny_him2k):
    def predict(image):  # finds nobody
        return np.zeros((0,) + image.shape[:2], np.float32), np.zeros((0,) + image.shape[:2]), {}
    res = bench.run_bench(bench.find_dataset(tiny_him2k, limit=2), predict)
    assert len(res.samples) == 2
    s = res.summary["default"]["0.5"]
    assert (s["TP"], s["FN"], s["IMQ_mad"]) == (0, 3, 0.0) and "note" in s


def test_recognition_counts_ignore_rules():
    H, W = 100, 100
    gt = np.zeros((3, H, W), bool)
    gt[0, 10:60, 10:40] = True  # big person
    gt[1, 10:60, 60:90] = True  # big person, missed -> FN
    gt[2, 90:93, 90:93] = True  # 9 px < 2 %: ignore instance
    crowd = np.zeros((H, W), bool)
    crowd[70:100, 0:40] = True
    pred = np.zeros((4, H, W), bool)
    pred[0, 12:60, 10:40] = True  # matches gt 0 -> TP
    pred[1, 90:93, 90:93] = True  # matches the ignored small GT -> neither TP nor FP
    pred[2, 72:100, 0:38] = True  # inside the crowd region -> not FP
    pred[3, 0:30, 45:58] = True  # a real false positive (3.9 % of the image)
    assert bench.recognition_counts(pred, gt, crowd) == {"TP": 1, "FP": 1, "FN": 1}
    assert bench.recognition_counts(pred, gt, None) == {"TP": 1, "FP": 2, "FN": 1}


def test_bench_coco_layout_recognition(tmp_path):
    root = tmp_path / "coco"
    (root / "images" / "coco").mkdir(parents=True)
    (root / "masks" / "coco" / "a").mkdir(parents=True)
    (root / "crowd_ignore" / "coco").mkdir(parents=True)
    cv2.imwrite(str(root / "images" / "coco" / "a.jpg"), np.zeros((50, 50, 3), np.uint8))
    m = np.zeros((50, 50), np.uint8)
    m[5:40, 5:20] = 255
    cv2.imwrite(str(root / "masks" / "coco" / "a" / "00.png"), m)
    crowd = np.zeros((50, 50), np.uint8)
    crowd[:, 30:] = 255
    cv2.imwrite(str(root / "crowd_ignore" / "coco" / "a_rle.png"), crowd)
    ds = bench.find_dataset(root)
    assert ds.kind == "coco" and ds.samples[0].ignore is not None

    def predict(image):
        p = np.zeros((2, 50, 50), np.float32)
        p[0] = m / 255.0
        p[1, 5:40, 32:48] = 1.0  # in the crowd region
        return p, p, {"detect": 0.0}
    res = bench.run_bench(ds, predict)
    assert res.summary["default"] == {"RQ": 1.0, "precision": 1.0, "recall": 1.0, "TP": 1, "FP": 0, "FN": 0}
    assert "RQ" in bench.format_table(res)


def test_bench_on_shared_synthetic_with_oracle(data_dir, tmp_path):
    """Two real synthetic composites: GT as prediction scores 1, blurred GT scores lower."""
    root = data_dir / "synthetic"
    ds = bench.find_dataset(root, limit=2)

    def predict(image):
        for s in ds.samples:
            img = cv2.imread(str(s.image))[..., ::-1]
            if img.shape == image.shape and np.array_equal(img, image):
                a = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in s.gt]).astype(np.float32) / 255
                blurred = np.stack([cv2.GaussianBlur(x, (0, 0), sigmaX=3.0) for x in a])
                return bench.BenchPrediction({"oracle": a, "blurred": blurred}, {"x": 0.0})
        raise AssertionError("unknown image")
    res = bench.run_bench(ds, predict)
    assert res.summary["oracle"]["0.5"]["IMQ_mad"] == pytest.approx(1.0, abs=1e-5)
    assert res.summary["blurred"]["0.5"]["IMQ_mad"] < 0.95


def test_cli_bench_bad_input(tmp_path, capsys):
    assert cli_main(["bench", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "images").mkdir()
    assert cli_main(["bench", str(tmp_path)]) == 2
    assert "neither alphas/" in capsys.readouterr().err


def test_instmatt_without_weights(monkeypatch):
    """Asked for explicitly: a clear error; as part of "all": skipped with a note."""
    import instmatt_app.model_manager as mm

    monkeypatch.setattr(mm, "user_model", lambda kind: None)
    with pytest.raises(bench.BenchInputError, match="instmatt models add instmatt"):
        bench.engine_predictor(("masks", "instmatt"))
    _, notes = bench.engine_predictor(("masks", "default", "instmatt"))
    assert notes == ["InstMatt network: weights not installed, not measured"]


def test_reference_masks_are_given_to_the_predictor(tiny_him2k, tmp_path):
    """--masks gt: every method gets the GT instances binarised at 0.5 instead of detecting."""
    seen = []

    def predict(image, masks=None):
        seen.append(masks)
        return bench.BenchPrediction({"echo": masks})

    ds = bench.find_dataset(tiny_him2k)
    res = bench.run_bench(ds, predict, masks="gt")
    assert [len(m) for m in seen] == [1, 2, 3]
    assert all(set(np.unique(m)) <= {0.0, 1.0} and m.dtype == np.float32 for m in seen)
    assert res.summary["echo"]["0.5"]["RQ"] == pytest.approx(1.0, abs=1e-6)   # every person matched
    # a folder of masks: <name>/NN.png; a missing image folder is a clear error
    folder = tmp_path / "masks"
    (folder / "im0").mkdir(parents=True)
    cv2.imwrite(str(folder / "im0" / "00.png"), np.full((60, 90), 255, np.uint8))
    m = bench.reference_masks(ds.samples[0], str(folder), (60, 90))
    assert m.shape == (1, 60, 90) and m.min() == 1.0
    with pytest.raises(bench.BenchInputError, match="no mask PNGs"):
        bench.reference_masks(ds.samples[1], str(folder), (60, 90))


def test_lite_weights_are_the_ones_measured(tmp_path, data_dir):
    """--lite-weights: the engine's lite matter uses that file (a training snapshot, say), and the report says so."""
    import torch

    from instmatt_app.model_manager import model_path

    obj = torch.load(model_path("instmatt-lite"), map_location="cpu", weights_only=True)
    for k in ("head_os8.2.bias", "head_os4.2.bias", "head_os1.bias"):   # every head: "target" much less likely
        obj["state_dict"][k] = obj["state_dict"][k] + torch.tensor([-4.0, 2.0, 2.0], dtype=obj["state_dict"][k].dtype)
    other = tmp_path / "other_fp16.pth"
    torch.save(obj, other)
    image = cv2.imread(str(data_dir / "synthetic" / "images" / "comp" / "dev_0000.jpg"))
    assert image is not None
    image = cv2.resize(image, (240, 160))[..., ::-1].copy()
    masks = np.zeros((1, 160, 240), np.float32)
    masks[0, 30:150, 80:160] = 1.0
    shipped, notes = bench.engine_predictor(("lite",), guidance_passes=1)
    changed, notes2 = bench.engine_predictor(("lite",), guidance_passes=1, lite_weights=str(other))
    assert notes == [] and notes2 == [f"InstMatt-Lite weights: {other} (not the shipped ones)"]
    a = shipped(image, masks=masks).mattes["lite"]
    b = changed(image, masks=masks).mattes["lite"]
    assert a.shape == b.shape == (1, 160, 240)
    assert np.abs(a - b).mean() > 0.01


def test_cli_bench_missing_lite_weights(tmp_path, capsys, tiny_him2k):
    assert cli_main(["bench", str(tiny_him2k), "--matting", "lite", "--lite-weights", str(tmp_path / "nope.pth"),
                     "-o", str(tmp_path / "out")]) == 2
    assert "InstMatt-Lite weights not found" in capsys.readouterr().err
