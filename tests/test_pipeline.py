"""The whole engine on real photos (embedded default models, CPU)."""
import numpy as np
import pytest
from PIL import Image

from instmatt_app.io.image_io import load_image
from instmatt_app.pipeline import Engine, EngineConfig, EngineError, enforce_consistency

REPO_SAMPLE = "resources/sample/two_portraits.jpg"


@pytest.fixture(scope="module")
def engine():
    return Engine(EngineConfig(device="cpu", refine="parallel"))


@pytest.fixture(scope="module")
def sample_result(engine):
    from tests.conftest import REPO

    return engine.run(load_image(REPO / REPO_SAMPLE))


def test_sample_photo_two_people_left_and_right(sample_result):
    r = sample_result
    assert len(r.instances) == 2
    w = r.image.shape[1]
    centres = sorted((inst.box[0] + inst.box[2]) / 2 for inst in r.instances)
    assert centres[0] < 0.45 * w < 0.55 * w < centres[1]  # one portrait on each side of the montage
    for inst in r.instances:
        assert inst.trimatte.shape == (3,) + r.image.shape[:2] and inst.trimatte.dtype == np.float32
        assert inst.alpha.max() > 0.95 and (inst.alpha > 0.5).mean() > 0.1


def test_consistency_and_tri_matte_sum(sample_result):
    a = sample_result.alphas
    assert (a.sum(0) <= 1 + 1e-5).all() and a.min() >= 0
    for inst in sample_result.instances:
        np.testing.assert_allclose(inst.trimatte.sum(0), 1.0, atol=1e-5)


def test_alphas_are_soft_at_the_boundary(sample_result):
    """Mattes, not masks: along each person's outline there are many fractional alpha values."""
    import cv2

    for inst in sample_result.instances:
        hard = (inst.alpha > 0.5).astype(np.uint8)
        edge = cv2.morphologyEx(hard, cv2.MORPH_GRADIENT, np.ones((5, 5), np.uint8)) > 0
        frac = ((inst.alpha > 0.02) & (inst.alpha < 0.98))[edge].mean()
        assert frac > 0.3, f"person {inst.index}: only {frac:.0%} of its outline is soft"


def test_people_found_on_real_photos(engine, data_dir):
    bus = engine.run(load_image(data_dir / "qualitative/images/bus.jpg"))
    assert len(bus.instances) >= 3  # 4 people, one cut by the edge
    zid = engine.run(load_image(data_dir / "qualitative/images/zidane.jpg"))
    assert len(zid.instances) == 2
    a = zid.alphas
    # the two men are separate instances: little alpha shared between them
    overlap = np.minimum(a[0], a[1]).sum() / min(a[0].sum(), a[1].sum())
    assert overlap < 0.02


def test_given_masks_keep_their_order(engine, data_dir):
    import cv2

    folder = data_dir / "synthetic/alphas/comp/dev_0001"
    gt = np.stack([cv2.imread(str(f), 0) for f in sorted(folder.glob("*.png"))]).astype(np.float32) / 255
    image = np.asarray(Image.open(data_dir / "synthetic/images_png/comp/dev_0001.png").convert("RGB"))
    r = engine.run(image, masks=(gt > 0.5).astype(np.float32))
    assert len(r.instances) == len(gt)
    for i, inst in enumerate(r.instances):
        inter = np.minimum(inst.alpha, gt[i]).sum()
        # instance i is GT person i: it overlaps its own GT far more than any other
        others = [np.minimum(inst.alpha, gt[j]).sum() for j in range(len(gt)) if j != i]
        assert inter > 2 * max(others, default=0)


def test_photo_without_people(engine, data_dir):
    r = engine.run(load_image(data_dir / "coco_backgrounds/images/000000000802.jpg"))
    assert len(r.instances) <= 1  # a living room; the TV/painting may look like a person
    assert r.alphas.shape[1:] == r.image.shape[:2]


def test_bad_inputs_and_refine_order_check(engine):
    with pytest.raises(EngineError, match="uint8"):
        engine.run(np.zeros((32, 32), np.uint8))
    with pytest.raises(EngineError, match="masks must be"):
        engine.run(np.zeros((32, 32, 3), np.uint8), masks=np.zeros((1, 16, 16), np.float32))
    with pytest.raises(EngineError, match="--order"):
        Engine._order(3, [0, 0, 1])
    with pytest.raises(EngineError, match="unknown device"):
        Engine(EngineConfig(device="tpu"))


