"""Training InstMatt (paper §3.4, official schedule in the reference digest §3.6, §4).

* **Spectral norm as the official code trains it**: the 67 SN convolutions keep the raw weight W̄
  and vectors u, v; each training forward runs one power iteration (v = W̄ᵀu/‖·‖, u = W̄v/‖·‖) and
  uses W = W̄ / (u · W̄v); eval uses the stored u, v. Implemented as a torch parametrization
  (:class:`OfficialSpectralNorm`), so checkpoints hold exactly the official weight_bar/u/v.
* **Data**: composites made on the fly from cut-outs and backgrounds (Eq. 13, via
  :class:`instmatt_app.evaluation.synth.SyntheticGenerator`), random crop centred on an unknown
  pixel, horizontal flip; ground-truth tri-mattes [α_t, α_r, α_b] from the visible alphas.
  Guidance masks are synthesised from the GT as the official loader does when no Mask R-CNN mask
  matches: binarise at U(0.01, 1), then erode / dilate / erode+dilate / dilate+erode with random
  ellipses; M_b = 1 − Σ masks; then every tri-mask channel is perturbed again. Stage 1 draws one
  tri-composition per sample (random target subset, possibly empty; with p = 0.25 one reference
  mask is dropped); stage 2 uses all k tri-compositions of one image (target = each instance)
  and "external CutMask" (p = 0.5: swap a random patch between two channels).
* **Losses** (all on the 3 tri-matte channels, weighted L1 = Σ|w·(p − g)| / (Σw + 1e-8)):
  L_α; pyramid Laplacian (5 levels, 2^level weights); L_mc (Eq. 10): |α_t F_t + α_r F_r + α_b B − I|
  in ImageNet-normalised colour, F_t / F_r = alpha-weighted mean foreground of the target /
  reference set; L_mα (Eq. 11): |α_t + α_r + α_b − 1|. Stage 1: (2 L(os1) + L(os4) + L(os8)) / 5
  with os4/os1 weighted by uncertainty bands (GT band for the first ``gt_band_steps``, then 50/50,
  then prediction-driven, random ellipse sizes) and the predictions fused as at inference.
  Stage 2: backbone frozen (eval); the MIR refines the top window (128 px) 1–3 times; the four
  losses on its output weighted by the OS1 band.
* **Optimiser**: Adam(lr 1e-4, betas (0.5, 0.999)), linear warm-up, cosine to 1e-5, adaptive
  gradient clipping at 2× an EMA(0.999) of past gradient norms.
* **Checkpoints** in the official container ``{iter, loss, state_dict (module.-prefixed, SN as
  weight_u/weight_v/weight_bar), opt_state_dict, lr_state_dict}``, resumable. (The optimizer
  state follows our parameter order, so only our trainer resumes it; every loader reads the
  weights.)
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from instmatt_app.nets.instmatt_checkpoint import (CheckpointError, official_state_dict, read_checkpoint,
                                                   tagged_modules)
from instmatt_app.nets.instmatt_model import EncoderBlock, DecoderBlock, InstMattNet
from instmatt_app.nets.progressive import uncertainty_band
from instmatt_app.nets.refinement import WINDOW_MARGIN, disagreement_map, propose_windows, window_side

__all__ = [
    "OfficialSpectralNorm",
    "trainable_instmatt",
    "TrainConfig",
    "TrainingData",
    "perturb_mask",
    "tri_composition",
    "laplacian_loss",
    "matting_losses",
    "Trainer",
]

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


# ------------------------------------------------------------------------------------------
# spectral norm, trained as the official code does

def _l2n(x: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    return x / (x.norm() + eps)


class OfficialSpectralNorm(nn.Module):
    """Parametrization W = W̄ / (u · W̄v) with one power iteration per training forward.

    u: (h,), v: (numel/h,) buffers, h = W̄.shape[0] (in-channels for transposed convs).
    """

    def __init__(self, u: torch.Tensor, v: torch.Tensor):
        super().__init__()
        self.register_buffer("u", u.detach().clone().float())
        self.register_buffer("v", v.detach().clone().float())

    def forward(self, weight_bar: torch.Tensor) -> torch.Tensor:
        mat = weight_bar.reshape(weight_bar.shape[0], -1)
        if self.training:
            with torch.no_grad():
                v = _l2n(mat.t().mv(self.u))
                u = _l2n(mat.mv(v))
                self.v.copy_(v)
                self.u.copy_(u)
        sigma = self.u.dot(mat.mv(self.v))
        return weight_bar / sigma


def _official_init(model: InstMattNet, generator: torch.Generator) -> dict[str, tuple]:
    """Official initialisation: xavier-uniform weights, BN (1, 0), zero γ on every residual
    branch's last BN, zero encoder.conv1 weights for the mask channels; SN u, v ~ N(0, 1) normalised."""
    sn = {}
    with torch.no_grad():
        for name, module in tagged_modules(model):
            if isinstance(module, nn.BatchNorm2d):
                module.reset_parameters()
            elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                if name.startswith("refiner") or not module.spectral_norm:
                    continue          # plain convs keep PyTorch's default init, as the official code
                w = torch.empty_like(module.weight)
                fan = w[0].numel(), w.shape[0] * w[0, 0].numel()
                bound = math.sqrt(6.0 / (fan[0] + fan[1]))
                w.uniform_(-bound, bound, generator=generator)
                module.weight.copy_(w)
                h = w.shape[0]
                sn[name] = (_l2n(torch.randn(h, generator=generator)),
                            _l2n(torch.randn(w.numel() // h, generator=generator)))
        for m in model.modules():
            if isinstance(m, (EncoderBlock, DecoderBlock)):
                m.norm_b.weight.zero_()
        model.encoder.stem_a.weight[:, 3:] = 0
    return sn


def trainable_instmatt(init: str | os.PathLike | None = None, seed: int = 0) -> InstMattNet:
    """An InstMattNet whose SN convs train as the official ones.

    init: an official-format checkpoint (weight_bar, u, v are taken as stored) or None for the
    official random initialisation.
    """
    model = InstMattNet()
    g = torch.Generator().manual_seed(seed)
    if init is None:
        sn = _official_init(model, g)
    else:
        state = read_checkpoint(init)
        from instmatt_app.nets.instmatt_checkpoint import load_state_into

        load_state_into(model, state)   # BN, plain convs (SN weights replaced below)
        sn = {}
        with torch.no_grad():
            for name, module in tagged_modules(model):
                if getattr(module, "spectral_norm", False):
                    module.weight.copy_(state[f"{name}.module.weight_bar"])
                    sn[name] = (state[f"{name}.module.weight_u"], state[f"{name}.module.weight_v"])
    for name, module in tagged_modules(model):
        if getattr(module, "spectral_norm", False):
            u, v = sn[name]
            parametrize.register_parametrization(module, "weight", OfficialSpectralNorm(u, v), unsafe=True)
    return model


# ------------------------------------------------------------------------------------------
# data

def _ellipse(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def perturb_mask(alpha: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Official synthetic guidance: binarise at U(0.01, 1), then erode / dilate / erode+dilate /
    dilate+erode with random ellipses of size 1 .. max(30, min(h, w)/2048·30) − 1.

    alpha: (H, W) float in [0, 1] (may exceed it; values are only thresholded). Returns (H, W) float32 {0, 1}.
    """
    h, w = alpha.shape
    mask = (alpha >= rng.uniform(0.01, 1.0)).astype(np.uint8)
    top = max(30, int(min(h, w) / 2048 * 30))
    ops = [("erode",), ("dilate",), ("erode", "dilate"), ("dilate", "erode")][int(rng.integers(4))]
    for op in ops:
        k = _ellipse(int(rng.integers(1, top)))
        mask = cv2.erode(mask, k) if op == "erode" else cv2.dilate(mask, k)
    return mask.astype(np.float32)


def tri_composition(alphas: np.ndarray, foregrounds: np.ndarray, target: list[int], rng: np.random.Generator,
                    drop_reference_p: float = 0.25) -> dict[str, np.ndarray]:
    """GT tri-matte, tri-mask and per-pixel target/reference colours for one target set.

    alphas: (k, H, W) visible alphas; foregrounds: (k, H, W, 3) in [0, 1]; target: indices (may be
    empty). Returns gt (3, H, W) [α_t, α_r, α_b], trimask (3, H, W) {0, 1}, fg_t / fg_r (H, W, 3).
    """
    k = len(alphas)
    reference = [i for i in range(k) if i not in target]
    masks = [perturb_mask(a, rng) for a in alphas]
    a_t = alphas[target].sum(0) if target else np.zeros(alphas.shape[1:], np.float32)
    a_r = alphas[reference].sum(0) if reference else np.zeros(alphas.shape[1:], np.float32)
    gt = np.stack([a_t, a_r, np.clip(1.0 - alphas.sum(0), 0.0, 1.0)]).astype(np.float32)
    kept_refs = list(reference)
    if len(kept_refs) >= 2 and rng.random() < drop_reference_p:
        kept_refs.pop(int(rng.integers(len(kept_refs))))
    zero = np.zeros(alphas.shape[1:], np.float32)
    m_t = np.max([masks[i] for i in target], 0) if target else zero
    m_r = np.max([masks[i] for i in kept_refs], 0) if kept_refs else zero
    m_b = 1.0 - np.sum(masks, 0)
    trimask = np.stack([perturb_mask(c, rng) for c in (m_t, m_r, m_b)])

    def mean_colour(idx: list[int]) -> np.ndarray:
        if not idx:
            return np.zeros(foregrounds.shape[1:], np.float32)
        a = alphas[idx][..., None]
        return ((a * foregrounds[idx]).sum(0) / np.maximum(a.sum(0), 1e-6)).astype(np.float32)

    return {"gt": gt, "trimask": trimask, "fg_t": mean_colour(target), "fg_r": mean_colour(reference)}


def _external_cutmask(trimask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Swap one random patch (h/8..h/4 × w/8..w/4) between two random channels."""
    out = trimask.copy()
    _, h, w = out.shape
    ph, pw = int(rng.integers(max(1, h // 8), max(2, h // 4))), int(rng.integers(max(1, w // 8), max(2, w // 4)))
    y, x = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    a, b = rng.choice(3, size=2, replace=False)
    out[a, y:y + ph, x:x + pw] = trimask[b, y:y + ph, x:x + pw]
    out[b, y:y + ph, x:x + pw] = trimask[a, y:y + ph, x:x + pw]
    return out


class TrainingData:
    """Crops of on-the-fly composites with their tri-compositions.

    ``sample(stage)`` returns a dict of float32 arrays: image (3, S, S) normalised, background
    (3, S, S) normalised, and per tri-composition (n = 1 in stage 1, k in stage 2): gt (n, 3, S, S),
    trimask (n, 3, S, S), fg_t / fg_r (n, 3, S, S) normalised colours. ``fixed=True`` repeats one
    sample (over-fitting a single batch: a quick check that the losses and gradients work).
    """

    def __init__(self, generator, crop: int, seed: int = 0, fixed: bool = False):
        if crop % 32:
            raise ValueError(f"crop must be a multiple of 32, got {crop}")
        self.generator = generator
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        self.fixed = fixed            # overfit mode: draw one sample per stage, then repeat it
        self._fixed: dict[int, dict[str, np.ndarray]] = {}

    def _crop(self, images: list[np.ndarray], stacks: list[np.ndarray], unknown: np.ndarray):
        """Crop S×S around a random unknown pixel (upscaling first if the composite is smaller).

        images: (H, W, C) arrays; stacks: (n, H, W) arrays. Returns the cropped lists.
        """
        s = self.crop
        h, w = unknown.shape
        if min(h, w) < s:
            f = s / min(h, w)
            size = (max(s, int(round(w * f))), max(s, int(round(h * f))))
            images = [cv2.resize(a, size) for a in images]
            stacks = [np.stack([cv2.resize(c, size) for c in a]) for a in stacks]
            unknown = cv2.resize(unknown.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
            h, w = unknown.shape
        ys, xs = np.nonzero(unknown)
        if len(ys):
            i = int(self.rng.integers(len(ys)))
            cy, cx = int(ys[i]), int(xs[i])
        else:
            cy, cx = h // 2, w // 2
        y0 = int(np.clip(cy - s // 2, 0, h - s))
        x0 = int(np.clip(cx - s // 2, 0, w - s))
        return ([a[y0:y0 + s, x0:x0 + s] for a in images], [a[:, y0:y0 + s, x0:x0 + s] for a in stacks])

    def sample(self, stage: int = 1) -> dict[str, np.ndarray]:
        if self.fixed:
            if stage not in self._fixed:
                self._fixed[stage] = self._draw(stage)
            return self._fixed[stage]
        return self._draw(stage)

    def _draw(self, stage: int) -> dict[str, np.ndarray]:
        comp = self.generator.sample(self.rng)
        alphas = comp.alphas.astype(np.float32)                       # (k, H, W)
        k = len(alphas)
        unknown = (alphas > 0.01).any(0) & (alphas.sum(0) < 0.99)
        images = [comp.image, comp.background] + [comp.foregrounds[i] for i in range(k)]
        images, (alphas,) = self._crop(images, [alphas], unknown)
        image, background = images[0], images[1]
        foregrounds = np.stack(images[2:])                            # (k, S, S, 3)
        if self.rng.random() < 0.5:
            image, background = image[:, ::-1], background[:, ::-1]
            alphas, foregrounds = alphas[:, :, ::-1], foregrounds[:, :, ::-1]
        alphas = np.ascontiguousarray(alphas)
        foregrounds = np.ascontiguousarray(foregrounds)
        if stage == 1:
            n_t = int(self.rng.integers(0, k))            # 0 .. k-1 instances form the target
            targets = [sorted(self.rng.choice(k, size=n_t, replace=False).tolist())]
        else:
            targets = [[i] for i in self.rng.permutation(k).tolist()]
        comps = [tri_composition(alphas, foregrounds, t, self.rng) for t in targets]
        if stage == 2:
            for c in comps:
                if self.rng.random() < 0.5:
                    c["trimask"] = _external_cutmask(c["trimask"], self.rng)

        def norm(rgb: np.ndarray) -> np.ndarray:
            x = np.ascontiguousarray(rgb, dtype=np.float32).transpose(2, 0, 1)
            return ((x - MEAN.numpy()[0]) / STD.numpy()[0]).astype(np.float32)

        return {
            "image": norm(image), "background": norm(background),
            "gt": np.stack([c["gt"] for c in comps]), "trimask": np.stack([c["trimask"] for c in comps]),
            "fg_t": np.stack([norm(c["fg_t"]) for c in comps]), "fg_r": np.stack([norm(c["fg_r"]) for c in comps]),
        }


# ------------------------------------------------------------------------------------------
# losses

def _weighted_l1(pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    w = weight.expand_as(pred)
    return (w * (pred - gt)).abs().sum() / (w.sum() + 1e-8)


_GAUSS = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
_GAUSS = (_GAUSS[:, None] * _GAUSS[None, :]) / 256.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = _GAUSS.to(x)[None, None].expand(c, 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, groups=c)


def _laplacian_pyramid(x: torch.Tensor, levels: int = 5) -> list[torch.Tensor]:
    bands = []
    cur = x
    for _ in range(levels - 1):
        down = _blur(cur)[:, :, ::2, ::2]
        up = torch.zeros_like(cur)
        up[:, :, ::2, ::2] = down
        bands.append(cur - _blur(up) * 4)
        cur = down
    bands.append(cur)
    return bands


def laplacian_loss(pred: torch.Tensor, gt: torch.Tensor, weight: torch.Tensor, levels: int = 5) -> torch.Tensor:
    """Σ_level 2^level · weighted-L1 between Laplacian pyramids (weights subsampled by 2 per level)."""
    total = pred.new_zeros(())
    w = weight
    for level, (p, g) in enumerate(zip(_laplacian_pyramid(pred, levels), _laplacian_pyramid(gt, levels))):
        total = total + (2 ** level) * _weighted_l1(p, g, w)
        w = w[:, :, ::2, ::2]
    return total


def matting_losses(pred: torch.Tensor, batch: dict[str, torch.Tensor], weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """The four losses of one prediction (N, 3, H, W) with weight (N, 1, H, W)."""
    gt = batch["gt"]
    image = batch["image"].expand(pred.shape[0], -1, -1, -1)
    background = batch["background"].expand(pred.shape[0], -1, -1, -1)
    comp = pred[:, 0:1] * batch["fg_t"] + pred[:, 1:2] * batch["fg_r"] + pred[:, 2:3] * background
    return {
        "alpha": _weighted_l1(pred, gt, weight),
        "lap": laplacian_loss(pred, gt, weight),
        "comp": _weighted_l1(comp, image, weight),                     # L_mc, Eq. 10
        "sum": _weighted_l1(pred.sum(1, keepdim=True), torch.ones_like(weight), weight),  # L_mα, Eq. 11
    }


def _random_band(alpha: torch.Tensor, max_size: int, rng: np.random.Generator) -> torch.Tensor:
    bands = [uncertainty_band(alpha[i:i + 1], int(rng.integers(1, max_size))) for i in range(len(alpha))]
    return torch.cat(bands)


def _gt_band(gt_t: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """GT-trimap unknown band of the target channel: not (eroded FG or eroded BG)."""
    out = []
    for a in gt_t:
        fg = (a[0] >= 1.0).cpu().numpy().astype(np.uint8)
        bg = (a[0] <= 0.0).cpu().numpy().astype(np.uint8)
        fg = cv2.erode(fg, _ellipse(int(rng.integers(1, 30))))
        bg = cv2.erode(bg, _ellipse(int(rng.integers(1, 30))))
        out.append(torch.from_numpy(~(fg.astype(bool) | bg.astype(bool)))[None])
    return torch.stack(out).to(gt_t.device)


# ------------------------------------------------------------------------------------------
# trainer

@dataclass
class TrainConfig:
    """Training settings (defaults = the official stage-1/2 configs where they apply)."""

    out_dir: str
    stage: int = 1
    iterations: int = 200_000
    batch: int = 4                    # stage 1: samples per step; stage 2: always one image
    crop: int = 512
    lr: float = 1e-4
    betas: tuple[float, float] = (0.5, 0.999)
    warmup: int = 2000
    t_max: int = 198_000
    eta_min: float = 1e-5
    gt_band_steps: int = 2000         # GT band only; then 50/50 until 3x this; then prediction bands
    save_every: int = 1000
    log_every: int = 50
    device: str = "cpu"
    seed: int = 0
    init: str | None = None           # official-format weights to start from
    resume: str | None = None         # a checkpoint of this trainer to continue


class Trainer:
    """Runs stage 1 (matting branch) or stage 2 (MIR only) training; see the module docstring."""

    def __init__(self, config: TrainConfig, data: TrainingData, log: Callable[[str], None] = print):
        self.cfg = config
        self.data = data
        self.log = log
        self.rng = np.random.default_rng(config.seed)
        torch.manual_seed(config.seed)
        start = config.resume or config.init
        self.model = trainable_instmatt(start, seed=config.seed).to(config.device)
        if config.stage == 1 and config.batch < 2:
            raise ValueError("stage 1 needs a batch of at least 2 samples (BatchNorm statistics in training)")
        if config.stage == 1:
            params = [p for n, p in self.model.named_parameters() if not n.startswith("refiner.")]
        elif config.stage == 2:
            params = list(self.model.refiner.parameters())
            for n, p in self.model.named_parameters():
                p.requires_grad_(n.startswith("refiner."))
        else:
            raise ValueError(f"stage must be 1 or 2, got {config.stage}")
        self.params = params
        self.optimizer = torch.optim.Adam(params, lr=config.lr, betas=config.betas)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=config.t_max,
                                                                    eta_min=config.eta_min)
        self.step = 0
        self.grad_ema: float | None = None
        self.history: list[float] = []
        if config.resume:
            self._resume(config.resume)

    # -- checkpoints ---------------------------------------------------------------------------
    def _resume(self, path: str) -> None:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        self.step = int(obj.get("iter", 0))
        try:
            if obj.get("opt_state_dict"):
                self.optimizer.load_state_dict(obj["opt_state_dict"])
            if obj.get("lr_state_dict"):
                self.scheduler.load_state_dict(obj["lr_state_dict"])
        except (ValueError, KeyError) as exc:
            raise CheckpointError(f"{path}: optimizer state does not fit this stage ({exc})") from None
        self.log(f"resumed from {path} at iteration {self.step}")

    def save(self, path: str | os.PathLike, loss: float) -> None:
        from instmatt_app.io.atomic import atomic_save

        payload = {"iter": self.step, "loss": torch.tensor(float(loss)),
                   "state_dict": official_state_dict(self.model),
                   "opt_state_dict": self.optimizer.state_dict(), "lr_state_dict": self.scheduler.state_dict()}
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_save(path, lambda fh: torch.save(payload, fh))

    # -- one step ------------------------------------------------------------------------------
    def _batch(self) -> dict[str, torch.Tensor]:
        dev = self.cfg.device
        if self.cfg.stage == 2:
            s = self.data.sample(stage=2)
            b = {k: torch.from_numpy(v) for k, v in s.items()}
            b["image"], b["background"] = b["image"][None], b["background"][None]
            return {k: v.to(dev) for k, v in b.items()}
        samples = [self.data.sample(stage=1) for _ in range(self.cfg.batch)]
        out = {}
        for key in samples[0]:
            arr = np.stack([s[key] for s in samples]) if key in ("image", "background") else \
                np.concatenate([s[key] for s in samples])
            out[key] = torch.from_numpy(arr).to(dev)
        return out

    def _stage1_loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        self.model.train()
        self.model.refiner.eval()
        out = self.model(b["image"], b["trimask"])
        n = out.alpha_os8.shape[0]
        ones = torch.ones_like(out.alpha_os8[:, :1])
        step = self.step
        use_gt = step < self.cfg.gt_band_steps or (step < 3 * self.cfg.gt_band_steps and self.rng.random() < 0.5)
        if use_gt:
            band4 = band1 = _gt_band(b["gt"][:, 0:1], self.rng)
            os4, os1 = out.alpha_os4, out.alpha_os1
        else:
            band4 = _random_band(out.alpha_os8.detach(), 30, self.rng)
            os4 = torch.where(band4, out.alpha_os4, out.alpha_os8)
            band1 = _random_band(os4.detach(), 15, self.rng)
            os1 = torch.where(band1, out.alpha_os1, os4)
        losses = {}
        per = [(matting_losses(out.alpha_os8, b, ones), 1.0),
               (matting_losses(os4, b, band4.float()), 1.0),
               (matting_losses(os1, b, band1.float()), 2.0)]
        for key in per[0][0]:
            losses[key] = sum(w * parts[key] for parts, w in per) / 5.0
        total = sum(losses.values())
        return total, {k: float(v.detach()) for k, v in losses.items()} | {"n": n}

    def _stage2_loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        from instmatt_app.nets.progressive import progressive_fusion

        self.model.eval()
        k = b["trimask"].shape[0]
        image = b["image"].expand(k, -1, -1, -1)
        with torch.no_grad():
            out = self.model(image, b["trimask"])
            fusion = progressive_fusion(out.alpha_os8, out.alpha_os4, out.alpha_os1)
        refiner = self.model.refiner.train()
        pred = fusion.fused.clone()
        h, w = pred.shape[-2:]
        side = window_side(k, h, w, training=True)
        x1, y1, x2, y2 = (int(v) for v in propose_windows(disagreement_map(pred), side)[0, :4])
        m = WINDOW_MARGIN
        for _ in range(int(self.rng.integers(1, 4))):
            refined = refiner(out.feature[:, :, y1:y2, x1:x2], pred[:, :, y1:y2, x1:x2], image[:, :, y1:y2, x1:x2])
            pred = pred.clone()
            pred[:, :, y1 + m:y2 - m, x1 + m:x2 - m] = refined[:, :, m:y2 - y1 - m, m:x2 - x1 - m]
        losses = matting_losses(pred, b, fusion.band_os1.float())
        return sum(losses.values()), {k_: float(v.detach()) for k_, v in losses.items()} | {"n": k}

    def train_step(self) -> float:
        b = self._batch()
        total, parts = (self._stage1_loss if self.cfg.stage == 1 else self._stage2_loss)(b)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        limit = 2.0 * self.grad_ema if self.grad_ema is not None else float("inf")
        norm = float(torch.nn.utils.clip_grad_norm_(self.params, max_norm=limit))
        if math.isfinite(norm):
            self.grad_ema = norm if self.grad_ema is None else 0.999 * self.grad_ema + 0.001 * norm
        if self.step < self.cfg.warmup:
            for g in self.optimizer.param_groups:
                g["lr"] = self.cfg.lr * (self.step + 1) / self.cfg.warmup
        self.optimizer.step()
        if self.step >= self.cfg.warmup:
            self.scheduler.step()
        self.step += 1
        value = float(total.detach())
        self.history.append(value)
        if self.cfg.log_every and self.step % self.cfg.log_every == 0:
            self.log(f"iter {self.step}: loss {value:.4f} (" +
                     ", ".join(f"{k} {v:.4f}" for k, v in parts.items() if k != "n") + ")")
        return value

    def fit(self, iterations: int | None = None) -> list[float]:
        """Train until ``iterations`` (default: the config's) total steps; saves latest_model.pth."""
        end = self.cfg.iterations if iterations is None else iterations
        out = Path(self.cfg.out_dir)
        t0 = time.perf_counter()
        loss = float("nan")
        while self.step < end:
            loss = self.train_step()
            if self.cfg.save_every and self.step % self.cfg.save_every == 0:
                self.save(out / "latest_model.pth", loss)
        self.save(out / "latest_model.pth", loss)
        self.log(f"done: {self.step} iterations, {time.perf_counter() - t0:.1f} s, "
                 f"checkpoint {out / 'latest_model.pth'}")
        return self.history
