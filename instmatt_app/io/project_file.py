"""``.instmatt`` project files: a zip of JSON + PNG, never pickle.

Layout (format version 1.0)::

    project.json            format name, version, names, flags, adjustments, z-order, background
    image.png               the photo, 8-bit RGB
    alphas/<id>.png         each person's alpha, 16-bit greyscale (value / 65535)
    trimattes/<id>.png      optional tri-matte [α_t, α_r, α_b] as a 16-bit RGB PNG
    background.png          optional replacement background, 8-bit RGB

Colour layers are not stored: they are derived data and are re-estimated when needed. The undo
history is not stored either. ``load_project`` refuses files whose major version is newer than
this code understands (minor versions may add keys, which are ignored). Saving is atomic
(:mod:`instmatt_app.io.atomic`): a failed save leaves any previous file untouched.
"""
from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np

from instmatt_app.core.adjustments import Adjustments
from instmatt_app.core.document import BackgroundSettings, Document, PersonLayer
from instmatt_app.io.atomic import atomic_open

__all__ = ["save_project", "load_project", "ProjectFileError", "FORMAT_NAME", "FORMAT_VERSION", "SUFFIX"]

FORMAT_NAME = "instmatt-project"
FORMAT_VERSION = (1, 0)
SUFFIX = ".instmatt"


class ProjectFileError(ValueError):
    """A project file cannot be read (the message names the file)."""


def _png(arr: np.ndarray) -> bytes:
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", arr)
    if not ok:  # pragma: no cover - cv2 only fails on unsupported dtypes
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _unpng(data: bytes, what: str, path: Path) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ProjectFileError(f"{path}: {what} is not a readable PNG")
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return arr


def _to16(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0.0, 1.0) * 65535.0).astype(np.uint16)


def save_project(doc: Document, path: str | os.PathLike) -> Path:
    """Write ``doc`` to ``path`` (``.instmatt`` is appended when missing). Returns the path."""
    path = Path(path)
    if path.suffix != SUFFIX:
        path = path.with_name(path.name + SUFFIX)
    layers = []
    files: dict[str, bytes] = {"image.png": _png(doc.image)}
    for layer in doc.layers:
        entry = {
            "id": layer.id, "name": layer.name, "visible": layer.visible, "locked": layer.locked,
            "colour_tag": layer.colour_tag, "removed": layer.removed,
            "adjustments": layer.adjustments.to_dict(),
            "alpha": f"alphas/{layer.id}.png", "trimatte": None,
        }
        files[entry["alpha"]] = _png(_to16(layer.alpha))
        if layer.trimatte is not None:
            entry["trimatte"] = f"trimattes/{layer.id}.png"
            files[entry["trimatte"]] = _png(_to16(np.moveaxis(layer.trimatte, 0, -1)))
        layers.append(entry)
    bg = doc.background
    background = {"mode": bg.mode, "blur_radius": float(bg.blur_radius), "image": None}
    if bg.image is not None:
        background["image"] = "background.png"
        files["background.png"] = _png(np.ascontiguousarray(bg.image))
    meta = {
        "format": FORMAT_NAME,
        "version": f"{FORMAT_VERSION[0]}.{FORMAT_VERSION[1]}",
        "width": doc.shape[1], "height": doc.shape[0],
        "image": "image.png",
        "layers": layers,             # z-order, back to front
        "photo_order": list(doc.photo_order),
        "background": background,
    }
    with atomic_open(path, "wb") as fh:
        with zipfile.ZipFile(fh, "w") as zf:
            zf.writestr("project.json", json.dumps(meta, indent=2), compress_type=zipfile.ZIP_DEFLATED)
            for name, data in files.items():
                zf.writestr(name, data, compress_type=zipfile.ZIP_STORED)  # PNG is compressed already
    return path


def _parse_version(v, path: Path) -> tuple[int, int]:
    try:
        major, minor = (int(x) for x in str(v).split("."))
    except ValueError:
        raise ProjectFileError(f"{path}: invalid format version {v!r}") from None
    if major > FORMAT_VERSION[0]:
        raise ProjectFileError(
            f"{path} was written by a newer InstMatt Studio (project format {major}.{minor}); "
            f"this version reads format {FORMAT_VERSION[0]}.x - please update InstMatt Studio")
    return major, minor


def load_project(path: str | os.PathLike) -> Document:
    """Read a ``.instmatt`` file into a new :class:`Document` (empty history, colours lazy)."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise ProjectFileError(f"{path}: no such file") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ProjectFileError(f"{path} is not an InstMatt project (not a zip file: {exc})") from None
    with zf:
        names = set(zf.namelist())

        def read(name: str, what: str) -> bytes:
            if not isinstance(name, str) or name not in names:
                raise ProjectFileError(f"{path}: {what} ({name}) is missing from the project")
            return zf.read(name)

        try:
            meta = json.loads(read("project.json", "project.json"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ProjectFileError(f"{path}: project.json is not valid JSON ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise ProjectFileError(f"{path} is not an InstMatt project (format {meta.get('format')!r})"
                                   if isinstance(meta, dict) else f"{path}: project.json is not an object")
        _parse_version(meta.get("version"), path)
        try:
            image = _unpng(read(meta["image"], "the photo"), "the photo", path)
            if image.ndim != 3 or image.dtype != np.uint8:
                raise ProjectFileError(f"{path}: the photo must be 8-bit RGB")
            h, w = image.shape[:2]
            layers = []
            for entry in meta["layers"]:
                a = _unpng(read(entry["alpha"], f"alpha of layer {entry['id']}"), "an alpha", path)
                if a.shape != (h, w):
                    raise ProjectFileError(f"{path}: alpha of layer {entry['id']} is {a.shape}, photo is {(h, w)}")
                alpha = a.astype(np.float32) / (65535.0 if a.dtype == np.uint16 else 255.0)
                tm = None
                if entry.get("trimatte"):
                    t = _unpng(read(entry["trimatte"], f"tri-matte of layer {entry['id']}"), "a tri-matte", path)
                    if t.shape != (h, w, 3):
                        raise ProjectFileError(f"{path}: tri-matte of layer {entry['id']} has shape {t.shape}")
                    tm = np.moveaxis(t.astype(np.float32) / (65535.0 if t.dtype == np.uint16 else 255.0), -1, 0).copy()
                layers.append(PersonLayer(
                    id=int(entry["id"]), name=str(entry["name"]), alpha=alpha, trimatte=tm,
                    visible=bool(entry.get("visible", True)), locked=bool(entry.get("locked", False)),
                    colour_tag=str(entry.get("colour_tag", "#e6194b")),
                    adjustments=Adjustments.from_dict(entry.get("adjustments", {})),
                    removed=bool(entry.get("removed", False))))
            doc = Document(image, layers, photo_order=meta.get("photo_order"))
            bgm = meta.get("background") or {}
            bg_img = None
            if bgm.get("image"):
                bg_img = _unpng(read(bgm["image"], "the background image"), "the background image", path)
            doc.background = BackgroundSettings(bgm.get("mode", "original"), bg_img,
                                                float(bgm.get("blur_radius", 20.0)))
        except ProjectFileError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ProjectFileError(f"{path}: damaged project ({type(exc).__name__}: {exc})") from None
    return doc