def test_enforce_consistency_scales_overlaps():
    tri = np.zeros((2, 3, 2, 2), np.float32)
    tri[0, 0] = 0.8
    tri[1, 0] = 0.6
    out = enforce_consistency(tri)
    np.testing.assert_allclose(out[:, 0].sum(0), 1.0, atol=1e-6)
    np.testing.assert_allclose(out[0, 0, 0, 0] / out[1, 0, 0, 0], 0.8 / 0.6, rtol=1e-5)
    np.testing.assert_allclose(out[:, 2], 0.0, atol=1e-6)


def test_rematte_with_an_edited_mask_and_an_added_person(engine, data_dir):
    import cv2

    from instmatt_app.core.result import Detection

    folder = data_dir / "synthetic/alphas/comp/dev_0009"
    gt = np.stack([cv2.imread(str(f), 0) for f in sorted(folder.glob("*.png"))]).astype(np.float32) / 255
    image = np.asarray(Image.open(data_dir / "synthetic/images_png/comp/dev_0009.png").convert("RGB"))
    masks = (gt > 0.5).astype(np.float32)
    first = engine.run(image, masks=masks[:-1])          # the last person "missed"
    added = Detection(box=(0, 0, 1, 1), score=1.0, mask=masks[-1], source="click")
    second = engine.rematte(first, masks, "cycle", order=list(range(len(masks)))[::-1], added=[added])
    assert len(second.instances) == len(gt) and second.instances[-1].source == "click"
    assert second.extras["context"] is first.extras["context"]  # per-photo work reused
    assert (second.alphas.sum(0) <= 1 + 1e-5).all()
    # the person next to the added one no longer keeps the added person's alpha
    overlap_before = np.minimum(first.alphas, gt[-1]).sum()
    overlap_after = np.minimum(second.alphas[:-1], gt[-1]).sum()
    assert overlap_after < overlap_before
    with pytest.raises(EngineError, match="rematte needs"):
        engine.rematte(first, masks)


def test_tri_masks_and_tri_mattes_are_derived_from_the_result(sample_result):
    """The engine keeps (k, H, W) alphas and masks; every tri-mask (Eq. 5–6, union) and tri-matte
    is computed from them when asked for and agrees with the direct formulas."""
    from instmatt_app.core.trimask import trimasks

    coarse = np.stack([inst.coarse_mask for inst in sample_result.instances])
    expected = trimasks(coarse, "union")
    a = sample_result.alphas
    for i, inst in enumerate(sample_result.instances):
        np.testing.assert_allclose(inst.trimask, expected[i], atol=1e-6)
        np.testing.assert_allclose(inst.trimatte[1], np.clip(a.sum(0) - a[i], 0, 1), atol=1e-6)


def test_numpy_huge_page_advice_is_switched_off_only_while_the_engine_runs():
    from numpy._core import multiarray

    from instmatt_app.pipeline import numpy_huge_pages

    before = multiarray._get_madvise_hugepage()
    with numpy_huge_pages(False):
        assert multiarray._get_madvise_hugepage() is False
        with numpy_huge_pages(False):
            assert multiarray._get_madvise_hugepage() is False
        assert multiarray._get_madvise_hugepage() is False          # the outer call still runs
    assert multiarray._get_madvise_hugepage() is before
    with numpy_huge_pages(True):
        assert multiarray._get_madvise_hugepage() is before


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda_available(), reason="needs a CUDA GPU (numbers: benchmarks/bench_device_parity.py)")
def test_cuda_gives_the_cpu_mattes(data_dir):
    """The same people and, within tolerance, the same alphas on CUDA as on the CPU (guidance passes included)."""
    import cv2

    from instmatt_app.evaluation.imq import read_instance_folder

    image = load_image(data_dir / "synthetic/images/comp/dev_0000.jpg")
    _, gts = read_instance_folder(data_dir / "synthetic/alphas/comp/dev_0000")
    size = (image.shape[1] // 2, image.shape[0] // 2)
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    masks = np.stack([cv2.resize(g, size, interpolation=cv2.INTER_AREA) > 127 for g in gts]).astype(np.float32)
    runs = [Engine(EngineConfig(device=d, matting="lite", refine="parallel")).run(image, masks=masks.copy(),
                                                                                  detected=True)
            for d in ("cpu", "cuda")]
    a, b = (r.alphas for r in runs)
    assert a.shape == b.shape
    assert np.abs(a - b).mean() < 2e-3 and np.mean(np.abs(a - b) > 8 / 255) < 5e-3
