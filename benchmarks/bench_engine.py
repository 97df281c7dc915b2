"""Engine benchmark: per-stage time and peak memory of `Engine.run` on development photos.

    python benchmarks/bench_engine.py [--limit N] [--side 1280] [--big] [--repeat N]

Prints a table per photo set:
* dev photos (../shared/data synthetic composites and qualitative photos) resized to a long side of --side;
* with --big, a 24-megapixel photo (a dev composite upscaled to 6000x4000) to full-resolution mattes,
  --repeat times, each in a fresh process (the 24 MP time varies with the machine's load; the
  summary line gives the median and the range).
Peak RSS is measured in a fresh child process per set (ru_maxrss), so sets do not pollute each other;
it includes the benchmark's own copy of the photo. ``Engine.prepare()`` loads the models before the
clock starts; the first photo of a set still pays for first-call set-up and is reported apart.
Times are wall-clock on this machine.
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


def _run_set(kind: str, side: int, limit: int, refine: str, queue) -> None:
    from instmatt_app.pipeline import Engine, EngineConfig

    if kind == "big":
        import cv2

        from instmatt_app.io.image_io import load_image

        img = load_image(SHARED / "synthetic/images/comp/dev_0005.jpg")
        photos = [("24MP", cv2.resize(img, (6000, 4000), interpolation=cv2.INTER_CUBIC))]
    else:
        photos = _photos(side, limit)
    engine = Engine(EngineConfig(device="cpu", refine=refine))
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


def run_set(kind: str, side: int, limit: int, refine: str) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_run_set, args=(kind, side, limit, refine, q))
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
    args = ap.parse_args()
    results = {"dev": run_set("dev", args.side, args.limit, args.refine)}
    print_table(f"dev photos at {args.side} px, refine={args.refine}", results["dev"])
    if args.big:
        runs = [run_set("big", args.side, 1, args.refine) for _ in range(max(1, args.repeat))]
        for n, res in enumerate(runs, 1):
            print_table(f"24 MP photo to full-resolution mattes, refine={args.refine}"
                        + (f", run {n} of {len(runs)}" if len(runs) > 1 else ""), res)
        if len(runs) > 1:
            totals = [r["rows"][0]["total"] for r in runs]
            peaks = [r["peak_rss_mb"] for r in runs]
            print(f"\n24 MP over {len(runs)} runs: total median {np.median(totals):.2f} s "
                  f"(range {min(totals):.2f}-{max(totals):.2f}); peak RSS median {np.median(peaks):.0f} MB "
                  f"(range {min(peaks):.0f}-{max(peaks):.0f})")
        results["big"] = runs[0] if len(runs) == 1 else runs
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
