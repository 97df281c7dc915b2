"""Loading (and writing) checkpoints in the official InstMatt format.

The official trainer saves ``{"iter", "loss", "state_dict", "opt_state_dict", "lr_state_dict"}``
with the DDP ``module.`` prefix on every key; 67 convolutions are spectral-norm wrapped and stored
as ``P.module.weight_u`` [h], ``P.module.weight_v`` [numel/h] and ``P.module.weight_bar`` (the raw
weight), h = dim 0 of weight_bar (out-channels for Conv2d, IN-channels for ConvTranspose2d).
At eval time the official code uses W = weight_bar / σ with σ = u · (weight_bar.reshape(h, −1) @ v)
and the STORED u, v (no power iteration). We fold that once at load time into plain weights.

Loading follows the official inference loader: strip ``module.``, cast every tensor to float32
(released weights may be float16), then a strict key and shape check whose failure lists what
is missing, unexpected or mis-shaped. Files are read with ``torch.load(weights_only=True)``, so a
pickle that would execute code is refused.
"""
from __future__ import annotations

import os
from functools import lru_cache
from collections import OrderedDict
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from instmatt_app.nets.instmatt_model import InstMattNet
from instmatt_app.nets.state_dict_check import KeyReport, compare_state_dict

__all__ = [
    "CheckpointError",
    "expected_official_keys",
    "strip_prefix",
    "fold_spectral_norm",
    "validate_state_dict",
    "read_checkpoint",
    "load_instmatt",
    "official_state_dict",
    "tagged_modules",
    "save_official_checkpoint",
    "KeyReport",
]


class CheckpointError(ValueError):
    """A file is not a usable InstMatt checkpoint; the message says which file and why."""


def tagged_modules(model: nn.Module):
    """(official module path, module) of every layer with weights, in model order."""
    for module in model.modules():
        name = getattr(module, "official_name", None)
        if name is not None:
            yield name, module


def expected_official_keys(model: nn.Module | None = None) -> "OrderedDict[str, tuple[int, ...]]":
    """Official state_dict keys (without ``module.``) and shapes that ``model`` needs, in order
    (default: the full InstMatt network)."""
    if model is None:
        return OrderedDict(_default_keys())
    keys: OrderedDict[str, tuple[int, ...]] = OrderedDict()
    for name, module in tagged_modules(model):
        if isinstance(module, nn.BatchNorm2d):
            c = (module.num_features,)
            for part in ("weight", "bias", "running_mean", "running_var"):
                keys[f"{name}.{part}"] = c
            keys[f"{name}.num_batches_tracked"] = ()
        elif getattr(module, "spectral_norm", False):
            shape = tuple(module.weight.shape)
            h = shape[0]
            keys[f"{name}.module.weight_u"] = (h,)
            keys[f"{name}.module.weight_v"] = (module.weight.numel() // h,)
            keys[f"{name}.module.weight_bar"] = shape
        else:
            keys[f"{name}.weight"] = tuple(module.weight.shape)
            if module.bias is not None:
                keys[f"{name}.bias"] = tuple(module.bias.shape)
    return keys


@lru_cache(maxsize=1)
def _default_keys() -> tuple[tuple[str, tuple[int, ...]], ...]:
    with torch.device("meta"):
        model = InstMattNet()
    return tuple(expected_official_keys(model).items())


def strip_prefix(state: Mapping[str, Any], prefix: str = "module.") -> "OrderedDict[str, Any]":
    """Remove a DDP/DataParallel prefix from every key that has it."""
    return OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v) for k, v in state.items())


