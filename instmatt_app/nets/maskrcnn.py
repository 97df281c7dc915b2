"""Mask R-CNN person detector (the paper's recognition stage) from the user's torchvision weights.

The user adds a torchvision ``maskrcnn_resnet50_fpn`` or ``maskrcnn_resnet50_fpn_v2`` state dict
(e.g. ``maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth``) through the model manager; nothing is ever
downloaded: the network is built with ``weights=None, weights_backbone=None`` and the file is read
with ``torch.load(..., weights_only=True)``.

Detection protocol (InstMatt §4, HIM2K): keep COCO class 1 (person) with score >= 0.7 whose mask
covers >= 2 % of the photo; all three thresholds are options.

Public API:

* :func:`validate_state_dict` (``sd -> None | reason``) for the model manager;
* :func:`load_state_dict_file` (path -> state dict, readable :class:`MaskRCNNWeightsError`);
* :class:`MaskRCNNDetector` with ``detect(image) -> list[Detection]``;
* the registry builder ``("detector", "maskrcnn")``.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from instmatt_app.core.result import Detection
from instmatt_app.nets.registry import register
from instmatt_app.nets.state_dict_check import compare_state_dict

__all__ = [
    "MaskRCNNWeightsError",
    "MaskRCNNDetector",
    "validate_state_dict",
    "load_state_dict_file",
    "state_dict_variant",
    "build_maskrcnn_detector",
    "PERSON_LABEL",
]

PERSON_LABEL = 1  # COCO category id of "person" in torchvision's 91-class numbering

_V1_MARKER = "roi_heads.box_head.fc6.weight"      # TwoMLPHead (v1)
_V2_MARKER = "roi_heads.box_head.0.0.weight"      # FastRCNNConvFCHead (v2)
_CLS_KEY = "roi_heads.box_predictor.cls_score.weight"


class MaskRCNNWeightsError(ValueError):
    """A weights file is not a usable torchvision Mask R-CNN state dict (message names the file)."""


def _unwrap(sd: Any) -> Any:
    """Accept ``{"model": sd}`` / ``{"state_dict": sd}`` wrappers (training checkpoints)."""
    if isinstance(sd, Mapping):
        for key in ("model", "state_dict"):
            inner = sd.get(key)
            if isinstance(inner, Mapping) and _CLS_KEY in inner:
                return inner
    return sd


def state_dict_variant(sd: Mapping[str, Any]) -> str | None:
    """"v1" (maskrcnn_resnet50_fpn), "v2" (maskrcnn_resnet50_fpn_v2) or None, from the box-head keys."""
    if _V2_MARKER in sd:
        return "v2"
    if _V1_MARKER in sd:
        return "v1"
    return None


def _normalise_keys(sd: Mapping[str, Any], model_keys: set[str]) -> dict[str, Any]:
    """Rename the legacy (torchvision < 0.8) RPN / mask-head keys; drop frozen-BN counters.

    torchvision does the same renaming in its ``_load_from_state_dict`` hooks; doing it here lets
    :func:`validate_state_dict` compare key sets without building hooks into the comparison.
    """
    out: dict[str, Any] = {}
    for key, value in sd.items():
        new = key
        for t in ("weight", "bias"):
            if key == f"rpn.head.conv.{t}":
                new = f"rpn.head.conv.0.0.{t}"
            for i in range(1, 5):
                if key == f"roi_heads.mask_head.mask_fcn{i}.{t}":
                    new = f"roi_heads.mask_head.{i - 1}.0.{t}"
        if new.endswith("num_batches_tracked") and new not in model_keys:
            continue  # FrozenBatchNorm2d ignores these as torchvision does
        out[new] = value
    return out


def _build_network(variant: str, num_classes: int, **net_options: Any):
    from torchvision.models.detection import maskrcnn_resnet50_fpn, maskrcnn_resnet50_fpn_v2

    ctor = maskrcnn_resnet50_fpn_v2 if variant == "v2" else maskrcnn_resnet50_fpn
    # weights=None and weights_backbone=None: never download anything
    return ctor(weights=None, weights_backbone=None, num_classes=num_classes, **net_options)


_REFERENCE_SHAPES: dict[tuple[str, int], dict[str, tuple[int, ...]]] = {}


def _reference_shapes(variant: str, num_classes: int) -> dict[str, tuple[int, ...]]:
    key = (variant, num_classes)
    if key not in _REFERENCE_SHAPES:
        net = _build_network(variant, num_classes)
        _REFERENCE_SHAPES[key] = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    return _REFERENCE_SHAPES[key]


def _shape(value: Any) -> tuple[int, ...] | None:
    shape = getattr(value, "shape", None)
    return tuple(int(s) for s in shape) if shape is not None else None


def validate_state_dict(sd: Any) -> str | None:
    """Check that ``sd`` is a torchvision Mask R-CNN R50-FPN (v1 or v2) state dict.

    Returns None when it can be loaded, else a one-line human-readable reason (not a dict, not
    Mask R-CNN, which keys are missing/unexpected, which tensors have the wrong shape).
    """
    sd = _unwrap(sd)
    if not isinstance(sd, Mapping):
        return f"not a state dict (a {type(sd).__name__}, expected a dict of tensors)"
    if not sd:
        return "empty state dict"
    if not all(isinstance(k, str) for k in sd):
        return "not a state dict (keys are not parameter names)"
    variant = state_dict_variant(sd)
    if variant is None:
        return ("not a torchvision Mask R-CNN state dict (no box head: expected "
                f"{_V1_MARKER!r} or {_V2_MARKER!r})")
    cls_shape = _shape(sd.get(_CLS_KEY))
    if cls_shape is None or len(cls_shape) != 2:
        return f"not a torchvision Mask R-CNN state dict (missing or malformed {_CLS_KEY!r})"
    num_classes = cls_shape[0]
    if num_classes <= PERSON_LABEL:
        return f"the box predictor has {num_classes} class(es); need the person class (label {PERSON_LABEL})"
    ref = _reference_shapes(variant, num_classes)
    sd = _normalise_keys(sd, set(ref))
    report = compare_state_dict(sd, ref)
    if not report.ok:
        return f"not a maskrcnn_resnet50_fpn{'_v2' if variant == 'v2' else ''} state dict: " + report.describe(3)
    return None


def load_state_dict_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a Mask R-CNN weights file (``weights_only=True``: no code is unpickled).

    Raises :class:`MaskRCNNWeightsError` naming the file when it cannot be read or is not valid.
    """
    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MaskRCNNWeightsError(f"{path}: no such weights file")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, unsafe globals ...
        raise MaskRCNNWeightsError(f"{path}: cannot be read as a PyTorch weights file ({exc})") from None
    reason = validate_state_dict(sd)
    if reason is not None:
        raise MaskRCNNWeightsError(f"{path}: {reason}")
    return dict(_unwrap(sd))


