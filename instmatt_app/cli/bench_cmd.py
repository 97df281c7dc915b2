"""``instmatt bench DATASET``: run the engine over a data set, score it, write a markdown report."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from instmatt_app.cli.arg_types import add_guidance_passes_option, add_person_boxes_option

HELP = "benchmark the engine on a HIM2K-layout (IMQ) or COCO-style (recognition) data set"

_METHODS = {"all": ("masks", "parts", "lite", "instmatt"), "parts": ("masks", "parts"),
            "default": ("masks", "parts"), "lite": ("masks", "lite"), "lite+parts": ("masks", "parts", "lite"),
            "instmatt": ("masks", "instmatt"), "masks": ("masks",)}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET",
                   help="images/<subset>/<name>.jpg with alphas/<subset>/<name>/NN.png (HIM2K: IMQ) "
                        "or masks/<subset>/<name>/NN.png (COCO-style: recognition only)")
    p.add_argument("--matting", choices=sorted(_METHODS), default="all",
                   help="methods to measure, all on the default detector's masks; the 'masks only' baseline "
                        "(coarse masks as mattes) is always included; lite = our trained network, parts = the "
                        "registry-parts matter (old name: default); 'all' = masks, parts, lite, and instmatt when "
                        "its weights are installed")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="first N images only")
    p.add_argument("-o", "--out", default=None, metavar="REPORT_DIR",
                   help="report folder (default bench-out/<dataset folder name>)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    p.add_argument("--refine", default="parallel", choices=["none", "parallel", "cycle"],
                   help="refinement mode of the engine (default parallel)")
    add_guidance_passes_option(p)
    add_person_boxes_option(p)
    p.add_argument("--lite-weights", default=None, metavar="FILE",
                   help="InstMatt-Lite weights to measure instead of the shipped ones (a training run's "
                        "lite_weights_fp16.pth, say)")
    p.add_argument("--masks", default=None, metavar="gt|DIR",
                   help="give every method these coarse masks instead of the detector's: 'gt' = the data "
                        "set's GT instances binarised at 0.5 (measures matting alone), or a folder with "
                        "<name>/NN.png per image (HIM2K data sets only)")


def run(args: argparse.Namespace) -> int:
    from instmatt_app.evaluation import bench

    if args.limit is not None and args.limit < 1:
        print("instmatt bench: error: --limit must be >= 1", file=sys.stderr)
        return 2
    try:
        ds = bench.find_dataset(args.dataset, args.limit)
    except bench.BenchInputError as exc:
        print(f"instmatt bench: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("bench-out") / Path(args.dataset).resolve().name
    try:
        from instmatt_app.pipeline import EngineError

        predict, notes = bench.engine_predictor(_METHODS[args.matting], device=args.device, refine=args.refine,
                                               guidance_passes=args.guidance_passes,
                                               person_boxes=args.person_boxes, lite_weights=args.lite_weights)

        def progress(i: int, n: int, name: str) -> None:
            print(f"\r{i}/{n} {name}          ", end="", file=sys.stderr, flush=True)

        if args.masks is not None and ds.kind != "him2k":
            raise bench.BenchInputError("--masks needs a HIM2K-layout data set (alphas/)")
        if args.masks not in (None, "gt") and not Path(args.masks).is_dir():
            raise bench.BenchInputError(f"--masks {args.masks}: not 'gt' and not a folder")
        res = bench.run_bench(ds, predict, progress=progress, masks=args.masks)
    except (bench.BenchInputError, EngineError) as exc:
        print(f"\ninstmatt bench: error: {exc}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    res.notes.extend(notes)
    if args.masks is not None:
        given = "GT instances binarised at 0.5" if args.masks == "gt" else args.masks
        res.notes.append(f"coarse masks given to every method: {given} "
                         "(the detector was not used; 'masks only' = those masks as mattes)")
    print(bench.format_table(res))
    for note in res.notes:
        print("note:", note)
    command = "instmatt bench " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if len(sys.argv) > 2 else ""
    try:
        report = bench.write_report(res, out, command=command)
    except OSError as exc:
        print(f"instmatt bench: error: cannot write the report: {exc}", file=sys.stderr)
        return 2
    print(f"report: {report}")
    return 0
