"""The ``instmatt`` matting backend: the official InstMatt network behind the engine's matter API.

Pipeline (official ``infer.py`` unless said otherwise; reference digest §3):

1. **pre-processing** (:func:`prepare`): long side capped at ``max_side`` (official 1280; larger
   values or None run at higher resolution), image bilinear / masks nearest; reflect padding of
   32 px plus up to the next multiple of 32; RGB /255, ImageNet normalisation; tri-masks as SUMS
   (M_r = Σ_{j≠i} m_j, M_b = 1 − Σ_j m_j, not clamped) — bit-identical to the official arrays.
2. **backbone**: all instances through the network as ONE batch (chunked when memory is short;
   CUDA: fp16/bf16 autocast + channels_last; CUDA out-of-memory → smaller chunks → CPU).
3. **progressive fusion** of OS8/OS4/OS1 with the uncertainty bands U4, U1 (:mod:`.progressive`).
4. **multi-instance refinement** ``parallel`` (official) or ``cycle`` with an order
   (:mod:`.refinement`); accepted only inside U1.
5. **post-processing**: ``official_postprocess=True`` reproduces what infer.py writes exactly
   (α_t·255 truncated to uint8, padding cropped, bilinear resize back, no consistency step); the
   default keeps floats, resizes back and applies the engine's consistency step
   (``pipeline.enforce_consistency``: Σ_i α_t,i ≤ 1 by normalising where the sum exceeds 1;
   α_r, α_b rebuilt from the α_t's).

The heavy per-instance backbone outputs are cached per photo (keyed on the image bytes, the
network size and each instance's tri-mask), so re-running refinement with another mode or order,
or re-matting after one person's mask changed (``recompute=[i]``), does not recompute everything.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import cv2
import numpy as np
import torch

from instmatt_app.nets.instmatt_model import BackboneOutput, InstMattNet
from instmatt_app.nets.progressive import ProgressiveFusion, accept_in_band, progressive_fusion
from instmatt_app.nets.refinement import RefinementResult, refine as run_refinement
from instmatt_app.nets.registry import register

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "OFFICIAL_MAX_SIDE",
    "PAD",
    "Prepared",
    "prepare",
    "InstMattRun",
    "InstMattMatter",
    "official_uint8",
    "build_instmatt_matter",
]

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)
OFFICIAL_MAX_SIDE = 1280
PAD = 32


@dataclass
class Prepared:
    """Network input for one photo.

    net_image: (3, Hp, Wp) float32 normalised RGB; net_trimask: (k, 3, Hp, Wp) float32
    [M_t, M_r, M_b] (values may be 2 or −1 where masks overlap); size: (h, w) after the long-side
    cap (the crop to take from the padded output at offset PAD); original: (H, W) of the photo.
    """

    net_image: np.ndarray
    net_trimask: np.ndarray
    size: tuple[int, int]
    original: tuple[int, int]

    @property
    def resized(self) -> bool:
        return self.size != self.original


def _as_unit_masks(masks: np.ndarray) -> np.ndarray:
    m = np.asarray(masks)
    if m.ndim != 3:
        raise ValueError(f"masks must be (k, H, W), got shape {m.shape}")
    if m.dtype == np.uint8:
        return m.astype(np.float32) / np.float32(255)
    return m.astype(np.float32, copy=False)


def prepare(image: np.ndarray, masks: np.ndarray, max_side: int | None = OFFICIAL_MAX_SIDE) -> Prepared:
    """Official pre-processing (``infer.generator_tensor_dict``), bit for bit.

    image: (H, W, 3) uint8 RGB; masks: (k, H, W) float32 in [0, 1] (or uint8 0..255).
    max_side: long-side cap (None = no cap).
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
    m = _as_unit_masks(masks)
    oh, ow = image.shape[:2]
    if m.shape[1:] != (oh, ow):
        m = np.stack([cv2.resize(x, (ow, oh), interpolation=cv2.INTER_NEAREST) for x in m]) if len(m) else \
            np.zeros((0, oh, ow), np.float32)
    h, w = oh, ow
    if max_side is not None and max(oh, ow) > max_side:
        ratio = max_side / max(ow, oh)
        h, w = int(ratio * oh), int(ratio * ow)
        image = cv2.resize(image, (w, h))
        m = np.stack([cv2.resize(x, (w, h), interpolation=cv2.INTER_NEAREST) for x in m]) if len(m) else \
            np.zeros((0, h, w), np.float32)
    if h % 32 == 0 and w % 32 == 0:
        pad = ((PAD, PAD), (PAD, PAD))
    else:
        pad = ((PAD, PAD + (-h) % 32), (PAD, PAD + (-w) % 32))
    x = np.pad(image, pad + ((0, 0),), mode="reflect").transpose(2, 0, 1).astype(np.float32)
    x /= np.float32(255)
    net_image = (x - IMAGENET_MEAN) / IMAGENET_STD
    k = len(m)
    hp, wp = net_image.shape[1:]
    padded = np.stack([np.pad(x, pad, mode="reflect") for x in m]) if k else np.zeros((0, hp, wp), np.float32)
    total = padded.sum(0) if k else np.zeros((hp, wp), np.float32)
    net_trimask = np.empty((k, 3, hp, wp), np.float32)
    for i in range(k):
        net_trimask[i, 0] = padded[i]
        net_trimask[i, 1] = total - padded[i]
        net_trimask[i, 2] = 1 - total
    return Prepared(net_image=net_image.astype(np.float32, copy=False), net_trimask=net_trimask,
                    size=(h, w), original=(oh, ow))


