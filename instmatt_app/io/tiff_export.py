"""TIFF export with a real alpha channel (ExtraSamples = unassociated alpha), 8 or 16 bit.

Written with ``tifffile`` (zlib-compressed, one page per image, optionally several pages); when
tifffile is not installed, 8-bit files fall back to Pillow and 16-bit raises a clear error.
OpenCV is not used here because its TIFF encoder leaves the 4th channel's meaning unspecified.
Every file is written atomically (:mod:`instmatt_app.io.atomic`).
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from instmatt_app.io.atomic import atomic_save
from instmatt_app.io.png_export import quantise

__all__ = ["write_rgba_tiff", "write_tiff_pages", "export_result_tiff"]


def write_tiff_pages(path: str | os.PathLike, pages: Sequence[np.ndarray], bit_depth: int = 8,
                     names: Sequence[str] | None = None) -> Path:
    """Write float32 [0, 1] pages, each (H, W, 3) RGB or (H, W, 4) RGBA (straight alpha), to one
    TIFF. names: optional page names (TIFF PageName tag). Returns the path."""
    qs = [quantise(p, bit_depth) for p in pages]
    if not qs:
        raise ValueError("a TIFF needs at least one page")
    try:
        import tifffile
    except ImportError:
        tifffile = None
    if tifffile is not None:
        def writer(fh):
            buf = io.BytesIO()  # tifffile wants a named file; the atomic temp file has none
            with tifffile.TiffWriter(buf) as tw:
                for i, q in enumerate(qs):
                    extra = {"extrasamples": ["unassalpha"]} if q.shape[2] == 4 else {}
                    meta = {"PageName": names[i]} if names else None
                    tw.write(q, photometric="rgb", compression="zlib", metadata=None,
                             extratags=[(285, "s", 0, str(meta["PageName"]), False)] if meta else (),
                             **extra)
            fh.write(buf.getbuffer())
        atomic_save(path, writer)
        return Path(path)
    if bit_depth != 8:
        raise RuntimeError("16-bit TIFF export needs the 'tifffile' package (pip install tifffile)")
    from PIL import Image
    ims = [Image.fromarray(q, "RGBA" if q.shape[2] == 4 else "RGB") for q in qs]
    atomic_save(path, lambda fh: ims[0].save(fh, format="TIFF", compression="tiff_adobe_deflate",
                                             save_all=True, append_images=ims[1:]))
    return Path(path)


def write_rgba_tiff(path: str | os.PathLike, rgb: np.ndarray, alpha: np.ndarray | None = None,
                    bit_depth: int = 8) -> Path:
    """One-page TIFF of colour (H, W, 3) float32 [0, 1] with an optional alpha (H, W)."""
    page = rgb if alpha is None else np.dstack([rgb, alpha])
    return write_tiff_pages(path, [page], bit_depth)


def export_result_tiff(result, path: str | os.PathLike, *, bit_depth: int = 8) -> Path:
    """Multi-page TIFF of a MattingResult: page 1 the composite (opaque), then one RGBA page per
    person (decontaminated colour + stacking alpha), in list order."""
    from instmatt_app.core.document import Document
    doc = Document.from_result(result)
    return export_document_tiff(doc, path, bit_depth=bit_depth)


def export_document_tiff(doc, path: str | os.PathLike, *, bit_depth: int = 8,
                         people: Sequence[int] | None = None) -> Path:
    """Multi-page TIFF of a Document: the composite, then one RGBA page per exported person."""
    from instmatt_app.core.adjustments import apply_adjustments
    doc.ensure_colours()
    layers = [l for l in doc.layers if not l.removed and (people is None or l.id in people)]
    alphas = doc.layer_alphas([l.id for l in layers])
    pages = [doc.composite_rgba()]
    pages += [np.dstack([apply_adjustments(l.colour, l.adjustments).full(), a]) for l, a in zip(layers, alphas)]
    return write_tiff_pages(path, pages, bit_depth, names=["Composite"] + [l.name for l in layers])
