"""Multi-layer edits the GUI needs as ONE undo step, built from the document's own commands.

Refinement and re-matting change several people's alphas at once; the document offers one
``SetAlpha`` per layer, so :class:`SetAlphas` groups them (do in order, undo in reverse).
"""
from __future__ import annotations

import numpy as np

from instmatt_app.core.commands import Command, SetAlpha

__all__ = ["SetAlphas", "set_alphas"]


class SetAlphas(Command):
    """Several SetAlpha commands as one undo step labelled ``label``."""

    def __init__(self, parts: list[SetAlpha], label: str):
        self.parts = parts
        self.label = label

    def do(self, doc):
        events = []
        for p in self.parts:
            events += p.do(doc)
        return events

    def undo(self, doc):
        events = []
        for p in reversed(self.parts):
            events += p.undo(doc)
        return events

    @property
    def nbytes(self) -> int:
        return sum(p.nbytes for p in self.parts)


def set_alphas(doc, alphas: dict[int, np.ndarray], label: str, skip_locked: bool = True) -> list[int]:
    """Replace the alphas of several layers ({layer id: (H, W) float32}) as one undo step.

    Layers that no longer exist are ignored; locked layers are kept as they are when
    ``skip_locked`` (a lock protects a person from re-matting). Returns the ids that changed.
    """
    parts, changed = [], []
    ids = {la.id: la for la in doc.layers}
    for lid, alpha in alphas.items():
        layer = ids.get(lid)
        if layer is None or (skip_locked and layer.locked):
            continue
        cmd = SetAlpha.from_full(layer, np.clip(np.asarray(alpha, np.float32), 0.0, 1.0))
        if cmd is not None:
            parts.append(cmd)
            changed.append(lid)
    if parts:
        doc.history.push(SetAlphas(parts, label))
    return changed
