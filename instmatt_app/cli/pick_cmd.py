"""``instmatt pick``: one person from clicks and/or a box, written as an 8-bit alpha PNG.

The same engine call the GUI's "add a person" tool makes (:func:`instmatt_app.nets.interactive.pick_person`).

    instmatt pick photo.jpg --point 410,300 -o person.png
    instmatt pick photo.jpg --point 410,300 --point 420,520 --negative 600,310 -o person.png
    instmatt pick photo.jpg --box 300,80,560,700 --detector sam --sam-weights sam_vit_b_01ec64.pth -o person.png

With ``--detector default`` (no weights) GrabCut picks the person, guided by the embedded human
matte (RVM) when it is installed; ``--detector sam`` uses a Segment Anything checkpoint
(``--sam-weights`` or the one added with ``instmatt models add sam FILE``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HELP = "pick one person by clicks or a box and write their alpha matte as a PNG"


def _pair(text: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X,Y (two numbers), got {text!r}") from None
    return (x, y)


def _quad(text: str) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X0,Y0,X1,Y1 (four numbers), got {text!r}") from None
    return (x0, y0, x1, y1)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("image", help="the photo")
    p.add_argument("--point", type=_pair, action="append", default=[], metavar="X,Y",
                   help="a pixel on the person (repeatable); x right, y down, photo pixels")
    p.add_argument("--negative", type=_pair, action="append", default=[], metavar="X,Y",
                   help="a pixel NOT on the person (repeatable)")
    p.add_argument("--box", type=_quad, metavar="X0,Y0,X1,Y1", help="a box around the person")
    p.add_argument("--detector", choices=["default", "sam"], default="default",
                   help="default: GrabCut guided by the embedded human matte; sam: Segment Anything")
    p.add_argument("--sam-weights", metavar="FILE",
                   help="SAM checkpoint (default: the one added with `instmatt models add sam`)")
    p.add_argument("--exclude", action="append", default=[], metavar="MASK.png",
                   help="mask PNG of a person already found, kept out of the pick (repeatable)")
    p.add_argument("--no-prior", action="store_true",
                   help="default detector: do not use the embedded human matte (GrabCut alone)")
    p.add_argument("--binary", action="store_true", help="write a 0/255 mask instead of the soft alpha")
    p.add_argument("--device", default="cpu", help="cpu or cuda (SAM and the human matte)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.png", help="the PNG to write")


def _read_mask(path: str, shape: tuple[int, int]) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            mask = np.asarray(im.convert("L"), np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"{path}: not a readable mask image ({exc})") from None
    if mask.shape != shape:
        raise ValueError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}, the photo {shape[1]}x{shape[0]}")
    return mask


def _sam_backend(args: argparse.Namespace):
    from instmatt_app.nets import registry

    weights = args.sam_weights
    if weights is None:
        from instmatt_app.model_manager import user_model

        found = user_model("sam")
        if found is None:
            raise ValueError("no SAM weights: pass --sam-weights FILE or add them with `instmatt models add sam FILE`")
        weights = str(found)
    return registry.build("detector", "sam", weights=weights, device=args.device)


def _human_prior(image: np.ndarray, device: str) -> np.ndarray | None:
    """The embedded human matte of the photo, or None (with a note) when it is not installed."""
    from instmatt_app.model_manager import ModelError

    try:
        from instmatt_app.nets.embedded import human_matter

        return human_matter(device)(image)
    except (ModelError, ModuleNotFoundError, OSError) as exc:
        print(f"note: embedded human matte unavailable ({exc}); using GrabCut alone", file=sys.stderr)
        return None


def run(args: argparse.Namespace) -> int:
    from instmatt_app.io.atomic import atomic_save
    from instmatt_app.io.image_io import ImageLoadError, load_image
    from instmatt_app.nets.interactive import NothingPickedError, pick_person

    out = Path(args.output)
    if out.suffix.lower() != ".png":
        print(f"error: {out}: the output must be a .png file", file=sys.stderr)
        return 2
    if not args.point and args.box is None:
        print("error: give at least one --point on the person or a --box around them", file=sys.stderr)
        return 2
    try:
        image = load_image(args.image)
        image = getattr(image, "rgb", image)
        others = [_read_mask(p, image.shape[:2]) for p in args.exclude] or None
        if args.detector == "sam":
            backend, prior = _sam_backend(args), None
        else:
            backend = None
            prior = None if args.no_prior else _human_prior(image, args.device)
        det = pick_person(image, points=args.point, negatives=args.negative, box=args.box, backend=backend,
                          prior=prior, others=others)
    except NothingPickedError as exc:
        print(f"error: {args.image}: {exc}", file=sys.stderr)
        return 1
    except (ImageLoadError, ValueError, OSError) as exc:  # SamWeightsError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        return 1
    alpha = (det.mask > 0.5) if args.binary else det.mask
    png = np.round(np.clip(alpha, 0.0, 1.0) * 255.0).astype(np.uint8)

    from PIL import Image

    try:
        atomic_save(out, lambda fh: Image.fromarray(png, mode="L").save(fh, format="PNG"))
    except OSError as exc:
        print(f"error: {out}: cannot write ({exc})", file=sys.stderr)
        return 1
    h, w = png.shape
    area = float((det.mask > 0.5).mean())
    x0, y0, x1, y1 = det.box
    print(f"{args.image}: picked one person ({det.source}), box {x0:.0f},{y0:.0f},{x1:.0f},{y1:.0f}, "
          f"{100 * area:.1f} % of the {w}x{h} photo -> {out}")
    return 0
