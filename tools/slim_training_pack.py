"""A training pack small enough to travel to a lent GPU with the repository (the device tool carries 64 MiB in all).

Copies ``PACK/cutouts_train`` and ``PACK/backgrounds_train`` (``tools/build_training_pack.py``) to ``OUT``:

* the cut-outs' alphas and precomputed foregrounds (``fg/``) byte for byte: they are what the generator
  composites (:class:`instmatt_app.evaluation.synth.CutoutLibrary` reads a cut-out's photo only when it has
  no ``fg/`` file, and then only to estimate one);
* the cut-outs' photos re-encoded as JPEG quality ``--photo-quality`` (default 40; same size), since only
  their names and sizes are used;
* the backgrounds re-encoded as JPEG quality ``--background-quality`` (default 82; same size).

The held-out ``*_val`` folders are left out (validate on this machine). Usage::

    python tools/slim_training_pack.py train_pack -o gpu_pack
    python tools/build_detector_pack.py gpu_pack/cutouts_train gpu_pack/backgrounds_train \\
        -o gpu_pack/det_masks -n 1000 --seed 7000 --jobs 2 --masks-only
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import cv2


def _jpeg(src: Path, dst: Path, quality: int) -> None:
    image = cv2.imread(str(src), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"{src}: not an image")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(dst.with_suffix(".jpg")), image, [cv2.IMWRITE_JPEG_QUALITY, quality]):
        raise SystemExit(f"{dst}: could not be written")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("pack", type=Path, help="a training pack (cutouts_train/, backgrounds_train/)")
    p.add_argument("-o", "--out", type=Path, required=True)
    p.add_argument("--photo-quality", type=int, default=40)
    p.add_argument("--background-quality", type=int, default=82)
    a = p.parse_args(argv)
    cut, bgs = a.pack / "cutouts_train", a.pack / "backgrounds_train"
    if not cut.is_dir() or not bgs.is_dir():
        print(f"{a.pack}: expected cutouts_train/ and backgrounds_train/", file=sys.stderr)
        return 2
    for sub in ("alphas", "fg"):
        shutil.copytree(cut / sub, a.out / "cutouts_train" / sub, dirs_exist_ok=True)
    for src in sorted((cut / "images").glob("*/*")):
        _jpeg(src, a.out / "cutouts_train" / "images" / src.parent.name / src.name, a.photo_quality)
    for src in sorted(bgs.iterdir()):
        if src.is_file() and not src.name.startswith("."):
            _jpeg(src, a.out / "backgrounds_train" / src.name, a.background_quality)
    size = sum(f.stat().st_size for f in a.out.rglob("*") if f.is_file())
    print(f"{a.out}: {size / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
