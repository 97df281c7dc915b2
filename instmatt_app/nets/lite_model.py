"""InstMatt-Lite: our own tri-mask-guided instance matting network, built on RVM's pretrained weights.

Structure (InstMatt, paper §3.1–3.2, sized for a 2-core CPU):

* **Mutual guidance input**: RGB + tri-mask (M_t, M_r, M_b), 6 channels. The encoder is RVM's
  MobileNetV3-Large (ImageNet- and matting-trained); the three guidance channels are added to its
  first convolution with zero weights, as the official code initialises its extra mask channels.
  The average-pooled 6-channel source also enters every decoder scale (RVM's decoder concatenates
  the pooled RGB there; the guidance part again starts at zero).
* **Tri-matte heads with progressive refinement**: [α_t, α_r, α_b] at OS8 (decoder scale 3),
  OS4 (scale 2) and OS1 (output block); each a linear map clamped to [0, 1] like RVM's alpha.
  The OS1 head starts as RVM's alpha projection: α_t = RVM's human alpha, α_r = 0,
  α_b = 1 − α_t, so before training the network returns RVM's alpha of all people as target.
  At inference the three are fused as InstMatt does (OS8, then OS4 in the OS8 uncertainty band,
  then OS1 in the next band; :func:`instmatt_app.nets.progressive.progressive_fusion`).
* **Guided upsampling**: with ``downsample_ratio`` < 1 the network runs at the reduced size and RVM's
  deep guided filter brings the tri-matte back to the input resolution; its channels are fed as
  (α_r, α_b, α_t + α_r, α_t) so the target alpha uses the filter's pretrained alpha slot. Its
  output is accepted only in the uncertainty band of the low-resolution tri-matte (elsewhere the
  tri-matte is 0 or 1 and upsampled bilinearly): in flat regions the filter's linear model would
  copy photo texture into the alpha. (The shipped weights were trained without this restriction;
  ``band_only = False`` gives that behaviour.)
* The multi-instance refinement (parallel / cycle) runs after the network, on the assembled
  per-person mattes (:mod:`instmatt_app.nets.default_refiner`).

Tensors: image (N, 3, H, W) float32 in [0, 1]; trimask (N, 3, H, W) float32 in [0, 1];
outputs (N, 3, H', W') float32 in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from instmatt_app.nets.progressive import (
    OS1_KERNEL,
    progressive_fusion,
    uncertainty_band,
)
from instmatt_app.nets.rvm_torch import (
    LRASPP,
    MEAN,
    RVM,
    STD,
    Decoder,
    DeepGuidedFilter,
    Encoder,
)

__all__ = ["ARCHITECTURE", "LiteMatteNet", "LiteOutput", "lite_from_rvm"]

ARCHITECTURE = "instmatt-lite-rvm-mnv3-v1"


@dataclass
class LiteOutput:
    """alpha_os8 / alpha_os4: (N, 3, h, w) at the network's working size, upsampled bilinearly to it;
    alpha_os1: (N, 3, h, w); fused: (N, 3, H, W) at the input size (after the guided filter).
    In eval mode all are clamped to [0, 1]; in training mode the heads' outputs are returned
    unclamped (a clamp would stop the gradient of a head that overshoots, for good when its
    weights are still zero) and the losses pull them into [0, 1]."""

    alpha_os8: torch.Tensor
    alpha_os4: torch.Tensor
    alpha_os1: torch.Tensor
    fused: torch.Tensor


class LiteMatteNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.encoder = Encoder(in_channels=6)
        self.aspp = LRASPP()
        self.decoder = Decoder(src_channels=6)
        self.head_os8 = nn.Sequential(nn.Conv2d(80, 32, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(32, 3, 1))
        self.head_os4 = nn.Sequential(nn.Conv2d(40, 16, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(16, 3, 1))
        self.head_os1 = nn.Conv2d(16, 3, 1)
        self.refiner = DeepGuidedFilter()
        self.band_only = True
        for head in (self.head_os8, self.head_os4):
            nn.init.zeros_(head[-1].weight)
            with torch.no_grad():
                head[-1].bias.copy_(torch.tensor([0.0, 0.0, 1.0]))

    def _source(self, image: torch.Tensor, trimask: torch.Tensor) -> torch.Tensor:
        return torch.cat([image, trimask], 1)

    def forward(self, image: torch.Tensor, trimask: torch.Tensor, downsample_ratio: float = 1.0,
                fuse: bool = True) -> LiteOutput:
        src = self._source(image, trimask)
        src_sm = src if downsample_ratio == 1.0 else F.interpolate(
            src, scale_factor=downsample_ratio, mode="bilinear", align_corners=False, recompute_scale_factor=False)
        x = torch.cat([(src_sm[:, :3] - self.mean) / self.std, src_sm[:, 3:]], 1)
        f1, f2, f3, f4 = self.encoder(x)
        f4 = self.aspp(f4)
        hid, (_, x2, x3, _), _ = self.decoder(src_sm, f1, f2, f3, f4)
        size = hid.shape[2:]
        os8 = F.interpolate(self.head_os8(x3), size, mode="bilinear", align_corners=False)
        os4 = F.interpolate(self.head_os4(x2), size, mode="bilinear", align_corners=False)
        os1 = self.head_os1(hid)
        low = progressive_fusion(os8.clamp(0, 1), os4.clamp(0, 1), os1.clamp(0, 1)).fused if fuse \
            else os1.clamp(0, 1)
        if downsample_ratio != 1.0:
            y = torch.stack([low[:, 1], low[:, 2], low[:, 0] + low[:, 1], low[:, 0]], 1)
            y = self.refiner(image, src_sm[:, :3], y, hid)
            fused = torch.stack([y[:, 3], y[:, 0], y[:, 1]], 1)
            if self.band_only:
                # the guided filter's linear model copies photo texture into flat alpha: accept its
                # output only in the uncertainty band of the low-resolution tri-matte (as InstMatt
                # accepts its refiner's output only in the band), bilinear upsampling elsewhere
                full = image.shape[2:]
                band = F.interpolate(uncertainty_band(low.detach().float(), OS1_KERNEL).float(), full,
                                     mode="nearest") > 0.5
                fused = torch.where(band, fused, F.interpolate(low, full, mode="bilinear", align_corners=False))
        else:
            fused = low
        if not self.training:
            os8, os4, os1, fused = (t.clamp(0, 1) for t in (os8, os4, os1, fused))
        return LiteOutput(os8, os4, os1, fused)


def lite_from_rvm(rvm: RVM) -> LiteMatteNet:
    """A fresh :class:`LiteMatteNet` carrying RVM's weights (guidance weights zero, see module doc)."""
    net = LiteMatteNet()
    src = rvm.state_dict()
    dst = net.state_dict()
    with torch.no_grad():
        for key, value in src.items():
            if key.startswith("project."):
                continue
            if key not in dst:
                raise KeyError(f"RVM parameter {key} has no place in LiteMatteNet")
            target = dst[key]
            if target.shape == value.shape:
                target.copy_(value)
            elif key == "encoder.stem.0.weight":             # (16, 6, 3, 3) <- (16, 3, 3, 3)
                target.zero_()
                target[:, :3] = value
            elif key.startswith("decoder.") and key.endswith("conv.0.weight") or key.endswith("conv1.0.weight"):
                # decoder convs see [upsampled x, skip f, pooled src (6)]; RVM's see [x, f, rgb (3)]
                target.zero_()
                target[:, :value.shape[1]] = value
            else:
                raise KeyError(f"RVM parameter {key}: shape {tuple(value.shape)} vs {tuple(target.shape)}")
        # OS1 head = RVM's alpha row: α_t = alpha, α_r = 0, α_b = 1 - alpha
        w, b = rvm.project.weight[3], rvm.project.bias[3]
        net.head_os1.weight.zero_()
        net.head_os1.weight[0] = w
        net.head_os1.weight[2] = -w
        net.head_os1.bias.copy_(torch.stack([b, torch.zeros_like(b), 1 - b]))
    return net
