"""The InstMatt matting network (paper §3.1-3.2): encoder, ASPP, decoder and tri-matte heads.

Architecture (as the official release, config ``InstMatt-stage2``; see
``../shared/docs/instmatt-reference.md`` §1): a ResNet "shortcut" encoder-decoder that takes a
6-channel input (ImageNet-normalised RGB ++ tri-mask [M_t, M_r, M_b]) and predicts a 3-channel
tri-matte [α_t, α_r, α_b] at output strides 8, 4 and 1, each squashed per channel by
``(tanh(x) + 1) / 2``, plus the 32-channel full-resolution feature that the multi-instance
refiner (:mod:`instmatt_app.nets.refinement`) consumes.

Every convolution here is a plain ``nn.Conv2d`` / ``nn.ConvTranspose2d``: the official code wraps
most of them in a spectral-norm module, which :mod:`instmatt_app.nets.instmatt_checkpoint` folds
into plain weights at load time. Each parameterised layer carries two attributes used by that
loader: ``official_name`` (its module path in the official state_dict) and ``spectral_norm``
(True where the official layer is a spectral-norm conv).

Shapes: N = batch (one sample per person instance), input H, W multiples of 32.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from instmatt_app.nets.refinement import MultiInstanceRefiner

__all__ = [
    "InstMattNet",
    "MattingEncoder",
    "PyramidPooling",
    "MattingDecoder",
    "BackboneOutput",
    "squash",
    "ENCODER_BLOCKS",
    "DECODER_BLOCKS",
]

ENCODER_BLOCKS = (3, 4, 4, 2)   # residual blocks per encoder stage (64, 128, 256, 512 channels)
DECODER_BLOCKS = (2, 3, 3, 2)   # residual blocks per decoder stage (256, 128, 64, 32 channels)
LEAKY_SLOPE = 0.2


def squash(logits: torch.Tensor) -> torch.Tensor:
    """The tri-matte activation ``(tanh(x) + 1) / 2`` (per channel, values in [0, 1])."""
    return (torch.tanh(logits) + 1.0) / 2.0


def _tag(module: nn.Module, official: str, spectral_norm: bool = False) -> nn.Module:
    module.official_name = official
    module.spectral_norm = spectral_norm
    return module


def _conv(cin: int, cout: int, kernel: int, official: str, *, stride: int = 1, dilation: int = 1,
          bias: bool = False, sn: bool = True, groups: int = 1) -> nn.Conv2d:
    pad = dilation * (kernel // 2)
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, dilation=dilation, bias=bias, groups=groups)
    return _tag(conv, official, sn)


def _up_conv(cin: int, cout: int, official: str) -> nn.ConvTranspose2d:
    """Transposed 4x4 stride-2 conv that doubles H and W (spectral norm in the official code)."""
    return _tag(nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1, bias=False), official, True)


def _norm(channels: int, official: str) -> nn.BatchNorm2d:
    return _tag(nn.BatchNorm2d(channels), official)


class EncoderBlock(nn.Module):
    """Residual block: conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, + shortcut, ReLU.

    The shortcut of a stride-2 block is AvgPool(2) -> conv1x1 -> BN (ResNet-D style).
    """

    def __init__(self, cin: int, cout: int, stride: int, official: str):
        super().__init__()
        self.conv_a = _conv(cin, cout, 3, f"{official}.conv1", stride=stride)
        self.norm_a = _norm(cout, f"{official}.bn1")
        self.conv_b = _conv(cout, cout, 3, f"{official}.conv2")
        self.norm_b = _norm(cout, f"{official}.bn2")
        self.project = None
        if stride != 1:
            self.pool = nn.AvgPool2d(2, stride)
            self.project = _conv(cin, cout, 1, f"{official}.downsample.1")
            self.project_norm = _norm(cout, f"{official}.downsample.2")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.norm_a(self.conv_a(x)))
        y = self.norm_b(self.conv_b(y))
        skip = x if self.project is None else self.project_norm(self.project(self.pool(x)))
        return F.relu(y + skip)


class SkipBranch(nn.Module):
    """Encoder-to-decoder shortcut: conv3x3 -> ReLU -> BN -> conv3x3 -> ReLU -> BN (ReLU before BN)."""

    def __init__(self, cin: int, cout: int, official: str):
        super().__init__()
        self.conv_a = _conv(cin, cout, 3, f"{official}.0")
        self.norm_a = _norm(cout, f"{official}.2")
        self.conv_b = _conv(cout, cout, 3, f"{official}.3")
        self.norm_b = _norm(cout, f"{official}.5")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm_a(F.relu(self.conv_a(x)))
        return self.norm_b(F.relu(self.conv_b(y)))


class MattingEncoder(nn.Module):
    """ResNet encoder with five shortcut branches.

    Input (N, 6, H, W) float32; returns (bottleneck (N, 512, H/32, W/32), skips) where skips are
    (N, 32, H, W), (N, 32, H/2, W/2), (N, 64, H/4, W/4), (N, 128, H/8, W/8), (N, 256, H/16, W/16).
    """

    def __init__(self, in_channels: int = 6):
        super().__init__()
        self.stem_a = _conv(in_channels, 32, 3, "encoder.conv1", stride=2)
        self.stem_a_norm = _norm(32, "encoder.bn1")
        self.stem_b = _conv(32, 32, 3, "encoder.conv2")
        self.stem_b_norm = _norm(32, "encoder.bn2")
        self.stem_c = _conv(32, 64, 3, "encoder.conv3", stride=2)
        self.stem_c_norm = _norm(64, "encoder.bn3")
        names = ("layer1", "layer2", "layer3", "layer_bottleneck")
        widths = (64, 128, 256, 512)
        stages = []
        cin = 64
        for stage, (name, width, blocks) in enumerate(zip(names, widths, ENCODER_BLOCKS)):
            stride = 1 if stage == 0 else 2
            layer = [EncoderBlock(cin, width, stride, f"encoder.{name}.0")]
            layer += [EncoderBlock(width, width, 1, f"encoder.{name}.{b}") for b in range(1, blocks)]
            stages.append(nn.Sequential(*layer))
            cin = width
        self.stages = nn.ModuleList(stages)
        skip_io = ((in_channels, 32), (32, 32), (64, 64), (128, 128), (256, 256))
        self.skips = nn.ModuleList(SkipBranch(i, o, f"encoder.shortcut.{s}") for s, (i, o) in enumerate(skip_io))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        y = F.relu(self.stem_a_norm(self.stem_a(x)))
        half = F.relu(self.stem_b_norm(self.stem_b(y)))
        y = F.relu(self.stem_c_norm(self.stem_c(half)))
        quarter = self.stages[0](y)
        eighth = self.stages[1](quarter)
        sixteenth = self.stages[2](eighth)
        bottleneck = self.stages[3](sixteenth)
        sources = (x, half, quarter, eighth, sixteenth)
        skips = tuple(branch(src) for branch, src in zip(self.skips, sources))
        return bottleneck, skips


class PyramidPooling(nn.Module):
    """ASPP on the 512-channel stride-32 map: 1x1, three dilated 3x3 (2, 4, 8) and an image-pooling
    branch of 256 channels each (BN + ReLU), concatenated and projected back to 512 (BN + ReLU).

    Input and output (N, 512, h, w) float32.
    """

    def __init__(self, channels: int = 512, mid: int = 256):
        super().__init__()
        self.branches = nn.ModuleList([
            _conv(channels, mid, 1, "aspp.aspp1", sn=False),
            _conv(channels, mid, 3, "aspp.aspp2", dilation=2, sn=False),
            _conv(channels, mid, 3, "aspp.aspp3", dilation=4, sn=False),
            _conv(channels, mid, 3, "aspp.aspp4", dilation=8, sn=False),
        ])
        self.branch_norms = nn.ModuleList(_norm(mid, f"aspp.aspp{i}_bn") for i in range(1, 5))
        self.pooled = _conv(channels, mid, 1, "aspp.aspp5", sn=False)
        self.pooled_norm = _norm(mid, "aspp.aspp5_bn")
        self.project = _conv(5 * mid, channels, 1, "aspp.conv2", sn=False)
        self.project_norm = _norm(channels, "aspp.bn2")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [F.relu(norm(conv(x))) for conv, norm in zip(self.branches, self.branch_norms)]
        pooled = F.relu(self.pooled_norm(self.pooled(F.adaptive_avg_pool2d(x, 1))))
        outs.append(F.interpolate(pooled, size=x.shape[2:], mode="nearest"))
        return F.relu(self.project_norm(self.project(torch.cat(outs, 1))))


class DecoderBlock(nn.Module):
    """Decoder residual block with LeakyReLU(0.2).

    Upsampling block (first of a stage): transposed conv x2 (cin -> cin) -> BN -> LReLU -> conv3x3
    (cin -> cout) -> BN, + (nearest x2 -> conv1x1 -> BN), LReLU. Other blocks: two conv3x3.
    """

    def __init__(self, cin: int, cout: int, upsample: bool, official: str):
        super().__init__()
        if upsample:
            self.conv_a = _up_conv(cin, cin, f"{official}.conv1")
            self.norm_a = _norm(cin, f"{official}.bn1")
        else:
            self.conv_a = _conv(cin, cin, 3, f"{official}.conv1")
            self.norm_a = _norm(cin, f"{official}.bn1")
        self.conv_b = _conv(cin, cout, 3, f"{official}.conv2")
        self.norm_b = _norm(cout, f"{official}.bn2")
        self.upsample = upsample
        if upsample:
            self.project = _conv(cin, cout, 1, f"{official}.upsample.1")
            self.project_norm = _norm(cout, f"{official}.upsample.2")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.leaky_relu(self.norm_a(self.conv_a(x)), LEAKY_SLOPE)
        y = self.norm_b(self.conv_b(y))
        if self.upsample:
            skip = self.project_norm(self.project(F.interpolate(x, scale_factor=2.0, mode="nearest")))
        else:
            skip = x
        return F.leaky_relu(y + skip, LEAKY_SLOPE)


class TrimatteHead(nn.Module):
    """conv3x3 (cin -> 32) -> BN -> LReLU -> conv3x3 (32 -> 3, bias): tri-matte logits."""

    def __init__(self, cin: int, official: str):
        super().__init__()
        self.conv_a = _conv(cin, 32, 3, f"{official}.0", sn=False)
        self.norm = _norm(32, f"{official}.1")
        self.conv_b = _conv(32, 3, 3, f"{official}.3", bias=True, sn=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_b(F.leaky_relu(self.norm(self.conv_a(x)), LEAKY_SLOPE))


@dataclass
class BackboneOutput:
    """What the matting branch predicts for N samples at input size (H, W).

    alpha_os8, alpha_os4, alpha_os1: (N, 3, H, W) tri-mattes in [0, 1] ([α_t, α_r, α_b]).
    feature: (N, 32, H, W) the full-resolution decoder feature (refiner input).
    feature_os8: (N, 128, H/8, W/8); encoder, aspp: (N, 512, H/32, W/32) (kept only on request).
    """

    alpha_os8: torch.Tensor
    alpha_os4: torch.Tensor
    alpha_os1: torch.Tensor
    feature: torch.Tensor
    feature_os8: torch.Tensor | None = None
    encoder: torch.Tensor | None = None
    aspp: torch.Tensor | None = None


class MattingDecoder(nn.Module):
    """Decoder with shortcut additions and the three tri-matte heads (OS8, OS4, OS1)."""

    def __init__(self):
        super().__init__()
        widths = (256, 128, 64, 32)
        stages = []
        cin = 512
        for s, (width, blocks) in enumerate(zip(widths, DECODER_BLOCKS)):
            name = f"decoder.layer{s + 1}"
            layer = [DecoderBlock(cin, width, True, f"{name}.0")]
            layer += [DecoderBlock(width, width, False, f"{name}.{b}") for b in range(1, blocks)]
            stages.append(nn.Sequential(*layer))
            cin = width
        self.stages = nn.ModuleList(stages)
        self.final_up = _up_conv(32, 32, "decoder.conv1")
        self.final_norm = _norm(32, "decoder.bn1")
        self.head_os8 = TrimatteHead(128, "decoder.refine_OS8")
        self.head_os4 = TrimatteHead(64, "decoder.refine_OS4")
        self.head_os1 = TrimatteHead(32, "decoder.refine_OS1")

    def forward(self, x: torch.Tensor, skips: tuple[torch.Tensor, ...], keep_os8: bool = False) -> BackboneOutput:
        full, half, quarter, eighth, sixteenth = skips
        x = self.stages[0](x) + sixteenth
        x = self.stages[1](x) + eighth
        feature_os8 = x
        logits_os8 = self.head_os8(x)
        x = self.stages[2](x) + quarter
        logits_os4 = self.head_os4(x)
        x = self.stages[3](x) + half
        feature = F.leaky_relu(self.final_norm(self.final_up(x)), LEAKY_SLOPE) + full
        logits_os1 = self.head_os1(feature)
        logits_os4 = F.interpolate(logits_os4, scale_factor=4.0, mode="bilinear", align_corners=False)
        logits_os8 = F.interpolate(logits_os8, scale_factor=8.0, mode="bilinear", align_corners=False)
        return BackboneOutput(alpha_os8=squash(logits_os8), alpha_os4=squash(logits_os4),
                              alpha_os1=squash(logits_os1), feature=feature,
                              feature_os8=feature_os8 if keep_os8 else None)


class InstMattNet(nn.Module):
    """The whole InstMatt network: matting branch (encoder, ASPP, decoder) + multi-instance refiner.

    ``forward(image, trimask)``: image (N, 3, H, W) ImageNet-normalised RGB, trimask (N, 3, H, W)
    [M_t, M_r, M_b]; H, W multiples of 32. Returns a :class:`BackboneOutput`. The refiner is run
    separately through :func:`instmatt_app.nets.refinement.refine` with ``self.refiner``.
    """

    def __init__(self, with_refiner: bool = True):
        super().__init__()
        self.encoder = MattingEncoder(6)
        self.aspp = PyramidPooling()
        self.decoder = MattingDecoder()
        self.refiner = MultiInstanceRefiner() if with_refiner else None

    def forward(self, image: torch.Tensor, trimask: torch.Tensor, keep_intermediate: bool = False) -> BackboneOutput:
        h, w = image.shape[-2:]
        if h % 32 or w % 32:
            raise ValueError(f"network input must be a multiple of 32, got {h}x{w}")
        bottleneck, skips = self.encoder(torch.cat([image, trimask], 1))
        pooled = self.aspp(bottleneck)
        out = self.decoder(pooled, skips, keep_os8=keep_intermediate)
        if keep_intermediate:
            out.encoder, out.aspp = bottleneck, pooled
        return out