def fold_spectral_norm(weight_bar: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Plain weight of an official spectral-norm conv: weight_bar / (u · (weight_bar.reshape(h, −1) @ v)).

    All three in float32; h = weight_bar.shape[0]. Returns a tensor shaped like weight_bar.
    """
    h = weight_bar.shape[0]
    sigma = u.dot(weight_bar.reshape(h, -1).mv(v))
    return weight_bar / sigma


def compare_keys(state: Mapping[str, Any], model: nn.Module | None = None) -> KeyReport:
    """Strict key/shape comparison of an (un-prefixed) official state_dict with the model's needs."""
    return compare_state_dict(state, expected_official_keys(model))


def _state_of(obj: Any) -> Mapping[str, Any] | None:
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        return obj["state_dict"]
    if isinstance(obj, Mapping) and obj and all(isinstance(k, str) for k in obj):
        return obj
    return None


def _diagnose(state: Mapping[str, Any]) -> str:
    """Why a state_dict that fails the strict check is not InstMatt's (best guess, readable)."""
    report = compare_keys(state)
    conv1 = state.get("encoder.conv1.module.weight_bar")
    if isinstance(conv1, torch.Tensor) and conv1.ndim == 4 and conv1.shape[1] == 4:
        return ("this looks like a MGMatting checkpoint (1-channel guidance, 4-channel input), "
                "not InstMatt (6-channel input with a tri-mask): " + report.describe(4))
    if "encoder.conv1.weight_orig" in state or any(k.endswith("weight_orig") for k in state):
        return "spectral norm stored as PyTorch's weight_orig, not the official weight_bar/u/v layout"
    if not any(k.startswith("encoder.") for k in state):
        return "no InstMatt encoder weights in this state_dict (" + report.describe(3) + ")"
    return report.describe()


def validate_state_dict(sd: Any) -> str | None:
    """None when ``sd`` looks like an InstMatt checkpoint, else the reason (one readable line).

    Accepts the whole official container (a dict with ``state_dict``) or a bare state_dict, with
    or without the ``module.`` prefix.
    """
    state = _state_of(sd)
    if state is None:
        return "not a state_dict (expected a mapping of parameter names to tensors, or a dict with 'state_dict')"
    state = strip_prefix(state)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        return f"state_dict entries that are not tensors: {', '.join(bad[:5])}"
    report = compare_keys(state)
    if report.ok:
        return None
    return _diagnose(state)


def read_checkpoint(path: str | os.PathLike) -> "OrderedDict[str, torch.Tensor]":
    """Read an official-format checkpoint file: un-prefixed state_dict, every float tensor float32.

    Raises :class:`CheckpointError` (naming the file) for anything that is not one.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for non-checkpoint files
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            reason = "it contains Python objects that a weights-only load refuses (not a plain checkpoint)"
        else:
            reason = f"not a PyTorch checkpoint ({text})"
        raise CheckpointError(f"{path}: {reason}") from None
    reason = validate_state_dict(obj)
    if reason is not None:
        raise CheckpointError(f"{path}: not an InstMatt checkpoint: {reason}")
    state = strip_prefix(_state_of(obj))
    return OrderedDict((k, v.float() if v.is_floating_point() else v) for k, v in state.items())


def load_state_into(model: InstMattNet, state: Mapping[str, torch.Tensor]) -> None:
    """Copy an un-prefixed float32 official state_dict into ``model``, folding spectral norm."""
    report = compare_keys(state, model)
    if not report.ok:
        raise CheckpointError("state_dict does not fit the InstMatt network: " + report.describe())
    with torch.no_grad():
        for name, module in tagged_modules(model):
            if isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(state[f"{name}.weight"])
                module.bias.copy_(state[f"{name}.bias"])
                module.running_mean.copy_(state[f"{name}.running_mean"])
                module.running_var.copy_(state[f"{name}.running_var"])
                module.num_batches_tracked.copy_(state[f"{name}.num_batches_tracked"])
            elif module.spectral_norm:
                module.weight.copy_(fold_spectral_norm(state[f"{name}.module.weight_bar"].float(),
                                                       state[f"{name}.module.weight_u"].float(),
                                                       state[f"{name}.module.weight_v"].float()))
            else:
                module.weight.copy_(state[f"{name}.weight"])
                if module.bias is not None:
                    module.bias.copy_(state[f"{name}.bias"])


def load_instmatt(path: str | os.PathLike, device: str | torch.device = "cpu") -> InstMattNet:
    """Build the network from an official-format checkpoint file, in eval mode on ``device``."""
    state = read_checkpoint(path)
    with torch.device("meta"):        # no random init: every parameter and buffer is loaded below
        model = InstMattNet()
    model = model.to_empty(device="cpu")
    try:
        load_state_into(model, state)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    return model.eval().to(device)


def official_state_dict(model: InstMattNet, prefix: str = "module.") -> "OrderedDict[str, torch.Tensor]":
    """The model's weights in the official layout (``prefix`` + official keys), float32.

    A spectral-norm conv trained with :class:`instmatt_app.nets.instmatt_train.OfficialSpectralNorm`
    is written as it is (raw weight_bar and its u, v). A plain (folded) weight W is stored as
    weight_bar = W with vectors u, v chosen so that u · (W.reshape(h, −1) @ v) = 1, so the
    official loader (and :func:`load_state_into`) give back W.
    """
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for name, module in tagged_modules(model):
        if isinstance(module, nn.BatchNorm2d):
            for part in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                out[f"{prefix}{name}.{part}"] = getattr(module, part).detach().cpu().clone()
        elif module.spectral_norm:
            parametrized = getattr(module, "parametrizations", None)
            if parametrized is not None and "weight" in parametrized:
                sn = parametrized.weight
                bar, u, v = sn.original.detach().cpu(), sn[0].u.detach().cpu(), sn[0].v.detach().cpu()
            else:
                bar = module.weight.detach().cpu()
                u, v = _unit_pair_with_bilinear_one(bar.double().reshape(bar.shape[0], -1))
            out[f"{prefix}{name}.module.weight_u"] = u.float().clone()
            out[f"{prefix}{name}.module.weight_v"] = v.float().clone()
            out[f"{prefix}{name}.module.weight_bar"] = bar.float().clone()
        else:
            out[f"{prefix}{name}.weight"] = module.weight.detach().cpu().clone()
            if module.bias is not None:
                out[f"{prefix}{name}.bias"] = module.bias.detach().cpu().clone()
    return out


def _unit_pair_with_bilinear_one(matrix: torch.Tensor, iterations: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectors u (unit), v with u · (matrix @ v) = 1.

    u comes from a few power iterations (close to the top left singular vector, as the official
    training keeps it); v = matrixᵀu / ‖matrixᵀu‖², so u · (matrix @ v) = 1 by construction.
    (The official eval formula uses the stored u, v as they are; training's first power
    iteration re-normalises v, as it would after any official checkpoint.)
    """
    u = torch.ones(matrix.shape[0], dtype=matrix.dtype) / matrix.shape[0] ** 0.5
    for _ in range(iterations):
        v = matrix.T @ u
        u = matrix @ (v / v.norm())
        u = u / u.norm()
    wtu = matrix.T @ u
    return u, wtu / wtu.dot(wtu)


def save_official_checkpoint(model: InstMattNet, path: str | os.PathLike, *, iteration: int = 0,
                             loss: float = 0.0, optimizer: torch.optim.Optimizer | None = None,
                             scheduler: Any | None = None) -> None:
    """Write ``model`` (and optionally optimizer/scheduler state) as the official trainer does."""
    from instmatt_app.io.atomic import atomic_save

    payload = {
        "iter": int(iteration),
        "loss": torch.tensor(float(loss)),
        "state_dict": official_state_dict(model),
        "opt_state_dict": optimizer.state_dict() if optimizer is not None else {},
        "lr_state_dict": scheduler.state_dict() if scheduler is not None else {},
    }
    atomic_save(path, lambda f: torch.save(payload, f))
