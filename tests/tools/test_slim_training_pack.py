"""tools/slim_training_pack.py: a pack small enough for the device tool, compositing exactly as the original."""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import cv2
import numpy as np

from instmatt_app.evaluation.synth import BackgroundLibrary, CutoutLibrary, SyntheticGenerator, SynthSettings

REPO = Path(__file__).resolve().parents[2]


def _tool():
    spec = importlib.util.spec_from_file_location("slim_training_pack", REPO / "tools" / "slim_training_pack.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pack(data_dir: Path, root: Path) -> Path:
    """cutouts_train (3 P3M portraits with a precomputed fg/) and backgrounds_train (3 COCO backgrounds)."""
    cut = root / "cutouts_train"
    for img in sorted((data_dir / "p3m" / "images").glob("*/*.jpg"))[:3]:
        sub = img.parent.name
        (cut / "images" / sub).mkdir(parents=True, exist_ok=True)
        shutil.copy(img, cut / "images" / sub / img.name)
        shutil.copytree(data_dir / "p3m" / "alphas" / sub / img.stem, cut / "alphas" / sub / img.stem)
        (cut / "fg" / sub).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(cut / "fg" / sub / f"{img.stem}.png"), cv2.imread(str(img)))
    (root / "backgrounds_train").mkdir()
    for bg in sorted((data_dir / "coco_backgrounds" / "images").glob("*.jpg"))[:3]:
        shutil.copy(bg, root / "backgrounds_train" / bg.name)
    return root


def test_the_slim_pack_composites_like_the_original(data_dir, tmp_path, capsys):
    pack = _pack(data_dir, tmp_path / "pack")
    out = tmp_path / "slim"
    assert _tool().main([str(pack), "-o", str(out)]) == 0
    assert "MiB" in capsys.readouterr().out
    for f in (pack / "cutouts_train").rglob("*.png"):      # alphas and foregrounds: byte for byte
        assert (out / f.relative_to(pack)).read_bytes() == f.read_bytes()
    size = lambda root: sum(f.stat().st_size for f in root.rglob("*.jpg"))  # noqa: E731
    assert size(out) < 0.6 * size(pack)
    for f in (pack / "cutouts_train" / "images").glob("*/*.jpg"):
        assert cv2.imread(str(out / f.relative_to(pack))).shape == cv2.imread(str(f)).shape

    def draw(root: Path):
        gen = SyntheticGenerator(CutoutLibrary(root / "cutouts_train"), BackgroundLibrary(root / "backgrounds_train"),
                                 SynthSettings(long_side=(320, 400), max_people=2))
        return gen.sample(np.random.default_rng(5))
    a, b = draw(pack), draw(out)
    np.testing.assert_array_equal(a.alphas, b.alphas)                # the same layout and people
    np.testing.assert_array_equal(a.foregrounds, b.foregrounds)
    assert np.abs(a.background - b.background).mean() < 0.02         # only the background's JPEG noise


def test_a_folder_that_is_not_a_pack(tmp_path, capsys):
    assert _tool().main([str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    assert "expected cutouts_train/" in capsys.readouterr().err
