"""Segment Anything (SAM) backend from the user's checkpoint: click/box prompts and mask tightening.

The user adds an official SAM checkpoint (``sam_vit_b_01ec64.pth``, ``sam_vit_l_0b3195.pth``,
``sam_vit_h_4b8939.pth``) or a fine-tune of one through the model manager. Nothing is downloaded and
nothing is unpickled: the file is read with ``torch.load(weights_only=True)`` and the network is
built with segment_anything's own model classes, its configuration (ViT width/depth/heads, the
global-attention blocks, window size, input size, prompt width, decoder depth) read from the
tensor shapes, so vit_b / vit_l / vit_h and smaller custom SAMs all load the same way.

Public API:

* :func:`sam_config` (state dict -> :class:`SamConfig`, or :class:`SamWeightsError` with the reason),
  :func:`validate_state_dict` (``sd -> None | reason``) and :func:`load_state_dict_file` for the model
  manager;
* :func:`build_sam` (state dict -> ``segment_anything.modeling.Sam``);
* :class:`SamInteractivePredictor`: ``set_image`` once per photo (cached by content), then
  ``predict(points, labels, box)`` -> best mask for every click;
* :func:`tighten`: refine detector masks with box prompts;
* the registry builder ``("detector", "sam")``: a base detector's people, tightened by SAM.
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np

from instmatt_app.core.result import Detection
from instmatt_app.nets.interactive import image_fingerprint
from instmatt_app.nets.registry import register
from instmatt_app.nets.state_dict_check import compare_state_dict

__all__ = [
    "SamWeightsError",
    "SamConfig",
    "sam_config",
    "validate_state_dict",
    "load_state_dict_file",
    "build_sam",
    "SamInteractivePredictor",
    "SamDetector",
    "tighten",
    "KNOWN_VARIANTS",
]

# (embed dim, depth) of the three released image encoders
KNOWN_VARIANTS: dict[tuple[int, int], str] = {(768, 12): "vit_b", (1024, 24): "vit_l", (1280, 32): "vit_h"}

_PIXEL_MEAN = (123.675, 116.28, 103.53)  # SAM's normalisation (not stored in checkpoints)
_PIXEL_STD = (58.395, 57.12, 57.375)


class SamWeightsError(ValueError):
    """Not a usable SAM checkpoint (the message says why, and names the file when there is one)."""


@dataclass(frozen=True)
class SamConfig:
    """SAM architecture read from a state dict (fields named after segment_anything's arguments)."""

    variant: str                 # "vit_b", "vit_l", "vit_h" or "custom"
    encoder_embed_dim: int
    encoder_depth: int
    encoder_num_heads: int
    encoder_global_attn_indexes: tuple[int, ...]
    window_size: int
    patch_size: int
    image_size: int
    mlp_ratio: float
    prompt_embed_dim: int
    mask_in_chans: int
    decoder_depth: int
    decoder_mlp_dim: int
    num_multimask_outputs: int
    iou_head_depth: int
    iou_head_hidden_dim: int


def _unwrap(sd: Any) -> Any:
    if isinstance(sd, Mapping):
        for key in ("model", "state_dict"):
            inner = sd.get(key)
            if isinstance(inner, Mapping) and "image_encoder.patch_embed.proj.weight" in inner:
                return inner
    return sd


def _shape(sd: Mapping[str, Any], key: str) -> tuple[int, ...]:
    value = sd.get(key)
    shape = getattr(value, "shape", None)
    if shape is None:
        raise SamWeightsError(f"missing tensor {key!r}")
    return tuple(int(s) for s in shape)


def _count(sd: Mapping[str, Any], pattern: str) -> int:
    rx = re.compile(pattern)
    idx = {int(m.group(1)) for k in sd for m in [rx.match(k)] if m}
    if idx and idx != set(range(len(idx))):
        raise SamWeightsError(f"non-contiguous layer numbering for {pattern!r}")
    return len(idx)


def sam_config(sd: Any) -> SamConfig:
    """Read the SAM architecture from a state dict's keys and shapes.

    Raises :class:`SamWeightsError` with a readable reason when ``sd`` is not a SAM state dict.
    """
    sd = _unwrap(sd)
    if not isinstance(sd, Mapping):
        raise SamWeightsError(f"not a state dict (a {type(sd).__name__}, expected a dict of tensors)")
    if not sd:
        raise SamWeightsError("empty state dict")
    groups = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
    absent = [g[:-1] for g in groups if not any(str(k).startswith(g) for k in sd)]
    if absent:
        raise SamWeightsError(f"not a Segment Anything checkpoint (no {', '.join(absent)} weights)")
    if "image_encoder.patch_embed.proj.weight" not in sd or "image_encoder.blocks.0.attn.rel_pos_h" not in sd:
        raise SamWeightsError("the image encoder is not SAM's ViT (MobileSAM / EfficientSAM / HQ-SAM "
                              "encoders are not supported)")
    embed, _, patch, _ = _shape(sd, "image_encoder.patch_embed.proj.weight")
    _, grid_h, grid_w, pos_dim = _shape(sd, "image_encoder.pos_embed")
    if grid_h != grid_w or pos_dim != embed:
        raise SamWeightsError("image_encoder.pos_embed does not match the patch embedding")
    depth = _count(sd, r"image_encoder\.blocks\.(\d+)\.")
    _, head_dim = _shape(sd, "image_encoder.blocks.0.attn.rel_pos_h")
    if head_dim == 0 or embed % head_dim:
        raise SamWeightsError("attention head size does not divide the embedding width")
    global_idx, windows = [], set()
    for i in range(depth):
        n = _shape(sd, f"image_encoder.blocks.{i}.attn.rel_pos_h")[0]
        if n == 2 * grid_h - 1:
            global_idx.append(i)
        else:
            windows.add((n + 1) // 2)
    if len(windows) > 1:
        raise SamWeightsError(f"inconsistent attention window sizes {sorted(windows)}")
    window = windows.pop() if windows else 0
    mlp_hidden = _shape(sd, "image_encoder.blocks.0.mlp.lin1.weight")[0]
    prompt_dim = _shape(sd, "image_encoder.neck.0.weight")[0]
    mask_in = _shape(sd, "prompt_encoder.mask_downscaling.3.weight")[0]
    dec_depth = _count(sd, r"mask_decoder\.transformer\.layers\.(\d+)\.")
    if dec_depth == 0:
        raise SamWeightsError("mask decoder has no transformer layers")
    dec_mlp = _shape(sd, "mask_decoder.transformer.layers.0.mlp.lin1.weight")[0]
    n_tokens = _shape(sd, "mask_decoder.mask_tokens.weight")[0]
    iou_depth = _count(sd, r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\.")
    iou_hidden = _shape(sd, "mask_decoder.iou_prediction_head.layers.0.weight")[0]
    return SamConfig(
        variant=KNOWN_VARIANTS.get((embed, depth), "custom"),
        encoder_embed_dim=embed, encoder_depth=depth, encoder_num_heads=embed // head_dim,
        encoder_global_attn_indexes=tuple(global_idx), window_size=window, patch_size=patch,
        image_size=grid_h * patch, mlp_ratio=mlp_hidden / embed, prompt_embed_dim=prompt_dim,
        mask_in_chans=mask_in, decoder_depth=dec_depth, decoder_mlp_dim=dec_mlp,
        num_multimask_outputs=n_tokens - 1, iou_head_depth=iou_depth, iou_head_hidden_dim=iou_hidden)


def _make_sam(cfg: SamConfig):
    """Instantiate segment_anything's Sam for ``cfg`` (random weights)."""
    from functools import partial

    import torch
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

    grid = cfg.image_size // cfg.patch_size
    # the decoder's head count is not visible in the shapes; every released SAM uses 8
    dec_heads = 8 if cfg.prompt_embed_dim % 16 == 0 else 1
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=cfg.image_size, patch_size=cfg.patch_size, embed_dim=cfg.encoder_embed_dim,
            depth=cfg.encoder_depth, num_heads=cfg.encoder_num_heads, mlp_ratio=cfg.mlp_ratio,
            out_chans=cfg.prompt_embed_dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True, window_size=cfg.window_size,
            global_attn_indexes=cfg.encoder_global_attn_indexes),
        prompt_encoder=PromptEncoder(
            embed_dim=cfg.prompt_embed_dim, image_embedding_size=(grid, grid),
            input_image_size=(cfg.image_size, cfg.image_size), mask_in_chans=cfg.mask_in_chans),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=cfg.num_multimask_outputs,
            transformer=TwoWayTransformer(depth=cfg.decoder_depth, embedding_dim=cfg.prompt_embed_dim,
                                          mlp_dim=cfg.decoder_mlp_dim, num_heads=dec_heads),
            transformer_dim=cfg.prompt_embed_dim, iou_head_depth=cfg.iou_head_depth,
            iou_head_hidden_dim=cfg.iou_head_hidden_dim),
        pixel_mean=list(_PIXEL_MEAN), pixel_std=list(_PIXEL_STD))


