"""Argument types and options shared by the CLI commands (argparse ``type=`` callables, ``add_*`` helpers)."""
from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """An integer ≥ 1, or argparse's usage error naming the value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def add_guidance_passes_option(parser: argparse.ArgumentParser) -> None:
    """``--guidance-passes N`` (InstMatt-Lite's iterated mutual guidance; default: the matter's own)."""
    parser.add_argument("--guidance-passes", type=positive_int, default=None, metavar="N",
                        help="passes of iterated mutual guidance InstMatt-Lite makes on the detector's masks "
                             "(default 8; 1 = a single pass, the fastest; never used on --masks)")


def add_person_boxes_option(parser: argparse.ArgumentParser) -> None:
    """``--person-boxes KIND`` (the default detector's person box detector, ``embedded.BOX_DETECTORS``)."""
    from instmatt_app.nets.embedded import BOX_DETECTORS

    parser.add_argument("--person-boxes", default="auto", choices=BOX_DETECTORS,
                        help="person box detector of the default detector: movenet+ssdlite (shipped), movenet "
                             "alone, movenet+centernet (needs centernet.onnx converted into the models folder); "
                             "auto = SSDLite's fusion, else CenterNet's when converted (default)")
