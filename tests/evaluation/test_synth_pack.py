"""CutoutLibrary with a precomputed foreground (fg/<subset>/<name>.png|jpg beside images/)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from instmatt_app.evaluation import synth

NAME = "p_819ea202"  # cut at the bottom only: usable by the generator


@pytest.fixture(scope="module")
def small_cutout(data_dir):
    """One P3M portrait reduced to a 320-px long side: (photo RGB uint8, alpha uint8)."""
    rgb = cv2.cvtColor(cv2.imread(str(data_dir / f"p3m/images/p3m/{NAME}.jpg")), cv2.COLOR_BGR2RGB)
    a = cv2.imread(str(data_dir / f"p3m/alphas/p3m/{NAME}/00.png"), cv2.IMREAD_GRAYSCALE)
    f = 320 / max(a.shape)
    size = (round(a.shape[1] * f), round(a.shape[0] * f))
    return (cv2.resize(rgb, size, interpolation=cv2.INTER_AREA),
            cv2.resize(a, size, interpolation=cv2.INTER_AREA))


def _write(root, rgb, alpha, fg=None, fg_ext=".png"):
    (root / "images/p3m").mkdir(parents=True)
    (root / f"alphas/p3m/{NAME}").mkdir(parents=True)
    cv2.imwrite(str(root / f"images/p3m/{NAME}.png"), rgb[..., ::-1])
    cv2.imwrite(str(root / f"alphas/p3m/{NAME}/00.png"), alpha)
    if fg is not None:
        (root / "fg/p3m").mkdir(parents=True)
        cv2.imwrite(str(root / f"fg/p3m/{NAME}{fg_ext}"), fg[..., ::-1])


def _estimate(rgb, alpha):
    from pymatting import estimate_foreground_ml

    fg = estimate_foreground_ml(rgb / 255.0, alpha / 255.0)
    return np.clip(np.round(fg * 255), 0, 255).astype(np.uint8)


def test_precomputed_foreground_is_read_not_estimated(tmp_path, small_cutout, monkeypatch):
    rgb, alpha = small_cutout
    fg = _estimate(rgb, alpha)
    _write(tmp_path, rgb, alpha, fg)
    lib = synth.CutoutLibrary(tmp_path)
    (c,) = lib.cutouts
    assert c.fg_path == tmp_path / f"fg/p3m/{NAME}.png"

    import pymatting

    def forbidden(*a, **k):
        raise AssertionError("estimate_foreground_ml must not run when fg/ exists")

    monkeypatch.setattr(pymatting, "estimate_foreground_ml", forbidden)
    prep = lib.prepared(c)
    x0, y0, x1, y1 = c.box
    assert prep.work_scale == 1.0
    np.testing.assert_array_equal(prep.alpha, alpha[y0:y1, x0:x1])
    assert prep.fg.dtype == np.float32 and prep.fg.shape == (y1 - y0, x1 - x0, 3)
    np.testing.assert_allclose(prep.fg, fg[y0:y1, x0:x1] / 255.0, atol=1e-6)


def test_precomputed_foreground_agrees_with_the_estimate(tmp_path, small_cutout):
    """Same cut-out with and without fg/: where the person is (alpha > 0.1) the colours agree."""
    rgb, alpha = small_cutout
    _write(tmp_path / "with", rgb, alpha, _estimate(rgb, alpha))
    _write(tmp_path / "without", rgb, alpha)
    a = synth.CutoutLibrary(tmp_path / "with")
    b = synth.CutoutLibrary(tmp_path / "without")
    assert b.cutouts[0].fg_path is None
    pa, pb = a.prepared(a.cutouts[0]), b.prepared(b.cutouts[0])
    assert pa.fg.shape == pb.fg.shape
    person = pa.alpha > 25
    diff = np.abs(pa.fg - pb.fg).max(-1)[person]
    assert diff.mean() < 0.01 and np.percentile(diff, 99) < 0.05


def test_precomputed_foreground_is_reduced_to_the_working_scale(tmp_path, small_cutout):
    rgb, alpha = small_cutout
    fg = _estimate(rgb, alpha)
    _write(tmp_path, rgb, alpha, fg, ".jpg")
    lib = synth.CutoutLibrary(tmp_path, max_paste_height=100)
    c = lib.cutouts[0]
    assert c.fg_path.suffix == ".jpg"
    prep = lib.prepared(c)
    x0, y0, x1, y1 = c.box
    assert prep.work_scale == pytest.approx(100 / (y1 - y0))
    assert prep.fg.shape[0] == 100 and abs(prep.fg.shape[1] - (x1 - x0) * prep.work_scale) <= 1
    ref = cv2.resize(fg[y0:y1, x0:x1], prep.fg.shape[1::-1], interpolation=cv2.INTER_AREA) / 255.0
    assert np.abs(prep.fg - ref).mean() < 0.02  # JPEG q95 of the same colours


def test_generator_draws_with_precomputed_foregrounds(tmp_path, small_cutout, data_dir):
    rgb, alpha = small_cutout
    fg = _estimate(rgb, alpha)
    _write(tmp_path / "cut", rgb, alpha, fg)
    # a second identity: the same portrait mirrored (a distinct cut-out for min_people=2)
    (tmp_path / "cut/images/p3m/mirror.png").write_bytes(
        cv2.imencode(".png", np.ascontiguousarray(rgb[:, ::-1, ::-1]))[1].tobytes())
    (tmp_path / "cut/alphas/p3m/mirror").mkdir()
    cv2.imwrite(str(tmp_path / "cut/alphas/p3m/mirror/00.png"), np.ascontiguousarray(alpha[:, ::-1]))
    cv2.imwrite(str(tmp_path / "cut/fg/p3m/mirror.png"), np.ascontiguousarray(fg[:, ::-1, ::-1]))
    lib = synth.CutoutLibrary(tmp_path / "cut")
    assert all(c.fg_path is not None for c in lib.cutouts) and len(lib.cutouts) == 2
    gen = synth.SyntheticGenerator(lib, synth.BackgroundLibrary(data_dir / "coco_backgrounds" / "images"),
                                   synth.SynthSettings(long_side=(256, 320), max_people=2))
    s = gen.sample(3)
    # Eq. 13/14 still hold with the file-backed colours
    eq2 = (s.alphas[..., None] * s.foregrounds).sum(0) + (1 - s.alphas.sum(0))[..., None] * s.background
    assert np.abs(s.image_u8 / 255.0 - eq2).max() <= 1 / 255
    assert s.foregrounds[s.pasted_alphas > 0.5].mean() > 0.05  # colours were pasted, not zeros


def test_foreground_of_the_wrong_size_names_the_file(tmp_path, small_cutout):
    rgb, alpha = small_cutout
    _write(tmp_path, rgb, alpha, _estimate(rgb, alpha)[:-4])
    lib = synth.CutoutLibrary(tmp_path)
    with pytest.raises(synth.SynthInputError, match=f"fg/p3m/{NAME}.png"):
        lib.prepared(lib.cutouts[0])
