"""tools/build_training_pack.py: a tiny pack (1 P3M portrait + 2 COCO photos + 2 backgrounds)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
RVM = REPO / "models" / "rvm_mobilenetv3_fp32.onnx"

P3M = "p_819ea202"
COCO_TRAIN, COCO_VAL = 790, 343937
BG_VAL, BG_TRAIN = "000000000802.jpg", "000000011813.jpg"  # used / not used by synthetic/


def _load_tool():
    spec = importlib.util.spec_from_file_location("build_training_pack", REPO / "tools" / "build_training_pack.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tool():
    return _load_tool()


@pytest.fixture(scope="module")
def pack(tool, data_dir, tmp_path_factory):
    if not RVM.is_file():
        pytest.fail(f"{RVM} missing: install the registry models first")
    out = tmp_path_factory.mktemp("pack") / "train_pack"
    rc = tool.main([str(out), "--data", str(data_dir), "--p3m", P3M,
                    "--coco-ids", f"{COCO_TRAIN},{COCO_VAL}", "--backgrounds", f"{BG_VAL},{BG_TRAIN}",
                    "--check", "2", "-q"])
    assert rc == 0
    return out, json.loads((out / "pack.json").read_text())


def test_split_rule_is_deterministic_and_near_the_share(tool):
    ids = range(1, 2001)
    val = [i for i in ids if tool.coco_is_val(i, 15)]
    assert val == [i for i in ids if tool.coco_is_val(i, 15)]
    assert 0.10 < len(val) / 2000 < 0.20
    assert tool.coco_is_val(COCO_VAL, 15) and not tool.coco_is_val(COCO_TRAIN, 15)


def test_soft_alpha_band_rules(tool):
    H, W = 200, 200
    mask = np.zeros((H, W), bool)
    mask[40:160, 60:100] = True  # this person
    others = np.zeros((H, W), bool)
    others[40:160, 100:140] = True  # a neighbour touching its right side
    rvm = np.zeros((H, W), np.float32)
    rvm[30:170, 50:150] = 0.8  # RVM sees both as one soft blob
    rvm[40:160, 60:140] = 1.0
    a, st = tool.soft_alpha(rvm, mask, others, box_h=120.0)
    r = st["band_px"]
    assert r == 3  # max(3, 2.5 % of 120)
    inner = cv2.erode(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    outer = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1,) * 2))
    assert np.all(a[inner > 0] == 255)
    assert np.all(a[outer == 0] == 0)
    band_free = (outer > 0) & (inner == 0) & ~others & ~mask
    assert band_free.any() and np.all(a[band_free] == 204)  # RVM's 0.8, rounded to 8 bit
    assert np.all(a[others & ~mask] == 0)  # the neighbour's pixels never join this person
    assert 0.85 < st["iou"] < 0.95 and st["rvm_mean_in_polygon"] == 1.0  # band at 0.8 widens it
    assert 0.1 < st["contact"] < 0.5  # one long side of four touches the neighbour


def test_pack_layout_and_manifest(pack, data_dir):
    out, doc = pack
    recs = doc["cutouts"]
    assert {r["split"] for r in recs if r["source"] == "p3m"} == {"train"}
    coco = [r for r in recs if r["source"] == "coco"]
    assert {r["split"] for r in coco if r["source_image"].endswith(f"{COCO_VAL:012d}.jpg")} <= {"val"}
    assert {r["split"] for r in coco if r["source_image"].endswith(f"{COCO_TRAIN:012d}.jpg")} == {"train"}
    assert doc["counts"]["coco_train"] >= 2 and doc["counts"]["coco_val"] >= 1
    assert not ({r["identity"] for r in recs if r["split"] == "train"}
                & {r["identity"] for r in recs if r["split"] == "val"})
    for r in recs:
        root = out / f"cutouts_{r['split']}"
        img = cv2.imread(str(root / r["files"]["image"]))
        alpha = cv2.imread(str(root / r["files"]["alpha"]), cv2.IMREAD_UNCHANGED)
        fg = cv2.imread(str(root / r["files"]["fg"]))
        assert alpha.ndim == 2 and alpha.dtype == np.uint8
        assert img.shape[:2] == alpha.shape == fg.shape[:2] == tuple(r["size_wh"][::-1])
        assert max(alpha.shape) <= 1280
        # the foreground equals the photo where the person is opaque (JPEG tolerance)
        opaque = alpha == 255
        assert np.abs(fg[opaque].astype(int) - img[opaque]).mean() < 4
    # backgrounds: byte-identical copies, split by synthetic/composites.json
    assert (out / "backgrounds_val" / BG_VAL).read_bytes() == \
        (data_dir / "coco_backgrounds/images" / BG_VAL).read_bytes()
    assert [p.name for p in (out / "backgrounds_train").iterdir()] == [BG_TRAIN]
    assert doc["sizes_bytes"]["cutouts_train"] > 0 and "split_rule" in doc and doc["command"]


def test_coco_alpha_is_soft_and_follows_the_polygon(pack, data_dir):
    out, doc = pack
    for r in (r for r in doc["cutouts"] if r["source"] == "coco"):
        alpha = cv2.imread(str(out / f"cutouts_{r['split']}" / r["files"]["alpha"]), cv2.IMREAD_UNCHANGED)
        X0, Y0, X1, Y1 = r["crop_xyxy"]
        poly = cv2.imread(str(data_dir / r["source_mask"]), cv2.IMREAD_GRAYSCALE)[Y0:Y1, X0:X1] > 127
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r["band_px"] + 1,) * 2)
        inner = cv2.erode(poly.astype(np.uint8), k) > 0
        outer = cv2.dilate(poly.astype(np.uint8), k) > 0
        assert np.all(alpha[inner] == 255) and np.all(alpha[~outer] == 0), r["name"]
        hard = alpha > 127
        assert np.count_nonzero(hard & poly) / np.count_nonzero(hard | poly) >= 0.8, r["name"]
        assert np.count_nonzero((alpha > 0) & (alpha < 255)) > 0, r["name"]  # soft edges exist


def test_generator_reads_the_pack(pack):
    from instmatt_app.evaluation.synth import (
        BackgroundLibrary,
        CutoutLibrary,
        SyntheticGenerator,
        SynthSettings,
    )

    out, doc = pack
    lib = CutoutLibrary(out / "cutouts_train")
    assert len(lib.cutouts) == doc["counts"]["generator_usable_train"]
    assert all(c.fg_path is not None for c in lib.cutouts)
    gen = SyntheticGenerator(lib, BackgroundLibrary(out / "backgrounds_train"),
                             SynthSettings(long_side=(320, 400), max_people=3))
    s = gen.sample(0)
    assert 2 <= len(s.layers) <= 3 and s.image_u8.shape[2] == 3
    chk = doc["check"]["train"]
    assert chk["samples"] == 2 and chk["sample_mean_s"] > 0
    assert "error" in doc["check"]["val"]  # one val cut-out: fewer than min_people, reported not raised


def test_bad_input_gives_a_clear_message(tool, tmp_path, capsys, data_dir):
    assert tool.main([str(tmp_path / "p"), "--data", str(tmp_path / "nope"), "-q"]) == 2
    assert str(tmp_path / "nope") in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("x")
    assert tool.main([str(busy), "--data", str(data_dir), "--force", "-q"]) == 2
    assert "not a training pack" in capsys.readouterr().err and (busy / "keep.txt").exists()
    assert tool.main([str(tmp_path / "q"), "--data", str(data_dir), "--p3m", "none",
                      "--coco-ids", str(COCO_TRAIN), "--rvm", str(tmp_path / "x.onnx"), "-q"]) == 2
    assert "x.onnx" in capsys.readouterr().err
