"""Argument types shared by the CLI commands (argparse ``type=`` callables)."""
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