def official_uint8(final_t: np.ndarray, prepared: Prepared) -> np.ndarray:
    """infer.py's ``transform``: (k, Hp, Wp) float α_t -> (k, H, W) uint8 as the PNGs it writes."""
    h, w = prepared.size
    out = (final_t * 255).astype(np.uint8)[:, PAD:PAD + h, PAD:PAD + w]
    if prepared.resized:
        oh, ow = prepared.original
        out = np.stack([cv2.resize(a, (ow, oh)) for a in out]) if len(out) else np.zeros((0, oh, ow), np.uint8)
    return out


@dataclass
class InstMattRun:
    """Everything one photo went through, at network resolution (tensors on the run's device).

    prepared: the input arrays; backbone: per-instance outputs (alpha_os8/os4/os1, feature);
    fusion: fused tri-mattes and bands; refinement: MIR result (None for refine="none");
    final: (k, 3, Hp, Wp) float32 tri-mattes after the U1 blend; timings: seconds per stage.
    """

    prepared: Prepared
    backbone: BackboneOutput
    fusion: ProgressiveFusion
    refinement: RefinementResult | None
    final: torch.Tensor
    device: str
    timings: dict[str, float] = field(default_factory=dict)


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str((a.shape, a.dtype.str)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc).lower()


class InstMattMatter:
    """Matter built from an official-format InstMatt checkpoint.

    ``matte(image, masks, refine="parallel", order=None)`` -> (k, 3, H, W) float32 tri-mattes.
    Options: max_side (long-side cap, official 1280; None = none), official_postprocess,
    precision ("auto" = fp16 autocast on CUDA and fp32 on the CPU, "fp32", "fp16" (CUDA only),
    "bf16" (CUDA or CPU)), chunk (max instances per
    backbone batch; None = decided from free memory), max_sweeps (None = official sweeps),
    channels_last (memory format of the backbone, default True).
    """

    name = "instmatt"

    def __init__(self, model: InstMattNet, device: str = "cpu", max_side: int | None = OFFICIAL_MAX_SIDE,
                 official_postprocess: bool = False, precision: str = "auto", chunk: int | None = None,
                 max_sweeps: int | None = None, cpu_memory_budget: float = 6e9, channels_last: bool = True):
        if precision not in ("auto", "fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be auto, fp32, fp16 or bf16, got {precision!r}")
        self.device = str(device)
        self.model = model.eval().to(self.device)
        self.max_side = max_side
        self.official_postprocess = official_postprocess
        self.precision = precision
        self.chunk = chunk
        self.max_sweeps = max_sweeps
        self.cpu_memory_budget = cpu_memory_budget
        self.last_info: dict[str, Any] = {}
        self._cache: dict[str, Any] = {"image": None, "instances": {}}
        # channels_last: ~1.8x faster convolutions on this CPU (oneDNN) and on CUDA tensor cores
        self._channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)

    # -- cache -----------------------------------------------------------------------------
    def clear_cache(self) -> None:
        """Forget the cached backbone outputs (frees their memory)."""
        self._cache = {"image": None, "instances": {}}

    def _cached_backbone(self, prepared: Prepared, recompute: Sequence[int] | None) -> BackboneOutput:
        image_key = _digest(prepared.net_image)
        if self._cache["image"] != image_key:
            self._cache = {"image": image_key, "instances": {}}
        store: dict[Any, dict[str, torch.Tensor]] = self._cache["instances"]
        k = len(prepared.net_trimask)
        keys = [_digest(t) for t in prepared.net_trimask]
        entries: list[dict[str, torch.Tensor] | None] = [store.get(key) for key in keys]
        exact = [e is not None for e in entries]     # computed for exactly this tri-mask
        if recompute is not None:
            forced = {int(i) for i in recompute}
            for i in range(k):
                if i in forced:
                    entries[i], exact[i] = None, False
                elif entries[i] is None:
                    entries[i] = store.get(("slot", i))    # same person, stale tri-mask: reuse
        todo = [i for i in range(k) if entries[i] is None]
        if todo:
            out = self._backbone(prepared.net_image, prepared.net_trimask[todo])
            for row, i in enumerate(todo):
                entries[i] = {name: getattr(out, name)[row:row + 1] for name in self._OUTPUTS}
                exact[i] = True
        # (a CUDA out-of-memory inside _backbone may have moved the matter to the CPU)
        entries = [{n: t.to(self.device) for n, t in e.items()} for e in entries]
        wanted = set(keys)
        store = {key: value for key, value in store.items() if key in wanted}
        for i, key in enumerate(keys):
            if exact[i]:
                store[key] = entries[i]
            store[("slot", i)] = entries[i]
        self._cache = {"image": image_key, "instances": store}
        self.last_info["backbone_computed"] = todo
        return BackboneOutput(**{name: torch.cat([e[name] for e in entries]) for name in self._OUTPUTS})

    # -- backbone ---------------------------------------------------------------------------
    def _autocast_dtype(self) -> torch.dtype | None:
        """Backbone autocast dtype: CUDA fp16 by default (bf16 on request); the CPU runs fp32
        unless bf16 is asked for explicitly (``precision="bf16"``, useful on CPUs with AVX512-BF16)."""
        cuda = self.device.startswith("cuda")
        if self.precision == "fp32" or (not cuda and self.precision != "bf16"):
            return None
        if self.precision == "bf16":
            return torch.bfloat16
        return torch.float16

    def _default_chunk(self, k: int, hp: int, wp: int) -> int:
        if self.chunk:
            return max(1, int(self.chunk))
        # peak memory of one instance's forward: measured ~0.9 kB per input pixel (fp32, CPU,
        # channels_last, outputs included); 1.5 kB leaves a margin for allocator fragmentation
        per_instance = 1500.0 * hp * wp * (0.5 if self._autocast_dtype() is not None else 1.0)
        if self.device.startswith("cuda"):
            free, _ = torch.cuda.mem_get_info(torch.device(self.device))
            budget = free * 0.7
        else:
            budget = self.cpu_memory_budget
        return int(max(1, min(k, budget // max(per_instance, 1.0))))

    _OUTPUTS = ("alpha_os8", "alpha_os4", "alpha_os1", "feature")
    _INTERMEDIATE = ("feature_os8", "encoder", "aspp")

    def _forward(self, image: torch.Tensor, trimask: torch.Tensor, keep_intermediate: bool = False) -> BackboneOutput:
        dtype = self._autocast_dtype()
        if self._channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
            trimask = trimask.contiguous(memory_format=torch.channels_last)
        if dtype is None:
            out = self.model(image, trimask, keep_intermediate=keep_intermediate)
        else:
            with torch.autocast("cuda" if self.device.startswith("cuda") else "cpu", dtype=dtype):
                out = self.model(image, trimask, keep_intermediate=keep_intermediate)
        names = self._OUTPUTS + (self._INTERMEDIATE if keep_intermediate else ())
        return BackboneOutput(**{n: getattr(out, n).float().contiguous() for n in names})

    @torch.no_grad()
    def _backbone(self, net_image: np.ndarray, trimasks: np.ndarray, keep_intermediate: bool = False) -> BackboneOutput:
        k = len(trimasks)
        hp, wp = net_image.shape[1:]
        chunk = self._default_chunk(k, hp, wp)
        while True:
            try:
                image = torch.from_numpy(net_image).to(self.device)[None]
                parts = []
                for s in range(0, k, chunk):
                    tm = torch.from_numpy(trimasks[s:s + chunk]).to(self.device)
                    parts.append(self._forward(image.expand(len(tm), -1, -1, -1), tm, keep_intermediate))
                break
            except RuntimeError as exc:
                if not self.device.startswith("cuda") or not _is_oom(exc):
                    raise
                parts = []
                torch.cuda.empty_cache()
                if chunk > 1:
                    chunk = max(1, chunk // 2)
                    continue
                self._fall_back_to_cpu()
                chunk = self._default_chunk(k, hp, wp)
        self.last_info["chunk"] = chunk
        names = self._OUTPUTS + (self._INTERMEDIATE if keep_intermediate else ())
        return BackboneOutput(**{n: torch.cat([getattr(p, n) for p in parts]) for n in names})

    def _fall_back_to_cpu(self) -> None:
        self.last_info.setdefault("warnings", []).append("CUDA out of memory: InstMatt continued on the CPU")
        self.device = "cpu"
        self.model = self.model.to("cpu")
        self.clear_cache()

    # -- the whole photo --------------------------------------------------------------------
    @torch.no_grad()
    def run(self, image: np.ndarray, masks: np.ndarray, refine: str = "parallel", order: Sequence[int] | None = None,
            recompute: Sequence[int] | None = None, keep_history: bool = False,
            keep_intermediate: bool = False) -> InstMattRun:
        """Network-resolution run (see module docstring); ``refine`` none | parallel | cycle.

        keep_history: keep the tri-mattes after every refinement sweep; keep_intermediate: also
        return encoder/ASPP/OS8 features (bypasses the cache).
        """
        if refine not in ("none", "parallel", "cycle"):
            raise ValueError(f"refine must be none, parallel or cycle, got {refine!r}")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        prepared = prepare(image, masks, self.max_side)
        timings["prepare"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if keep_intermediate:
            backbone = self._backbone(prepared.net_image, prepared.net_trimask, keep_intermediate=True)
        else:
            backbone = self._cached_backbone(prepared, recompute)
        timings["backbone"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        fusion = progressive_fusion(backbone.alpha_os8, backbone.alpha_os4, backbone.alpha_os1)
        timings["fusion"] = time.perf_counter() - t0
        result = None
        final = fusion.fused
        k = len(prepared.net_trimask)
        if refine != "none" and k > 0:
            t0 = time.perf_counter()
            rgb = torch.from_numpy(prepared.net_image).to(fusion.fused.device)[None].expand(k, -1, -1, -1)
            result = run_refinement(self.model.refiner, rgb, fusion.fused, backbone.feature, mode=refine,
                                    order=order, max_sweeps=self.max_sweeps, keep_history=keep_history)
            final = accept_in_band(fusion.fused, result.trimattes, fusion.band_os1)
            timings["refine"] = time.perf_counter() - t0
        self.last_info.update(timings=timings, device=self.device,
                              windows=None if result is None else result.boxes,
                              duplicates=None if result is None else result.duplicates,
                              sweeps=0 if result is None else result.sweeps)
        return InstMattRun(prepared=prepared, backbone=backbone, fusion=fusion, refinement=result, final=final,
                           device=self.device, timings=timings)

    def matte_official_uint8(self, image: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Exactly the PNGs official infer.py writes (parallel refinement): (k, H, W) uint8."""
        run = self.run(image, masks, refine="parallel")
        return official_uint8(run.final[:, 0].cpu().numpy(), run.prepared)

    def matte(self, image: np.ndarray, masks: np.ndarray, refine: str = "parallel", order: Sequence[int] | None = None,
              official_postprocess: bool | None = None, recompute: Sequence[int] | None = None,
              context: Any = None) -> np.ndarray:
        """Tri-mattes of every instance at full resolution.

        image: (H, W, 3) uint8 RGB; masks: (k, H, W) float32 [0, 1] (uint8 0..255 accepted).
        refine: "parallel" | "cycle" | "none"; order: permutation of 0..k−1 for cycle.
        official_postprocess (default: the matter's setting): α_t = the official uint8 / 255
        (so ``round(α_t·255)`` is byte-identical to infer.py's PNG), α_r, α_b resized floats, no
        consistency step; otherwise float tri-mattes with the consistency step.
        recompute: indices whose backbone pass is redone even if a cached one (from the same
        photo, possibly with that person's previous mask) exists; None = exact reuse only.
        context: the engine's per-photo ImageContext (unused; the matter keeps its own cache).
        Returns (k, 3, H, W) float32 in [0, 1].
        """
        official = self.official_postprocess if official_postprocess is None else official_postprocess
        image = np.asarray(image)
        m = _as_unit_masks(masks)
        oh, ow = image.shape[:2]
        if len(m) == 0:
            return np.zeros((0, 3, oh, ow), np.float32)
        run = self.run(image, m, refine=refine, order=order, recompute=recompute)
        h, w = run.prepared.size
        final = run.final.cpu().numpy()
        crop = final[:, :, PAD:PAD + h, PAD:PAD + w]
        if run.prepared.resized:
            crop = np.stack([np.stack([cv2.resize(c, (ow, oh)) for c in tri]) for tri in crop])
        crop = np.clip(crop, 0.0, 1.0).astype(np.float32)
        if official:
            crop[:, 0] = official_uint8(final[:, 0], run.prepared).astype(np.float32) / np.float32(255)
            return crop
        from instmatt_app.core.consistency import enforce_consistency   # the engine's one consistency step

        return enforce_consistency(crop)


@register("matter", "instmatt")
def build_instmatt_matter(weights: str | None = None, device: str = "cpu", **options: Any) -> InstMattMatter:
    """Registry builder: ``registry.build("matter", "instmatt", weights=path, device=...)``.

    weights: an official-format checkpoint (None = the user's imported one, see the model
    manager). options: max_side, official_postprocess, precision, chunk, max_sweeps.
    """
    from instmatt_app.nets.instmatt_checkpoint import load_instmatt

    if weights is None:
        from instmatt_app.model_manager import user_model

        found = user_model("instmatt")
        if found is None:
            raise FileNotFoundError("no InstMatt weights: add official-format weights with "
                                    "`instmatt models add instmatt FILE`")
        weights = str(found)
    model = load_instmatt(weights, device="cpu")
    return InstMattMatter(model, device=device, **options)
