"""Undoable edits of a :class:`~instmatt_app.core.document.Document` and the undo history.

Every edit of a document is a :class:`Command` object with ``do(doc)`` and ``undo(doc)``; the
document's edit methods (``doc.rename(...)`` etc.) build one and hand it to
``doc.history.push(cmd)``, which runs it and makes it one undo step. Commands keep only what they
need to go back: :class:`SetAlpha` stores the changed bounding box of the old and new alpha, not
two full-resolution mattes.

A command's ``do`` / ``undo`` return the list of :class:`Event` it caused; the document sends them
to its subscribers. The history keeps at most ``limit`` steps and, beyond the most recent one, at
most ``max_bytes`` of the arrays that only the undo steps hold (``Command.nbytes``): a refinement of
a 60 MP photo keeps about 0.5 GB of old and new alpha boxes, a "find people again" the previous
people's alphas and colours (GBs), so the oldest steps go first rather than the memory running out.
numpy only, no Qt.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from instmatt_app.core.document import Document, PersonLayer

UNDO_MAX_BYTES = 2 * 1024 ** 3   # array data the undo steps may hold (the latest step is kept whatever its size)

__all__ = [
    "UNDO_MAX_BYTES", "Event", "Command", "History", "LayerLockedError",
    "Rename", "SetVisible", "SetLocked", "SetColourTag", "SetAdjustments", "Remove", "Restore",
    "Reorder", "SetBackground", "SetAlpha", "AddPerson", "ReplacePeople",
]


class LayerLockedError(RuntimeError):
    """An edit was refused because the layer is locked."""


@dataclass(frozen=True)
class Event:
    """What changed, for subscribers.

    kind: "changed" (pixels of the composite changed), "layers" (the layer list or a layer's
        properties changed: names, flags, order, adjustments) or "history" (the undo stack
        changed: labels, can_undo / can_redo).
    layer_ids: ids of the layers concerned (empty: the document as a whole, e.g. background).
    box: (y0, y1, x0, x1) of the changed pixels for "changed" events that touch only part of
        the photo, else None (the whole photo).
    """

    kind: str
    layer_ids: tuple[int, ...] = ()
    box: tuple[int, int, int, int] | None = None


class Command:
    """Base class: one undoable edit. Subclasses set ``label`` and implement do / undo."""

    label: str = "Edit"

    def do(self, doc: "Document") -> list[Event]:  # pragma: no cover - abstract
        raise NotImplementedError

    def undo(self, doc: "Document") -> list[Event]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        """Bytes of array data this step holds for undo / redo (0 for small edits)."""
        return 0


def _nbytes(*arrays) -> int:
    """Total bytes of the given arrays (None and non-arrays count 0)."""
    return sum(int(getattr(a, "nbytes", 0)) for a in arrays if a is not None)


def _check_unlocked(layer: "PersonLayer", what: str) -> None:
    if layer.locked:
        raise LayerLockedError(f"cannot {what}: layer '{layer.name}' (id {layer.id}) is locked; unlock it first")


class _SetField(Command):
    """Set one attribute of one layer; undo restores the old value."""

    attr = ""
    verb = ""
    locked_ok = False
    kinds: tuple[str, ...] = ("layers",)

    def __init__(self, layer_id: int, value: Any):
        self.layer_id, self.value, self.old = layer_id, value, None

    def _events(self) -> list[Event]:
        return [Event(k, (self.layer_id,)) for k in self.kinds]

    def do(self, doc):
        layer = doc.layer(self.layer_id)
        if not self.locked_ok:
            _check_unlocked(layer, self.verb)
        self.old = getattr(layer, self.attr)
        setattr(layer, self.attr, self.value)
        return self._events()

    def undo(self, doc):
        setattr(doc.layer(self.layer_id), self.attr, self.old)
        return self._events()


class Rename(_SetField):
    attr, verb = "name", "rename"

    @property
    def label(self):
        return f"Rename to '{self.value}'"


class SetVisible(_SetField):
    attr, verb, locked_ok, kinds = "visible", "change visibility", True, ("layers", "changed")

    @property
    def label(self):
        return "Show layer" if self.value else "Hide layer"


class SetLocked(_SetField):
    attr, verb, locked_ok = "locked", "lock", True

    @property
    def label(self):
        return "Lock layer" if self.value else "Unlock layer"


class SetColourTag(_SetField):
    attr, verb, locked_ok, label = "colour_tag", "set the colour tag", True, "Colour tag"


class SetAdjustments(_SetField):
    attr, verb, kinds, label = "adjustments", "recolour", ("layers", "changed"), "Recolour"


class Remove(_SetField):
    attr, verb, kinds, label = "removed", "remove", ("layers", "changed"), "Remove person"

    def __init__(self, layer_id: int):
        super().__init__(layer_id, True)


class Restore(_SetField):
    attr, verb, locked_ok, kinds, label = "removed", "restore", True, ("layers", "changed"), "Restore person"

    def __init__(self, layer_id: int):
        super().__init__(layer_id, False)


class Reorder(Command):
    """New z-order: a permutation of all layer ids, back to front."""

    label = "Reorder layers"

    def __init__(self, new_order: list[int]):
        self.new_order, self.old_order = [int(i) for i in new_order], None

    def do(self, doc):
        ids = [layer.id for layer in doc.layers]
        if sorted(self.new_order) != sorted(ids):
            raise ValueError(f"reorder needs a permutation of the layer ids {ids}; got {self.new_order}")
        self.old_order = ids
        doc._set_order(self.new_order)
        return [Event("layers", tuple(self.new_order)), Event("changed", tuple(self.new_order))]

    def undo(self, doc):
        doc._set_order(self.old_order)
        return [Event("layers", tuple(self.old_order)), Event("changed", tuple(self.old_order))]


class SetBackground(Command):
    """Background mode ("original" | "replaced" | "blurred" | "transparent") and its settings."""

    label = "Background"

    def __init__(self, settings):
        self.settings, self.old = settings, None

    def do(self, doc):
        self.old = doc.background
        doc.background = self.settings
        return [Event("changed", ())]

    @property
    def nbytes(self) -> int:
        return _nbytes(getattr(self.old, "image", None), getattr(self.settings, "image", None))

    def undo(self, doc):
        doc.background = self.old
        return [Event("changed", ())]


class SetAlpha(Command):
    """The brush: one whole stroke = one command. Stores only the changed bounding box."""

    label = "Paint alpha"

    def __init__(self, layer_id: int, box: tuple[int, int, int, int], old: np.ndarray, new: np.ndarray):
        self.layer_id, self.box, self.old, self.new = layer_id, box, old, new

    @classmethod
    def from_full(cls, layer: "PersonLayer", new_alpha: np.ndarray) -> "SetAlpha | None":
        """Build from a full (H, W) alpha; None when nothing changed."""
        diff = layer.alpha != new_alpha
        rows, cols = np.flatnonzero(diff.any(axis=1)), np.flatnonzero(diff.any(axis=0))
        if rows.size == 0:
            return None
        y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
        return cls(layer.id, (y0, y1, x0, x1), layer.alpha[y0:y1, x0:x1].copy(),
                   np.array(new_alpha[y0:y1, x0:x1], np.float32))

    def _put(self, doc, patch):
        layer = doc.layer(self.layer_id)
        _check_unlocked(layer, "paint")
        y0, y1, x0, x1 = self.box
        layer.alpha[y0:y1, x0:x1] = patch
        return doc._alpha_changed(self.layer_id, self.box)

    def do(self, doc):
        return self._put(doc, self.new)

    def undo(self, doc):
        return self._put(doc, self.old)

    @property
    def nbytes(self) -> int:
        return _nbytes(self.old, self.new)


class AddPerson(Command):
    """Add a person (e.g. a click-to-add selection); it goes on top of the z-order."""

    label = "Add person"

    def __init__(self, layer: "PersonLayer"):
        self.layer = layer

    def do(self, doc):
        return doc._insert_layer(self.layer)

    def undo(self, doc):
        return doc._delete_layer(self.layer.id)


class ReplacePeople(Command):
    """Swap the whole set of people (re-matting); undo brings the previous set back."""

    label = "Re-matte people"

    def __init__(self, new_layers: list["PersonLayer"], background_colour: np.ndarray | None = None):
        """background_colour: the new people's estimated background L_0 when their colour layers
        are estimated too (otherwise the colours are estimated again when needed)."""
        self.new_layers, self.background_colour, self.old_state = new_layers, background_colour, None

    def do(self, doc):
        self.old_state = doc._people_state()
        ids = [layer.id for layer in self.new_layers]
        # the given colours are current only the first time (a redo estimates them again: edits made
        # before the undo may have left parts of them out of date)
        background, self.background_colour = self.background_colour, None
        if background is not None:
            return doc._set_people_state((list(self.new_layers), ids, background, True, []))
        return doc._set_people_state((list(self.new_layers), ids))

    def undo(self, doc):
        return doc._set_people_state(self.old_state)

    @property
    def nbytes(self) -> int:
        """The previous people (alphas, colours, own tri-mattes) and background colour it keeps."""
        if self.old_state is None:
            return 0
        layers, background = self.old_state[0], self.old_state[2] if len(self.old_state) > 2 else None
        return _nbytes(background, *[a for l in layers for a in (l.alpha, l.colour, l.trimatte)])


class History:
    """Undo / redo stack of commands (most recent last).

    push(cmd) runs the command (it may raise, e.g. :class:`LayerLockedError`; then nothing is
    recorded) and drops the redo branch. ``limit`` bounds the number of undo steps kept,
    ``max_bytes`` the array data they hold: the oldest steps are dropped first, the most recent one
    is always kept.
    """

    def __init__(self, doc: "Document", emit: Callable[[list[Event]], None], limit: int = 200,
                 max_bytes: int = UNDO_MAX_BYTES):
        self._doc, self._emit, self.limit, self.max_bytes = doc, emit, limit, max_bytes
        self._undo: list[Command] = []
        self._redo: list[Command] = []

    @property
    def nbytes(self) -> int:
        """Array bytes held by the undo and redo steps."""
        return sum(c.nbytes for c in self._undo) + sum(c.nbytes for c in self._redo)

    def push(self, cmd: Command) -> Command:
        events = cmd.do(self._doc)
        self._undo.append(cmd)
        del self._undo[:-self.limit]
        self._redo.clear()
        sizes = [c.nbytes for c in self._undo]
        total = sum(sizes)
        drop = 0
        while total > self.max_bytes and drop < len(sizes) - 1:
            total -= sizes[drop]
            drop += 1
        del self._undo[:drop]
        self._emit(events + [Event("history")])
        return cmd

    def undo(self) -> bool:
        """Undo the last command; False when there is nothing to undo."""
        if not self._undo:
            return False
        cmd = self._undo.pop()
        events = cmd.undo(self._doc)
        self._redo.append(cmd)
        self._emit(events + [Event("history")])
        return True

    def redo(self) -> bool:
        """Redo the last undone command; False when there is nothing to redo."""
        if not self._redo:
            return False
        cmd = self._redo.pop()
        events = cmd.do(self._doc)
        self._undo.append(cmd)
        self._emit(events + [Event("history")])
        return True

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._emit([Event("history")])

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_label(self) -> str | None:
        return self._undo[-1].label if self._undo else None

    @property
    def redo_label(self) -> str | None:
        return self._redo[-1].label if self._redo else None

    def __len__(self) -> int:
        return len(self._undo)
