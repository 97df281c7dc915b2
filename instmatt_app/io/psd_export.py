"""Layered PSD / PSB export with psd-tools.

File structure (bottom to top)::

    Background            the estimated background L_0, inpainted where people hid it (opaque)
    People (group)
        <name of person 1>   decontaminated colour L_i, cropped to the person's alpha box
        ...                  (z-order of the document: last = front)

Each person's alpha is stored, at the user's choice, as

* ``alpha_as="transparency"``: the layer's own transparency channel (channel −1), like a
  PNG cut-out; or
* ``alpha_as="mask"``: an opaque colour layer with an editable user layer mask (channel −2),
  what Photoshop users expect for non-destructive editing.

The alphas written are *stacking* alphas (see :meth:`Document.layer_alphas`), so Photoshop's
normal back-to-front blending reproduces the photo. 8- or 16-bit. A PSB (version 2) is written
when a side exceeds 30 000 px or the uncompressed data (person layers cropped to their boxes, the
background and the merged image, 4 channels each) would exceed 2 GB (PSD's limit).
The merged composite preview that other readers (Lightroom, viewers, ImageMagick) show is
always present: it is computed here (normal blending back to front) and stored in the image
data section; psd-tools' own regeneration at save (its general compositor) is skipped because it
takes ~10x longer and several GB of memory at 24 MP.

Low-level parts (documented because psd-tools' public writer lacks them in 1.26):

* ``Layer.create_mask`` takes a PIL image, i.e. 8-bit precision; for 16-bit files the mask
  channel is rebuilt from the float alpha with ``psd_tools.api.numpy_io._encode_array`` so it
  keeps 16-bit precision.
* ``create_pixel_layer_from_array`` writes only the legacy MacRoman layer name (saving fails on
  other characters); setting ``layer.name`` afterwards adds the Unicode name block.
* psd-tools picks PSB only by pixel size; for the 2 GB rule the header version is set to 2
  before any layer is created (channel byte counts depend on it).

Every file is written atomically (:mod:`instmatt_app.io.atomic`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image
from psd_tools import PSDImage
from psd_tools.api import numpy_io
from psd_tools.constants import Compression

from instmatt_app.core.boxed_image import BoxedImage
from instmatt_app.io.atomic import atomic_save

__all__ = ["write_layered_psd", "export_result_psd", "needs_psb", "PSD_MAX_SIDE", "PSD_MAX_BYTES"]

PSD_MAX_SIDE = 30_000
PSD_MAX_BYTES = 2 * 1024 ** 3


def needs_psb(width: int, height: int, n_layers: int, bit_depth: int,
              layer_pixels: int | None = None) -> bool:
    """True when a PSD cannot hold the document: a side > 30 000 px, or the uncompressed data
    would exceed 2 GB (PSD's limit). The data is counted as 4 channels for every layer pixel plus
    the merged image; ``layer_pixels`` is the total pixel count of all layers (default: every
    one of the ``n_layers`` layers full size)."""
    if layer_pixels is None:
        layer_pixels = n_layers * width * height
    raw = (layer_pixels + width * height) * 4 * (bit_depth // 8)
    return max(width, height) > PSD_MAX_SIDE or raw > PSD_MAX_BYTES


def _box(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    if rows.size == 0:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _add_mask(layer, alpha: np.ndarray, top: int, left: int, depth: int) -> None:
    """Give ``layer`` a user mask from float ``alpha`` (h, w) in [0, 1] at the document depth."""
    a8 = np.clip(np.round(alpha * 255.0), 0, 255).astype(np.uint8)
    layer.create_mask(Image.fromarray(a8, "L"), top=top, left=left, compression=Compression.RLE)
    if depth == 8:
        return
    # keep the full precision at 16 bit: re-encode the mask channel from the float alpha
    from psd_tools.constants import ChannelID
    from psd_tools.psd.layer_and_mask import ChannelData
    header = layer._psd._record.header
    h, w = alpha.shape
    data = ChannelData(Compression.RLE)  # like every other channel psd-tools writes
    data.set_data(numpy_io._encode_array(alpha.astype(np.float32), depth, w), w, h, depth, header.version)
    for i, ci in enumerate(layer._record.channel_info):
        if ci.id == ChannelID.USER_LAYER_MASK:
            layer._channels[i] = data
            layer._record.channel_info[i].length = data._length
            break
    if hasattr(layer, "_mask"):
        del layer._mask


def write_layered_psd(path: str | os.PathLike, image: np.ndarray, alphas: np.ndarray,
                      colours: np.ndarray | Sequence[np.ndarray | BoxedImage], background: np.ndarray,
                      names: Sequence[str], *, bit_depth: int = 8, alpha_as: str = "transparency",
                      group_name: str = "People", background_name: str = "Background",
                      hidden: Sequence[bool] | None = None) -> Path:
    """Write a layered PSD (or PSB) atomically; returns the path.

    image: (H, W, 3) uint8, the photo (only its size is used).
    alphas: (k, H, W) float32 in [0, 1], stacking alpha of each person, back to front.
    colours: (k, H, W, 3) float32 in [0, 1], each person's colour layer, or k
        :class:`~instmatt_app.core.boxed_image.BoxedImage` (only the part under the alpha is read).
    background: (H, W, 3) float32 in [0, 1], or None for no background layer.
    names: k layer names. bit_depth: 8 or 16. alpha_as: "transparency" or "mask".
    hidden: optional k flags; a hidden person is written with its visibility off.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"PSD bit depth must be 8 or 16; got {bit_depth}")
    if alpha_as not in ("transparency", "mask"):
        raise ValueError(f"alpha_as must be 'transparency' or 'mask'; got {alpha_as!r}")
    H, W = image.shape[:2]
    k = len(alphas)
    if len(colours) != k or len(names) != k:
        raise ValueError(f"{k} alphas need {k} colour layers and names; got {len(colours)} and {len(names)}")
    path = Path(path)
    # crop each person to where its alpha survives quantisation at this depth
    cut = 0.5 / (255.0 if bit_depth == 8 else 65535.0)
    boxes = [_box(alphas[i] >= cut) or (0, 1, 0, 1) for i in range(k)]
    layer_pixels = sum((b[1] - b[0]) * (b[3] - b[2]) for b in boxes) + (W * H if background is not None else 0)
    psb = needs_psb(W, H, k + 1, bit_depth, layer_pixels)
    if psb and path.suffix.lower() == ".psd":
        path = path.with_suffix(".psb")
    psd = PSDImage.new("RGB", (W, H), depth=bit_depth)
    if psb:
        psd._record.header.version = 2
    if background is not None:
        psd.create_pixel_layer_from_array(np.ascontiguousarray(background, np.float32), name=background_name)
    group = psd.create_group(name=group_name)
    for i in range(k):
        y0, y1, x0, x1 = boxes[i]
        a = np.ascontiguousarray(alphas[i][y0:y1, x0:x1], np.float32)
        c = np.asarray(colours[i][y0:y1, x0:x1], np.float32)
        if alpha_as == "transparency":
            arr = np.dstack([c, a])
        else:
            arr = np.ascontiguousarray(c)
        layer = group.create_pixel_layer_from_array(arr, name=str(names[i]), top=y0, left=x0)
        layer.name = str(names[i])  # the setter also writes the Unicode name block
        if alpha_as == "mask":
            _add_mask(layer, a, y0, x0, bit_depth)
        if hidden is not None and hidden[i]:
            layer.visible = False
    # merged preview: Photoshop's normal blending back to front (Eq. 13) over the background
    # (white when there is none), computed here instead of by psd-tools' general compositor,
    # which takes ~10x longer and several GB at 24 MP
    # (in place where it can: at 60 MP every full-size float32 copy is 0.7 GB)
    merged = (np.array(background, np.float32) if background is not None
              else np.ones((H, W, 3), np.float32))
    for i in range(k):
        if hidden is not None and hidden[i]:
            continue
        y0, y1, x0, x1 = boxes[i]
        a = np.asarray(alphas[i][y0:y1, x0:x1], np.float32)[..., None]
        sub = merged[y0:y1, x0:x1]
        step = np.subtract(np.asarray(colours[i][y0:y1, x0:x1], np.float32), sub)
        step *= a
        sub += step
        del step
    np.clip(merged, 0.0, 1.0, out=merged)
    header = psd._record.header
    opaque = np.broadcast_to(np.float32(1.0), (H, W, 1))  # the preview's alpha plane, if the header has one
    psd._record.image_data.set_data(numpy_io.encode_image_data(psd, merged, opaque), header)
    del merged
    psd._updated = False  # the preview is current: keep save() from regenerating it
    atomic_save(path, psd.save)
    return path


