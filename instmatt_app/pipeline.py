"""The engine: photo → people → tri-masks → tri-mattes → refinement → consistent per-person mattes.

Pure engine code (no Qt). Typical use::

    from instmatt_app.pipeline import Engine, EngineConfig
    engine = Engine(EngineConfig(device="auto"))
    result = engine.run(image)                  # image: (H, W, 3) uint8 RGB
    result = engine.run(image, masks=masks)     # masks: (k, H, W) float32 [0, 1], order kept
    result = engine.refine(result, "cycle", order=[2, 0, 1])   # re-run refinement only

Stages and their models come from the builder registry (:mod:`instmatt_app.nets.registry`):
``detector`` (default | maskrcnn | sam), ``matter`` (lite | parts | instmatt). ``matting="auto"``
picks the InstMatt network when the user added official-format weights, otherwise our trained
InstMatt-Lite network (shipped in ``models/``), otherwise the registry-parts matter (``parts``,
RVM's human alpha split among the people; ``default`` is accepted as its old name). Expensive
per-photo work is cached in an :class:`ImageContext` kept on the result, so re-matting one person
or re-running cycle refinement with a new order reuses it.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from instmatt_app.core.consistency import consistent_alphas, enforce_consistency
from instmatt_app.core.result import Detection, Instance, MattingResult, PeopleAlphas
from instmatt_app.core.trimask import TrimaskMode
from instmatt_app.nets import registry
from instmatt_app.nets.image_context import ImageContext

__all__ = [
    "Cancelled",
    "Engine",
    "EngineConfig",
    "EngineError",
    "detections_from_masks",
    "enforce_consistency",
    "resolve_device",
]

ProgressFn = Callable[[str, float], None]


class Cancelled(Exception):
    """The caller's cancel callback asked the engine to stop."""


class EngineError(RuntimeError):
    """A clear, user-facing failure of the engine (missing model, bad masks, ...)."""


@dataclass
class EngineConfig:
    """device: auto | cpu | cuda. detector: default | maskrcnn | sam. matting: auto | lite | parts
    (alias: default) | instmatt. refine: none | parallel | cycle (order: instance indices, first
    refined first).
    trimask_mode: union (paper Eq. 5–6) | sum (official code; forced for official weights).
    max_side: working long side for the matting network (None = the backend's default).
    numpy_hugepages: let numpy ask the kernel for transparent huge pages for its large arrays
    while the engine runs (numpy's default). Off by default: with the common ``defrag=madvise``
    setting every fresh large array can stall in direct memory compaction; measured on a 24 MP
    photo this cost ≈ 1.3 s of ≈ 5.4 s (docs/benchmarks.md, Engine), and nothing at 1280 px.
    guidance_passes: passes of iterated mutual guidance InstMatt-Lite makes on the detector's masks
    (None = the matter's default, 1 = one pass: fastest; ``LiteMatter.settle``); other matters ignore it.
    detector_options / matter_options: passed to the builders."""

    device: str = "auto"
    detector: str = "default"
    matting: str = "auto"
    refine: str = "parallel"
    order: list[int] | None = None
    trimask_mode: TrimaskMode = "union"
    max_side: int | None = None
    official_postprocess: bool = False
    numpy_hugepages: bool = False
    guidance_passes: int | None = None
    weights: dict[str, str] = field(default_factory=dict)
    detector_options: dict = field(default_factory=dict)
    matter_options: dict = field(default_factory=dict)


def resolve_device(device: str) -> str:
    """"auto" → "cuda" when PyTorch sees a GPU, else "cpu"; other values are checked."""
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise EngineError(f"unknown device {device!r} (use auto, cpu or cuda)")
    if device == "cpu":
        return "cpu"
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # torch missing or broken: the default models run without it
        has_cuda = False
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    if not has_cuda:
        raise EngineError("--device cuda asked for, but no CUDA GPU is available (use --device auto or cpu)")
    return device


def detections_from_masks(masks: np.ndarray) -> list[Detection]:
    """User-supplied coarse masks (k, H, W) in [0, 1] → detections in the same order."""
    dets = []
    for m in masks:
        dets.append(Detection(box=mask_box(m, (0.0, 0.0, 0.0, 0.0)), score=1.0, mask=m.astype(np.float32),
                              source="masks"))
    return dets


