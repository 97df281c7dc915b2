"""Recolour maths: each adjustment's defining property, on real photo pixels."""
from __future__ import annotations

import colorsys

import numpy as np
import pytest
from PIL import Image

from instmatt_app.core.adjustments import (
    Adjustments, apply_adjustments, hue_rotation_matrix, linear_to_srgb, srgb_to_linear)


@pytest.fixture(scope="module")
def pixels(data_dir):
    img = Image.open(data_dir / "qualitative" / "images" / "zidane.jpg").convert("RGB").resize((160, 90))
    return np.asarray(img, np.float32) / 255.0


def test_identity_returns_input(pixels):
    assert apply_adjustments(pixels, Adjustments()) is pixels


def test_srgb_round_trip():
    x = np.linspace(0, 1, 256, dtype=np.float32)
    assert np.abs(linear_to_srgb(srgb_to_linear(x)) - x).max() < 1e-5
    assert srgb_to_linear(np.float32(0.5)) == pytest.approx(0.214, abs=1e-3)


def test_exposure_doubles_linear_light(pixels):
    dark = pixels * 0.4
    out = apply_adjustments(dark, Adjustments(exposure=1.0))
    assert np.allclose(srgb_to_linear(out), 2 * srgb_to_linear(dark), atol=2e-4)
    back = apply_adjustments(out, Adjustments(exposure=-1.0))
    assert np.abs(back - dark).max() < 1e-4


def test_hue_rotation_matches_hsv_hue_shift_for_a_pure_colour():
    red = np.array([[1.0, 0.0, 0.0]], np.float32)
    out = apply_adjustments(red, Adjustments(hue=120.0))[0]
    assert np.allclose(out, [0, 1, 0], atol=1e-5)   # 120° about the grey axis: red -> green
    assert np.allclose(hue_rotation_matrix(360.0), np.eye(3), atol=1e-6)
    h, _, _ = colorsys.rgb_to_hsv(*apply_adjustments(red, Adjustments(hue=60.0))[0])
    assert h * 360 == pytest.approx(60.0, abs=1.0)


def test_hue_keeps_grey_and_mean(pixels):
    grey = np.full((4, 3), 0.4, np.float32)
    assert np.allclose(apply_adjustments(grey, Adjustments(hue=77.0)), grey, atol=1e-6)
    inner = np.clip(pixels, 0.2, 0.8) * 0.5 + 0.25
    out = apply_adjustments(inner, Adjustments(hue=30.0))
    assert np.allclose(out.mean(axis=-1), inner.mean(axis=-1), atol=1e-5)


def test_saturation_minus_one_is_greyscale(pixels):
    out = apply_adjustments(pixels, Adjustments(saturation=-1.0))
    assert np.abs(out - out.mean(axis=-1, keepdims=True)).max() < 1e-5
    more = apply_adjustments(pixels, Adjustments(saturation=0.5))
    spread = lambda x: (x.max(axis=-1) - x.min(axis=-1)).mean()  # noqa: E731
    assert spread(more) > spread(pixels) > spread(out)


def test_lightness_extremes(pixels):
    assert np.allclose(apply_adjustments(pixels, Adjustments(lightness=-1.0)), 0)
    assert np.allclose(apply_adjustments(pixels, Adjustments(lightness=1.0)), 1)
    half = apply_adjustments(pixels, Adjustments(lightness=0.5))
    assert np.allclose(half, pixels + (1 - pixels) * 0.5, atol=1e-6)


def test_tint_shifts_green_magenta_keeping_grey_luminance():
    grey = np.full((1, 3), 0.5, np.float32)
    mag = apply_adjustments(grey, Adjustments(tint=0.5))[0]
    grn = apply_adjustments(grey, Adjustments(tint=-0.5))[0]
    assert mag[0] > mag[1] and mag[2] > mag[1]
    assert grn[1] > grn[0] and grn[1] > grn[2]
    lum = lambda c: float(srgb_to_linear(c) @ np.array([0.2126, 0.7152, 0.0722]))  # noqa: E731
    assert lum(mag) == pytest.approx(lum(grey[0]), abs=2e-3)


def test_dict_round_trip_and_unknown_keys():
    a = Adjustments(hue=10, saturation=0.2, lightness=-0.1, tint=0.3, exposure=0.5)
    assert Adjustments.from_dict(a.to_dict()) == a
    with pytest.raises(ValueError, match="vibrance"):
        Adjustments.from_dict({"vibrance": 1})
