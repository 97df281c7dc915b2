"""Document model of the editor: the photo, its people as layers, the background, undo history.

No Qt: the GUI builds on this API (and listens to its events), the CLI and the exporters use it
without a GUI.

API
---
::

    doc = Document.from_result(result)       # result: instmatt_app.core.result.MattingResult
    doc = Document(image_uint8)              # (H, W, 3) uint8 RGB, no people yet

    doc.image                 (H, W, 3) uint8 RGB, never modified
    doc.layers                list[PersonLayer] in z-order, back to front (index 0 = back-most);
                              removed layers stay in the list with ``removed=True``
    doc.layer(id)             the layer with that id (KeyError with a clear message otherwise)
    doc.background            BackgroundSettings(mode, image, blur_radius); mode is "original" |
                              "replaced" | "blurred" | "transparent"
    doc.background_mode / background_replacement / background_blur_radius   (read-only views)
    doc.composite()           (H, W, 3) float32 in [0, 1]
    doc.composite_rgba()      (H, W, 4) float32: colour and coverage (for "transparent")
    doc.composite_region(box) composite()[y0:y1, x0:x1] computed on that box alone
    doc.composite_changes(token) -> (token, boxes | None)   where the composite changed since token
                              (None token or unknown change: None = everywhere); for views that
                              keep the last composite and redraw only what changed
    doc.ensure_colours()      estimate / refresh the colour layers now (otherwise lazily)
    doc.background_colour     (H, W, 3) float32 L_0, the estimated + inpainted background
    doc.layer_alphas(ids)     (k, H, W) float32 stacking ("over") alphas, see below

    # edits: each is one undoable command pushed on doc.history
    doc.rename(id, name); doc.set_visible(id, bool); doc.set_locked(id, bool)
    doc.set_colour_tag(id, "#rrggbb"); doc.set_adjustments(id, Adjustments(...))
    doc.remove(id); doc.restore(id); doc.reorder([ids back to front])
    doc.set_background(mode, image=None, blur_radius=None)
    doc.set_alpha(id, new_alpha)            # one brush stroke = one command (changed box only)
    doc.add_person(alpha, trimatte=None, name=None) -> PersonLayer
    doc.replace_people(result)              # re-matting

    doc.history.undo() / redo() / can_undo / can_redo / undo_label / redo_label
    unsubscribe = doc.subscribe(callback)   # callback(event: Event) with event.kind in
                                            # {"changed", "layers", "history"}, event.layer_ids,
                                            # event.box (changed pixels or None)

Locked layers refuse rename, recolour, remove and painting with
:class:`~instmatt_app.core.commands.LayerLockedError`; visibility, lock, colour tag, order and
restore stay allowed.

Compositing
-----------
The people's alphas are *visible* alphas α'_i of the photo (Σ α'_i ≤ 1; Eq. 14 of the paper: the
share of each pixel that person covers), in ``doc.photo_order`` (the depth order the photo was
decomposed in, back to front; initially the layer order). The colour layers L_i and L_0 come from
:func:`~instmatt_app.core.layer_colours.estimate_layer_colours`, so Σ α'_i L_i + α'_0 L_0 = photo.
To stack layers in another order, to hide them or to remove them, each person's *stacking*
alpha is recovered by inverting Eq. 14 in photo order,
α_i = α'_i / (1 − Σ_{k in front of i} α'_k), then the visible people are stacked in the current
z-order (Eq. 13, written as Eq. 14 weights + Eq. 2):

    w_i = α_i Π_{k in front of i, shown} (1 − α_k),    I = Σ_i w_i adj_i(L_i) + (1 − Σ w_i) B

where adj_i applies the layer's :class:`~instmatt_app.core.adjustments.Adjustments` and B is the
background of the current mode. With no edits w_i = α'_i and B = L_0, so the composite equals the
photo (to the ≤ 1/255 of the colour estimation).

Colour layers are estimated lazily (first ``composite()`` / ``ensure_colours()``) and cached.
Painting an alpha marks only the changed box (plus a margin) dirty; the next request re-estimates
that region and updates only the layers with weight there and the background.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np

from instmatt_app.core.adjustments import Adjustments, apply_adjustments
from instmatt_app.core.commands import (
    AddPerson, Event, History, Remove, Rename, Reorder, ReplacePeople, Restore, SetAdjustments,
    SetAlpha, SetBackground, SetColourTag, SetLocked, SetVisible)
from instmatt_app.core.boxed_image import BoxedImage
from instmatt_app.core.layer_colours import estimate_layer_colours

__all__ = ["Document", "PersonLayer", "BackgroundSettings", "BACKGROUND_MODES", "TAG_COLOURS"]

BACKGROUND_MODES = ("original", "replaced", "blurred", "transparent")
TAG_COLOURS = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45")
_MARGIN = 32  # pixels re-estimated around a painted box
_CHANGE_LOG = 512  # edits remembered for composite_changes (an older token redraws everything)
_DOC_SERIAL = itertools.count(1)


@dataclass
class PersonLayer:
    """One person of the document.

    id: stable int (never reused within a document). alpha: (H, W) float32 in [0, 1], the
    person's visible alpha α'. trimatte: (3, H, W) float32 [α_t, α_r, α_b], the matter's own tri-matte
    (the official InstMatt network's α_r, α_b), or None (derivable from the alphas: not kept).
    colour: (H, W, 3) float32 in [0, 1] stored inside the person's box (a
    :class:`~instmatt_app.core.boxed_image.BoxedImage`; zero outside, where α' = 0), or None until
    estimated (see Document.ensure_colours).
    colour_tag: "#rrggbb" shown in the GUI. removed: hidden from composite and export but kept so
    that it can be restored.
    """

    id: int
    name: str
    alpha: np.ndarray
    trimatte: np.ndarray | None = None
    colour: BoxedImage | None = None
    visible: bool = True
    locked: bool = False
    colour_tag: str = "#e6194b"
    adjustments: Adjustments = field(default_factory=Adjustments)
    removed: bool = False

    @property
    def shown(self) -> bool:
        """Contributes to the composite and to exports: visible and not removed."""
        return self.visible and not self.removed


@dataclass(frozen=True)
class BackgroundSettings:
    """mode: one of BACKGROUND_MODES; image: (h, w, 3) uint8 replacement (any size, resized to the
    photo) for "replaced"; blur_radius: Gaussian sigma in pixels for "blurred"."""

    mode: str = "original"
    image: np.ndarray | None = field(default=None, compare=False)
    blur_radius: float = 20.0

    def __post_init__(self):
        if self.mode not in BACKGROUND_MODES:
            raise ValueError(f"unknown background mode {self.mode!r}; use one of {', '.join(BACKGROUND_MODES)}")
        if self.mode == "replaced":
            img = self.image
            if img is None or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
                raise ValueError("background mode 'replaced' needs an (h, w, 3) uint8 RGB image")
        if not self.blur_radius > 0:
            raise ValueError(f"blur radius must be > 0; got {self.blur_radius}")


def _check_hex(tag: str) -> str:
    if not (isinstance(tag, str) and len(tag) == 7 and tag[0] == "#"):
        raise ValueError(f"colour tag must look like '#rrggbb'; got {tag!r}")
    int(tag[1:], 16)
    return tag.lower()


class Document:
    """See the module docstring for the API."""

    def __init__(self, image: np.ndarray, layers: list[PersonLayer] | None = None,
                 photo_order: list[int] | None = None):
        img = np.asarray(image)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(f"document image must be (H, W, 3) uint8 RGB; got {img.shape} {img.dtype}")
        self.image = img
        self._layers: list[PersonLayer] = []
        self.photo_order: list[int] = []
        self.background = BackgroundSettings()
        self._background_colour: np.ndarray | None = None
        self._colours_valid = False
        self._dirty: list[tuple[int, int, int, int]] = []
        self._subscribers: list[Callable[[Event], None]] = []
        self._alpha_version = 0          # bumped whenever an alpha or the set of people changes
        self._stack_cache: tuple | None = None
        # where the composite changed: the box of each alpha version made by an edit of one region,
        # and every region whose colours were re-estimated (composite_changes)
        self._serial = next(_DOC_SERIAL)
        self._alpha_boxes: dict[int, tuple[int, int, int, int]] = {}
        self._colour_regions: list[tuple[int, int, int, int]] = []
        self._colour_regions_dropped = 0
        self._ids = itertools.count(1)
        self.history = History(self, self._emit)
        for layer in layers or []:
            self._check_alpha(layer.alpha)
            self._layers.append(layer)
        self.photo_order = list(photo_order) if photo_order is not None else [l.id for l in self._layers]
        if sorted(self.photo_order) != sorted(l.id for l in self._layers):
            raise ValueError("photo_order must list every layer id once")
        top = max((l.id for l in self._layers), default=0)
        self._ids = itertools.count(top + 1)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_result(cls, result, share_alphas: bool = False) -> "Document":
        """A document holding ``result.image`` and one layer per instance (list order = z-order).

        share_alphas: use the instances' float32 alphas themselves instead of copies (when they are
        in [0, 1]); edits then paint into the result's arrays. For a document that is only read
        (writing a result's files): a 60 MP photo with four people saves 0.9 GB.
        """
        doc = cls(np.asarray(result.image, np.uint8))
        doc._layers = doc._layers_from_result(result, share_alphas)
        doc.photo_order = [l.id for l in doc._layers]
        return doc

    def _layers_from_result(self, result, share_alphas: bool = False) -> list[PersonLayer]:
        if tuple(result.image.shape[:2]) != self.shape:
            raise ValueError(f"result image is {result.image.shape[:2]}, document is {self.shape}")
        layers = []
        for k, inst in enumerate(result.instances):
            # a tri-matte derived from the alphas is not kept: the views derive it from the current alphas,
            # and at 24 MP it is 0.3 GB per person; a matter's own α_r, α_b are (shared, never modified)
            tm = np.asarray(inst.trimatte, np.float32) if inst.has_own_trimatte else None
            layers.append(self._new_layer(inst.alpha, tm, f"Person {k + 1}", share_alphas))
        return layers

    def _new_layer(self, alpha, trimatte=None, name=None, share: bool = False) -> PersonLayer:
        if not (share and isinstance(alpha, np.ndarray) and alpha.dtype == np.float32
                and alpha.min() >= 0.0 and alpha.max() <= 1.0):
            alpha = np.clip(np.asarray(alpha, np.float32), 0.0, 1.0)   # a new array: painted in place
        self._check_alpha(alpha)
        if trimatte is not None:
            trimatte = np.asarray(trimatte, np.float32)
            if trimatte.shape != (3,) + self.shape:
                raise ValueError(f"trimatte must be (3, {self.shape[0]}, {self.shape[1]}); got {trimatte.shape}")
        lid = next(self._ids)
        return PersonLayer(id=lid, name=name or f"Person {lid}", alpha=alpha, trimatte=trimatte,
                           colour_tag=TAG_COLOURS[(lid - 1) % len(TAG_COLOURS)])

    def _check_alpha(self, alpha: np.ndarray) -> None:
        if alpha.shape != self.shape:
            raise ValueError(f"alpha must be (H, W) = {self.shape}; got {alpha.shape}")

    # ----------------------------------------------------------------- queries
    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.image.shape[:2])

    @property
    def layers(self) -> list[PersonLayer]:
        """Layers back to front (a copy of the list; the layer objects are the document's)."""
        return list(self._layers)

    def layer(self, layer_id: int) -> PersonLayer:
        for layer in self._layers:
            if layer.id == layer_id:
                return layer
        raise KeyError(f"no layer with id {layer_id} (ids: {[l.id for l in self._layers]})")

    @property
    def background_mode(self) -> str:
        """"original" | "replaced" | "blurred" | "transparent" (change it with set_background)."""
        return self.background.mode

    @property
    def background_replacement(self) -> np.ndarray | None:
        """The replacement image (h, w, 3) uint8 of the "replaced" mode, if one was set."""
        return self.background.image

    @property
    def background_blur_radius(self) -> float:
        """Gaussian sigma in pixels of the "blurred" mode."""
        return self.background.blur_radius

    # ----------------------------------------------------------------- events
    def subscribe(self, callback: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``callback(event)`` after every change; returns a function that unsubscribes."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)
        return unsubscribe

    def _emit(self, events: list[Event]) -> None:
        for ev in events:
            for cb in list(self._subscribers):
                cb(ev)

    # ----------------------------------------------------------------- edits
    def rename(self, layer_id: int, name: str):
        name = str(name).strip()
        if not name:
            raise ValueError("a layer name cannot be empty")
        return self.history.push(Rename(layer_id, name))

    def set_visible(self, layer_id: int, visible: bool):
        return self.history.push(SetVisible(layer_id, bool(visible)))

    def set_locked(self, layer_id: int, locked: bool):
        return self.history.push(SetLocked(layer_id, bool(locked)))

    def set_colour_tag(self, layer_id: int, tag: str):
        return self.history.push(SetColourTag(layer_id, _check_hex(tag)))

    def set_adjustments(self, layer_id: int, adjustments: Adjustments):
        if not isinstance(adjustments, Adjustments):
            raise TypeError("set_adjustments needs an Adjustments object")
        return self.history.push(SetAdjustments(layer_id, adjustments))

    def remove(self, layer_id: int):
        return self.history.push(Remove(layer_id))

    def restore(self, layer_id: int):
        return self.history.push(Restore(layer_id))

    def reorder(self, new_order: list[int]):
        return self.history.push(Reorder(new_order))

    def set_background(self, mode: str, image: np.ndarray | None = None, blur_radius: float | None = None):
        settings = BackgroundSettings(mode, image if image is not None else self.background.image,
                                      blur_radius if blur_radius is not None else self.background.blur_radius)
        return self.history.push(SetBackground(settings))

    def set_alpha(self, layer_id: int, new_alpha: np.ndarray):
        """Replace a layer's alpha (a whole brush stroke) as one undo step; None if unchanged.

        new_alpha: (H, W) float in [0, 1], a *new* array (paint on a copy of ``layer.alpha``:
        the command finds the changed box by comparing the two).
        """
        layer = self.layer(layer_id)
        new_alpha = np.clip(np.asarray(new_alpha, np.float32), 0.0, 1.0)
        self._check_alpha(new_alpha)
        cmd = SetAlpha.from_full(layer, new_alpha)
        return None if cmd is None else self.history.push(cmd)

    def add_person(self, alpha: np.ndarray, trimatte: np.ndarray | None = None, name: str | None = None) -> PersonLayer:
        layer = self._new_layer(alpha, trimatte, name)
        self.history.push(AddPerson(layer))
        return layer

    def replace_people(self, result, colours: "Document | None" = None, share_alphas: bool = False
                       ) -> list[PersonLayer]:
        """Swap the people for those of ``result`` (new layer ids), one undo step.

        colours: a Document made from the same result whose colours are estimated (the GUI's
        worker makes one off the GUI thread): its colour layers and background are taken instead of
        estimating them again. share_alphas: as in :meth:`from_result`.
        """
        layers = self._layers_from_result(result, share_alphas)
        background = None
        if colours is not None and colours.colours_valid and len(colours.layers) == len(layers):
            for layer, done in zip(layers, colours.layers):
                layer.colour = done.colour
            background = colours._background_colour
        self.history.push(ReplacePeople(layers, background))
        return layers

    # ----------------------------------------------------------------- command internals
    def _set_order(self, ids: list[int]) -> None:
        by_id = {l.id: l for l in self._layers}
        self._layers = [by_id[i] for i in ids]

    def _alpha_changed(self, layer_id: int, box) -> list[Event]:
        self._alpha_version += 1
        self._alpha_boxes[self._alpha_version] = tuple(int(v) for v in box)
        self._alpha_boxes.pop(self._alpha_version - _CHANGE_LOG, None)
        self._mark_dirty(box)
        y0, y1, x0, x1 = box
        ids = tuple(l.id for l in self._layers
                    if l.id == layer_id or (l.alpha[y0:y1, x0:x1] > 0).any())
        return [Event("changed", ids, box)]

    def _insert_layer(self, layer: PersonLayer) -> list[Event]:
        self._alpha_version += 1
        self._layers.append(layer)
        self.photo_order.append(layer.id)
        box = _box_of(layer.alpha > 0)
        if self._colours_valid and layer.colour is None:   # the photo inside the alpha's box until re-estimated
            y0, y1, x0, x1 = box or (0, 0, 0, 0)
            layer.colour = BoxedImage(self.shape, (y0, y1, x0, x1),
                                      self.image[y0:y1, x0:x1].astype(np.float32) / 255.0)
        if box is not None:
            self._mark_dirty(box)
        return [Event("layers", (layer.id,)), Event("changed", (layer.id,), box)]

    def _delete_layer(self, layer_id: int) -> list[Event]:
        self._alpha_version += 1
        layer = self.layer(layer_id)
        self._layers.remove(layer)
        self.photo_order.remove(layer_id)
        box = _box_of(layer.alpha > 0)
        if box is not None:
            self._mark_dirty(box)
        return [Event("layers", (layer_id,)), Event("changed", (layer_id,), box)]

    def _people_state(self):
        return (list(self._layers), list(self.photo_order), self._background_colour, self._colours_valid,
                list(self._dirty))

    def _set_people_state(self, state) -> list[Event]:
        self._alpha_version += 1
        old_ids = tuple(l.id for l in self._layers)
        if len(state) == 2:  # new people: colours must be estimated again
            self._layers, self.photo_order = list(state[0]), list(state[1])
            self._background_colour, self._colours_valid, self._dirty = None, False, []
        else:
            (layers, order, bg, valid, dirty) = state
            self._layers, self.photo_order = list(layers), list(order)
            self._background_colour, self._colours_valid, self._dirty = bg, valid, list(dirty)
        ids = tuple(sorted(set(old_ids) | {l.id for l in self._layers}))
        return [Event("layers", ids), Event("changed", ids)]

    # ----------------------------------------------------------------- colours
    def _mark_dirty(self, box) -> None:
        if self._colours_valid:
            self._dirty.append(tuple(int(v) for v in box))

    @property
    def colours_valid(self) -> bool:
        """True when every colour layer is up to date (nothing to estimate)."""
        return self._colours_valid and not self._dirty

    def ensure_colours(self) -> None:
        """Estimate the colour layers now if they are missing or partly out of date."""
        if not self._layers:
            if self._background_colour is None:
                self._background_colour = self.image.astype(np.float32) / 255.0
            self._colours_valid, self._dirty = True, []
            return
        if not self._colours_valid or any(l.colour is None for l in self._layers):
            # the 8-bit photo itself (scaled inside) and the layers' alphas: no float or stacked copies
            res = estimate_layer_colours(self.image, [l.alpha for l in self._layers])
            for layer, colour in zip(self._layers, res.people):
                layer.colour = colour
            self._background_colour = res.background
            self._colours_valid, self._dirty = True, []
            return
        dirty, self._dirty = self._dirty, []
        for box in _merge_boxes(dirty):
            self._reestimate_region(box)

    def _reestimate_region(self, box) -> None:
        H, W = self.shape
        y0, y1, x0, x1 = box
        m = _MARGIN + max(y1 - y0, x1 - x0) // 10
        cy0, cy1, cx0, cx1 = max(0, y0 - 2 * m), min(H, y1 + 2 * m), max(0, x0 - 2 * m), min(W, x1 + 2 * m)
        py0, py1, px0, px1 = max(0, y0 - m), min(H, y1 + m), max(0, x0 - m), min(W, x1 + m)
        crop = (slice(cy0, cy1), slice(cx0, cx1))
        involved = [l for l in self._layers if (l.alpha[crop] > 0).any()]
        img = self.image[crop].astype(np.float32) / 255.0
        alphas = (np.stack([l.alpha[crop] for l in involved]) if involved
                  else np.zeros((0,) + img.shape[:2], np.float32))
        res = estimate_layer_colours(img, alphas)
        inner = (slice(py0 - cy0, py1 - cy0), slice(px0 - cx0, px1 - cx0))
        for layer, colour in zip(involved, res.people):
            layer.colour.write(py0, py1, px0, px1, colour[inner])
        self._background_colour[py0:py1, px0:px1] = res.background[inner]
        self._colour_regions.append((py0, py1, px0, px1))
        if len(self._colour_regions) > _CHANGE_LOG:
            del self._colour_regions[0]
            self._colour_regions_dropped += 1

    @property
    def background_colour(self) -> np.ndarray:
        """(H, W, 3) float32 L_0: the estimated background, inpainted where people hide it."""
        self.ensure_colours()
        return self._background_colour

    # ----------------------------------------------------------------- compositing
    def layer_alphas(self, ids: list[int] | None = None) -> np.ndarray:
        """Stacking alphas α_i (inverse of Eq. 14 in photo order) of the given layers.

        ids: layer ids (default: all layers in z-order). Returns (k, H, W) float32 in [0, 1],
        read-only. It is the document's cache: after brush strokes only their boxes are computed
        again, in place (a full copy is 1 GB at 60 MP with four people), so use it before the next
        edit or copy it; a change of the people or their order makes a new array.
        Stacking these back to front in photo order reproduces the visible alphas exactly.
        """
        ids = [l.id for l in self._layers] if ids is None else list(ids)
        key = (tuple(self.photo_order), tuple(ids))
        cached = self._stack_cache
        if cached is not None and cached[0] == (self._alpha_version,) + key:
            return cached[1]
        H, W = self.shape
        boxes = None
        if cached is not None and cached[0][1:] == key:   # the same people: only strokes since?
            boxes = [self._alpha_boxes.get(v) for v in range(cached[0][0] + 1, self._alpha_version + 1)]
            if any(b is None for b in boxes):
                boxes = None
        if boxes is None:
            result = np.zeros((len(ids), H, W), np.float32)
            boxes = [(0, H, 0, W)]
        else:
            result = cached[1]           # patched in place (this document allocated it)
            result.setflags(write=True)
        for y0, y1, x0, x1 in (_merge_boxes(boxes) if len(boxes) > 1 else boxes):
            self._stack_region(result, ids, (slice(y0, y1), slice(x0, x1)))
        result.setflags(write=False)     # cached: callers must not modify it
        self._stack_cache = ((self._alpha_version,) + key, result)
        return result

    def _stack_region(self, result: np.ndarray, ids: list[int], sl: tuple[slice, slice]) -> None:
        """Fill ``result[:, sl]`` ((k, H, W) float32, rows in ``ids`` order) with the stacking alphas
        there; every step is per pixel, so a region gives the whole photo's values."""
        by_id = {l.id: l for l in self._layers}
        size = (sl[0].stop - sl[0].start, sl[1].stop - sl[1].start)
        total = np.zeros(size, np.float32)
        for lid in self.photo_order:
            total += by_id[lid].alpha[sl]
        scale = None
        if total.size and total.max() > 1.0:   # over-full pixels: scale down like the colour estimation
            scale = np.ones(size, np.float32)
            over = total > 1.0
            scale[over] = 1.0 / total[over]
        del total
        slot = {lid: k for k, lid in enumerate(ids)}
        front = np.zeros(size, np.float32)  # Σ α' of the layers in front, in photo order
        t = np.empty(size, np.float32)
        for lid in reversed(self.photo_order):
            vis = by_id[lid].alpha[sl] if scale is None else by_id[lid].alpha[sl] * scale
            if lid in slot:
                o = result[slot[lid]][sl]
                np.subtract(1.0, front, out=t)
                hidden = t <= 1e-6
                np.maximum(t, 1e-6, out=t)
                np.divide(vis, t, out=o)
                np.clip(o, 0.0, 1.0, out=o)
                o[hidden] = 0.0
            front += vis

    def shown_weights(self) -> tuple[list[PersonLayer], np.ndarray]:
        """The shown layers (z-order) and their composite weights w_i, (k, H, W) float32."""
        return self._shown_weights((slice(0, self.shape[0]), slice(0, self.shape[1])))

    def _shown_weights(self, sl: tuple[slice, slice]) -> tuple[list[PersonLayer], np.ndarray]:
        """:meth:`shown_weights` inside the photo region ``sl`` (two slices with explicit bounds):
        (k, h, w) float32, the same values as the whole photo's there (every step is per pixel)."""
        shown = [l for l in self._layers if l.shown]
        size = (sl[0].stop - sl[0].start, sl[1].stop - sl[1].start)
        if not shown:
            return shown, np.zeros((0,) + size, np.float32)
        a = self.layer_alphas([l.id for l in shown])[(slice(None),) + sl]
        w = np.empty_like(a)
        transmit = np.ones(size, np.float32)
        for i in range(len(shown) - 1, -1, -1):
            w[i] = a[i] * transmit
            transmit *= 1.0 - a[i]
        return shown, w

    def background_image(self, box: tuple[int, int, int, int] | None = None) -> np.ndarray | None:
        """(H, W, 3) float32 background of the current mode, None for "transparent".

        box: (y0, y1, x0, x1) to get only that region, the same values (a blurred background is
        blurred on the region grown by the blur's reach, which gives the whole photo's blur there)."""
        bg = self.background
        if bg.mode == "transparent":
            return None
        H, W = self.shape
        y0, y1, x0, x1 = box if box is not None else (0, H, 0, W)
        if bg.mode == "replaced":
            rep = bg.image
            if rep.shape[:2] != (H, W):
                rep = cv2.resize(rep, (W, H), interpolation=cv2.INTER_AREA if rep.shape[0] > H else cv2.INTER_LINEAR)
            return rep[y0:y1, x0:x1].astype(np.float32) / 255.0
        l0 = self.background_colour
        if bg.mode == "blurred":
            gy0, gy1, gx0, gx1 = self._grow_by_blur((y0, y1, x0, x1))
            blurred = cv2.GaussianBlur(l0[gy0:gy1, gx0:gx1], (0, 0), sigmaX=float(bg.blur_radius),
                                       sigmaY=float(bg.blur_radius))
            return blurred[y0 - gy0:y1 - gy0, x0 - gx0:x1 - gx0]
        return l0[y0:y1, x0:x1]

    def _grow_by_blur(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        """``box`` grown by the reach of the blurred background's Gaussian (OpenCV's kernel radius is
        4 sigma), clipped to the photo."""
        r = int(np.ceil(4 * self.background.blur_radius)) + 1
        H, W = self.shape
        y0, y1, x0, x1 = box
        return max(0, y0 - r), min(H, y1 + r), max(0, x0 - r), min(W, x1 + r)

    def _people_sum(self, sl: tuple[slice, slice] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(Σ w_i adj_i(L_i) as (h, w, 3), Σ w_i as (h, w)), float32, over the shown people, in the
        photo region ``sl`` (two slices with explicit bounds; None = the whole photo)."""
        self.ensure_colours()
        H, W = self.shape
        sl = sl or (slice(0, H), slice(0, W))
        shown, w = self._shown_weights(sl)
        oy, ox = sl[0].start, sl[1].start
        acc = np.zeros(w.shape[1:] + (3,), np.float32)
        cover = np.zeros(w.shape[1:], np.float32)
        for layer, wi in zip(shown, w):
            box = _box_of(wi > 0)          # only where the person has weight
            if box is None:
                continue
            own = (slice(box[0], box[1]), slice(box[2], box[3]))
            photo = (slice(oy + box[0], oy + box[1]), slice(ox + box[2], ox + box[3]))
            ws = wi[own]
            acc[own] += ws[..., None] * apply_adjustments(layer.colour[photo], layer.adjustments)
            cover[own] += ws
        return acc, cover

    def composite_rgba(self) -> np.ndarray:
        """(H, W, 4) float32: straight (not premultiplied) colour and coverage; coverage is 1
        except in "transparent" mode, where it is Σ w_i."""
        acc, cover = self._people_sum()
        bg = self.background_image()
        H, W = self.shape
        if bg is None:
            colour = acc / np.maximum(cover, 1e-6)[..., None]
            colour[cover <= 1e-6] = 0
            return np.dstack([np.clip(colour, 0, 1), np.clip(cover, 0, 1)]).astype(np.float32)
        acc += np.clip(1.0 - cover, 0.0, 1.0)[..., None] * bg
        np.clip(acc, 0.0, 1.0, out=acc)
        return np.dstack([acc, np.ones((H, W), np.float32)])

    def composite(self) -> np.ndarray:
        """(H, W, 3) float32 in [0, 1]: the recomposited photo (transparent mode: over black)."""
        return self.composite_region((0, self.shape[0], 0, self.shape[1]))

    def composite_region(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """``composite()[y0:y1, x0:x1]`` computed on that region alone: (y1 - y0, x1 - x0, 3) float32.

        box: (y0, y1, x0, x1) inside the photo. Every step of the composite is per pixel, so the values
        are the whole composite's (for a blurred background see :meth:`background_image`)."""
        y0, y1, x0, x1 = (int(v) for v in box)
        H, W = self.shape
        if not (0 <= y0 <= y1 <= H and 0 <= x0 <= x1 <= W):
            raise ValueError(f"region {box} is not inside the {W}x{H} photo")
        acc, cover = self._people_sum((slice(y0, y1), slice(x0, x1)))
        bg = self.background_image((y0, y1, x0, x1))
        if bg is not None:
            acc += np.clip(1.0 - cover, 0.0, 1.0)[..., None] * bg
        return np.clip(acc, 0.0, 1.0, out=acc)

    def _composite_state(self) -> tuple:
        """What the composite depends on besides the alphas and the colour layers' pixels."""
        bg = self.background
        return (self._serial, tuple(self.photo_order), tuple(l.id for l in self._layers), bg.mode, bg.blur_radius,
                bg.image, {l.id: (l.shown, l.adjustments) for l in self._layers})

    def composite_changes(self, since: tuple | None) -> tuple[tuple, list[tuple[int, int, int, int]] | None]:
        """Where the composite may differ from what it was when ``since`` was handed out.

        Returns (token, boxes): keep the token for the next call; boxes are (y0, y1, x0, x1) regions
        (merged, maybe empty) outside which the composite is unchanged, or None when it may have changed
        anywhere (no token, a token of another document or too old, or a change that is not local:
        people added, deleted or replaced, a new order, a new background). Brush strokes and their
        undo, the colour layers re-estimated around them, and a person recoloured, hidden, shown,
        removed or restored (inside that person's alpha box) are local; on a blurred background a
        re-estimated region reaches as far as the blur. Colour layers that are out of date are
        re-estimated first (as the composite would).
        """
        self.ensure_colours()
        state = self._composite_state()
        token = (self._alpha_version, self._colour_regions_dropped + len(self._colour_regions), state)
        if since is None:
            return token, None
        version, n_regions, old = since
        if old[:5] != state[:5] or old[5] is not state[5]:
            return token, None
        boxes: list[tuple[int, int, int, int]] = []
        for v in range(version + 1, self._alpha_version + 1):
            if v not in self._alpha_boxes:
                return token, None
            boxes.append(self._alpha_boxes[v])
        first = n_regions - self._colour_regions_dropped
        if first < 0:
            return token, None
        regions = self._colour_regions[first:]
        if self.background.mode == "blurred":   # the background's new colours spread as far as the blur reaches
            regions = [self._grow_by_blur(r) for r in regions]
        boxes.extend(regions)
        for lid, now in state[6].items():
            if old[6][lid] != now:           # recoloured, hidden or shown: inside that person's alpha
                box = _box_of(self.layer(lid).alpha > 0)
                if box is not None:
                    boxes.append(box)
        return token, _merge_boxes(boxes) if len(boxes) > 1 else boxes


def _box_of(mask: np.ndarray):
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _merge_boxes(boxes):
    """Merge overlapping (y0, y1, x0, x1) boxes so no region is estimated twice."""
    boxes = [list(b) for b in boxes]
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[1] + _MARGIN and b[0] < a[1] + _MARGIN and a[2] < b[3] + _MARGIN and b[2] < a[3] + _MARGIN:
                    boxes[i] = [min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return [tuple(b) for b in boxes]
