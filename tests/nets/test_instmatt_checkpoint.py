"""Loading the official InstMatt checkpoint format: SN folding, strict key check, refusals."""
from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from functools import lru_cache

import numpy as np
import pytest
import torch

from instmatt_app.nets.instmatt_checkpoint import (
    CheckpointError, compare_keys, expected_official_keys, fold_spectral_norm, load_instmatt, load_state_into,
    read_checkpoint, save_official_checkpoint, validate_state_dict)
from instmatt_app.nets.instmatt_model import InstMattNet

SHARED = os.environ.get("INSTMATT_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
CHECKPOINT = os.path.join(SHARED, "fixtures", "instmatt-official-random", "checkpoint.pth")


@lru_cache(maxsize=1)
def _raw():
    return torch.load(CHECKPOINT, map_location="cpu", weights_only=True)


@lru_cache(maxsize=1)
def _model():
    return load_instmatt(CHECKPOINT)


def _state():
    return OrderedDict((k[len("module."):], v) for k, v in _raw()["state_dict"].items())


def test_expected_keys_match_the_official_layout():
    keys = expected_official_keys()
    assert len(keys) == 604
    assert set(keys) == set(_state())
    for k, shape in keys.items():
        assert tuple(_state()[k].shape) == shape, k
    assert keys["decoder.layer1.0.conv1.module.weight_u"] == (512,)        # ConvTranspose: h = in-channels
    assert keys["decoder.layer1.0.conv1.module.weight_v"] == (512 * 16,)


def test_read_checkpoint_casts_to_float32_and_strips_prefix():
    state = read_checkpoint(CHECKPOINT)
    assert not any(k.startswith("module.") for k in state)
    assert _raw()["state_dict"]["module.encoder.conv1.module.weight_bar"].dtype == torch.float16
    floats = [v for v in state.values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float32 for v in floats)
    assert state["encoder.bn1.num_batches_tracked"].dtype == torch.int64


@pytest.mark.parametrize("name,module_path", [
    ("decoder.conv1", ("decoder", "final_up")),                      # ConvTranspose2d
    ("encoder.layer2.0.downsample.1", ("encoder", "stages", 1, 0, "project")),
])
def test_spectral_norm_folded_with_stored_u_v(name, module_path):
    module = _model()
    for part in module_path:
        module = module[part] if isinstance(part, int) else getattr(module, part)
    assert module.official_name == name
    state = read_checkpoint(CHECKPOINT)
    bar = state[f"{name}.module.weight_bar"].double().numpy()
    u = state[f"{name}.module.weight_u"].double().numpy()
    v = state[f"{name}.module.weight_v"].double().numpy()
    sigma = u @ (bar.reshape(bar.shape[0], -1) @ v)
    np.testing.assert_allclose(module.weight.detach().double().numpy(), bar / sigma, rtol=1e-5, atol=1e-7)
    # the true spectral norm is a different (wrong) normaliser for at least some layers
    true_sigma = np.linalg.svd(bar.reshape(bar.shape[0], -1), compute_uv=False)[0]
    assert sigma <= true_sigma * (1 + 1e-6)


def test_fold_formula_matches_manual():
    g = torch.Generator().manual_seed(0)
    bar = torch.randn(8, 4, 4, 4, generator=g)
    u = torch.nn.functional.normalize(torch.randn(8, generator=g), dim=0)
    v = torch.nn.functional.normalize(torch.randn(64, generator=g), dim=0)
    expected = bar / torch.dot(u, bar.reshape(8, -1) @ v)
    assert torch.allclose(fold_spectral_norm(bar, u, v), expected)


def test_validate_accepts_official_container_and_bare_state():
    assert validate_state_dict(_raw()) is None
    assert validate_state_dict(_raw()["state_dict"]) is None
    assert validate_state_dict(_state()) is None


def test_validate_reports_missing_unexpected_and_mismatched():
    state = _state()
    del state["refiner.head.bias"]
    state["refiner.extra.weight"] = torch.zeros(3)
    state["decoder.refine_OS1.3.weight"] = torch.zeros(1, 32, 3, 3)
    reason = validate_state_dict(state)
    assert reason is not None
    assert "refiner.head.bias" in reason and "missing" in reason
    assert "refiner.extra.weight" in reason and "unexpected" in reason
    assert "decoder.refine_OS1.3.weight" in reason and "[1, 32, 3, 3]" in reason
    report = compare_keys(state)
    assert report.missing == ["refiner.head.bias"]
    assert report.unexpected == ["refiner.extra.weight"]


def test_validate_names_mgmatting_and_garbage():
    state = _state()
    state["encoder.conv1.module.weight_bar"] = torch.zeros(32, 4, 3, 3)
    assert "MGMatting" in validate_state_dict(state)
    assert validate_state_dict([1, 2, 3]) is not None
    assert "encoder" in validate_state_dict({"fc.weight": torch.zeros(2, 2)})


def test_loader_refuses_non_checkpoints(tmp_path):
    text = tmp_path / "notes.pth"
    text.write_text("hello, not a checkpoint")
    with pytest.raises(CheckpointError, match="notes.pth.*not a PyTorch checkpoint"):
        read_checkpoint(text)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        read_checkpoint(tmp_path / "missing.pth")
    evil = tmp_path / "evil.pth"
    with open(evil, "wb") as fh:
        pickle.dump({"state_dict": OrderedDict(), "hook": pickle.Pickler}, fh, protocol=2)
    with pytest.raises(CheckpointError, match="evil.pth"):
        read_checkpoint(evil)
    other = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(4, 3, 3, 3)}, other)
    with pytest.raises(CheckpointError, match="resnet.pth: not an InstMatt checkpoint"):
        read_checkpoint(other)


def test_official_state_dict_round_trip(tmp_path):
    model = _model()
    path = tmp_path / "again.pth"
    save_official_checkpoint(model, path, iteration=7, loss=0.5)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["iter"] == 7 and all(k.startswith("module.") for k in raw["state_dict"])
    assert validate_state_dict(raw) is None
    with torch.device("meta"):
        again = InstMattNet()
    again = again.to_empty(device="cpu")
    load_state_into(again, read_checkpoint(path))
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert n1 == n2
        if p1.is_floating_point():
            assert torch.allclose(p1, p2, rtol=1e-4, atol=1e-6), n1
