"""`instmatt matte` end to end: files written, folders, --masks, bad inputs don't stop a batch."""
import json
import shutil

import numpy as np
import pytest
from PIL import Image

from instmatt_app.cli.main import main
from tests.conftest import REPO


def test_matte_sample_writes_everything(tmp_path):
    out = tmp_path / "out"
    rc = main(["matte", str(REPO / "resources/sample/two_portraits.jpg"), "-o", str(out), "--device", "cpu",
               "--formats", "png,json", "--quiet"])
    assert rc == 0
    alphas = sorted((out / "alphas/two_portraits").glob("*.png"))
    assert [p.name for p in alphas] == ["00.png", "01.png"]
    a = np.stack([np.asarray(Image.open(p)) for p in alphas]).astype(int)
    assert a.dtype.kind == "i" and a.max() == 255 and (a.sum(0) <= 255 + 2).all()
    cut = Image.open(out / "cutouts/two_portraits/00.png")
    assert cut.mode == "RGBA" and cut.size == (1186, 640)
    tri = np.asarray(Image.open(out / "trimattes/two_portraits/01.png")).astype(int)
    assert tri.shape == (640, 1186, 3) and np.abs(tri.sum(2) - 255).max() <= 2  # α_t + α_r + α_b = 1
    meta = json.loads((out / "two_portraits.json").read_text())
    assert len(meta["people"]) == 2 and meta["models"]["matting"] == "lite"
    assert meta["models"]["guidance_passes"] == "8" and "stage:settle" in meta["timings_s"]
    assert meta["models"]["pass_reuse"] == "0.2"
    assert meta["models"]["person_boxes"] == "movenet+ssdlite" and "ssdlite-persons" in meta["models"]
    assert {"detect", "matte", "total"} <= set(meta["timings_s"])


def test_batch_with_bad_inputs_and_masks(tmp_path, data_dir, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(data_dir / "synthetic/images/comp/dev_0001.jpg", photos / "dev_0001.jpg")
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    masks = tmp_path / "masks/dev_0001"
    masks.mkdir(parents=True)
    gts = sorted((data_dir / "synthetic/alphas/comp/dev_0001").glob("*.png"))
    for f in gts:
        m = (np.asarray(Image.open(f)) > 127).astype(np.uint8) * 255
        Image.fromarray(m).save(masks / f.name)
    out = tmp_path / "out"
    rc = main(["matte", str(photos), str(tmp_path / "missing.jpg"), "-o", str(out), "--device", "cpu",
               "--masks", str(tmp_path / "masks"), "--formats", "png", "--refine", "none", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "broken.jpg" in err and "missing.jpg" in err
    # the good photo was still done, one alpha per given mask, same order
    assert len(list((out / "alphas/dev_0001").glob("*.png"))) == len(gts)
    assert not (out / "alphas/broken").exists()


def test_bad_options(tmp_path, capsys):
    img = str(REPO / "resources/sample/two_portraits.jpg")
    assert main(["matte", img, "-o", str(tmp_path), "--formats", "png,gif"]) == 2
    assert "gif" in capsys.readouterr().err
    assert main(["matte", img, "-o", str(tmp_path), "--order", "a,b"]) == 2
    for bad in ("0", "two"):
        with pytest.raises(SystemExit) as exc:
            main(["matte", img, "-o", str(tmp_path), "--guidance-passes", bad])
        assert exc.value.code == 2 and "--guidance-passes" in capsys.readouterr().err
    assert main(["matte", img, "-o", str(tmp_path), "--matting", "instmatt", "--device", "cpu"]) == 2
    assert "instmatt models add" in capsys.readouterr().err


def test_guidance_passes_reach_the_network_and_the_json(tmp_path):
    out = tmp_path / "out"
    rc = main(["matte", str(REPO / "resources/sample/two_portraits.jpg"), "-o", str(out), "--device", "cpu",
               "--formats", "json", "--guidance-passes", "1", "--quiet"])
    assert rc == 0
    meta = json.loads((out / "two_portraits.json").read_text())
    assert meta["models"]["guidance_passes"] == "1" and len(meta["people"]) == 2
    assert "pass_reuse" not in meta["models"]                 # one pass: nothing to reuse
    assert "stage:settle" not in meta["timings_s"]


def test_person_boxes_option(tmp_path, capsys):
    img = str(REPO / "resources/sample/two_portraits.jpg")
    out = tmp_path / "out"
    rc = main(["matte", img, "-o", str(out), "--device", "cpu", "--formats", "json", "--person-boxes", "movenet",
               "--guidance-passes", "1", "--quiet"])
    assert rc == 0
    meta = json.loads((out / "two_portraits.json").read_text())
    assert meta["models"]["person_boxes"] == "movenet-multipose" and len(meta["people"]) == 2
    if not (REPO / "models/centernet.onnx").is_file():  # not shipped: a clear error before any photo
        assert main(["matte", img, "-o", str(out), "--person-boxes", "movenet+centernet", "--quiet"]) == 2
        assert "centernet.onnx is missing" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["matte", img, "-o", str(out), "--person-boxes", "yolo"])
    assert exc.value.code == 2
