"""Combine the logs of InstMatt-Lite's training runs into one CSV and plot it.

    python tools/plot_training_log.py RUN_DIR [RUN_DIR ...] -o docs/training/instmatt-lite-log

Each RUN_DIR holds what tools/train_lite_device.sh brought back: ``log.txt`` (a line per 50 steps:
``step N (T s): loss L (ema E; alpha .., lap .., comp .., sum ..)``) and ``log.csv`` (validation rows).
Runs are chained: the steps of a later run continue after the last step of the one before.
Optional ``--val STEP=MAD/MSE/RQ`` adds validation points measured afterwards (e.g. a run's end
point re-scored with a corrected protocol). Writes OUT.csv and OUT.png.
"""
from __future__ import annotations

import argparse
import csv
import re
from pathlib import Path

LINE = re.compile(r"step (\d+) \((\d+) s\): loss ([\d.]+) \(ema ([\d.]+); alpha ([\d.]+), lap ([\d.]+), "
                  r"comp ([\d.]+), sum ([\d.]+)\)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--val", nargs="*", default=[], metavar="STEP=MAD/MSE/RQ")
    ap.add_argument("--title", default="InstMatt-Lite training")
    ap.add_argument("--xlabel", default="step")
    args = ap.parse_args()
    rows, offset = [], 0
    for run_i, run in enumerate(args.runs):
        last = 0
        for line in (run / "log.txt").read_text().splitlines():
            m = LINE.search(line)
            if m:
                step = int(m.group(1))
                last = step
                rows.append({"run": run_i, "step": offset + step, "seconds": int(m.group(2)),
                             "loss": float(m.group(3)), "loss_ema": float(m.group(4)),
                             "alpha": float(m.group(5)), "lap": float(m.group(6)), "comp": float(m.group(7)),
                             "sum": float(m.group(8))})
        if (run / "log.csv").is_file():  # its last row is the run's final step
            with (run / "log.csv").open() as fh:
                last = max([last] + [int(r["step"]) for r in csv.DictReader(fh)])
        offset += last
    vals = []
    for v in args.val:
        step, nums = v.split("=")
        mad, mse, rq = (float(x) for x in nums.split("/"))
        vals.append({"step": int(step), "IMQ_mad": mad, "IMQ_mse": mse, "RQ": rq})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fields = ["run", "step", "seconds", "loss", "loss_ema", "alpha", "lap", "comp", "sum",
              "val_IMQ_mad", "val_IMQ_mse", "val_RQ"]
    merged = rows + [{"step": v["step"], "val_IMQ_mad": v["IMQ_mad"], "val_IMQ_mse": v["IMQ_mse"],
                      "val_RQ": v["RQ"]} for v in vals]
    merged.sort(key=lambda r: (r["step"], "loss" not in r))
    with args.out.with_suffix(".csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in merged:
            w.writerow(r)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=0.8, alpha=0.5, label="loss (batch)")
    ax.plot([r["step"] for r in rows], [r["loss_ema"] for r in rows], lw=1.8, label="loss (EMA)")
    ax.set_xlabel(args.xlabel)
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    if vals:
        ax2 = ax.twinx()
        ax2.plot([v["step"] for v in vals], [v["IMQ_mad"] for v in vals], "o-", color="C3", label="val IMQ_mad")
        ax2.plot([v["step"] for v in vals], [v["IMQ_mse"] for v in vals], "s-", color="C2", label="val IMQ_mse")
        ax2.set_ylabel("held-out IMQ (x100)")
        ax2.set_ylim(0, 100)
        ax2.legend(loc="center right")
    for i in range(1, len(args.runs)):
        starts = [r["step"] for r in rows if r["run"] == i]
        if starts:
            ax.axvline(min(starts) - 50, color="grey", ls=":", lw=1)
    ax.legend(loc="upper right")
    ax.set_title(args.title)
    fig.tight_layout()
    fig.savefig(args.out.with_suffix(".png"), dpi=110)
    print(f"wrote {args.out.with_suffix('.csv')} and {args.out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
