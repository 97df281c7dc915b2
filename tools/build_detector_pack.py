"""Composites with the embedded detector's masks: training data for guidance as the engine gives it.

InstMatt-Lite was first trained with the official guidance perturbations (erode/dilate, dropped
reference masks, CutMask) of ground-truth masks. At run time its guidance comes from the embedded
detector, whose errors are of another kind: a person split into two or three fragments, a pose
mask spilling onto a neighbour, a mask on an object. This tool draws HIM2K-style composites
(Eq. 13) from a training pack's cut-outs and backgrounds, runs the engine's detector on each
(exactly as ``instmatt matte`` does) and stores both, so that
:class:`instmatt_app.nets.lite_train.DetectorGuidedSamples` can train the network on the masks it
will really be given (``instmatt train --model lite --det-pack DIR``).

One ``NNNNN.npz`` per composite (uint8 arrays; alphas and masks × 255):

    image (H, W, 3)  background (H, W, 3)  fgs (k, H, W, 3)  alphas (k, H, W)  visible GT
    masks (m, H, W)  the detector's soft masks      scores (m,) float32     sources (m,) str

``pack.json`` records the command, the generator settings and the seeds. Usage::

    python tools/build_detector_pack.py train_pack/cutouts_train train_pack/backgrounds_train \\
        -o det_pack -n 800 --seed 7000 --jobs 2

``--masks-only`` stores a compact pack (about 4 kB per composite instead of 3.6 MB; small enough
to travel to a lent GPU): the detector's masks as the guidance sees them (binarised at
``--threshold``, bit-packed) and a 16 × 16 thumbnail of the composite, without the planes:
:class:`~instmatt_app.nets.lite_train.DetectorGuidedSamples` draws each composite again from its
seed with the generator settings in ``pack.json`` and skips one whose thumbnail does not match::

    mask_bits (m, H, ceil(W / 8)) uint8 (np.packbits along W)   shape (2,) int32 [H, W]
    thumb (16, 16, 3) uint8                                    scores (m,) float32   sources (m,) str
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _u8(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0.0, 1.0) * 255.0).astype(np.uint8)


def _work(args: tuple) -> tuple[int, int]:
    cutouts, backgrounds, out, seeds, long_side, max_people, masks_only, threshold = args
    import cv2

    from instmatt_app.evaluation.synth import (
        BackgroundLibrary,
        CutoutLibrary,
        SynthInputError,
        SyntheticGenerator,
        SynthSettings,
    )
    from instmatt_app.nets.default_detector import DefaultDetector
    from instmatt_app.nets.lite_train import composite_thumbnail

    cv2.setNumThreads(1)
    gen = SyntheticGenerator(CutoutLibrary(cutouts), BackgroundLibrary(backgrounds),
                             SynthSettings(long_side=long_side, max_people=max_people))
    det = DefaultDetector("cpu")
    done = people = 0
    for seed in seeds:
        path = Path(out) / f"{seed:06d}.npz"
        if path.exists():
            continue
        try:
            s = gen.sample(np.random.default_rng(seed))
        except SynthInputError:
            continue
        dets = det.detect(s.image_u8)
        h, w = s.image_u8.shape[:2]
        masks = np.stack([d.mask for d in dets]) if dets else np.zeros((0, h, w), np.float32)
        tmp = path.with_suffix(".tmp.npz")
        common = {"scores": np.array([d.score for d in dets], np.float32),
                  "sources": np.array([d.source for d in dets], dtype="U16")}
        if masks_only:
            np.savez_compressed(tmp, mask_bits=np.packbits(masks >= threshold, axis=-1),
                                shape=np.array([h, w], np.int32), thumb=composite_thumbnail(s.image_u8), **common)
        else:
            np.savez_compressed(tmp, image=s.image_u8, background=_u8(s.background), fgs=_u8(s.foregrounds),
                                alphas=_u8(s.alphas), masks=_u8(masks), **common)
        tmp.replace(path)
        done += 1
        people += len(s.alphas)
    return done, people


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("cutouts")
    p.add_argument("backgrounds")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("-n", type=int, default=800, help="composites (default 800)")
    p.add_argument("--seed", type=int, default=7000, help="first seed; composite i uses seed + i")
    p.add_argument("--long-side", default="800,1100", help="composite long side range LO,HI")
    p.add_argument("--max-people", type=int, default=5)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--masks-only", action="store_true",
                   help="compact pack: the binarised masks and a thumbnail; composites are drawn again from the seeds")
    p.add_argument("--threshold", type=float, default=0.3,
                   help="with --masks-only: a mask counts from this value (the guidance threshold, default 0.3)")
    a = p.parse_args(argv)
    lo, hi = (int(v) for v in a.long_side.split(","))
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(a.seed, a.seed + a.n))
    t0 = time.perf_counter()
    chunks = [(a.cutouts, a.backgrounds, str(out), seeds[j::a.jobs], (lo, hi), a.max_people, a.masks_only,
               a.threshold) for j in range(a.jobs)]
    if a.jobs == 1:
        res = [_work(chunks[0])]
    else:
        with multiprocessing.get_context("spawn").Pool(a.jobs) as pool:
            res = pool.map(_work, chunks)
    done, people = sum(r[0] for r in res), sum(r[1] for r in res)
    (out / "pack.json").write_text(json.dumps({
        "command": "python tools/build_detector_pack.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "cutouts": a.cutouts, "backgrounds": a.backgrounds, "seeds": [a.seed, a.seed + a.n],
        "long_side": [lo, hi], "max_people": a.max_people, "detector": "default (embedded)",
        "format": "masks-only" if a.masks_only else "full", "threshold": a.threshold if a.masks_only else None,
        "composites": len(list(out.glob("[0-9]*.npz")))}, indent=1))
    print(f"{done} composites ({people} people) in {time.perf_counter() - t0:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
