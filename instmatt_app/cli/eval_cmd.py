"""``instmatt eval PRED_DIR GT_DIR``: score instance mattes with IMQ (InstMatt §5)."""
from __future__ import annotations

import argparse
import sys
import time

HELP = "score predicted instance mattes against HIM2K-layout ground truth with IMQ"


def _thresholds(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of numbers: {text!r}")
    if not values or any(not 0.0 < v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"IoU thresholds must be in (0, 1]: {text!r}")
    return values


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pred_dir", metavar="PRED_DIR",
                   help="predictions: one sub-folder per image holding its instance mattes (any names)")
    p.add_argument("gt_dir", metavar="GT_DIR",
                   help="ground truth: one sub-folder per image, <name>/NN.png (e.g. HIM2K alphas/comp)")
    p.add_argument("--thresholds", type=_thresholds, default=[0.5, 0.75],
                   help="IoU thresholds for a true positive, comma-separated (default 0.5,0.75)")
    p.add_argument("--w", type=float, default=10.0, help="error weight in S = 1 - min(w E, 1) (default 10)")
    p.add_argument("--json", metavar="FILE", help="write the pooled summary (fractions) as JSON")
    p.add_argument("--csv", metavar="FILE", help="write per-image scores as CSV")
    p.add_argument("--official-compat", action="store_true",
                   help="skip images without a prediction folder, like the official script "
                        "(default: their ground-truth instances count as false negatives)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")


def format_table(summary: dict[str, dict]) -> str:
    """Fixed-width table of a pooled IMQ summary (fractions)."""
    cols = ["IMQ_mad", "IMQ_mse", "IMQ_grad", "IMQ_conn", "RQ", "MQ_mad"]
    lines = ["  IoU  " + " ".join(f"{c:>9}" for c in cols) + f" {'TP':>6} {'FP':>6} {'FN':>6}"]
    for key, row in summary.items():
        lines.append(f"{key:>5}  " + " ".join(f"{row[c]:9.4f}" for c in cols)
                     + f" {row['TP']:6d} {row['FP']:6d} {row['FN']:6d}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from instmatt_app.evaluation import imq

    if args.w <= 0:
        print("instmatt eval: error: --w must be > 0", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    try:
        report = imq.score_dirs(args.pred_dir, args.gt_dir, args.thresholds, args.w,
                                official_compat=args.official_compat,
                                workers=max(1, args.workers), progress=True)
    except imq.IMQInputError as exc:
        print(f"instmatt eval: error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - t0
    n = len(report.images)
    cpu = sum(s.cpu_seconds for s in report.images)
    print(f"IMQ over {n} image(s), w = {report.w:g}, values are fractions (the paper reports x100); "
          f"{elapsed:.1f} s wall, {cpu:.1f} s CPU reading and scoring ({cpu / max(n, 1):.3f} s per image)")
    print(format_table(report.summary))
    for row in report.summary.values():
        if "note" in row:
            print("note:", row["note"])
    for note in report.notes:
        print("note:", note)
    try:
        if args.json:
            imq.write_json(report, args.json)
            print(f"summary written to {args.json}")
        if args.csv:
            imq.write_csv(report, args.csv)
            print(f"per-image scores written to {args.csv}")
    except OSError as exc:
        print(f"instmatt eval: error: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    return 0
