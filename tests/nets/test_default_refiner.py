"""Multi-instance refinement of the embedded default (parallel / cycle), issue 9."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from instmatt_app.nets import registry
from instmatt_app.nets.default_matter import ownership
from instmatt_app.nets.default_refiner import (
    DefaultRefiner,
    RefinementError,
    RefinerConfig,
    contested_band,
)
from instmatt_app.nets.image_context import ImageContext


def _unrefined(total: np.ndarray, masks: np.ndarray, spread_px: float = 6.0) -> np.ndarray:
    """Tri-mattes the way the default matter builds them: human alpha split by mask ownership."""
    own = ownership(masks, spread_px)
    alphas = own * total[None]
    alphas /= np.maximum(alphas.sum(axis=0), 1.0)[None]
    tot = alphas.sum(axis=0)
    return np.stack([alphas, tot[None] - alphas, np.broadcast_to(1.0 - tot, alphas.shape)], 1).astype(np.float32)


def _scene(h: int = 120, w: int = 200, seed: int = 0):
    """Two people side by side (touching, red | blue), a third (green) far right; grey noisy
    background. Returns image (h, w, 3) uint8, masks (3, h, w) float32, total alpha (h, w)."""
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 128, np.float32) + rng.normal(0, 3, (h, w, 3))
    masks = np.zeros((3, h, w), np.float32)
    masks[0, 20:110, 20:70] = 1
    masks[1, 25:110, 70:110] = 1
    masks[2, 30:110, 160:190] = 1
    for m, colour in zip(masks, ((200, 40, 40), (40, 40, 200), (40, 200, 40))):
        img[m > 0] = colour + rng.normal(0, 3, (int(m.sum()), 3))
    total = np.clip(masks.sum(axis=0), 0, 1)
    return np.clip(img, 0, 255).astype(np.uint8), masks, total.astype(np.float32)


@pytest.mark.slow  # registry.build imports every backend (torch, mediapipe): ~20 s on a busy CPU
def test_registered_in_the_builder_registry():
    refiner = registry.build("refiner", "default", band=0.02)
    assert isinstance(refiner, DefaultRefiner) and refiner.config.band == 0.02


def test_interface():
    refiner = DefaultRefiner()
    image, masks, total = _scene()
    tri = _unrefined(total, masks)
    out = refiner.refine(image, tri, masks, mode="parallel", order=[0, 1, 2], context=ImageContext(image))
    assert out.shape == tri.shape and out.dtype == np.float32
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)  # α_t + α_r + α_b = 1


def test_bad_input_is_a_clear_error():
    refiner = DefaultRefiner()
    image, masks, total = _scene()
    tri = _unrefined(total, masks)
    with pytest.raises(RefinementError, match="order"):
        refiner.refine(image, tri, masks, mode="cycle", order=[0, 0, 1])
    with pytest.raises(RefinementError, match="mode"):
        refiner.refine(image, tri, masks, mode="sideways")
    with pytest.raises(RefinementError, match="masks"):
        refiner.refine(image, tri, masks[:2], mode="parallel")


def test_one_instance_is_left_alone():
    image, masks, _ = _scene()
    tri = _unrefined(masks[0], masks[:1])
    for mode in ("parallel", "cycle"):
        out = DefaultRefiner().refine(image, tri, masks[:1], mode=mode, order=[0])
        np.testing.assert_array_equal(out[:, 0], tri[:, 0])


def test_nothing_changes_outside_the_contested_band():
    image, masks, total = _scene()
    tri = _unrefined(total, masks)
    cfg = RefinerConfig()
    refiner = DefaultRefiner(config=cfg)
    band_px = max(2, round(cfg.band * max(image.shape[:2])))  # photo < work_side: full resolution
    band = contested_band(tri[:, 0], masks, band_px, cfg.presence)
    assert band.any() and not band[:, 150:].any()  # the far person competes with nobody
    for mode, order in (("parallel", None), ("cycle", [1, 0, 2])):
        out = refiner.refine(image, tri, masks, mode=mode, order=order)
        changed = np.abs(out[:, 0] - tri[:, 0]).max(axis=0) > 0
        assert changed.any(), "refinement did nothing where two people touch"
        assert not (changed & ~band).any()


def test_cycle_is_order_invariant_where_instances_do_not_interact():
    image, masks, total = _scene()
    tri = _unrefined(total, masks)
    refiner = DefaultRefiner()
    ctx = ImageContext(image)
    a = refiner.refine(image, tri, masks, "cycle", [0, 1, 2], ctx)
    b = refiner.refine(image, tri, masks, "cycle", [2, 0, 1], ctx)
    c = refiner.refine(image, tri, masks, "cycle", [0, 2, 1], ctx)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    # the person far away is untouched by any order
    np.testing.assert_array_equal(a[2, 0], tri[2, 0])


def test_sum_of_alphas_stays_at_most_one_with_overlapping_masks():
    image, masks, total = _scene(seed=3)
    masks = masks.copy()
    masks[0, 20:110, 20:85] = 1  # person 0's mask bleeds over person 1
    masks[1, 25:110, 60:110] = 1
    tri = _unrefined(total, masks)
    refiner = DefaultRefiner()
    for mode, order in (("parallel", None), ("cycle", [0, 1, 2]), ("cycle", [1, 0, 2])):
        out = refiner.refine(image, tri, masks, mode=mode, order=order)
        assert out[:, 0].sum(axis=0).max() <= 1.0 + 1e-5
        assert out.min() >= 0.0 and out.max() <= 1.0
        np.testing.assert_allclose(out[:, 0].sum(axis=0), total, atol=2e-3)  # human alpha kept


def test_reorder_reuses_the_cached_preparation():
    image, masks, total = _scene()
    tri = _unrefined(total, masks)
    ctx = ImageContext(image)
    refiner = DefaultRefiner()
    refiner.refine(image, tri, masks, "cycle", [0, 1, 2], ctx)
    keys = set(ctx.cache)
    refiner.refine(image, tri, masks, "cycle", [1, 0, 2], ctx)
    refiner.refine(image, tri, masks, "parallel", None, ctx)
    assert set(ctx.cache) == keys and any(k.startswith("default_refiner:") for k in keys)


def _bleeding_composite(data_dir, name: str, long_side: int = 480):
    """A synthetic dev composite with known layer order, at ``long_side`` px; each person's
    mask bleeds 7 px into the people in front of it (as the embedded detector's masks do).
    Returns image (H, W, 3) uint8, GT visible alphas (k, H, W) in composite order (last = front),
    masks (k, H, W) float32."""
    folder = data_dir / "synthetic"
    meta = {e["name"]: e for e in json.loads((folder / "composites.json").read_text())["images"]}
    entry = meta[name]
    bgr = cv2.imread(str(data_dir / entry["image"]))
    gts = np.stack([cv2.imread(str(data_dir / layer["alpha_file"]), cv2.IMREAD_GRAYSCALE)
                    for layer in entry["layers_back_to_front"]]).astype(np.float32) / 255.0
    scale = long_side / max(bgr.shape[:2])
    size = (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale))
    image = cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    gts = np.stack([cv2.resize(g, size, interpolation=cv2.INTER_AREA) for g in gts])
    visible = gts > 0.5
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))
    masks = visible.astype(np.float32)
    for i in range(len(gts)):  # composite order: higher index = further in front
        front = visible[i + 1:].any(axis=0)
        masks[i][(cv2.dilate(visible[i].astype(np.uint8), kernel) > 0) & front] = 1.0
    return image, gts, masks


def test_composite_is_recovered_better_in_its_true_order(data_dir):
    """The true front-to-back order must split the overlap better than the reversed one, and
    better than no refinement; parallel (no order) must not be worse than no refinement."""
    image, gts, masks = _bleeding_composite(data_dir, "dev_0001")
    k = len(gts)
    total = gts.sum(axis=0)
    tri = _unrefined(total, masks)
    refiner = DefaultRefiner()
    ctx = ImageContext(image)
    true_order = list(range(k))[::-1]
    contested = (masks > 0.5).sum(axis=0) >= 2

    def err(out):
        return float(np.abs(out[:, 0] - gts)[:, contested].mean())

    e_none = err(tri)
    e_true = err(refiner.refine(image, tri, masks, "cycle", true_order, ctx))
    e_rev = err(refiner.refine(image, tri, masks, "cycle", true_order[::-1], ctx))
    e_par = err(refiner.refine(image, tri, masks, "parallel", None, ctx))
    assert contested.sum() > 500
    assert e_true < 0.6 * e_rev
    assert e_true < 0.6 * e_none
    assert e_par <= e_none * 1.02


def test_estimated_order_puts_the_front_person_first(data_dir):
    """On composites with bleeding masks, the order guessed from the image orders (nearly) every
    pair of people whose masks overlap as the composite did."""
    right = total = 0
    for name in ("dev_0000", "dev_0001", "dev_0002", "dev_0003"):
        image, gts, masks = _bleeding_composite(data_dir, name)
        tri = _unrefined(gts.sum(axis=0), masks)
        est = DefaultRefiner().estimate_order(image, tri, masks, ImageContext(image))
        assert sorted(est) == list(range(len(gts)))
        pos = {g: p for p, g in enumerate(est)}
        inside = masks > 0.5
        for a in range(len(gts)):
            for b in range(a + 1, len(gts)):
                if (inside[a] & inside[b]).sum() >= 20:
                    total += 1
                    right += (pos[a] < pos[b]) == (a > b)  # higher composite index = in front
    assert total >= 8
    assert right >= 0.8 * total


def test_cycle_without_an_order_uses_the_estimated_one(data_dir):
    image, gts, masks = _bleeding_composite(data_dir, "dev_0003", long_side=320)
    tri = _unrefined(gts.sum(axis=0), masks)
    refiner = DefaultRefiner()
    ctx = ImageContext(image)
    est = refiner.estimate_order(image, tri, masks, ctx)
    np.testing.assert_array_equal(refiner.refine(image, tri, masks, "cycle", None, ctx),
                                  refiner.refine(image, tri, masks, "cycle", est, ctx))


def test_engine_switches_mode_and_order_on_the_embedded_default(data_dir):
    """Through the engine (embedded human alpha, default matter, no weights): changing the order
    of cycle refinement changes the split between overlapping people, and the true front-to-back
    order gives the better one."""
    from instmatt_app.pipeline import Engine, EngineConfig

    image, gts, masks = _bleeding_composite(data_dir, "dev_0003", long_side=400)
    engine = Engine(EngineConfig(device="cpu", matting="default", refine="parallel"))
    result = engine.run(image, masks=masks)
    contested = (masks > 0.5).sum(axis=0) >= 2
    true_order = list(range(len(gts)))[::-1]

    def err(res):
        alphas = np.stack([np.asarray(inst.trimatte[0], np.float32) for inst in res.instances])
        return float(np.abs(alphas - gts)[:, contested].mean())

    e_true = err(engine.refine(result, "cycle", true_order))
    e_rev = err(engine.refine(result, "cycle", true_order[::-1]))
    assert contested.sum() > 200
    assert e_true < 0.7 * e_rev
    assert e_true < err(result)


def test_working_resolution_below_the_photo(data_dir):
    """The split solved at half the photo's size and upsampled: changes stay within one working
    pixel of the contested band, Σ α ≤ 1, and the true order still wins."""
    image, gts, masks = _bleeding_composite(data_dir, "dev_0001", long_side=480)
    k = len(gts)
    tri = _unrefined(gts.sum(axis=0), masks)
    cfg = RefinerConfig(work_side=240)
    refiner = DefaultRefiner(config=cfg)
    ctx = ImageContext(image)
    true_order = list(range(k))[::-1]
    out_true = refiner.refine(image, tri, masks, "cycle", true_order, ctx)
    out_rev = refiner.refine(image, tri, masks, "cycle", true_order[::-1], ctx)
    assert out_true[:, 0].sum(axis=0).max() <= 1.0 + 1e-5
    band_px = max(2, round(cfg.band * 240)) * 2 + 4  # the working band in photo pixels, + upsampling
    near = contested_band(tri[:, 0], masks, band_px, cfg.presence)
    changed = np.abs(out_true[:, 0] - tri[:, 0]).max(axis=0) > 0
    assert changed.any() and not (changed & ~near).any()
    contested = (masks > 0.5).sum(axis=0) >= 2
    e_true = np.abs(out_true[:, 0] - gts)[:, contested].mean()
    e_rev = np.abs(out_rev[:, 0] - gts)[:, contested].mean()
    assert e_true < 0.6 * e_rev


def test_refine_alphas_in_place_equals_refine_and_strips_do_not_matter(data_dir, monkeypatch):
    """The engine's path: (k, H, W) alphas refined in place, the full-resolution update done in
    strips of rows; the same α_t as :meth:`refine` on tri-mattes, whatever the strip height."""
    image, gts, masks = _bleeding_composite(data_dir, "dev_0001", long_side=480)
    tri = _unrefined(gts.sum(axis=0), masks)
    refiner = DefaultRefiner(config=RefinerConfig(work_side=240))  # upsampled: the remap path
    ctx = ImageContext(image)
    order = list(range(len(gts)))[::-1]
    expected = refiner.refine(image, tri, masks, "cycle", order, ctx)[:, 0]
    alphas = np.ascontiguousarray(tri[:, 0])
    out = refiner.refine_alphas(image, alphas, masks, "cycle", order, ctx)
    assert out is alphas and not np.array_equal(out, tri[:, 0])
    np.testing.assert_array_equal(out, expected)
    monkeypatch.setattr(DefaultRefiner, "STRIP_PIXELS", 7 * image.shape[1])  # 7-row strips
    np.testing.assert_array_equal(refiner.refine_alphas(image, np.ascontiguousarray(tri[:, 0]), masks, "cycle",
                                                        order, ctx), expected)
    with pytest.raises(RefinementError, match="float32"):
        refiner.refine_alphas(image, tri[:, 0].astype(np.float64), masks, "parallel")
    with pytest.raises(RefinementError, match="alphas must be"):
        refiner.refine_alphas(image, tri, masks, "parallel")
    untouched = np.ascontiguousarray(tri[:, 0])
    np.testing.assert_array_equal(refiner.refine_alphas(image, untouched, masks, "none"), tri[:, 0])
