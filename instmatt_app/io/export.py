"""One entry point for exporting a matting result or an edited document (CLI and GUI).

``export_result(result_or_doc, out_dir, formats={"psd", "png", "tiff"}, bit_depth=8,
alpha_as="transparency", people=None, stem=None) -> list[Path]`` writes, into ``out_dir``:

* ``psd``:  ``<stem>.psd`` (``.psb`` when too large for PSD): background + a "People" group with
  one layer per person (see :mod:`instmatt_app.io.psd_export`);
* ``png``:  ``<stem>_composite.png`` (RGB; RGBA when the background mode is "transparent"),
  ``<stem>_background.png`` (the estimated, inpainted background), and for every person
  ``<stem>_NN_<name>.png`` (RGBA: decontaminated colour + stacking alpha) and
  ``<stem>_NN_<name>_alpha.png`` (the person's visible alpha matte, greyscale);
* ``tiff``: ``<stem>_composite.tif`` and ``<stem>_NN_<name>.tif`` (RGBA, unassociated alpha).

NN is the person's position in the z-order (01 = back-most). Removed people are never exported;
``people`` (layer ids) restricts the export further. Colour adjustments are applied. Every file
is written atomically. Bad arguments raise ValueError with a message saying what is wrong.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable

import numpy as np

from instmatt_app.core.adjustments import apply_adjustments
from instmatt_app.core.document import Document
from instmatt_app.io.png_export import write_alpha_png, write_png, write_rgba_png
from instmatt_app.io.psd_export import export_document_psd
from instmatt_app.io.tiff_export import write_rgba_tiff

__all__ = ["export_result", "FORMATS", "safe_name"]

FORMATS = ("psd", "png", "tiff")


def safe_name(name: str) -> str:
    """A file-name-safe version of a layer name (letters, digits, - and _)."""
    s = re.sub(r"[^\w\-]+", "_", name.strip(), flags=re.UNICODE).strip("_")
    return s[:60] or "person"


def export_result(result_or_doc, out_dir: str | os.PathLike, formats: Iterable[str] = ("psd", "png", "tiff"),
                  bit_depth: int = 8, alpha_as: str = "transparency", people: Iterable[int] | None = None,
                  stem: str | None = None) -> list[Path]:
    """Export; returns the written paths. See the module docstring for the files."""
    if isinstance(formats, str):            # "psd,png" as typed on a command line
        formats = formats.split(",")
    formats = {f.lower().strip() for f in formats if f.strip()}
    if "tif" in formats:
        formats = (formats - {"tif"}) | {"tiff"}
    unknown = formats - set(FORMATS)
    if unknown or not formats:
        raise ValueError(f"unknown export format(s) {sorted(unknown) or '(none)'}; choose from {', '.join(FORMATS)}")
    if bit_depth not in (8, 16):
        raise ValueError(f"bit depth must be 8 or 16; got {bit_depth}")
    if alpha_as not in ("transparency", "mask"):
        raise ValueError(f"alpha_as must be 'transparency' or 'mask'; got {alpha_as!r}")
    doc = result_or_doc if isinstance(result_or_doc, Document) else Document.from_result(result_or_doc)
    if stem is None:
        src = getattr(result_or_doc, "extras", {}).get("source") if not isinstance(result_or_doc, Document) else None
        stem = Path(src).stem if isinstance(src, (str, os.PathLike)) else "photo"
    ids = None if people is None else [int(i) for i in people]
    if ids is not None:
        known = {l.id for l in doc.layers}
        missing = [i for i in ids if i not in known]
        if missing:
            raise ValueError(f"no person with id {missing} in the document (ids: {sorted(known)})")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    doc.ensure_colours()
    if "psd" in formats:
        written.append(export_document_psd(doc, out / f"{stem}.psd", bit_depth=bit_depth,
                                           alpha_as=alpha_as, people=ids))
    if not formats & {"png", "tiff"}:
        return written
    layers = [l for l in doc.layers if not l.removed and (ids is None or l.id in ids)]
    alphas = doc.layer_alphas([l.id for l in layers])
    rgba = doc.composite_rgba()
    composite = rgba if doc.background.mode == "transparent" else np.ascontiguousarray(rgba[..., :3])
    del rgba                              # (H, W, 4) float32: 0.9 GiB at 60 MP
    z = {l.id: k + 1 for k, l in enumerate(doc.layers)}
    names = {l.id: f"{stem}_{z[l.id]:02d}_{safe_name(l.name)}" for l in layers}
    if "png" in formats:
        written.append(write_png(out / f"{stem}_composite.png", composite, bit_depth))
        written.append(write_png(out / f"{stem}_background.png", doc.background_colour, bit_depth))
        for layer, a in zip(layers, alphas):
            colour = apply_adjustments(layer.colour, layer.adjustments).full()
            written.append(write_rgba_png(out / f"{names[layer.id]}.png", colour, a, bit_depth))
            written.append(write_alpha_png(out / f"{names[layer.id]}_alpha.png", layer.alpha, bit_depth))
    if "tiff" in formats:
        if composite.shape[2] == 4:
            written.append(write_rgba_tiff(out / f"{stem}_composite.tif", composite[..., :3], composite[..., 3], bit_depth))
        else:
            written.append(write_rgba_tiff(out / f"{stem}_composite.tif", composite, None, bit_depth))
        for layer, a in zip(layers, alphas):
            colour = apply_adjustments(layer.colour, layer.adjustments).full()
            written.append(write_rgba_tiff(out / f"{names[layer.id]}.tif", colour, a, bit_depth))
    return written