class MaskRCNNDetector:
    """torchvision Mask R-CNN restricted to people.

    detect(image): image (H, W, 3) uint8 RGB -> list[Detection] (box in pixels, score in [0, 1],
    mask (H, W) float32 in [0, 1] = the model's soft mask pasted into the photo, source "maskrcnn"),
    sorted by decreasing score.
    """

    def __init__(self, state_dict: Mapping[str, Any], device: str = "cpu", score_threshold: float = 0.7,
                 min_area_fraction: float = 0.02, person_label: int = PERSON_LABEL,
                 mask_threshold: float = 0.5, **net_options: Any):
        reason = validate_state_dict(state_dict)
        if reason is not None:
            raise MaskRCNNWeightsError(reason)
        sd = _unwrap(state_dict)
        variant = state_dict_variant(sd)
        num_classes = _shape(sd[_CLS_KEY])[0]
        net = _build_network(variant, num_classes, **net_options)
        net.load_state_dict(_normalise_keys(sd, set(net.state_dict())), strict=True)
        net.eval()
        self.variant = variant
        self.num_classes = num_classes
        self.score_threshold = float(score_threshold)
        self.min_area_fraction = float(min_area_fraction)
        self.person_label = int(person_label)
        self.mask_threshold = float(mask_threshold)
        self.net = net
        self.device = "cpu"
        self.to(device)

    def to(self, device: str) -> "MaskRCNNDetector":
        """Move the network to ``device`` ("cpu", "cuda", "cuda:1"); CUDA absent -> stays on CPU."""
        import torch

        if str(device).startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"
        self.net.to(device)
        self.device = str(device)
        return self

    def _forward(self, image: np.ndarray) -> dict[str, Any]:
        import torch

        tensor = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float().div_(255.0)
        with torch.inference_mode():
            out = self.net([tensor.to(self.device)])[0]
        return {k: v.detach().float().cpu().numpy() for k, v in out.items()}

    def detect(self, image: np.ndarray, context: Any = None) -> list[Detection]:
        """Find the people in ``image`` ((H, W, 3) uint8 RGB); see the class docstring.

        ``context`` (the engine's per-photo cache) is accepted for the detector interface and unused.
        """
        import torch

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        try:
            out = self._forward(image)
        except torch.cuda.OutOfMemoryError:
            if self.device == "cpu":
                raise
            torch.cuda.empty_cache()
            self.to("cpu")  # stays on the CPU for the rest of the session: the photo sizes repeat
            out = self._forward(image)
        return self._postprocess(out, image.shape[:2])

    def _postprocess(self, out: Mapping[str, np.ndarray], hw: tuple[int, int]) -> list[Detection]:
        """Turn torchvision's output dict (boxes (N,4), labels (N,), scores (N,), masks (N,1,H,W))
        into person Detections above the score and area thresholds."""
        h, w = hw
        min_area = self.min_area_fraction * h * w
        dets: list[Detection] = []
        masks = out.get("masks")
        for i in np.argsort(-out["scores"], kind="stable"):
            if int(out["labels"][i]) != self.person_label or float(out["scores"][i]) < self.score_threshold:
                continue
            mask = np.clip(masks[i, 0], 0.0, 1.0).astype(np.float32)
            if float((mask >= self.mask_threshold).sum()) < min_area:
                continue
            box = tuple(float(v) for v in out["boxes"][i])
            dets.append(Detection(box=box, score=float(out["scores"][i]), mask=mask, source="maskrcnn"))
        return dets


def build_maskrcnn_detector(weights: str | os.PathLike | Mapping[str, Any] | None = None, device: str = "cpu",
                            **options: Any) -> MaskRCNNDetector:
    """Registry builder: ``weights`` is a file path (or an already loaded state dict).

    Options: score_threshold (0.7), min_area_fraction (0.02), person_label (1), mask_threshold (0.5);
    anything else (min_size, max_size, box_score_thresh, ...) goes to torchvision's MaskRCNN.
    There is no embedded Mask R-CNN: ``weights=None`` raises :class:`MaskRCNNWeightsError`.
    """
    if weights is None:
        raise MaskRCNNWeightsError(
            "Mask R-CNN needs a weights file (a torchvision maskrcnn_resnet50_fpn[_v2] state dict); "
            "add one with `instmatt models add maskrcnn FILE`")
    sd = weights if isinstance(weights, Mapping) else load_state_dict_file(weights)
    return MaskRCNNDetector(sd, device=device, **options)


register("detector", "maskrcnn")(build_maskrcnn_detector)
