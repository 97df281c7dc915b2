"""``instmatt synth CUTOUTS BACKGROUNDS -o OUT -n N --seed S``: HIM2K-style synthetic composites."""
from __future__ import annotations

import argparse
import sys
import time

HELP = "build a HIM2K-style synthetic multi-person set (Eq. 13) from cut-outs and backgrounds"


def _range(text: str) -> tuple[int, int]:
    try:
        parts = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI integers: {text!r}") from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or not 16 <= parts[0] <= parts[1]:
        raise argparse.ArgumentTypeError(f"expected LO,HI with 16 <= LO <= HI: {text!r}")
    return parts[0], parts[1]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("cutouts", metavar="CUTOUTS",
                   help="single-person cut-outs in HIM2K layout: images/<subset>/<name>.jpg + "
                        "alphas/<subset>/<name>/00.png")
    p.add_argument("backgrounds", metavar="BACKGROUNDS",
                   help="folder of person-free background photos (a manifest.csv with "
                        "scene_backdrop=yes, here or one level up, selects the usable ones)")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="output folder (HIM2K layout)")
    p.add_argument("-n", type=int, required=True, metavar="N", help="number of composites")
    p.add_argument("--seed", type=int, required=True, metavar="S", help="random seed (same seed, same files)")
    p.add_argument("--min-people", type=int, default=2)
    p.add_argument("--max-people", type=int, default=5)
    p.add_argument("--max-occlusion", type=float, default=0.6,
                   help="largest share of a person's in-frame alpha hidden by later layers (default 0.6)")
    p.add_argument("--long-side", type=_range, default=(1024, 1280), metavar="LO,HI",
                   help="canvas long side range in px (default 1024,1280)")
    p.add_argument("--subset", default="comp", help="subset folder name (default comp)")
    p.add_argument("--prefix", default="syn", help="image name prefix (default syn)")


def run(args: argparse.Namespace) -> int:
    from instmatt_app.evaluation import synth

    if args.min_people < 1 or args.max_people < args.min_people:
        print("instmatt synth: error: need 1 <= --min-people <= --max-people", file=sys.stderr)
        return 2
    settings = synth.SynthSettings(min_people=args.min_people, max_people=args.max_people,
                                   max_occlusion=args.max_occlusion, long_side=args.long_side)
    t0 = time.perf_counter()

    def progress(i: int, n: int) -> None:
        print(f"\r{i}/{n} composites ({time.perf_counter() - t0:.0f} s)", end="", file=sys.stderr, flush=True)

    try:
        doc = synth.generate_dataset(args.cutouts, args.backgrounds, args.out, args.n, args.seed,
                                     settings, subset=args.subset, prefix=args.prefix, progress=progress)
    except synth.SynthInputError as exc:
        print(f"\ninstmatt synth: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"\ninstmatt synth: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(file=sys.stderr)
    counts: dict[int, int] = {}
    for rec in doc["images"]:
        counts[rec["n_instances"]] = counts.get(rec["n_instances"], 0) + 1
    occ = max((l["occluded_fraction"] for r in doc["images"] for l in r["layers_back_to_front"]), default=0)
    print(f"{len(doc['images'])} composites, {sum(k * v for k, v in counts.items())} instances "
          f"(per image: {', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))}), max occluded "
          f"share {occ:.2f}, {time.perf_counter() - t0:.1f} s -> {args.out}")
    if doc["cutouts_skipped"]:
        print("cut-outs not used: " + "; ".join(doc["cutouts_skipped"]))
    return 0
