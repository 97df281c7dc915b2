"""``instmatt train CUTOUTS BACKGROUNDS -o OUT``: train InstMatt on composites made on the fly.

``--model lite`` trains our own InstMatt-Lite network instead (RVM-initialised MobileNetV3,
:mod:`instmatt_app.nets.lite_train`): weights in ``OUT/lite_weights_fp16.pth``, resumable checkpoint
``OUT/lite_last.pth``, loss and validation IMQ on held-out composites in ``OUT/log.csv``.

Stage 1 trains the matting branch (encoder, ASPP, decoder), stage 2 the multi-instance refiner
with the backbone frozen, as the official schedule. Checkpoints (``OUT/latest_model.pth``) are in
the official format: `instmatt models add instmatt OUT/latest_model.pth` uses them, ``--resume``
continues them, ``--init`` starts a stage from them (e.g. stage 2 from a stage-1 checkpoint).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from instmatt_app.cli.synth_cmd import (
    _range,  # the LO,HI parser shared with `instmatt synth`
)

HELP = "train InstMatt (official network, stages 1/2) or InstMatt-Lite on on-the-fly composites"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=["instmatt", "lite"], default="instmatt",
                   help="instmatt: the official 30 M-parameter network (default); lite: our RVM-initialised "
                        "InstMatt-Lite (the default matter's network)")
    p.add_argument("cutouts", metavar="CUTOUTS", help="single-person cut-outs in HIM2K layout "
                   "(images/<subset>/<name>.jpg + alphas/<subset>/<name>/00.png)")
    p.add_argument("backgrounds", metavar="BACKGROUNDS", help="folder of person-free background photos")
    p.add_argument("-o", "--out", required=True, metavar="OUT", help="checkpoint folder")
    p.add_argument("--stage", type=int, choices=[1, 2], default=1,
                   help="1 = matting branch (default), 2 = multi-instance refiner, backbone frozen")
    p.add_argument("--iterations", type=int, default=None,
                   help="total iterations (default: official 200000 for stage 1, 50000 for stage 2)")
    p.add_argument("--batch", type=int, default=4, help="stage-1 samples per step (default 4)")
    p.add_argument("--crop", type=int, default=None, help="crop side, multiple of 32 (default 640 / 512)")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=None, help="linear warm-up iterations (default 2000 / 1000)")
    p.add_argument("--save-every", type=int, default=1000)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--long-side", type=_range, default=(1024, 1280), metavar="LO,HI",
                   help="composite canvas long side range in px (default 1024,1280)")
    p.add_argument("--init", metavar="CKPT", help="official-format weights to start from")
    p.add_argument("--resume", metavar="CKPT", help="continue a checkpoint of this trainer (iteration, "
                   "optimizer and schedule included)")
    p.add_argument("--overfit-one", action="store_true",
                   help="repeat a single sample (a quick check that the losses fall)")
    lite = p.add_argument_group("InstMatt-Lite (--model lite)")
    lite.add_argument("--val-cutouts", metavar="DIR", help="held-out cut-outs for validation IMQ")
    lite.add_argument("--val-backgrounds", metavar="DIR", help="held-out backgrounds for validation IMQ")
    lite.add_argument("--val-images", type=int, default=16, help="validation composites (default 16)")
    lite.add_argument("--val-every", type=int, default=1000, help="validate every N steps (default 1000)")
    lite.add_argument("--minutes", type=float, default=None, help="stop after this wall-clock time")
    lite.add_argument("--workers", type=int, default=0, help="data-loader processes (default 0: in process)")
    lite.add_argument("--det-pack", metavar="DIR", help="composites with the embedded detector's masks "
                      "(tools/build_detector_pack.py): train on the guidance the engine really gives")
    lite.add_argument("--det-p", type=float, default=0.5, help="share of composites drawn from --det-pack "
                      "(default 0.5; the rest get perturbed ground-truth guidance)")
    lite.add_argument("--keep-snapshots", action="store_true", help="also keep the fp16 weights of every "
                      "--save-every step (OUT/lite_weights_fp16_step<N>.pth), to choose among them afterwards")
    lite.add_argument("--rvm", default=None, metavar="ONNX",
                      help="RVM ONNX to start from (default: the installed models/rvm_mobilenetv3_fp32.onnx)")


def _run_lite(args: argparse.Namespace) -> int:
    from instmatt_app.evaluation import synth
    from instmatt_app.nets.lite_matter import LiteWeightsError
    from instmatt_app.nets.lite_train import LiteTrainConfig, LiteTrainer
    from instmatt_app.nets.rvm_torch import RVMWeightError

    crop = args.crop or 512
    if crop % 32 or crop < 64:
        print(f"instmatt train: error: --crop must be a multiple of 32 and >= 64, got {crop}", file=sys.stderr)
        return 2
    if not 0.0 <= args.det_p <= 1.0:
        print(f"instmatt train: error: --det-p must be in [0, 1], got {args.det_p}", file=sys.stderr)
        return 2
    if args.det_pack and not any(Path(args.det_pack).glob("[0-9]*.npz")):
        print(f"instmatt train: error: --det-pack {args.det_pack}: no composites there (make them with "
              "tools/build_detector_pack.py)", file=sys.stderr)
        return 2
    rvm = args.rvm
    if rvm is None and not (args.init or args.resume):
        from instmatt_app.model_manager import model_path

        rvm = str(model_path("rvm-mobilenetv3"))
    cfg = LiteTrainConfig(out_dir=args.out, cutouts=args.cutouts, backgrounds=args.backgrounds,
                          val_cutouts=args.val_cutouts, val_backgrounds=args.val_backgrounds,
                          rvm_onnx=rvm or "", init=args.init, resume=args.resume,
                          iterations=args.iterations or 20_000, minutes=args.minutes, batch=args.batch,
                          crop=crop, lr=args.lr, warmup=args.warmup if args.warmup is not None else 200,
                          long_side=args.long_side, workers=args.workers, device=args.device, seed=args.seed,
                          det_pack=args.det_pack, det_p=args.det_p,
                          log_every=args.log_every, val_every=args.val_every, val_images=args.val_images,
                          save_every=args.save_every, keep_snapshots=args.keep_snapshots)
    return _fit(lambda: LiteTrainer(cfg).fit(), (synth.SynthInputError, LiteWeightsError, RVMWeightError, ValueError),
                args.out, "steps")


def _fit(fit, errors: tuple, out: str, unit: str) -> int:
    """Run a trainer's fit; expected failures and Ctrl-C become messages and exit codes."""
    try:
        history = fit()
    except errors as exc:
        print(f"instmatt train: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("instmatt train: interrupted; the last saved checkpoint is in " + out, file=sys.stderr)
        return 130
    if history:
        print(f"loss: first {history[0]:.4f}, last {history[-1]:.4f} over {len(history)} {unit}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.model == "lite":
        return _run_lite(args)
    from instmatt_app.evaluation import synth
    from instmatt_app.nets.instmatt_checkpoint import CheckpointError
    from instmatt_app.nets.instmatt_train import TrainConfig, Trainer, TrainingData

    stage2 = args.stage == 2
    crop = args.crop or (512 if stage2 else 640)
    if crop % 32 or crop < 64:
        print(f"instmatt train: error: --crop must be a multiple of 32 and >= 64, got {crop}", file=sys.stderr)
        return 2
    config = TrainConfig(out_dir=args.out, stage=args.stage,
                         iterations=args.iterations or (50_000 if stage2 else 200_000),
                         batch=args.batch, crop=crop, lr=args.lr,
                         warmup=args.warmup if args.warmup is not None else (1000 if stage2 else 2000),
                         t_max=95_000 if stage2 else 198_000, save_every=args.save_every,
                         log_every=args.log_every, device=args.device, seed=args.seed,
                         init=args.init, resume=args.resume)
    def fit() -> list[float]:
        settings = synth.SynthSettings()
        settings.long_side = args.long_side
        settings.check_long_side = min(settings.check_long_side, args.long_side[1])
        generator = synth.SyntheticGenerator(synth.CutoutLibrary(args.cutouts),
                                             synth.BackgroundLibrary(args.backgrounds), settings)
        return Trainer(config, TrainingData(generator, crop, seed=args.seed, fixed=args.overfit_one)).fit()

    return _fit(fit, (synth.SynthInputError, CheckpointError, ValueError), args.out, "iterations")
