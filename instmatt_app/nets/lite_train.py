"""Training InstMatt-Lite (:mod:`instmatt_app.nets.lite_model`) on composites made on the fly.

* **Start**: RVM's weights (:func:`instmatt_app.nets.lite_model.lite_from_rvm`), or a checkpoint.
* **Data** (:class:`LiteSamples`): HIM2K-style composites (Eq. 13, :class:`SyntheticGenerator`) of
  2–5 people with up to 60 % occlusion; the whole composite is rescaled by U(0.7, 1.3), flipped
  with p = 0.5, and given one photometric change shared by image, background and foreground
  colours (per-channel gain and offset, saturation), so Eq. 13 still holds. Per composite up to
  ``targets_per_composite`` samples, each an S×S crop centred on the boundary of its target: the
  target is one person (p = 0.85) or a random subset of the people, possibly empty (InstMatt's
  stage 1). Guidance: the official perturbations of :func:`instmatt_app.nets.instmatt_train.
  tri_composition` (binarise at U(0.01, 1), erode/dilate, drop a reference mask with p = 0.25,
  perturb every tri-mask channel again) and external CutMask with p = ``cutmask_p``. With
  ``det_pack``, a share ``det_p`` of the composites come instead from stored composites with the
  embedded detector's own masks as guidance (:class:`DetectorGuidedSamples`).
* **Losses** on [α_t, α_r, α_b] of each head (OS8, OS4, OS1 at the working size; the guided-filter
  output at full size when the step runs at ``downsample_ratio`` 0.5, which it does with p = 0.5 so
  the filter learns tri-mattes): weighted L1, pyramid Laplacian and composition (L_mc, Eq. 10),
  weight 1 + 4 × (GT unknown band); plus L_mα (Eq. 11). Head weights 1, 1, 2 (+2 guided).
* **Optimiser**: AdamW; the new heads learn 5× faster than the pretrained body; linear warm-up,
  cosine decay. bf16 autocast on CUDA.
* **Stops** after ``iterations`` or ``minutes`` (wall clock), whichever comes first; checkpoints
  (``OUT/lite_last.pth``: weights, optimizer, step, config) are written atomically and resumable;
  validation IMQ (:func:`validate`) on held-out composites is appended to ``OUT/log.csv`` with the
  training loss at every ``val_every`` steps and at the end.
"""
from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from instmatt_app.nets.instmatt_train import (
    _external_cutmask,
    _weighted_l1,
    laplacian_loss,
    tri_composition,
)
from instmatt_app.nets.lite_model import ARCHITECTURE, LiteMatteNet, lite_from_rvm

__all__ = ["DetectorGuidedSamples", "LiteSamples", "LiteTrainConfig", "LiteTrainer", "composite_thumbnail",
           "lite_losses", "save_weights", "validate"]


@dataclass
class LiteTrainConfig:
    out_dir: str
    cutouts: str = ""
    backgrounds: str = ""
    val_cutouts: str | None = None
    val_backgrounds: str | None = None
    rvm_onnx: str = "models/rvm_mobilenetv3_fp32.onnx"
    init: str | None = None           # an InstMatt-Lite weights file to start from (else RVM)
    resume: str | None = None         # a checkpoint of this trainer (optimizer and step included)
    iterations: int = 20_000
    minutes: float | None = None
    batch: int = 8
    crop: int = 512
    lr: float = 1e-4
    head_lr_factor: float = 5.0
    weight_decay: float = 1e-4
    warmup: int = 200
    long_side: tuple[int, int] = (640, 960)
    targets_per_composite: int = 3
    matte_weight: int = 4             # P3M portraits (real mattes) drawn 4x as often as COCO people
    cutmask_p: float = 0.25
    det_pack: str | None = None       # composites with the detector's masks (DetectorGuidedSamples)
    det_p: float = 0.5                # share of composites drawn from det_pack
    workers: int = 0
    device: str = "cpu"
    seed: int = 0
    log_every: int = 50
    val_every: int = 1000
    val_images: int = 16
    save_every: int = 500
    keep_snapshots: bool = False      # also keep the fp16 weights of every save (lite_weights_fp16_step<N>.pth)
    extra: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ data

