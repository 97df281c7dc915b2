"""``instmatt``: the headless command line.

Each subcommand lives in its own module of this package and defines

* ``HELP``: one line for ``instmatt --help``;
* ``add_arguments(parser)``: its options;
* ``run(args) -> int``: the exit status (0 = every input done).

Modules are imported only when their subcommand runs, so ``instmatt eval`` never imports torch.
"""
from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> module (relative to this package)
COMMANDS: dict[str, str] = {
    "matte": "matte",
    "models": "models_cmd",
    "eval": "eval_cmd",
    "synth": "synth_cmd",
    "bench": "bench_cmd",
    "pick": "pick_cmd",
    "train": "train_cmd",
}


def _available() -> dict[str, object]:
    mods = {}
    for name, mod in COMMANDS.items():
        try:
            mods[name] = importlib.import_module(f"{__package__}.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{mod}":
                raise
    return mods


def build_parser() -> argparse.ArgumentParser:
    from instmatt_app import __version__

    parser = argparse.ArgumentParser(
        prog="instmatt",
        description="InstMatt Studio engine: per-person alpha mattes (human instance matting).")
    parser.add_argument("--version", action="version", version=f"instmatt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, mod in _available().items():
        p = sub.add_parser(name, help=getattr(mod, "HELP", ""), description=getattr(mod, "HELP", ""))
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
