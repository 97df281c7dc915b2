"""InstMatt training: official spectral norm, data, losses, and a few real CPU iterations."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from instmatt_app.nets.instmatt_checkpoint import (fold_spectral_norm, load_instmatt, official_state_dict,
                                                   read_checkpoint, validate_state_dict)
from instmatt_app.nets.instmatt_train import (
    OfficialSpectralNorm, TrainConfig, Trainer, TrainingData, laplacian_loss, perturb_mask,
    tri_composition, trainable_instmatt)

SHARED = os.environ.get("INSTMATT_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared"))
CHECKPOINT = os.path.join(SHARED, "fixtures", "instmatt-official-random", "checkpoint.pth")


def test_spectral_norm_parametrization_matches_official_eval_and_train():
    g = torch.Generator().manual_seed(1)
    bar = torch.randn(6, 4, 3, 3, generator=g)
    u = torch.nn.functional.normalize(torch.randn(6, generator=g), dim=0)
    v = torch.nn.functional.normalize(torch.randn(36, generator=g), dim=0)
    sn = OfficialSpectralNorm(u, v).eval()
    torch.testing.assert_close(sn(bar), fold_spectral_norm(bar, u, v))
    sn.train()
    w = sn(bar)
    mat = bar.reshape(6, -1)
    v1 = mat.t() @ u
    v1 = v1 / (v1.norm() + 1e-12)
    u1 = mat @ v1
    u1 = u1 / (u1.norm() + 1e-12)
    torch.testing.assert_close(sn.u, u1)
    torch.testing.assert_close(w, bar / u1.dot(mat @ v1))


def test_trainable_model_keeps_official_weights_and_outputs():
    torch.set_num_threads(2)
    model = trainable_instmatt(CHECKPOINT).eval()
    state = official_state_dict(model)
    official = read_checkpoint(CHECKPOINT)
    assert set(k[len("module."):] for k in state) == set(official)
    for k, v in official.items():
        assert torch.equal(state["module." + k].to(v.dtype), v), k
    ref = load_instmatt(CHECKPOINT)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    m = torch.zeros(1, 3, 64, 64)
    m[:, 0, 16:48, 16:48] = 1
    m[:, 2] = 1 - m[:, 0]
    with torch.no_grad():
        torch.testing.assert_close(model(x, m).alpha_os1, ref(x, m).alpha_os1, atol=1e-5, rtol=0)


def test_guidance_perturbation_and_tri_composition():
    rng = np.random.default_rng(0)
    alphas = np.zeros((3, 64, 64), np.float32)
    alphas[0, 10:40, 5:30] = 1.0
    alphas[1, 20:60, 30:50] = 0.6
    alphas[2, 0:20, 40:64] = 1.0
    m = perturb_mask(alphas[0], rng)
    assert m.dtype == np.float32 and set(np.unique(m)) <= {0.0, 1.0}
    fg = rng.random((3, 64, 64, 3)).astype(np.float32)
    tc = tri_composition(alphas, fg, [1], rng)
    np.testing.assert_allclose(tc["gt"][0], alphas[1])
    np.testing.assert_allclose(tc["gt"][1], alphas[0] + alphas[2])
    np.testing.assert_allclose(tc["gt"].sum(0), 1.0, atol=1e-6)       # alphas here sum to <= 1
    assert set(np.unique(tc["trimask"])) <= {0.0, 1.0}
    np.testing.assert_allclose(tc["fg_t"][alphas[1] > 0], fg[1][alphas[1] > 0], atol=1e-5)


def test_laplacian_loss_is_zero_only_for_equal_inputs():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 3, 64, 64, generator=g)
    w = torch.ones(2, 1, 64, 64)
    assert float(laplacian_loss(a, a, w)) == 0.0
    assert float(laplacian_loss(a, a.flip(-1), w)) > 0.01


@pytest.mark.slow
def test_a_few_cpu_iterations_lower_the_loss_and_resume(tmp_path):
    from instmatt_app.evaluation.synth import BackgroundLibrary, CutoutLibrary, SynthSettings, SyntheticGenerator

    torch.set_num_threads(2)
    data_dir = os.path.join(SHARED, "data")
    settings = SynthSettings()
    settings.long_side = (160, 200)
    settings.check_long_side = 200
    gen = SyntheticGenerator(CutoutLibrary(os.path.join(data_dir, "p3m")),
                             BackgroundLibrary(os.path.join(data_dir, "coco_backgrounds", "images")), settings)
    cfg = TrainConfig(out_dir=str(tmp_path), stage=1, iterations=5, batch=2, crop=64, lr=1e-3, warmup=1,
                      gt_band_steps=10 ** 9, log_every=0, save_every=0)
    trainer = Trainer(cfg, TrainingData(gen, crop=64, seed=0, fixed=True), log=lambda s: None)
    history = trainer.fit()
    assert len(history) == 5
    assert history[-1] < 0.8 * history[0], f"loss did not fall: {history}"
    ckpt = tmp_path / "latest_model.pth"
    raw = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert validate_state_dict(raw) is None and raw["iter"] == 5
    assert set(raw) == {"iter", "loss", "state_dict", "opt_state_dict", "lr_state_dict"}
    resumed = Trainer(TrainConfig(**{**cfg.__dict__, "iterations": 6, "resume": str(ckpt)}),
                      TrainingData(gen, crop=64, seed=0, fixed=True), log=lambda s: None)
    assert resumed.step == 5
    resumed.fit()
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["iter"] == 6
    # stage 2 from that checkpoint: only the refiner moves
    before = read_checkpoint(ckpt)
    stage2 = Trainer(TrainConfig(out_dir=str(tmp_path / "s2"), stage=2, iterations=2, crop=64, warmup=1,
                                 log_every=0, save_every=0, init=str(ckpt)),
                     TrainingData(gen, crop=64, seed=1), log=lambda s: None)
    stage2.fit()
    after = read_checkpoint(tmp_path / "s2" / "latest_model.pth")
    assert torch.equal(after["encoder.conv1.module.weight_bar"], before["encoder.conv1.module.weight_bar"])
    assert torch.equal(after["decoder.bn1.running_mean"], before["decoder.bn1.running_mean"])
    assert not torch.equal(after["refiner.head.weight"], before["refiner.head.weight"])


def test_cli_rejects_bad_crop(capsys):
    from instmatt_app.cli.main import main

    rc = main(["train", "cutouts", "backgrounds", "-o", "out", "--crop", "100"])
    assert rc == 2
    assert "multiple of 32" in capsys.readouterr().err