def composite_thumbnail(image: np.ndarray) -> np.ndarray:
    """(16, 16, 3) uint8 area-average of an (H, W, 3) uint8 composite: tells a composite drawn again
    from its seed (masks-only detector packs) from a different one."""
    return cv2.resize(image, (16, 16), interpolation=cv2.INTER_AREA)


def _photometric(rng: np.random.Generator):
    gain = rng.uniform(0.8, 1.2, 3).astype(np.float32) * np.float32(rng.uniform(0.85, 1.15))
    offset = rng.uniform(-0.05, 0.05, 3).astype(np.float32)
    sat = np.float32(rng.uniform(0.7, 1.3))

    def apply(rgb: np.ndarray) -> np.ndarray:
        grey = rgb.mean(-1, keepdims=True)
        out = grey + sat * (rgb - grey)
        return np.clip(out * gain + offset, 0.0, 1.0).astype(np.float32)
    return apply


class LiteSamples:
    """Training samples (see the module docstring). ``samples()`` yields dicts of float32 arrays:
    image (3, S, S) in [0, 1], background (3, S, S), gt (3, S, S) [α_t, α_r, α_b], trimask (3, S, S),
    fg_t / fg_r (3, S, S) colours of the target / reference people, unknown (1, S, S) {0, 1}."""

    def __init__(self, generator, crop: int = 512, targets_per_composite: int = 3, cutmask_p: float = 0.25,
                 seed: int = 0):
        self.generator = generator
        self.crop = crop
        self.targets = targets_per_composite
        self.cutmask_p = cutmask_p
        self.rng = np.random.default_rng(seed)

    def _crop_box(self, alpha: np.ndarray, shape: tuple[int, int]) -> tuple[int, int]:
        s, (h, w), rng = self.crop, shape, self.rng
        edge = (alpha > 0.02) & (alpha < 0.98)
        ys, xs = np.nonzero(edge if edge.any() and rng.random() < 0.7 else alpha > 0.5)
        if ys.size:
            j = int(rng.integers(ys.size))
            cy, cx = int(ys[j]), int(xs[j])
        else:
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
        return int(np.clip(cy - s // 2, 0, h - s)), int(np.clip(cx - s // 2, 0, w - s))

    def composite_samples(self) -> list[dict[str, np.ndarray]]:
        rng, s = self.rng, self.crop
        comp = self.generator.sample(rng)
        alphas = comp.alphas.astype(np.float32)
        k, h, w = alphas.shape
        f = rng.uniform(0.7, 1.3)
        f = max(f, s / min(h, w))
        size = (max(s, int(round(w * f))), max(s, int(round(h * f))))
        jitter = _photometric(rng)
        image = jitter(cv2.resize(comp.image, size, interpolation=cv2.INTER_LINEAR))
        background = jitter(cv2.resize(comp.background, size, interpolation=cv2.INTER_LINEAR))
        fgs = np.stack([jitter(cv2.resize(fg, size, interpolation=cv2.INTER_LINEAR)) for fg in comp.foregrounds])
        alphas = np.stack([cv2.resize(a, size, interpolation=cv2.INTER_LINEAR) for a in alphas]).clip(0, 1)
        if rng.random() < 0.5:
            image, background, fgs, alphas = image[:, ::-1], background[:, ::-1], fgs[:, :, ::-1], alphas[:, :, ::-1]
        H, W = alphas.shape[1:]
        out = []
        order = rng.permutation(k).tolist()
        for n in range(min(self.targets, k)):
            if rng.random() < 0.85:
                target = [order[n]]
            else:
                target = sorted(rng.choice(k, size=int(rng.integers(0, k + 1)), replace=False).tolist())
            focus = alphas[target].sum(0) if target else alphas.sum(0)
            y0, x0 = self._crop_box(focus, (H, W))
            sl = (slice(y0, y0 + s), slice(x0, x0 + s))
            a = np.ascontiguousarray(alphas[:, sl[0], sl[1]])
            fg = np.ascontiguousarray(fgs[:, sl[0], sl[1]])
            tc = tri_composition(a, fg, target, rng)
            if rng.random() < self.cutmask_p:
                tc["trimask"] = _external_cutmask(tc["trimask"], rng)
            gt_t = tc["gt"][0]
            unknown = ((gt_t > 0.01) & (gt_t < 0.99)).astype(np.uint8)
            unknown = cv2.dilate(unknown, np.ones((9, 9), np.uint8))[None].astype(np.float32)
            chw = lambda x: np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)
            out.append({"image": chw(image[sl]), "background": chw(background[sl]), "gt": tc["gt"],
                        "trimask": tc["trimask"].astype(np.float32), "fg_t": chw(tc["fg_t"]),
                        "fg_r": chw(tc["fg_r"]), "unknown": unknown})
        return out

    def samples(self) -> Iterator[dict[str, np.ndarray]]:
        while True:
            yield from self.composite_samples()


class DetectorGuidedSamples:
    """Samples whose guidance is the embedded detector's own masks (``tools/build_detector_pack.py``).

    The network meets the detector's errors at run time: a person split into fragments, a pose mask
    spilling onto a neighbour, a mask on an object. Each stored composite holds the GT visible
    alphas and the detector's soft masks; a sample is one detection, guided exactly as
    :func:`instmatt_app.nets.lite_matter.matte_people` guides it (masks ≥ ``threshold``, small holes
    filled, tri-mask [own, others, nobody's]), in a square window around its crop box (context
    U(0.15, 0.35) of the box on each side), scaled so the window is S·U(0.85, 1.2) px and cut or
    padded (black, background) to S × S. The target is the person the detection belongs to: the GT
    instance it overlaps most (IoU ≥ ``min_iou``), or the one holding ≥ ``min_contain`` of it (a
    fragment of a person learns to grow to the whole person, whose duplicates the engine then
    merges); a detection that belongs to nobody (an object) has the target α_t = 0. The same dict
    keys as :class:`LiteSamples`.
    """

    def __init__(self, pack: str | os.PathLike, crop: int = 512, per_composite: int = 3, threshold: float = 0.3,
                 min_iou: float = 0.2, min_contain: float = 0.5, seed: int = 0):
        self.files = sorted(Path(pack).glob("[0-9]*.npz"))
        if not self.files:
            raise ValueError(f"{pack}: no detector-guided composites (make them with tools/build_detector_pack.py)")
        self.crop, self.per = crop, per_composite
        self.threshold, self.min_iou, self.min_contain = threshold, min_iou, min_contain
        self.rng = np.random.default_rng(seed)
        meta_path = Path(pack) / "pack.json"
        self.meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        self.masks_only = self.meta.get("format") == "masks-only"
        if self.masks_only and abs(float(self.meta["threshold"]) - threshold) > 1e-6:
            raise ValueError(f"{pack}: masks binarised at {self.meta['threshold']}, not at the guidance "
                             f"threshold {threshold}")
        self._generator = None
        self.mismatched = 0     # masks-only composites skipped because they were not drawn the same again

    def _regenerate(self, seed: int):
        """The composite of ``seed`` drawn again with the pack's generator settings (masks-only packs)."""
        from instmatt_app.evaluation.synth import (
            BackgroundLibrary,
            CutoutLibrary,
            SyntheticGenerator,
            SynthSettings,
        )

        if self._generator is None:
            m = self.meta
            self._generator = SyntheticGenerator(
                CutoutLibrary(m["cutouts"]), BackgroundLibrary(m["backgrounds"]),
                SynthSettings(long_side=tuple(m["long_side"]), max_people=int(m["max_people"])))
        return self._generator.sample(np.random.default_rng(seed))

    def load(self, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """One stored composite: image (H, W, 3) u8, background (H, W, 3) u8, fgs (k, H, W, 3) u8,
        alphas (k, H, W) float32 in [0, 1], the detections as guidance (m, H, W) bool (≥ threshold,
        small holes filled); None when a masks-only composite was not drawn the same again."""
        from instmatt_app.nets.lite_matter import _fill_mask_holes

        z = np.load(path)
        if "mask_bits" not in z:
            masks = z["masks"] >= round(self.threshold * 255)
            return (z["image"], z["background"], z["fgs"], z["alphas"].astype(np.float32) / 255.0,
                    _fill_mask_holes(masks, 0.05))
        if not self.masks_only:
            raise ValueError(f"{path}: a masks-only composite, but {path.parent / 'pack.json'} does not describe "
                             "a masks-only pack (it is written when tools/build_detector_pack.py finishes)")
        h, w = (int(v) for v in z["shape"])
        s = self._regenerate(int(path.stem))
        if s.image_u8.shape[:2] != (h, w) or np.abs(composite_thumbnail(s.image_u8).astype(np.int16)
                                                    - z["thumb"]).mean() > 2.0:
            self.mismatched += 1
            return None
        masks = np.unpackbits(z["mask_bits"], axis=-1, count=w).astype(bool)
        # the planes rounded to 8 bits, as full packs store them
        return (s.image_u8, _to_u8(s.background), _to_u8(s.foregrounds), _to_u8(s.alphas).astype(np.float32) / 255.0,
                _fill_mask_holes(masks, 0.05))

    @staticmethod
    def assign(masks: np.ndarray, alphas: np.ndarray, min_iou: float = 0.2, min_contain: float = 0.5
               ) -> list[int | None]:
        """GT instance of every detection (see the class docstring); masks (m, H, W) bool,
        alphas (k, H, W) float; None for a detection that belongs to nobody."""
        gt = alphas > 0.5
        out: list[int | None] = []
        for d in masks:
            n = max(int(d.sum()), 1)
            inter = np.array([np.logical_and(d, g).sum() for g in gt], np.float64)
            union = np.array([np.logical_or(d, g).sum() for g in gt], np.float64)
            if not len(inter):
                out.append(None)
                continue
            iou = inter / np.maximum(union, 1)
            j = int(iou.argmax())
            if iou[j] >= min_iou:
                out.append(j)
            elif inter.max() / n >= min_contain:
                out.append(int(inter.argmax()))
            else:
                out.append(None)
        return out

    def composite_samples(self) -> list[dict[str, np.ndarray]]:
        from instmatt_app.nets.lite_matter import person_crop

        rng, S = self.rng, self.crop
        loaded = self.load(self.files[int(rng.integers(len(self.files)))])
        if loaded is None or not len(loaded[4]):
            return []
        image_u8, background_u8, fgs, alphas, binary = loaded
        alphas = alphas.astype(np.float32)
        owner = self.assign(binary, alphas, self.min_iou, self.min_contain)
        jitter = _photometric(rng)
        image = jitter(image_u8.astype(np.float32) / 255.0)
        background = jitter(background_u8.astype(np.float32) / 255.0)
        h, w = binary.shape[1:]
        union = binary.any(0)
        count = binary.sum(0, dtype=np.int32)
        out = []
        for i in rng.permutation(len(binary))[: self.per]:
            x0, y0, x1, y1 = person_crop(binary[i], (h, w), float(rng.uniform(0.15, 0.35)))
            side = max(x1 - x0, y1 - y0)
            sx = int(np.clip((x0 + x1 - side) // 2, min(0, w - side), max(0, w - side)))
            sy = int(np.clip((y0 + y1 - side) // 2, min(0, h - side), max(0, h - side)))
            win = (slice(max(sy, 0), min(sy + side, h)), slice(max(sx, 0), min(sx + side, w)))
            pad = ((max(0, -sy), max(0, sy + side - h)), (max(0, -sx), max(0, sx + side - w)))

            def cut(a: np.ndarray, value: float = 0.0) -> np.ndarray:
                a = a[win] if a.ndim == 2 else a[win + (slice(None),)]
                return np.pad(a, pad + ((0, 0),) * (a.ndim - 2), constant_values=value)
            own = binary[i]
            others = (count - own) > 0
            tri = [cut(own.astype(np.float32)), cut(others.astype(np.float32)), cut((~union).astype(np.float32), 1.0)]
            j = owner[i]
            a_t = cut(alphas[j]) if j is not None else np.zeros((side, side), np.float32)
            rest = [l for l in range(len(alphas)) if l != j]
            a_r = cut(alphas[rest].sum(0)) if rest else np.zeros((side, side), np.float32)
            fg_t = jitter(cut(fgs[j].astype(np.float32) / 255.0)) if j is not None else np.zeros((side, side, 3),
                                                                                                 np.float32)
            if rest:
                wsum = sum(cut(alphas[l])[..., None] * cut(fgs[l].astype(np.float32) / 255.0) for l in rest)
                fg_r = jitter(wsum / np.maximum(a_r[..., None], 1e-3))
            else:
                fg_r = np.zeros((side, side, 3), np.float32)
            planes = [cut(image), cut(background), fg_t, fg_r, *tri, a_t, a_r]
            size = max(8, int(round(S * rng.uniform(0.85, 1.2))))
            planes = [cv2.resize(p, (size, size), interpolation=cv2.INTER_AREA if size < side else cv2.INTER_LINEAR)
                      for p in planes]
            if size >= S:
                oy, ox = (int(rng.integers(size - S + 1)) for _ in range(2))
                planes = [p[oy:oy + S, ox:ox + S] for p in planes]
            else:
                e = S - size
                py, px = (int(rng.integers(e + 1)) for _ in range(2))
                bg_idx = 6  # the tri-mask's "nobody" plane pads with 1
                planes = [np.pad(p, ((py, e - py), (px, e - px)) + ((0, 0),) * (p.ndim - 2),
                                 constant_values=1.0 if n == bg_idx else 0.0) for n, p in enumerate(planes)]
            if rng.random() < 0.5:
                planes = [p[:, ::-1] for p in planes]
            img, bg, ft, fr, t0, t1, t2, at, ar = planes
            at, ar = np.clip(at, 0, 1), np.clip(ar, 0, 1)
            gt = np.stack([at, ar, np.clip(1.0 - at - ar, 0, 1)]).astype(np.float32)
            unknown = ((at > 0.01) & (at < 0.99)).astype(np.uint8)
            unknown = cv2.dilate(unknown, np.ones((9, 9), np.uint8))[None].astype(np.float32)
            chw = lambda x: np.ascontiguousarray(x.transpose(2, 0, 1), dtype=np.float32)
            tri_s = np.clip(np.stack([t0, t1, t2]), 0.0, 1.0)  # soft edges after the resize, as at run time
            out.append({"image": chw(img), "background": chw(bg), "gt": gt,
                        "trimask": np.ascontiguousarray(tri_s, dtype=np.float32), "fg_t": chw(ft),
                        "fg_r": chw(fr), "unknown": unknown})
        return out

    def samples(self) -> Iterator[dict[str, np.ndarray]]:
        while True:
            yield from self.composite_samples()


def _make_generator(cutouts: str, backgrounds: str, long_side: tuple[int, int], max_people: int = 5,
                    matte_weight: int = 1):
    """A generator over the cut-outs; ``matte_weight`` > 1 draws the cut-outs that came with a real
    matte (P3M portraits, names ``p_*``) that many times as often as the soft-polygon COCO people."""
    from instmatt_app.evaluation.synth import (
        BackgroundLibrary,
        CutoutLibrary,
        SyntheticGenerator,
        SynthSettings,
    )

    lib = CutoutLibrary(cutouts)
    if matte_weight > 1:
        lib.cutouts += [c for c in lib.cutouts if c.name.startswith("p_")] * (matte_weight - 1)
    return SyntheticGenerator(lib, BackgroundLibrary(backgrounds),
                              SynthSettings(long_side=long_side, max_people=min(max_people, len(lib.cutouts))))


class _Stream(torch.utils.data.IterableDataset):
    def __init__(self, cfg: LiteTrainConfig):
        self.cfg = cfg

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        wid = info.id if info else 0
        cv2.setNumThreads(1)
        gen = _make_generator(self.cfg.cutouts, self.cfg.backgrounds, self.cfg.long_side,
                              matte_weight=self.cfg.matte_weight)
        seed = self.cfg.seed * 1000 + wid + 7919 * int(time.time() % 1e6)
        data = LiteSamples(gen, self.cfg.crop, self.cfg.targets_per_composite, self.cfg.cutmask_p, seed=seed)
        guided = (DetectorGuidedSamples(self.cfg.det_pack, self.cfg.crop, seed=seed + 1)
                  if self.cfg.det_pack and self.cfg.det_p > 0 else None)
        buf: list[dict] = []
        while True:                             # shuffle a little: one composite's crops apart
            use_det = guided is not None and data.rng.random() < self.cfg.det_p
            buf.extend(guided.composite_samples() if use_det else data.composite_samples())
            while len(buf) >= 24:
                yield buf.pop(int(data.rng.integers(len(buf))))


# ------------------------------------------------------------------------------------------ losses

def lite_losses(pred: torch.Tensor, b: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Losses of one tri-matte prediction (N, 3, h, w); GT etc. are resized to h×w if needed."""
    size = pred.shape[2:]

    def fit(x: torch.Tensor) -> torch.Tensor:
        return x if x.shape[2:] == size else F.interpolate(x, size, mode="bilinear", align_corners=False)
    gt, weight = fit(b["gt"]), 1.0 + 4.0 * fit(b["unknown"])
    comp = pred[:, 0:1] * fit(b["fg_t"]) + pred[:, 1:2] * fit(b["fg_r"]) + pred[:, 2:3] * fit(b["background"])
    return {"alpha": _weighted_l1(pred, gt, weight), "lap": laplacian_loss(pred, gt, weight),
            "comp": _weighted_l1(comp, fit(b["image"]), weight),
            "sum": (pred.sum(1, keepdim=True) - 1).abs().mean()}


# ------------------------------------------------------------------------------------------ validation

class ValidationSet:
    """Held-out composites drawn once with fixed seeds: (image u8, GT alphas (k, H, W) float32)."""

    def __init__(self, cutouts: str, backgrounds: str, n: int, long_side: tuple[int, int] = (1024, 1280),
                 seed: int = 12345):
        gen = _make_generator(cutouts, backgrounds, long_side, max_people=4)
        self.items = []
        for i in range(n):
            s = gen.sample(np.random.default_rng(seed + i))
            self.items.append((s.image_u8, s.alphas.astype(np.float32)))


def validate(net: LiteMatteNet, val: ValidationSet, device: str = "cpu") -> dict[str, float]:
    """IMQ (mad, mse; IoU 0.5) of the network's mattes with guidance from the GT (alpha ≥ 0.5),
    after Σα ≤ 1 is enforced, rounded to 8 bit as ``instmatt matte`` writes them; keys IMQ_mad,
    IMQ_mse, RQ (progressive fusion) and the same with the suffix ``_os1`` (the OS1 head alone)."""
    from instmatt_app.evaluation.imq import pool, score_image
    from instmatt_app.nets.lite_matter import matte_people

    was = net.training
    net.eval()
    out: dict[str, float] = {}
    for fuse, suffix in ((True, ""), (False, "_os1")):
        scores = []
        for idx, (image, gts) in enumerate(val.items):
            alphas = normalise_sum(matte_people(net, image, gts >= 0.5, device=device, fuse=fuse))
            # scored as the written 8-bit PNGs would be (IMQ binarises instances at alpha > 0)
            scores.append(score_image(list(_to_u8(alphas)), list(_to_u8(gts)), name=str(idx)))
        row = pool(scores, (0.5,))["0.5"]
        out.update({f"IMQ_mad{suffix}": 100 * row["IMQ_mad"], f"IMQ_mse{suffix}": 100 * row["IMQ_mse"],
                    f"RQ{suffix}": row["RQ"]})
    net.train(was)
    return out


def _to_u8(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def normalise_sum(alphas: np.ndarray) -> np.ndarray:
    """(k, H, W) alphas scaled down where their sum exceeds 1 (Σα ≤ 1)."""
    s = alphas.sum(0)
    over = s > 1.0
    if over.any():
        alphas = alphas.copy()
        alphas[:, over] /= s[over]
    return alphas


# ------------------------------------------------------------------------------------------ trainer

def save_weights(net: LiteMatteNet, path: str | os.PathLike, dtype: torch.dtype = torch.float16,
                 meta: dict | None = None) -> None:
    """Weights only (what ships in models/): {architecture, state_dict (dtype), meta}; atomic."""
    from instmatt_app.io.atomic import atomic_save

    payload = {"architecture": ARCHITECTURE,
               "state_dict": {k: v.detach().to("cpu", dtype) for k, v in net.state_dict().items()},
               "meta": meta or {}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_save(path, lambda fh: torch.save(payload, fh))


class LiteTrainer:
    def __init__(self, cfg: LiteTrainConfig, log: Callable[[str], None] = print):
        from instmatt_app.nets.lite_matter import load_lite
        from instmatt_app.nets.rvm_torch import rvm_from_onnx

        self.cfg, self.log = cfg, log
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        start = cfg.resume or cfg.init
        self.net = (load_lite(start) if start else lite_from_rvm(rvm_from_onnx(cfg.rvm_onnx))).to(cfg.device)
        self.net.train()
        heads = [p for n, p in self.net.named_parameters() if n.startswith("head_")]
        body = [p for n, p in self.net.named_parameters() if not n.startswith("head_")]
        self.opt = torch.optim.AdamW([{"params": body, "lr": cfg.lr},
                                      {"params": heads, "lr": cfg.lr * cfg.head_lr_factor}],
                                     weight_decay=cfg.weight_decay)
        self.base_lrs = [cfg.lr, cfg.lr * cfg.head_lr_factor]
        self.step = 0
        self.history: list[float] = []
        if cfg.resume:
            obj = torch.load(cfg.resume, map_location="cpu", weights_only=True)
            if "optimizer" in obj:
                self.opt.load_state_dict(obj["optimizer"])
            self.step = int(obj.get("meta", {}).get("step", 0))
            log(f"resumed {cfg.resume} at step {self.step}")
        self.val = None
        if cfg.val_cutouts and cfg.val_backgrounds and cfg.val_images > 0:
            self.val = ValidationSet(cfg.val_cutouts, cfg.val_backgrounds, cfg.val_images)
        self.amp = cfg.device.startswith("cuda")

    def _lr(self, elapsed: float = 0.0) -> float:
        """Learning-rate factor: linear warm-up, then cosine to 5 % over the steps or, with a time
        limit, over the time (whichever is further along)."""
        c = self.cfg
        if self.step < c.warmup:
            return (self.step + 1) / c.warmup
        t = (self.step - c.warmup) / max(1, c.iterations - c.warmup)
        if c.minutes:
            t = max(t, elapsed / (c.minutes * 60))
        t = min(1.0, t)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t))

    def loss(self, b: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        ratio = 0.5 if self.rng.random() < 0.5 else 1.0
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
            out = self.net(b["image"], b["trimask"], downsample_ratio=ratio)
        heads = [(out.alpha_os8, 1.0), (out.alpha_os4, 1.0), (out.alpha_os1, 2.0)]
        if ratio != 1.0:
            heads.append((out.fused, 2.0))
        parts: dict[str, torch.Tensor] = {}
        for pred, wgt in heads:
            for key, val in lite_losses(pred.float(), b).items():
                parts[key] = parts.get(key, 0.0) + wgt * val
        norm = sum(w for _, w in heads)
        total = sum(parts.values()) / norm
        return total, {k: float(v.detach()) / norm for k, v in parts.items()}

    def save(self, path: Path, with_optimizer: bool = True) -> None:
        from instmatt_app.io.atomic import atomic_save

        payload = {"architecture": ARCHITECTURE,
                   "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                   "meta": {"step": self.step, "config": {k: v for k, v in asdict(self.cfg).items()
                                                           if not isinstance(v, dict)}}}
        if with_optimizer:
            payload["optimizer"] = self.opt.state_dict()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_save(path, lambda fh: torch.save(payload, fh))

    def _log_row(self, row: dict) -> None:
        path = Path(self.cfg.out_dir) / "log.csv"
        new = not path.exists()
        with path.open("a", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=["step", "seconds", "loss", "IMQ_mad", "IMQ_mse", "RQ",
                                               "IMQ_mad_os1", "IMQ_mse_os1", "RQ_os1"])
            if new:
                w.writeheader()
            w.writerow(row)

    def _evaluate(self, t0: float, loss: float) -> None:
        row = {"step": self.step, "seconds": round(time.perf_counter() - t0, 1), "loss": round(loss, 5)}
        if self.val is not None:
            v = validate(self.net, self.val, self.cfg.device)
            row.update({k: round(val, 3) for k, val in v.items()})
            self.log(f"step {self.step}: validation IMQ_mad {v['IMQ_mad']:.2f} IMQ_mse {v['IMQ_mse']:.2f} "
                     f"RQ {v['RQ']:.3f}; OS1 head alone {v['IMQ_mad_os1']:.2f} / {v['IMQ_mse_os1']:.2f} / "
                     f"{v['RQ_os1']:.3f}")
        self._log_row(row)

    def batches(self) -> Iterator[dict[str, torch.Tensor]]:
        cfg = self.cfg
        stream = _Stream(cfg)
        loader = torch.utils.data.DataLoader(stream, batch_size=cfg.batch, num_workers=cfg.workers,
                                             pin_memory=cfg.device.startswith("cuda"),
                                             persistent_workers=cfg.workers > 0,
                                             # fork after OpenCV / OpenMP / CUDA started threads can
                                             # deadlock the workers: start them fresh
                                             multiprocessing_context="spawn" if cfg.workers > 0 else None,
                                             prefetch_factor=4 if cfg.workers > 0 else None)
        for b in loader:
            yield {k: v.to(cfg.device, non_blocking=True) for k, v in b.items()}

    def fit(self) -> list[float]:
        cfg = self.cfg
        out = Path(cfg.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        deadline = t0 + cfg.minutes * 60 if cfg.minutes else float("inf")
        if self.step == 0 and cfg.val_every:
            self._evaluate(t0, float("nan"))
        loss_ema = float("nan")
        for b in self.batches():
            if self.step >= cfg.iterations or time.perf_counter() > deadline:
                break
            scale = self._lr(time.perf_counter() - t0)
            for g, base in zip(self.opt.param_groups, self.base_lrs):
                g["lr"] = base * scale
            total, parts = self.loss(b)
            self.opt.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
            self.opt.step()
            self.step += 1
            value = float(total.detach())
            self.history.append(value)
            loss_ema = value if math.isnan(loss_ema) else 0.98 * loss_ema + 0.02 * value
            if cfg.log_every and self.step % cfg.log_every == 0:
                self.log(f"step {self.step} ({time.perf_counter() - t0:.0f} s): loss {value:.4f} (ema "
                         f"{loss_ema:.4f}; " + ", ".join(f"{k} {v:.4f}" for k, v in parts.items()) + ")")
            if cfg.save_every and self.step % cfg.save_every == 0:
                self.save(out / "lite_last.pth")
                save_weights(self.net, out / "lite_weights_fp16.pth", meta={"step": self.step})
                if cfg.keep_snapshots:
                    save_weights(self.net, out / f"lite_weights_fp16_step{self.step:05d}.pth", meta={"step": self.step})
            if cfg.val_every and self.step % cfg.val_every == 0:
                self._evaluate(t0, loss_ema)
        self.save(out / "lite_last.pth")
        save_weights(self.net, out / "lite_weights_fp16.pth", meta={"step": self.step})
        if not (cfg.val_every and self.step % cfg.val_every == 0):
            self._evaluate(t0, loss_ema)
        self.log(f"done: {self.step} steps in {time.perf_counter() - t0:.0f} s; "
                 f"weights {out / 'lite_weights_fp16.pth'}")
        return self.history