class Engine:
    """Builds the configured models once and runs photos through them (see module docstring)."""

    def __init__(self, config: EngineConfig | None = None):
        self.config = config or EngineConfig()
        self.device = resolve_device(self.config.device)
        self._detector = None
        self._matter = None
        self._refiner = None
        self.warnings: list[str] = []

    # -- model selection -----------------------------------------------------------------
    @property
    def matting_name(self) -> str:
        """The matter in use: instmatt (official-format weights), lite (our trained network) or
        parts (the registry-parts matter)."""
        m = self.config.matting
        if m == "auto":
            from instmatt_app.model_manager import model_path, user_model

            if self.config.weights.get("instmatt") or user_model("instmatt"):
                return "instmatt"
            return "lite" if (self.config.weights.get("lite") or model_path("instmatt-lite").is_file()) else "parts"
        if m == "default":
            return "parts"
        if m not in ("lite", "parts", "instmatt"):
            raise EngineError(f"unknown matting backend {m!r} (use auto, lite, parts or instmatt)")
        return m

    def _weights(self, kind: str) -> str | None:
        if kind in self.config.weights:
            return self.config.weights[kind]
        from instmatt_app.model_manager import user_model

        p = user_model(kind)
        return str(p) if p else None

    @property
    def detector(self):
        if self._detector is None:
            name = self.config.detector
            weights = None
            if name in ("maskrcnn", "sam"):
                weights = self._weights(name)
                if weights is None:
                    raise EngineError(f"--detector {name} needs weights: add them with "
                                      f"`instmatt models add {name} FILE`")
            self._detector = registry.build("detector", name, weights=weights, device=self.device,
                                            **self.config.detector_options)
        return self._detector

    @property
    def matter(self):
        if self._matter is None:
            name = self.matting_name
            opts = dict(self.config.matter_options)
            weights = None
            if name == "instmatt":
                weights = self._weights("instmatt")
                if weights is None:
                    raise EngineError("--matting instmatt needs official-format weights: add them with "
                                      "`instmatt models add instmatt FILE`")
                if self.config.max_side:
                    opts["max_side"] = self.config.max_side
                if self.config.official_postprocess:
                    opts["official_postprocess"] = True
            elif name == "lite":
                weights = self.config.weights.get("lite")
                if self.config.guidance_passes is not None:
                    opts["guidance_passes"] = self.config.guidance_passes
            try:
                self._matter = registry.build("matter", "default" if name == "parts" else name, weights=weights,
                                              device=self.device, **opts)
            except (OSError, ValueError) as exc:  # missing or corrupt weights file: say which
                raise EngineError(f"matting {name}: {exc}") from None
        return self._matter

    @property
    def refiner(self):
        """The embedded default's refiner (the InstMatt network refines inside its matter)."""
        if self._refiner is None:
            self._refiner = registry.build("refiner", "default", device=self.device)
        return self._refiner

    def models_in_use(self) -> dict[str, str]:
        from instmatt_app.model_manager import load_manifest

        used = {"detector": self.config.detector, "matting": self.matting_name}
        if self.config.detector == "default" or self.matting_name in ("parts", "lite"):
            for e in load_manifest():
                used[e.name] = e.sha256[:12]
        for kind in ("instmatt", "maskrcnn", "sam"):
            if (kind == self.matting_name or kind == self.config.detector) and self._weights(kind):
                used[f"{kind}-weights"] = self._weights(kind)
        boxes = getattr(self._detector, "box_detector_name", None)
        if boxes is not None:
            used["person_boxes"] = boxes
        passes = getattr(self._matter, "guidance_passes", None)
        if passes is not None:
            used["guidance_passes"] = str(passes)
            if passes > 1:
                used["pass_reuse"] = str(getattr(self._matter, "pass_reuse", None))
        return used

    def prepare(self, detector: bool = True) -> None:
        """Build the configured models now (they are otherwise built on first use), so that a missing
        model or weights file is reported before any photo is processed and the first photo does
        not pay for loading them."""
        if detector:
            _ = self.detector
        _ = self.matter
        if self.matting_name != "instmatt" and self.config.refine != "none":
            with contextlib.suppress(registry.UnknownModelError):  # a warning when a photo is matted
                _ = self.refiner
        if (detector and self.config.detector == "default") or self.matting_name == "parts":
            # the embedded models load lazily: load them now, not during the first photo (the pose
            # landmarker's first call also imports mediapipe's task runtime, ≈ 0.6 s)
            from instmatt_app.nets import embedded

            embedded.human_matter(self.device)
            if detector and self.config.detector == "default":
                embedded.pose_segmenter()(np.zeros((64, 64, 3), np.uint8))
                _ = self.detector.box_detector_name  # builds the box detector (a missing file fails here)

    # -- stages -------------------------------------------------------------------------
    def _call_with_fallback(self, fn_name: str, *args, **kwargs):
        """Run a model stage; on CUDA out-of-memory rebuild the models on the CPU and retry."""
        try:
            return getattr(self, fn_name)(*args, **kwargs)
        except Exception as exc:
            if self.device == "cpu" or not _is_cuda_oom(exc):
                raise
            self.warnings.append(f"GPU out of memory during {fn_name}; finished on the CPU")
            self.device = "cpu"
            self._detector = self._matter = self._refiner = None
            try:
                import torch

                torch.cuda.empty_cache()
            except Exception:  # noqa: BLE001
                pass
            return getattr(self, fn_name)(*args, **kwargs)

    def _detect(self, image: np.ndarray, ctx: ImageContext) -> list[Detection]:
        return self.detector.detect(image, context=ctx)

    # a detection whose matte has less than this fraction of the photo at alpha >= 0.5 is nobody
    MIN_PERSON_AREA = 0.002

    def _matte(self, image: np.ndarray, masks: np.ndarray, ctx: ImageContext, refine: str,
               order: list[int], found: bool = False) -> tuple[np.ndarray, list[int] | None]:
        """The matting stage: ((k, H, W) float32 alphas, or (k, 3, H, W) float32 tri-mattes from the
        InstMatt network, which refines inside its matter; kept).

        found: the masks are the detector's, not the user's. A matter that can tell (InstMatt-Lite
        was trained on the detector's own masks, ``merges_duplicates``) then merges detections that
        grew into the same person and the people whose matte is (almost) empty are dropped before
        refinement; before that, a matter with iterated guidance (``guidance_passes`` > 1) settles
        the masks (``LiteMatter.settle``: the masks are overwritten with the network's own). ``kept``
        lists the surviving mask indices in order (None: all kept and no mask changed), and ``masks``
        is then compacted in place: its first ``len(kept)`` rows are the survivors' (no copy of the
        (k, H, W) arrays: a 24 MP photo's are ~100 MB per person)."""
        matter = self.matter
        if self.matting_name == "instmatt":
            return matter.matte(image, masks, refine=refine, order=order, context=ctx), None
        t0 = time.perf_counter()
        merge = found and getattr(matter, "merges_duplicates", False)
        settled = None
        if merge and len(masks) and getattr(matter, "guidance_passes", 1) > 1:
            # iterated mutual guidance: the masks become the network's own (settled) masks, in place
            settled = matter.settle(image, masks, min_area=self.MIN_PERSON_AREA)
            masks = masks[:len(settled)]
            order = [settled.index(i) for i in order if i in settled]
            ctx.timings["settle"] = time.perf_counter() - t0
            t0 = time.perf_counter()  # "matter" is the final, full-resolution pass
        alphas = self._unrefined(matter, image, masks, ctx, merge=merge)
        kept = None
        if merge and len(alphas):
            min_px = self.MIN_PERSON_AREA * alphas[0].size
            kept = [i for i in range(len(alphas)) if np.count_nonzero(alphas[i] >= 0.5) >= min_px]
            if len(kept) < len(alphas):
                alphas, masks = _compact(alphas, kept), _compact(masks, kept)
                order = [kept.index(i) for i in order if i in kept]
                # what a later refinement of these people (GUI: order changed) starts from
                self._remember_unrefined(ctx, masks, alphas)
            else:
                kept = None
        if settled is not None:  # the original detections' indices; masks changed, so always a list
            kept = settled if kept is None else [settled[i] for i in kept]
        ctx.timings["matter"] = ctx.timings.get("matter", 0.0) + time.perf_counter() - t0
        if refine != "none" and len(masks) > 0:
            try:
                refiner = self.refiner
            except registry.UnknownModelError:
                msg = "this build has no refiner for the embedded default; refinement skipped"
                if msg not in self.warnings:
                    self.warnings.append(msg)
                return alphas, kept
            t0 = time.perf_counter()
            alphas = refiner.refine_alphas(image, alphas, masks, mode=refine, order=order, context=ctx)
            ctx.timings["refine"] = ctx.timings.get("refine", 0.0) + time.perf_counter() - t0
        return alphas, kept

    # photos up to about 16 MP with 4 people: keep the unrefined alphas for order changes
    UNREFINED_CACHE_BYTES = 256 * 2**20

    @classmethod
    def _unrefined(cls, matter, image: np.ndarray, masks: np.ndarray, ctx: ImageContext, merge: bool = False
                   ) -> np.ndarray:
        """The matter's alphas before refinement ((k, H, W) float32), cached per set of masks.

        Re-running refinement with a new order or mode (the GUI's refinement panel) then costs only
        the refiner. A copy is returned: refinement and the consistency step work in place. A
        matter with an ``alphas`` method gives them directly; from one with only ``matte``
        ((k, 3, H, W) tri-mattes) the α_t channel is taken. merge: ask the matter to merge
        detections that are the same person (the engine's own detections only).
        """
        key = cls._unrefined_key(masks)
        if key is not None:
            cached = ctx.cache.get(key)
            if cached is not None:
                return cached.copy()
        if hasattr(matter, "alphas"):
            # merging changes nothing unless it empties a person, and then _matte drops that person
            # and files the result under the remaining masks: one cache key serves both
            extra = {"merge_duplicates": True} if merge else {}
            alphas = np.asarray(matter.alphas(image, masks, context=ctx, **extra), np.float32)
        else:
            tri = matter.matte(image, masks, context=ctx)
            alphas = np.ascontiguousarray(tri[:, 0], np.float32)
            del tri
        cls._remember_unrefined(ctx, masks, alphas)
        return alphas

    @classmethod
    def _unrefined_key(cls, masks: np.ndarray) -> str | None:
        """Cache key of the unrefined alphas for these masks; None when too large to keep."""
        import hashlib

        if masks.shape[0] * masks.shape[1] * masks.shape[2] * 4 > cls.UNREFINED_CACHE_BYTES:
            return None
        return "unrefined:" + hashlib.blake2b(np.ascontiguousarray(masks).tobytes(), digest_size=16).hexdigest()

    @classmethod
    def _remember_unrefined(cls, ctx: ImageContext, masks: np.ndarray, alphas: np.ndarray) -> None:
        """Keep a copy of the unrefined alphas for these masks (only the latest guidance's)."""
        key = cls._unrefined_key(masks)
        if key is None:
            return
        for old in [k for k in ctx.cache if k.startswith("unrefined:")]:
            del ctx.cache[old]
        ctx.cache[key] = alphas.copy()

    def _instances(self, out: np.ndarray, masks: np.ndarray, sources: list[tuple], consistent: bool
                   ) -> list[Instance]:
        """Instances from the matting stage's output ((k, H, W) alphas or (k, 3, H, W) tri-mattes).

        consistent: apply the consistency step (Σ α ≤ 1; α_r, α_b derived from the alphas, so a
        tri-matte is computed only when asked for); False keeps a network's tri-mattes as they are
        (``official_postprocess``). sources: (box, score, source) per instance.
        """
        tmode = "sum" if self.matting_name == "instmatt" else self.config.trimask_mode
        if out.ndim == 4 and not consistent:
            people = PeopleAlphas(out[:, 0], masks, tmode)
            return [Instance(index=i, box=b, score=sc, coarse_mask=masks[i], trimatte=out[i], source=src,
                             people=people) for i, (b, sc, src) in enumerate(sources)]
        alphas = np.ascontiguousarray(out[:, 0]) if out.ndim == 4 else out
        del out
        people = PeopleAlphas(consistent_alphas(alphas), masks, tmode)
        return [Instance(index=i, box=b, score=sc, coarse_mask=masks[i], source=src, people=people)
                for i, (b, sc, src) in enumerate(sources)]

    def run(self, image: np.ndarray, masks: np.ndarray | None = None, progress: ProgressFn | None = None,
            cancel: Callable[[], bool] | None = None, detected: bool = False) -> MattingResult:
        """Find and matte every person of ``image`` ((H, W, 3) uint8 RGB).

        masks: optional (k, H, W) float32/uint8 coarse instance masks used instead of the detector;
        instance i of the result is mask i. detected: ``masks`` are this engine's detector output
        (the benchmark runs the detector once for several matters), so, as for the engine's own
        detections, duplicates are merged and people the matter finds empty dropped. Raises
        :class:`Cancelled` when ``cancel()`` turns true.
        """
        with numpy_huge_pages(self.config.numpy_hugepages):
            return self._run(image, masks, progress, cancel, detected or masks is None)

    def _run(self, image: np.ndarray, masks: np.ndarray | None, progress: ProgressFn | None,
             cancel: Callable[[], bool] | None, found: bool) -> MattingResult:
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise EngineError(f"image must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        H, W = image.shape[:2]
        ctx = ImageContext(image)
        step = progress or (lambda stage, frac: None)

        def check() -> None:
            if cancel is not None and cancel():
                raise Cancelled()

        t0 = time.perf_counter()
        step("detect", 0.0)
        if masks is not None:
            m = np.asarray(masks)
            if m.ndim != 3 or m.shape[1:] != (H, W):
                raise EngineError(f"masks must be (k, {H}, {W}), got {m.shape}")
            m = m.astype(np.float32) / 255.0 if m.dtype == np.uint8 else m.astype(np.float32)
            dets = detections_from_masks(np.clip(m, 0.0, 1.0))
        else:
            dets = self._call_with_fallback("_detect", image, ctx)
        t_detect = time.perf_counter() - t0
        check()

        step("matte", 0.3)
        coarse = np.stack([d.mask for d in dets]) if dets else np.zeros((0, H, W), np.float32)
        for i, d in enumerate(dets):  # the detections share the stacked array (no second copy)
            d.mask = coarse[i]
        order = self._order(len(dets), self.config.order)
        t1 = time.perf_counter()
        out, kept = self._call_with_fallback("_matte", image, coarse, ctx, self.config.refine, order,
                                             found=found)
        if kept is not None:  # detections the matter found to be nobody, or someone already found
            dets = [dets[i] for i in kept]
            coarse = coarse[:len(kept)]  # compacted in place by _matte
            for i, d in enumerate(dets):
                d.mask = coarse[i]
            order = self._order(len(dets), [kept.index(i) for i in order if i in kept])
            for d in dets:  # the masks may be the settled ones: so are the boxes
                d.box = mask_box(d.mask, d.box)
        check()
        # tri-masks and tri-mattes are derived from the masks and alphas when asked for
        instances = self._instances(out, coarse, [(d.box, d.score, d.source) for d in dets],
                                    consistent=not self.config.official_postprocess)
        del out
        t_matte = time.perf_counter() - t1

        timings = {"detect": t_detect, "matte": t_matte, "total": time.perf_counter() - t0}
        timings.update({f"stage:{k}": v for k, v in ctx.timings.items()})
        step("done", 1.0)
        return MattingResult(image=image, instances=instances, order=order, refine_mode=self.config.refine,
                             device=self.device, timings=timings, models=self.models_in_use(),
                             extras={"context": ctx, "warnings": list(self.warnings)})

    @staticmethod
    def _order(k: int, order: list[int] | None) -> list[int]:
        if order is None:
            return list(range(k))
        order = list(order)
        if sorted(order) != list(range(k)):
            raise EngineError(f"--order must list each of the {k} people once (0..{k - 1}), got {order}")
        return order

    def refine(self, result: MattingResult, mode: str, order: list[int] | None = None) -> MattingResult:
        """Re-run only the matting/refinement stage with a new mode or order (GUI: order changed).

        Reuses the cached per-photo work (human alpha, network features) held by the result.
        """
        return self.rematte(result, None, mode, order)

    def rematte(self, result: MattingResult, masks: np.ndarray | None, mode: str | None = None,
                order: list[int] | None = None, added: list[Detection] | None = None) -> MattingResult:
        """Matte the same photo again with edited coarse masks (the GUI's guidance brush, a person
        added by a click), reusing the per-photo work cached on ``result``.

        masks: (k, H, W) float32 in [0, 1]: the first ``len(result.instances)`` belong to the
        result's people in their order, any further ones to ``added`` (new people, in order);
        None = the result's own masks. mode: none | parallel | cycle (default: the result's).
        Every person's tri-mask is rebuilt (a changed mask changes the others' M_r and M_b).
        """
        with numpy_huge_pages(self.config.numpy_hugepages):
            return self._rematte(result, masks, mode, order, added)

    def _rematte(self, result: MattingResult, masks: np.ndarray | None, mode: str | None,
                 order: list[int] | None, added: list[Detection] | None) -> MattingResult:
        H, W = result.image.shape[:2]
        added = list(added or [])
        if masks is None:
            masks = np.stack([inst.coarse_mask for inst in result.instances]) if result.instances else \
                np.zeros((0, H, W), np.float32)
        masks = np.asarray(masks, np.float32)
        if masks.ndim != 3 or masks.shape[1:] != (H, W) or len(masks) != len(result.instances) + len(added):
            raise EngineError(f"rematte needs ({len(result.instances) + len(added)}, {H}, {W}) masks, got {masks.shape}")
        mode = mode or result.refine_mode
        ctx = result.extras.get("context") or ImageContext(result.image)
        order = self._order(len(masks), order)
        t0 = time.perf_counter()
        out, _ = self._call_with_fallback("_matte", result.image, masks, ctx, mode, order)
        self._bind_edits(out, masks, result)
        sources = [(inst.box, inst.score, inst.source) for inst in result.instances] + \
                  [(d.box, d.score, d.source) for d in added]
        sources = [(mask_box(masks[i], box), score, source) for i, (box, score, source) in enumerate(sources)]
        instances = self._instances(out, masks, sources, consistent=True)
        del out
        timings = dict(result.timings, refine=time.perf_counter() - t0)
        return MattingResult(image=result.image, instances=instances, order=order, refine_mode=mode,
                             device=self.device, timings=timings, models=result.models, extras=result.extras)


    @staticmethod
    def _bind_edits(out: np.ndarray, masks: np.ndarray, result: MattingResult) -> None:
        """Make the user's guidance edits binding, in place on ``out`` ((k, H, W) alphas or
        (k, 3, H, W) tri-mattes, α_t used): where a person's coarse mask lost coverage c compared
        with ``result`` (painted "background" or "another person"), its alpha is scaled by 1 − c;
        where it gained coverage c (painted "this person"), its alpha is at least c. A matter that
        learned to correct imperfect masks (InstMatt-Lite was trained with perturbed guidance) would
        otherwise treat a deliberate edit as a mask error. The consistency step (Σα ≤ 1) follows."""
        alphas = out[:, 0] if out.ndim == 4 else out
        for i, inst in enumerate(result.instances):
            old = np.asarray(inst.coarse_mask, np.float32)
            diff = masks[i] - old
            ys, xs = np.nonzero(np.abs(diff) > 1e-3)
            if ys.size == 0:
                continue
            sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
            d = diff[sl]
            a = alphas[i][sl]
            a *= 1.0 - np.clip(-d, 0.0, 1.0)
            np.maximum(a, np.clip(d, 0.0, 1.0), out=a)


def mask_box(mask: np.ndarray, fallback: tuple) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of ``mask`` ((H, W) float) > 0.5, in pixels (exclusive end); ``fallback``
    when the mask is empty. Row and column projections only: no index arrays of a large mask."""
    inside = mask > 0.5
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    if rows.size == 0:
        return fallback
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def _compact(arr: np.ndarray, kept: list[int]) -> np.ndarray:
    """``arr[kept]`` for increasing ``kept``, moved in place (no copy): returns ``arr[:len(kept)]``."""
    for new, old in enumerate(kept):
        if new != old:
            arr[new] = arr[old]
    return arr[:len(kept)]


_HUGE_PAGES_LOCK = threading.Lock()
_HUGE_PAGES_OFF = 0  # engine calls now running with numpy's huge-page advice switched off


@contextlib.contextmanager
def numpy_huge_pages(enabled: bool):
    """While the block runs, numpy's ``madvise(MADV_HUGEPAGE)`` on large arrays is ``enabled`` or not.

    numpy's switch is process-wide; nested and concurrent engine calls share one counter, the
    advice is restored when the last of them ends. Where numpy has no such switch this does nothing.
    """
    global _HUGE_PAGES_OFF
    try:
        from numpy._core import multiarray
        get, put = multiarray._get_madvise_hugepage, multiarray._set_madvise_hugepage
    except (ImportError, AttributeError):
        get = put = None
    if enabled or get is None:
        yield
        return
    with _HUGE_PAGES_LOCK:
        if _HUGE_PAGES_OFF == 0:
            numpy_huge_pages.saved = put(False)  # returns the previous setting
        _HUGE_PAGES_OFF += 1
    try:
        yield
    finally:
        with _HUGE_PAGES_LOCK:
            _HUGE_PAGES_OFF -= 1
            if _HUGE_PAGES_OFF == 0:
                put(numpy_huge_pages.saved)


def _is_cuda_oom(exc: BaseException) -> bool:
    try:
        import torch

        if isinstance(exc, torch.cuda.OutOfMemoryError):
            return True
    except Exception:  # noqa: BLE001
        pass
    return "out of memory" in str(exc).lower() and "cuda" in str(exc).lower()
