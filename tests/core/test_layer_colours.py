"""Multi-layer colour estimation (Eq. 2) on the synthetic HIM2K-style sample with its GT alphas."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from PIL import Image

from instmatt_app.core.inpaint import fill_hidden_background
from instmatt_app.core.layer_colours import estimate_layer_colours, normalise_alphas, reconstruct


def _rgb(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0


def _composite(data_dir, name):
    meta = json.loads((data_dir / "synthetic" / "composites.json").read_text())
    entry = next(i for i in meta["images"] if i["name"] == name)
    img = _rgb(data_dir / entry["image_png"])
    alphas = np.stack([np.asarray(Image.open(data_dir / lay["alpha_file"]), np.float32) / 255.0
                       for lay in entry["layers_back_to_front"]])
    return entry, img, alphas


def _true_foreground(data_dir, entry, layer):
    """Re-render person F of one layer exactly as the generator did (composites.json)."""
    from pymatting import estimate_foreground_ml
    lay = entry["layers_back_to_front"][layer]
    photo = np.asarray(Image.open(data_dir / lay["person_files"]["image"]).convert("RGB"), np.float64) / 255
    alpha = np.asarray(Image.open(data_dir / lay["person_files"]["alpha"]), np.float64) / 255
    fg = estimate_foreground_ml(photo, alpha).astype(np.float32)
    x0, y0, x1, y1 = lay["source_crop_xyxy"]
    fg, alpha = fg[y0:y1, x0:x1], alpha[y0:y1, x0:x1].astype(np.float32)
    if lay["flip"]:
        fg, alpha = fg[:, ::-1], alpha[:, ::-1]
    pw, ph = lay["pasted_size_wh"]
    interp = cv2.INTER_AREA if pw < fg.shape[1] else cv2.INTER_LINEAR
    fg = cv2.resize(np.ascontiguousarray(fg), (pw, ph), interpolation=interp)
    alpha = cv2.resize(np.ascontiguousarray(alpha), (pw, ph), interpolation=interp)
    H, W = entry["height"], entry["width"]
    ox, oy = lay["paste_offset_xy"]
    ys, xs, ye, xe = max(0, oy), max(0, ox), min(H, oy + ph), min(W, ox + pw)
    canvas_f = np.zeros((H, W, 3), np.float32)
    canvas_a = np.zeros((H, W), np.float32)
    canvas_f[ys:ye, xs:xe] = fg[ys - oy:ye - oy, xs - ox:xe - ox]
    canvas_a[ys:ye, xs:xe] = alpha[ys - oy:ye - oy, xs - ox:xe - ox]
    return canvas_f, canvas_a


@pytest.fixture(scope="module")
def five_people(data_dir):
    entry, img, alphas = _composite(data_dir, "dev_0001")
    return entry, img, alphas, estimate_layer_colours(img, alphas)


def test_reconstruction_reproduces_photo(five_people):
    _, img, alphas, res = five_people
    assert res.layers.shape == alphas.shape + (3,) and res.background.shape == img.shape
    assert res.layers.dtype == np.float32 and 0.0 <= res.layers.min() and res.layers.max() <= 1.0
    err = np.abs(reconstruct(alphas, res.layers, res.background) - img).mean(axis=2)
    weighted = alphas.sum(axis=0) > 0          # every pixel where a person layer has weight
    assert err.mean() <= 1 / 255
    assert err[weighted].mean() <= 1 / 255


def test_band_only_solver_also_reproduces_photo(data_dir):
    # force the sparse full-resolution path that 24 MP photos take
    _, img, alphas = _composite(data_dir, "dev_0003")
    res = estimate_layer_colours(img, alphas, dense_pixels=20_000)
    err = np.abs(reconstruct(alphas, res.layers, res.background) - img).mean(axis=2)
    assert err[alphas.sum(axis=0) > 0].mean() <= 1 / 255


def test_layers_are_smooth_where_alpha_is_small(five_people):
    _, img, alphas, res = five_people
    gy_img = np.abs(np.diff(img, axis=0)).sum(axis=2)
    for i, a in enumerate(alphas):
        near = cv2.dilate((a > 0.5).astype(np.uint8), np.ones((41, 41), np.uint8)).astype(bool)
        y0, y1, x0, x1 = res.people[i].box       # the layer is stored there (zero outside: no weight)
        assert (a[:y0] == 0).all() and (a[y1:] == 0).all() and (a[:, :x0] == 0).all() and (a[:, x1:] == 0).all()
        inside = np.zeros_like(near)
        inside[y0:y1, x0:x1] = True
        outside = near & (a < 0.01) & inside
        region = outside[1:] & outside[:-1]
        assert region.sum() > 1000, i
        gy_layer = np.abs(np.diff(res.layers[i], axis=0)).sum(axis=2)
        # the photo there is background texture; the layer must not copy it
        assert gy_layer[region].mean() < 0.3 * gy_img[region].mean(), i


def test_hair_edge_colour_is_decontaminated(data_dir):
    entry, img, alphas = _composite(data_dir, "dev_0003")
    front = len(alphas) - 1
    true_f, rendered_alpha = _true_foreground(data_dir, entry, front)
    assert np.abs(np.round(rendered_alpha * 255) / 255 - alphas[front]).max() < 1e-6  # same geometry
    res = estimate_layer_colours(img, alphas)
    edge = (alphas[front] > 0.1) & (alphas[front] < 0.9)
    assert edge.sum() > 500
    err_est = np.abs(res.layers[front][edge] - true_f[edge]).mean()
    err_raw = np.abs(img[edge] - true_f[edge]).mean()
    assert err_est < 0.5 * err_raw, (err_est * 255, err_raw * 255)


def test_hidden_background_is_inpainted_towards_the_true_background(data_dir, five_people):
    entry, img, alphas, res = five_people
    bg_path = data_dir / entry["background"]["file"]
    true_bg = np.asarray(Image.open(bg_path).convert("RGB").resize((img.shape[1], img.shape[0]),
                                                                   Image.LANCZOS), np.float32) / 255
    hidden = alphas.sum(axis=0) > 0.99
    assert hidden.mean() > 0.1
    err_bg = np.abs(res.background[hidden] - true_bg[hidden]).mean()
    err_photo = np.abs(img[hidden] - true_bg[hidden]).mean()
    assert err_bg < 0.75 * err_photo, (err_bg * 255, err_photo * 255)


def test_fill_hidden_background_on_a_smooth_ramp():
    h, w = 300, 400
    gx, gy = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))
    ramp = np.dstack([gx, gy, np.full((h, w), 0.5)])
    ramp = ramp.astype(np.float32)
    a0 = np.ones((h, w), np.float32)
    a0[100:200, 150:250] = 0.0
    garbage = ramp.copy()
    garbage[100:200, 150:250] = [1.0, 0.0, 1.0]
    filled = fill_hidden_background(garbage, a0, max_side=200)
    err = np.abs(filled[100:200, 150:250] - ramp[100:200, 150:250])
    # the magenta garbage (error ~0.5-1) is gone; Telea follows the ramp to a few percent
    assert err.mean() < 0.04 and err.max() < 0.25
    # the visible background is kept (the hole's 1-pixel rim is feathered)
    keep = np.ones((h, w), bool)
    keep[98:202, 148:252] = False
    assert np.abs(filled - garbage)[keep].max() < 1e-6


def test_no_people_and_bad_shapes():
    img = np.random.default_rng(0).random((20, 30, 3), dtype=np.float32)
    res = estimate_layer_colours(img, np.zeros((0, 20, 30), np.float32))
    assert res.layers.shape == (0, 20, 30, 3) and np.array_equal(res.background, img)
    with pytest.raises(ValueError, match="alphas"):
        estimate_layer_colours(img, np.zeros((2, 10, 30), np.float32))
    with pytest.raises(ValueError, match="image"):
        estimate_layer_colours(img[..., 0], np.zeros((1, 20, 30), np.float32))


def test_uint8_inputs_are_scaled():
    rng = np.random.default_rng(1)
    img = rng.random((24, 32, 3), dtype=np.float32)
    a = np.zeros((1, 24, 32), np.float32)
    a[0, 6:18, 8:24] = 0.5
    ref = estimate_layer_colours(img, a)
    res = estimate_layer_colours(np.round(img * 255).astype(np.uint8), np.round(a * 255).astype(np.uint8))
    assert np.abs(res.layers - ref.layers).max() < 0.05


def test_an_8bit_photo_gives_exactly_its_float_values_result(data_dir):
    # the boxed full-resolution level reads the 8-bit photo itself (no float32 copy of a big photo);
    # the values it reads are the float32 products x * float32(1/255), so the result is the same bits
    _, img, alphas = _composite(data_dir, "dev_0003")
    photo8 = np.round(img * 255).astype(np.uint8)
    as_float = photo8.astype(np.float32) * np.float32(1 / 255)
    ref = estimate_layer_colours(as_float, alphas, dense_pixels=20_000)
    res = estimate_layer_colours(photo8, alphas, dense_pixels=20_000)
    assert np.array_equal(res.background, ref.background)
    for p, q in zip(res.people, ref.people):
        assert p.box == q.box and np.array_equal(p.pixels, q.pixels)


def test_normalise_alphas_caps_the_sum():
    a = np.array([[[0.8]], [[0.6]]], np.float32)
    n = normalise_alphas(a)
    assert n.sum() == pytest.approx(1.0, abs=1e-6) and n[0, 0, 0] > n[1, 0, 0]
    assert a[0, 0, 0] == np.float32(0.8)                  # a new array: the input is left alone


def test_a_list_of_alphas_gives_what_the_stacked_array_gives(five_people):
    """The document passes its layers' alphas as a list (no stacked copy): the same result, bit for bit;
    uint8 alphas in a list are scaled as in an array; the inputs are left as they were."""
    _, img, alphas, _ = five_people
    over = alphas.copy()
    over[0] += 0.3                                        # Σ α > 1 somewhere: normalised the same way
    before = over.copy()
    ref = estimate_layer_colours(img, over)
    res = estimate_layer_colours(img, list(over))
    assert np.array_equal(res.layers, ref.layers) and np.array_equal(res.background, ref.background)
    assert np.array_equal(over, before)
    a8 = np.round(np.clip(alphas, 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(estimate_layer_colours(img, list(a8)).layers, estimate_layer_colours(img, a8).layers)
    with pytest.raises(ValueError, match="alphas"):
        estimate_layer_colours(img, [alphas[0], alphas[1][:-1]])


def test_numpy_fallback_matches_compiled_solver(data_dir, monkeypatch):
    """Without numba the numpy Jacobi sweeps run; both reach the same decomposition."""
    import instmatt_app.core.layer_colours as lc
    _, img, alphas = _composite(data_dir, "dev_0003")
    img = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    alphas = np.stack([cv2.resize(a, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA) for a in alphas])
    fast = estimate_layer_colours(img, alphas, dense_pixels=10_000)
    monkeypatch.setattr(lc, "njit", None)
    slow = estimate_layer_colours(img, alphas, dense_pixels=10_000)
    weighted = alphas.sum(axis=0) > 0
    assert np.abs(reconstruct(alphas, slow.layers, slow.background) - img).mean(axis=2)[weighted].mean() <= 1 / 255
    for i, a in enumerate(alphas):
        seen = a > 0.05
        assert np.abs(fast.layers[i][seen] - slow.layers[i][seen]).mean() < 3 / 255


@pytest.mark.parametrize("shape", [(1, 1), (1, 50), (3, 2), (50, 1), (17, 33)])
def test_odd_shapes_and_random_mixtures_reconstruct_exactly(shape):
    """Random colours and alphas need clipped layers; the active-set projection still matches."""
    rng = np.random.default_rng(sum(shape))
    h, w = shape
    img = rng.random((h, w, 3), dtype=np.float32)
    for n in (1, 3):
        a = rng.random((n, h, w), dtype=np.float32)
        a /= np.maximum(a.sum(axis=0), 1.0)
        for dense in (400_000, 4):      # dense solver and band-only solver
            res = estimate_layer_colours(img, a, dense_pixels=dense)
            assert np.isfinite(res.layers).all() and np.isfinite(res.background).all()
            assert np.abs(reconstruct(a, res.layers, res.background) - img).max() <= 0.5 / 255


def test_people_are_stored_in_their_boxes_and_match_the_full_size_solve(data_dir):
    """The full-resolution level on boxed layers (what big photos take) gives the full-size solve's
    colours wherever a person has weight, and stores each person inside the box of its alpha."""
    _, img, alphas = _composite(data_dir, "dev_0001")
    ref = estimate_layer_colours(img, alphas, dense_pixels=20_000, boxed=False)
    res = estimate_layer_colours(img, alphas, dense_pixels=20_000)
    H, W = img.shape[:2]
    assert np.abs(res.background - ref.background).max() < 1e-4
    stored = 0
    for a, r, p in zip(alphas, ref.people, res.people):
        ys, xs = np.nonzero(a > 0)
        grown = (max(0, ys.min() - 1), min(H, ys.max() + 2), max(0, xs.min() - 1), min(W, xs.max() + 2))
        assert p.box == r.box == grown
        assert np.abs(p.full() - r.full())[a > 0].max() < 1e-3
        stored += p.nbytes
    assert stored < 0.5 * len(alphas) * img.nbytes               # five people in 0.24 photos' worth here
    err = np.abs(reconstruct(alphas, res.layers, res.background) - img).mean(axis=2)
    assert err[alphas.sum(axis=0) > 0].mean() <= 1 / 255