def export_result_psd(result, path: str | os.PathLike, *, bit_depth: int = 8,
                      alpha_as: str = "transparency") -> Path:
    """Layered PSD of a :class:`~instmatt_app.core.result.MattingResult` (people in list order)."""
    from instmatt_app.core.document import Document
    return export_document_psd(Document.from_result(result), path, bit_depth=bit_depth, alpha_as=alpha_as)


def export_document_psd(doc, path: str | os.PathLike, *, bit_depth: int = 8, alpha_as: str = "transparency",
                        people: Sequence[int] | None = None) -> Path:
    """Layered PSD of a :class:`~instmatt_app.core.document.Document`.

    Removed people are left out, hidden people are written with visibility off; colour
    adjustments are applied to the exported colour. people: layer ids to export (default: all
    not removed). The background layer follows the document's background mode (none for
    "transparent")."""
    from instmatt_app.core.adjustments import apply_adjustments
    doc.ensure_colours()
    layers = [l for l in doc.layers if not l.removed and (people is None or l.id in people)]
    alphas = doc.layer_alphas([l.id for l in layers])
    colours = [apply_adjustments(l.colour, l.adjustments) for l in layers]
    return write_layered_psd(path, doc.image, alphas, colours, doc.background_image(),
                             [l.name for l in layers], bit_depth=bit_depth, alpha_as=alpha_as,
                             hidden=[not l.visible for l in layers])
