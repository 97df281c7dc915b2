"""Synthetic generator: Eq. 13/14 invariants, layout constraints, seeds, files, bad input."""
from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import pytest

from instmatt_app.cli.main import main as cli_main
from instmatt_app.core.compositing import visible_alphas
from instmatt_app.evaluation import synth

SMALL = synth.SynthSettings(long_side=(256, 320))


@pytest.fixture(scope="module")
def libs(data_dir):
    return (synth.CutoutLibrary(data_dir / "p3m"),
            synth.BackgroundLibrary(data_dir / "coco_backgrounds" / "images"))


@pytest.fixture(scope="module")
def gen(libs):
    return synth.SyntheticGenerator(*libs, SMALL)


def test_cut_detection_matches_the_p3m_manifest(data_dir, libs):
    cut, _ = libs
    with (data_dir / "p3m" / "manifest.csv").open(newline="") as fh:
        rows = {r["name"]: r for r in csv.DictReader(fh)}
    for name, r in rows.items():
        a = cv2.imread(str(data_dir / r["alpha"]), cv2.IMREAD_GRAYSCALE)
        sides = {k for k, v in synth._cut_sides(a).items() if v}
        assert sides == set(r["cut_by_photo_border"].split()), name
    used = {c.name for c in cut.cutouts}
    assert used == {n for n, r in rows.items() if r["used_for_synthetic"] == "yes"}


def test_background_manifest_is_honoured(libs, data_dir):
    _, bgs = libs
    with (data_dir / "coco_backgrounds" / "manifest.csv").open(newline="") as fh:
        yes = {r["file"].split("/")[-1] for r in csv.DictReader(fh) if r["scene_backdrop"] == "yes"}
    assert {p.name for p in bgs.files} == yes


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sample_invariants(gen, seed):
    s = gen.sample(seed)
    n, H, W = s.alphas.shape
    assert SMALL.min_people <= n <= SMALL.max_people
    assert max(H, W) >= SMALL.long_side[0] and max(H, W) <= SMALL.long_side[1]
    # Eq. 14: GT = visible share of the pasted (8-bit) alphas; sum of visible alpha <= 1
    np.testing.assert_allclose(s.alphas, visible_alphas(s.pasted_alphas), atol=1e-6)
    assert s.alphas.sum(0).max() <= 1.0 + 1e-5
    assert np.all(s.pasted_alphas * 255 == np.round(s.pasted_alphas * 255))
    # the 8-bit composite equals sum alpha'_i F_i + (1 - sum alpha'_i) B within 1/255
    eq2 = (s.alphas[..., None] * s.foregrounds).sum(0) + (1 - s.alphas.sum(0))[..., None] * s.background
    assert np.abs(s.image_u8 / 255.0 - eq2).max() <= 1 / 255
    # ... also with the GT rounded to 8 bit as it is saved
    a8 = np.round(s.alphas * 255) / 255
    eq2_8 = (a8[..., None] * s.foregrounds).sum(0) + (1 - a8.sum(0))[..., None] * s.background
    assert np.abs(s.image_u8 / 255.0 - eq2_8).max() <= 1 / 255
    # layout constraints, recomputed from the arrays
    occluded = [1 - s.alphas[i].sum() / s.pasted_alphas[i].sum() for i in range(n)]
    assert max(occluded) <= SMALL.max_occlusion + 1e-6
    assert max(occluded) >= SMALL.min_max_occlusion - 1e-6
    supp = s.pasted_alphas > 0.1
    for i in range(n):
        assert any(np.any(supp[i] & supp[j]) for j in range(n) if j != i), f"layer {i} overlaps nobody"
        assert s.alphas[i].sum() / (H * W) >= SMALL.min_visible_area - 1e-6
    assert [layer["index"] for layer in s.layers] == s.order == list(range(n))
    assert len({layer["person"] for layer in s.layers}) == n  # distinct persons


def test_max_occlusion_setting_is_obeyed(libs):
    g = synth.SyntheticGenerator(*libs, synth.SynthSettings(long_side=(256, 320), max_occlusion=0.2,
                                                            min_people=3, max_people=3))
    s = g.sample(5)
    assert len(s.layers) == 3
    assert max(layer["occluded_fraction"] for layer in s.layers) <= 0.2