def validate_state_dict(sd: Any) -> str | None:
    """None when ``sd`` is a loadable SAM state dict (vit_b / vit_l / vit_h or a consistent custom
    size), else a one-line reason (not a dict, not SAM, missing/unexpected keys, wrong shapes)."""
    import torch

    try:
        cfg = sam_config(sd)
    except SamWeightsError as exc:
        return str(exc)
    sd = _unwrap(sd)
    with torch.device("meta"):  # shapes only: no memory, even for vit_h
        ref = {k: tuple(v.shape) for k, v in _make_sam(cfg).state_dict().items()}
    report = compare_state_dict(sd, ref)
    if not report.ok:
        return f"not a {cfg.variant} SAM state dict: " + report.describe(3)
    return None


def load_state_dict_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a SAM checkpoint with ``weights_only=True`` and validate it.

    Raises :class:`SamWeightsError` naming the file on any problem.
    """
    import torch

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise SamWeightsError(f"{path}: no such weights file")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise SamWeightsError(f"{path}: cannot be read as a PyTorch weights file ({exc})") from None
    reason = validate_state_dict(sd)
    if reason is not None:
        raise SamWeightsError(f"{path}: {reason}")
    return dict(_unwrap(sd))


def build_sam(sd: Mapping[str, Any]):
    """A ``segment_anything.modeling.Sam`` in eval mode with the weights of ``sd`` (validated)."""
    reason = validate_state_dict(sd)
    if reason is not None:
        raise SamWeightsError(reason)
    sam = _make_sam(sam_config(sd))
    sam.load_state_dict(_unwrap(sd), strict=True)
    return sam.eval()


class SamInteractivePredictor:
    """Click / box prompts on one photo at a time, the image embedding computed once per photo.

    Wraps ``segment_anything.SamPredictor``. ``set_image`` is cheap when the photo's embedding is
    cached (keyed by the pixels' fingerprint; the last ``cache_size`` photos are kept), so the GUI
    can call it before every click. ``embeddings_computed`` counts encoder runs.
    """

    def __init__(self, sam_model, device: str = "cpu", cache_size: int = 3):
        from segment_anything import SamPredictor

        import torch

        if str(device).startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"
        self.model = sam_model.to(device).eval()
        self.device = str(device)
        self._predictor = SamPredictor(self.model)
        self._cache: OrderedDict[tuple, tuple] = OrderedDict()
        self._cache_size = max(1, int(cache_size))
        self._current: tuple | None = None
        self.embeddings_computed = 0

    def set_image(self, image: np.ndarray) -> None:
        """Make ``image`` ((H, W, 3) uint8 RGB) the current photo; runs the encoder only if new."""
        import torch

        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        key = image_fingerprint(image)
        if key == self._current:
            return
        p = self._predictor
        if key in self._cache:
            self._cache.move_to_end(key)
            p.features, p.original_size, p.input_size = self._cache[key]
            p.is_image_set = True
        else:
            try:
                p.set_image(image, image_format="RGB")
            except torch.cuda.OutOfMemoryError:
                if self.device == "cpu":
                    raise
                torch.cuda.empty_cache()
                self.model.to("cpu")
                self.device = "cpu"
                self._cache.clear()  # cached features live on the GPU
                p.set_image(image, image_format="RGB")
            self.embeddings_computed += 1
            self._cache[key] = (p.features, p.original_size, p.input_size)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        self._current = key

    def predict(self, points: Sequence[Sequence[float]] | None = None, labels: Sequence[int] | None = None,
                box: Sequence[float] | None = None) -> tuple[np.ndarray, float]:
        """Best mask for the prompts on the current photo.

        points: (N, 2) x, y photo pixels; labels: N ints, 1 = on the person, 0 = not on it;
        box: (x0, y0, x1, y1) photo pixels or None.
        Returns (mask (H, W) float32 in [0, 1] = sigmoid of SAM's logits, so > 0.5 is SAM's own
        binary mask; SAM's predicted IoU of that mask). A single click is ambiguous, so SAM's three
        candidates are asked for and the one with the highest predicted IoU is returned.
        """
        if self._current is None:
            raise RuntimeError("set_image must be called before predict")
        pts = np.asarray(points, np.float32).reshape(-1, 2) if points is not None and len(points) else None
        if pts is not None:
            lab = np.ones(len(pts), np.int64) if labels is None else np.asarray(labels, np.int64).reshape(-1)
            if len(lab) != len(pts):
                raise ValueError(f"{len(pts)} points but {len(lab)} labels")
        else:
            lab = None
        bx = np.asarray(box, np.float32).reshape(4) if box is not None else None
        if pts is None and bx is None:
            raise ValueError("give at least one point or a box")
        multimask = bx is None and pts is not None and len(pts) == 1
        logits, scores, _ = self._predictor.predict(point_coords=pts, point_labels=lab, box=bx,
                                                    multimask_output=multimask, return_logits=True)
        best = int(np.argmax(scores))
        mask = 1.0 / (1.0 + np.exp(-np.clip(logits[best], -30.0, 30.0)))
        return mask.astype(np.float32), float(scores[best])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def tighten(predictor: SamInteractivePredictor, image: np.ndarray, detections: Sequence[Detection],
            min_agreement: float = 0.5) -> list[Detection]:
    """Refine each detection's mask with SAM prompted by its box (and its mask's centre point).

    A SAM mask replaces the detector's only where the two agree (IoU of the > 0.5 masks >=
    ``min_agreement``), so SAM cannot swap a person for the bag they hold; source gains "+sam".
    Returns new Detection objects (the inputs are not changed), in the same order.
    """
    if not detections:
        return []
    predictor.set_image(image)
    out = []
    for det in detections:
        sam_mask, _ = predictor.predict(box=det.box)
        if _iou(sam_mask > 0.5, det.mask > 0.5) >= min_agreement:
            out.append(replace(det, mask=sam_mask, source=(det.source or "detector") + "+sam"))
        else:
            out.append(det)
    return out


class SamDetector:
    """Detector ``("detector", "sam")``: the people of a base detector, masks tightened by SAM.

    SAM itself does not know what a person is; it sharpens the masks of the base detector (the
    embedded default unless ``base`` says otherwise). ``predictor`` serves click/box picking.
    detect(image (H, W, 3) uint8 RGB) -> list[Detection] (masks (H, W) float32 in [0, 1]).
    """

    def __init__(self, predictor: SamInteractivePredictor, base: str = "default", base_weights: str | None = None,
                 min_agreement: float = 0.5):
        self.predictor = predictor
        self.base_name = base
        self.base_weights = base_weights
        self.min_agreement = min_agreement
        self._base = None

    @property
    def base(self):
        if self._base is None:
            from instmatt_app.nets import registry

            self._base = registry.build("detector", self.base_name, weights=self.base_weights,
                                        device=self.predictor.device)
        return self._base

    def detect(self, image: np.ndarray, context: Any = None) -> list[Detection]:
        """``context``: the engine's per-photo ImageContext, handed to the base detector."""
        found = self.base.detect(image) if context is None else self.base.detect(image, context=context)
        return tighten(self.predictor, image, found, self.min_agreement)


def build_sam_detector(weights: str | os.PathLike | Mapping[str, Any] | None = None, device: str = "cpu",
                       base: str = "default", base_weights: str | None = None, min_agreement: float = 0.5,
                       cache_size: int = 3) -> SamDetector:
    """Registry builder: ``weights`` = a SAM checkpoint path (or a loaded state dict); required."""
    if weights is None:
        raise SamWeightsError("Segment Anything needs a checkpoint (sam_vit_b/l/h .pth); "
                              "add one with `instmatt models add sam FILE`")
    sd = weights if isinstance(weights, Mapping) else load_state_dict_file(weights)
    predictor = SamInteractivePredictor(build_sam(sd), device=device, cache_size=cache_size)
    return SamDetector(predictor, base=base, base_weights=base_weights, min_agreement=min_agreement)


register("detector", "sam")(build_sam_detector)
