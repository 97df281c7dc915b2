"""Engine benchmark: per-stage time and peak memory of `Engine.run` on development photos.

    python benchmarks/bench_engine.py [--limit N] [--side 1280] [--big] [--repeat N] [--guidance-passes 1,8]
                                      [--person-boxes movenet,auto] [--pass-reuse none,0.2]

Prints a table per photo set:
* dev photos (../shared/data synthetic composites and qualitative photos) resized to a long side of --side;
* with --big, a 24-megapixel photo (a dev composite upscaled to 6000x4000) to full-resolution mattes,
  --repeat times, each in a fresh process (the 24 MP time varies with the machine's load; the
  summary line gives the median and the range).
Peak RSS is measured in a fresh child process per set (ru_maxrss), so sets do not pollute each other;
it includes the benchmark's own copy of the photo. ``Engine.prepare()`` loads the models before the
clock starts; the first photo of a set still pays for first-call set-up and is reported apart.
Times are wall-clock on this machine. --guidance-passes N[,M...] runs every set once per value
(InstMatt-Lite's iterated guidance; default: the engine's default), one after the other in the same
invocation, so the ratio of their medians compares like with like; --person-boxes KIND[,KIND...] does the
same for the default detector's person box detector (auto, movenet, movenet+ssdlite, movenet+centernet),
and --pass-reuse F[,G...] for InstMatt-Lite's reuse of a pass's alphas (``LiteMatter(pass_reuse=)``; none =
the network on every person in every guidance pass).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"


def _photos(side: int, limit: int) -> list[tuple[str, np.ndarray]]:
    import cv2

    from instmatt_app.io.image_io import load_image

    paths = sorted((SHARED / "synthetic/images/comp").glob("*.jpg"))[:limit]
    paths += sorted((SHARED / "qualitative/images").glob("*.jpg"))
    out = []
    for p in paths:
        img = load_image(p)
        s = side / max(img.shape[:2])
        out.append((p.stem, cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)),
                                       interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC)))
    return out


def _run_set(kind: str, side: int, limit: int, refine: str, passes: int | None, boxes: str, reuse, queue) -> None:
    from instmatt_app.pipeline import Engine, EngineConfig

    if kind == "big":
        import cv2

        from instmatt_app.io.image_io import load_image

        img = load_image(SHARED / "synthetic/images/comp/dev_0005.jpg")
        photos = [("24MP", cv2.resize(img, (6000, 4000), interpolation=cv2.INTER_CUBIC))]
    else:
        photos = _photos(side, limit)
    engine = Engine(EngineConfig(device="cpu", refine=refine, guidance_passes=passes,
                                 detector_options={"boxes": boxes},
                                 matter_options={} if reuse == "default" else {"pass_reuse": reuse}))
    engine.prepare()
    rows = []
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name, img in photos:
        t0 = time.perf_counter()
        r = engine.run(img)
        total = time.perf_counter() - t0
        rows.append({"photo": name, "size": f"{img.shape[1]}x{img.shape[0]}", "people": len(r.instances),
                     "total": total, **{k: v for k, v in r.timings.items() if k != "total"}})
        del r
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put({"rows": rows, "peak_rss_mb": peak, "rss_after_models_mb": base_rss})


def run_set(kind: str, side: int, limit: int, refine: str, passes: int | None = None, boxes: str = "auto",
            reuse="default") -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_run_set, args=(kind, side, limit, refine, passes, boxes, reuse, q))
    p.start()
    while True:  # a child that dies (bad data path, out of memory) must not leave us waiting forever
        try:
            res = q.get(timeout=1.0)
            break
        except queue.Empty:
            if not p.is_alive():
                raise SystemExit(f"the {kind} set's process failed (exit code {p.exitcode}); see its error above")
    p.join()
    return res


def print_table(title: str, res: dict) -> None:
    rows = res["rows"]
    stages = sorted({k for r in rows for k in r} - {"photo", "size", "people", "total"})
    print(f"\n### {title}  (peak RSS {res['peak_rss_mb']:.0f} MB; after loading models {res['rss_after_models_mb']:.0f} MB)")
    print("| photo | size | people | total s | " + " | ".join(f"{s} s" for s in stages) + " |")
    print("|---|---|---|---|" + "---|" * len(stages))
    for r in rows:
        print(f"| {r['photo']} | {r['size']} | {r['people']} | {r['total']:.2f} | "
              + " | ".join(f"{r.get(s, 0):.2f}" for s in stages) + " |")
    if len(rows) > 1:
        warm = rows[1:]
        print(f"| median (after the first) | | {np.median([r['people'] for r in warm]):.0f} | "
              f"{np.median([r['total'] for r in warm]):.2f} | "
              + " | ".join(f"{np.median([r.get(s, 0) for r in warm]):.2f}" for s in stages) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=8, help="synthetic composites to use")
    ap.add_argument("--side", type=int, default=1280, help="long side of the dev photos")
    ap.add_argument("--refine", default="parallel", choices=["none", "parallel", "cycle"])
    ap.add_argument("--big", action="store_true", help="also the 24 MP photo")
    ap.add_argument("--repeat", type=int, default=1, help="runs of the 24 MP photo, each in a fresh process")
    ap.add_argument("--json", default=None, help="write the raw numbers here")
    ap.add_argument("--guidance-passes", default=None, metavar="N[,M...]",
                    help="InstMatt-Lite's passes of iterated guidance; several values: every set once per value")
    ap.add_argument("--person-boxes", default="auto", metavar="KIND[,KIND...]",
                    help="person box detector(s) of the default detector; several: every set once per value")
    ap.add_argument("--pass-reuse", default=None, metavar="F[,G...]",
                    help="InstMatt-Lite's pass_reuse (a fraction, or none: the network on every person in every "
                         "guidance pass); several values: every set once per value")
    args = ap.parse_args()
    passes = [int(v) for v in args.guidance_passes.split(",")] if args.guidance_passes else [None]
    box_kinds = args.person_boxes.split(",")
    reuses = [None if v == "none" else float(v) for v in args.pass_reuse.split(",")] if args.pass_reuse \
        else ["default"]
    results: dict = {}
    settings = [(n, b, r) for r in reuses for b in box_kinds for n in passes]
    keys = {(n, b, r): ("" if n is None else f"@{n}") + ("" if len(box_kinds) == 1 else f"/{b}")
            + ("" if r == "default" else f"~{r}") for n, b, r in settings}
    for n, b, r in settings:
        tag = ("" if n is None else f", guidance passes {n}") + ("" if len(box_kinds) == 1 else f", boxes {b}") \
            + ("" if r == "default" else f", pass reuse {r}")
        key = keys[(n, b, r)]
        results["dev" + key] = run_set("dev", args.side, args.limit, args.refine, n, b, r)
        print_table(f"dev photos at {args.side} px, refine={args.refine}{tag}", results["dev" + key])
        if args.big:
            runs = [run_set("big", args.side, 1, args.refine, n, b, r) for _ in range(max(1, args.repeat))]
            for i, res in enumerate(runs, 1):
                print_table(f"24 MP photo to full-resolution mattes, refine={args.refine}{tag}"
                            + (f", run {i} of {len(runs)}" if len(runs) > 1 else ""), res)
            if len(runs) > 1:
                totals = [r["rows"][0]["total"] for r in runs]
                peaks = [r["peak_rss_mb"] for r in runs]
                print(f"\n24 MP over {len(runs)} runs{tag}: total median {np.median(totals):.2f} s "
                      f"(range {min(totals):.2f}-{max(totals):.2f}); peak RSS median {np.median(peaks):.0f} MB "
                      f"(range {min(peaks):.0f}-{max(peaks):.0f})")
            results["big" + key] = runs[0] if len(runs) == 1 else runs
    if len(settings) > 1:
        med = {s: np.median([r["total"] for r in results["dev" + k]["rows"][1:]]) for s, k in keys.items()}
        first, last = settings[0], settings[-1]
        print("\ndev median total s: " + ", ".join(f"{k or 'default'} {med[s]:.2f}" for s, k in keys.items())
              + f" (ratio last / first {med[last] / med[first]:.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
