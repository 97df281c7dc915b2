"""Strict key/shape comparison of a weights file's state dict with what a model expects.

Used by every backend's ``validate_state_dict`` (InstMatt, Mask R-CNN, SAM) so that a wrong file is
refused with the same readable report: which keys are missing, which are unexpected, which have the
wrong shape.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

__all__ = ["KeyReport", "compare_state_dict"]


@dataclass
class KeyReport:
    """Differences between a state dict and what the model expects."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)  # key, file, expected

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, limit: int = 8) -> str:
        """One line: counts and the first ``limit`` keys of each kind of difference."""
        def listing(items: list[str]) -> str:
            shown = ", ".join(items[:limit])
            return shown + (f", … ({len(items) - limit} more)" if len(items) > limit else "")

        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s): {listing(self.missing)}")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected key(s): {listing(self.unexpected)}")
        if self.mismatched:
            parts.append(f"{len(self.mismatched)} tensor(s) with the wrong shape: " + listing(
                [f"{k} has {list(got)}, expected {list(want)}" for k, got, want in self.mismatched]))
        return "; ".join(parts) if parts else "all keys and shapes match"


def compare_state_dict(state: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]]) -> KeyReport:
    """Compare ``state`` (key → tensor) with ``expected`` (key → shape); keys keep their order."""
    report = KeyReport()
    for key, shape in expected.items():
        if key not in state:
            report.missing.append(key)
            continue
        got = getattr(state[key], "shape", None)
        got = tuple(int(s) for s in got) if got is not None else ()
        if got != tuple(shape):
            report.mismatched.append((key, got, tuple(shape)))
    report.unexpected = [k for k in state if k not in expected]
    return report
