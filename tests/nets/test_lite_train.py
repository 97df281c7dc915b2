"""InstMatt-Lite training: data invariants and a few CPU steps on one batch (the loss falls)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from instmatt_app.nets.lite_train import (
    LiteSamples,
    LiteTrainConfig,
    LiteTrainer,
    _make_generator,
    lite_losses,
)


@pytest.fixture(scope="module")
def generator(data_dir):
    return _make_generator(str(data_dir / "p3m"), str(data_dir / "coco_backgrounds" / "images"), (256, 320),
                           max_people=3)


def test_samples_invariants(generator):
    data = LiteSamples(generator, crop=128, targets_per_composite=3, seed=3)
    samples = [s for _ in range(3) for s in data.composite_samples()]
    assert len(samples) >= 3
    for s in samples:
        assert s["image"].shape == (3, 128, 128) and s["gt"].shape == (3, 128, 128)
        assert s["image"].dtype == np.float32
        for key in ("image", "background", "fg_t", "fg_r"):
            assert 0.0 <= s[key].min() and s[key].max() <= 1.0
        # tri-matte GT partitions every pixel: α_t + α_r + α_b = 1
        np.testing.assert_allclose(s["gt"].sum(0), 1.0, atol=1e-4)
        assert set(np.unique(s["trimask"])) <= {0.0, 1.0}
        # Eq. 13 survives the shared photometric change: I = α_t F_t + α_r F_r + α_b B
        # (F_t / F_r are alpha-weighted mean colours of the target / reference people, exact where at
        # most one person covers a pixel, which is almost everywhere)
        recon = s["gt"][0] * s["fg_t"] + s["gt"][1] * s["fg_r"] + s["gt"][2] * s["background"]
        assert np.median(np.abs(recon - s["image"])) < 2e-3
    # the target is mostly one person, and its GT is not empty
    assert sum(s["gt"][0].max() > 0.5 for s in samples) >= len(samples) // 2


def test_a_few_steps_on_one_batch_lower_the_loss(generator, tmp_path):
    torch.manual_seed(0)
    cfg = LiteTrainConfig(out_dir=str(tmp_path), rvm_onnx=str(_rvm()), batch=2, crop=128, lr=3e-4, warmup=1,
                          iterations=12)
    trainer = LiteTrainer(cfg, log=lambda s: None)
    data = LiteSamples(generator, crop=128, seed=5)
    samples = data.composite_samples()[:2]
    while len(samples) < 2:
        samples += data.composite_samples()
    batch = {k: torch.from_numpy(np.stack([s[k] for s in samples[:2]])) for k in samples[0]}
    trainer.rng = np.random.default_rng(0)
    losses = []
    for _ in range(12):
        trainer.rng = np.random.default_rng(1)          # same downsample choice every step
        total, parts = trainer.loss(batch)
        trainer.opt.zero_grad()
        total.backward()
        trainer.opt.step()
        losses.append(float(total))
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.8 * losses[0]


def test_losses_are_zero_for_a_perfect_prediction():
    gt = torch.zeros(1, 3, 32, 32)
    gt[:, 0, :, :16] = 1
    gt[:, 2, :, 16:] = 1
    fg = torch.rand(1, 3, 32, 32)
    bg = torch.rand(1, 3, 32, 32)
    image = gt[:, 0:1] * fg + gt[:, 2:3] * bg
    b = {"gt": gt, "unknown": torch.zeros(1, 1, 32, 32), "fg_t": fg, "fg_r": torch.zeros_like(fg),
         "background": bg, "image": image}
    for v in lite_losses(gt, b).values():
        assert float(v) < 1e-6
    assert float(lite_losses(gt.flip(1), b)["alpha"]) > 0.1


def _rvm():
    from instmatt_app.model_manager import model_path

    return model_path("rvm-mobilenetv3")


def test_cli_checks_the_detector_pack_options(tmp_path, capsys):
    from instmatt_app.cli.main import main

    base = ["train", "--model", "lite", "cutouts", "backgrounds", "-o", str(tmp_path / "out")]
    assert main(base + ["--det-p", "1.5"]) == 2
    assert "--det-p must be in [0, 1]" in capsys.readouterr().err
    assert main(base + ["--det-pack", str(tmp_path)]) == 2
    assert "no composites there" in capsys.readouterr().err