@pytest.fixture(scope="module")
def dataset_a(libs, tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "a"
    return out, synth.generate_dataset(*libs, out, n=2, seed=11, settings=SMALL)


def test_dataset_reproducible_and_in_him2k_layout(data_dir, libs, dataset_a, tmp_path):
    """Same seed -> identical files (also from a fresh library); another seed -> other images."""
    (tmp_path / "a").symlink_to(dataset_a[0], target_is_directory=True)
    d1 = dataset_a[1]
    synth.generate_dataset(data_dir / "p3m", data_dir / "coco_backgrounds" / "images", tmp_path / "b",
                           n=2, seed=11, settings=SMALL)
    synth.generate_dataset(*libs, tmp_path / "c", n=2, seed=12, settings=SMALL)
    files = sorted(p.relative_to(dataset_a[0]) for p in dataset_a[0].rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*") if p.is_file())
    for rel in files:
        if rel.name != "composites.json":
            assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    a = json.loads((tmp_path / "a" / "composites.json").read_text())
    b = json.loads((tmp_path / "b" / "composites.json").read_text())
    assert a["images"] == b["images"] == d1["images"]
    c = json.loads((tmp_path / "c" / "composites.json").read_text())
    assert c["images"] != a["images"]
    png_a = cv2.imread(str(tmp_path / "a/images_png/comp/syn_0000.png"))
    png_c = cv2.imread(str(tmp_path / "c/images_png/comp/syn_0000.png"))
    assert png_a.shape != png_c.shape or not np.array_equal(png_a, png_c)
    for rec in a["images"]:
        name = rec["name"]
        assert (tmp_path / "a" / "images" / "comp" / f"{name}.jpg").is_file()
        png = cv2.imread(str(tmp_path / "a" / rec["image_png"]))
        assert png.shape[:2] == (rec["height"], rec["width"])
        alphas = sorted((tmp_path / "a" / "alphas" / "comp" / name).glob("*.png"))
        assert [p.name for p in alphas] == [f"{i:02d}.png" for i in range(rec["n_instances"])]
        gt = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE) for p in alphas]).astype(np.int32)
        assert gt.sum(0).max() <= 255 + len(alphas)  # sum of visible alpha <= 1 (up to rounding)
        assert rec["order_back_to_front"] == [la["person"] for la in rec["layers_back_to_front"]]
        assert all(la["occluded_fraction"] <= SMALL.max_occlusion for la in rec["layers_back_to_front"])


def test_saved_png_equals_eq14_with_saved_gt(dataset_a, libs):
    """Re-draw image 0 through the API (same rng, same background) and check the saved files."""
    root, doc = dataset_a
    cut, bgs = libs
    bg = next(p for p in bgs.files if p.name == doc["images"][0]["background"]["file"])
    s = synth.SyntheticGenerator(cut, bgs, SMALL).sample(np.random.default_rng([11, 0]), background=bg)
    png = cv2.imread(str(root / "images_png/comp/syn_0000.png"))[..., ::-1]
    assert np.array_equal(png, s.image_u8)
    gt = np.stack([cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
                   for p in sorted((root / "alphas/comp/syn_0000").glob("*.png"))]) / 255.0
    eq14 = (gt[..., None] * s.foregrounds).sum(0) + (1 - gt.sum(0))[..., None] * s.background
    assert np.abs(png / 255.0 - eq14).max() <= 1 / 255


def test_cli_synth_bad_input(tmp_path, capsys, data_dir):
    missing = tmp_path / "nope"
    assert cli_main(["synth", str(missing), str(tmp_path), "-o", str(tmp_path / "o"), "-n", "1",
                     "--seed", "0"]) == 2
    assert f"{missing}: cut-out folder does not exist" in capsys.readouterr().err
    assert cli_main(["synth", str(tmp_path), str(tmp_path), "-o", str(tmp_path / "o"), "-n", "1",
                     "--seed", "0"]) == 2
    assert "HIM2K layout" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli_main(["synth", str(data_dir / "p3m"), str(empty), "-o", str(tmp_path / "o"), "-n", "1",
                     "--seed", "0"]) == 2
    assert f"{empty}: no background images found" in capsys.readouterr().err
    assert cli_main(["synth", str(data_dir / "p3m"), str(data_dir / "coco_backgrounds" / "images"),
                     "-o", str(tmp_path / "o"), "-n", "1", "--seed", "0", "--min-people", "9",
                     "--max-people", "9"]) == 2
    assert "fewer than --min-people 9" in capsys.readouterr().err
