"""``instmatt matte IMAGE... -o OUTDIR``: every person of every photo as an alpha matte and a layer."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from instmatt_app.cli.arg_types import add_guidance_passes_option, add_person_boxes_option

HELP = "matte every person in photos (files or folders) and write alphas, cut-outs, tri-mattes, JSON, PSD"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photo files or folders of photos")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    p.add_argument("--device", default="auto", help="auto (CUDA when present) | cpu | cuda")
    p.add_argument("--max-side", type=int, default=None, metavar="N",
                   help="working long side of the matting network (InstMatt default 1280; may be higher)")
    p.add_argument("--formats", default="png,json,psd",
                   help="comma list of png,json,psd,tiff (default png,json,psd)")
    p.add_argument("--masks", metavar="MASKDIR", default=None,
                   help="take coarse instance masks from MASKDIR/<stem>/NN.png instead of the detector "
                        "(instance i = i-th mask file in name order)")
    p.add_argument("--detector", default="default", choices=["default", "maskrcnn", "sam"],
                   help="person detector (maskrcnn/sam need weights added with `instmatt models add`)")
    p.add_argument("--matting", default="auto", choices=["auto", "lite", "parts", "default", "instmatt"],
                   help="matting backend: lite = our trained InstMatt-Lite network (shipped), parts = the "
                        "registry-parts matter (RVM's alpha split among the people; old name: default), "
                        "instmatt = the official network (needs weights); auto = instmatt when its weights "
                        "are installed, else lite")
    p.add_argument("--refine", default="parallel", choices=["none", "parallel", "cycle"],
                   help="multi-instance refinement (default parallel)")
    add_guidance_passes_option(p)
    add_person_boxes_option(p)
    p.add_argument("--order", default=None, metavar="I,J,...",
                   help="cycle refinement order: instance indices, first refined first (default 0,1,2,...)")
    p.add_argument("--trimask", default="union", choices=["union", "sum"],
                   help="tri-mask form: paper Eq. 5-6 (union) or the official code's sums")
    p.add_argument("--official-postprocess", action="store_true",
                   help="with --matting instmatt: write exactly what the official infer.py writes "
                        "(alpha truncated to uint8, no consistency step)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def collect_images(items: list[str]) -> tuple[list[Path], list[str]]:
    """Expand folders (sorted, non-recursive) into photo files; returns (files, problems)."""
    from instmatt_app.io.image_io import IMAGE_SUFFIXES

    files, problems = [], []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
            if not found:
                problems.append(f"{p}: folder has no photos ({', '.join(sorted(IMAGE_SUFFIXES))})")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            problems.append(f"{p}: no such file or folder")
    return files, problems


def load_masks(mask_dir: Path, stem: str, shape: tuple[int, int]) -> np.ndarray:
    """(k, H, W) float32 masks from ``mask_dir/<stem>/*.png`` in name order (resized if needed)."""
    import cv2

    from instmatt_app.io.image_io import ImageLoadError

    folder = mask_dir / stem
    if not folder.is_dir():
        raise ImageLoadError(f"{folder}: no mask folder for this photo")
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() == ".png")
    if not files:
        raise ImageLoadError(f"{folder}: no NN.png mask files")
    masks = []
    for f in files:
        m = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        if m is None:
            raise ImageLoadError(f"{f}: not a readable PNG mask")
        if m.ndim == 3:
            m = m[..., 0] if m.shape[2] < 4 else m[..., 3]
        m = m.astype(np.float32) / (65535.0 if m.dtype == np.uint16 else 255.0)
        if m.shape != shape:
            m = cv2.resize(m, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
        masks.append(m)
    return np.stack(masks)


def run(args: argparse.Namespace) -> int:
    from instmatt_app.io.image_io import ImageLoadError, load_image
    from instmatt_app.io.result_writer import FORMATS, write_result
    from instmatt_app.model_manager import ModelError
    from instmatt_app.pipeline import Engine, EngineConfig, EngineError

    formats = {f.strip().lower() for f in args.formats.split(",") if f.strip()}
    bad = formats - set(FORMATS)
    if bad:
        print(f"error: unknown format(s) {', '.join(sorted(bad))}; choose from {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    try:
        order = [int(v) for v in args.order.split(",")] if args.order else None
    except ValueError:
        print(f"error: --order must be comma-separated integers, got {args.order!r}", file=sys.stderr)
        return 2
    if args.official_postprocess and args.refine != "parallel":
        print("warning: --official-postprocess reproduces the official infer.py only with --refine parallel",
              file=sys.stderr)
    files, problems = collect_images(args.images)
    for msg in problems:
        print(f"error: {msg}", file=sys.stderr)
    if not files:
        return 1
    try:
        engine = Engine(EngineConfig(device=args.device, detector=args.detector, matting=args.matting,
                                     refine=args.refine, order=order, trimask_mode=args.trimask,
                                     max_side=args.max_side, official_postprocess=args.official_postprocess,
                                     guidance_passes=args.guidance_passes,
                                     detector_options=({"boxes": args.person_boxes}
                                                       if args.detector == "default" else {})))
        engine.prepare(detector=not args.masks)
    except (EngineError, ModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output)
    failed = len(problems)
    from tqdm import tqdm

    bar = tqdm(files, unit="photo", disable=args.quiet or len(files) < 2, file=sys.stderr)
    for path in bar:
        image = result = None  # the previous photo's arrays (GBs for a big one) go before this one is matted
        bar.set_postfix_str(path.name)
        t0 = time.perf_counter()
        try:
            image = load_image(path)
            masks = load_masks(Path(args.masks), path.stem, image.shape[:2]) if args.masks else None
            result = engine.run(image, masks=masks)
            # the per-photo cache (human alpha, ...) serves only re-matting: 0.23 GiB at 60 MP
            result.extras.pop("context", None)
            write_result(result, out, path.stem, formats)
        except (ImageLoadError, EngineError, ModelError, OSError, ValueError) as exc:
            failed += 1
            tqdm.write(f"error: {path}: {exc}" if str(path) not in str(exc) else f"error: {exc}", file=sys.stderr)
            continue
        except MemoryError:
            failed += 1
            tqdm.write(f"error: {path}: not enough memory for this photo", file=sys.stderr)
            continue
        n = len(result.instances)
        msg = f"{path.name}: {n} {'person' if n == 1 else 'people'} in {time.perf_counter() - t0:.2f} s"
        for w in result.extras.get("warnings", []):
            msg += f" (warning: {w})"
        if not args.quiet:
            tqdm.write(msg, file=sys.stderr)
    if failed:
        print(f"{failed} of {len(files) + len(problems)} input(s) failed", file=sys.stderr)
    return 1 if failed else 0
