"""Writing a :class:`~instmatt_app.core.result.MattingResult` to disk (what ``instmatt matte`` writes).

Layout under ``out_dir`` for a photo called ``<stem>``:

* ``alphas/<stem>/NN.png``     8-bit alpha of person NN (HIM2K layout, rounded), ``png`` format
* ``cutouts/<stem>/NN.png``    RGBA cut-out of person NN (decontaminated colour), ``png`` format
* ``trimattes/<stem>/NN.png``  tri-matte as RGB = (α_t, α_r, α_b), ``png`` format
* ``<stem>.json``              boxes, scores, sources, order, timings, models, ``json`` format
* ``<stem>.psd``               layered PSD (a layer per person + background), ``psd`` format
* ``<stem>.tif``               multi-page TIFF, ``tiff`` format

Every file is written atomically.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from instmatt_app.core.result import MattingResult
from instmatt_app.io.atomic import atomic_open, atomic_write_bytes
from instmatt_app.io.png_export import quantise

__all__ = ["FORMATS", "write_result", "to_uint8", "write_png"]

FORMATS = ("png", "json", "psd", "tiff")


def to_uint8(a: np.ndarray) -> np.ndarray:
    """Float in [0, 1] → uint8 with rounding (the official code truncates; see --official-postprocess)."""
    return quantise(a, 8)


def write_png(path: Path, array: np.ndarray) -> Path:
    """Atomically write an (H, W), (H, W, 3) or (H, W, 4) uint8/uint16 array as PNG."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", compress_level=3)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _summary(result: MattingResult, stem: str) -> dict:
    return {
        "image": stem,
        "size": {"width": int(result.image.shape[1]), "height": int(result.image.shape[0])},
        "device": result.device,
        "refine": result.refine_mode,
        "order": [int(i) for i in result.order],
        "people": [{
            "index": inst.index,
            "file": f"{inst.index:02d}.png",
            "box": [round(float(v), 1) for v in inst.box],
            "score": round(float(inst.score), 4),
            "source": inst.source,
            "alpha_area": round(float(inst.alpha.sum()) / inst.alpha.size, 6),
        } for inst in result.instances],
        "timings_s": {k: round(float(v), 4) for k, v in result.timings.items()},
        "models": result.models,
        "warnings": result.extras.get("warnings", []),
    }


def write_result(result: MattingResult, out_dir: str | Path, stem: str, formats: set[str] | list[str] = FORMATS,
                 bit_depth: int = 8) -> list[Path]:
    """Write the files of ``formats`` (subset of :data:`FORMATS`) for one photo; returns their paths.

    The person colours (decontaminated: multi-layer colour estimation) are estimated once, through
    the document model, and shared by the cut-outs, the PSD and the TIFF.
    """
    out = Path(out_dir)
    formats = set(formats)
    unknown = formats - set(FORMATS)
    if unknown:
        raise ValueError(f"unknown output format(s) {', '.join(sorted(unknown))}; choose from {', '.join(FORMATS)}")
    written: list[Path] = []
    doc = None
    if formats & {"png", "psd", "tiff"}:
        from instmatt_app.core.document import Document

        doc = Document.from_result(result, share_alphas=True)    # only read here
        doc.ensure_colours()
    if "png" in formats:
        for inst, layer in zip(result.instances, doc.layers):
            nn = f"{inst.index:02d}.png"
            a8 = to_uint8(inst.alpha)
            written.append(write_png(out / "alphas" / stem / nn, a8))
            written.append(write_png(out / "cutouts" / stem / nn, np.dstack([layer.colour.map(to_uint8).full(), a8])))
            written.append(write_png(out / "trimattes" / stem / nn,
                                     np.ascontiguousarray(to_uint8(inst.trimatte).transpose(1, 2, 0))))
    if "json" in formats:
        path = out / f"{stem}.json"
        with atomic_open(path, "w") as fh:
            json.dump(_summary(result, stem), fh, indent=2)
        written.append(path)
    if "psd" in formats:
        from instmatt_app.io.psd_export import export_document_psd

        written.append(export_document_psd(doc, out / f"{stem}.psd", bit_depth=bit_depth))
    if "tiff" in formats:
        from instmatt_app.io.tiff_export import export_document_tiff

        written.append(export_document_tiff(doc, out / f"{stem}.tif", bit_depth=bit_depth))
    return written
