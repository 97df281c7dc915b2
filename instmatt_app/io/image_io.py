"""Loading photos of any common kind into the engine's canonical form.

:func:`load_image` returns an (H, W, 3) uint8 RGB array with the EXIF orientation applied, whatever
the file holds: grey, grey+alpha, palette, RGB, RGBA (the colour is kept and the alpha channel
dropped, reported in :class:`LoadedImage`), CMYK (converted through PIL's ICC-less conversion),
16-bit and float PNG/TIFF (scaled to 8 bit). Problems raise :class:`ImageLoadError` with a message that names
the file and says what is wrong.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageLoadError", "LoadedImage", "load_image", "load_image_info", "IMAGE_SUFFIXES",
           "MAX_PIXELS"]

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".webp"}
# Pillow's decompression-bomb guard is 89 MP; photographers have 100+ MP files. Refuse above this.
MAX_PIXELS = 250_000_000


class ImageLoadError(ValueError):
    """A photo could not be read; the message names the file and the reason."""


@dataclass
class LoadedImage:
    """A decoded photo.

    rgb: (H, W, 3) uint8 RGB, EXIF orientation applied.
    source_mode: the PIL mode of the file ("RGB", "L", "CMYK", "I;16", ...).
    had_alpha: the file carried an alpha channel (ignored: we matte the colour photo).
    exif_transposed: an EXIF orientation other than "normal" was applied.
    """

    rgb: np.ndarray
    path: Path
    source_mode: str
    had_alpha: bool
    exif_transposed: bool


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.uint16 or (arr.dtype.kind in "iu" and arr.max(initial=0) > 255):
        return np.clip(np.round(arr.astype(np.float32) / 257.0), 0, 255).astype(np.uint8)
    if arr.dtype.kind == "f":  # float images: [0, 1] when the maximum says so, else 0..255
        arr = np.nan_to_num(arr.astype(np.float32))
        if arr.size and float(arr.max()) <= 1.0 + 1e-6:
            arr = arr * 255.0
        return np.clip(np.round(arr), 0, 255).astype(np.uint8)
    return np.clip(arr, 0, 255).astype(np.uint8)


def load_image_info(path: str | os.PathLike) -> LoadedImage:
    """Decode ``path``; see the module docstring. Raises :class:`ImageLoadError`."""
    path = Path(path)
    if not path.exists():
        raise ImageLoadError(f"{path}: no such file")
    if path.is_dir():
        raise ImageLoadError(f"{path}: is a folder, not an image")
    if path.stat().st_size == 0:
        raise ImageLoadError(f"{path}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = MAX_PIXELS
            with Image.open(path) as im:
                im.load()
                exif_orientation = im.getexif().get(0x0112, 1)
                im = ImageOps.exif_transpose(im)
                mode = im.mode
                arr = _decode(im)
    except ImageLoadError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        if isinstance(exc, UnidentifiedImageError):
            raise ImageLoadError(f"{path}: not an image file this app can read "
                                 f"(supported: {', '.join(sorted(IMAGE_SUFFIXES))})") from None
        raise ImageLoadError(f"{path}: image too large (over {MAX_PIXELS // 1_000_000} megapixels)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageLoadError(f"{path}: the image is corrupt or truncated ({exc})") from None
    except MemoryError:
        raise ImageLoadError(f"{path}: not enough memory to decode this image") from None
    rgb, had_alpha = arr
    if rgb.shape[0] < 8 or rgb.shape[1] < 8:
        raise ImageLoadError(f"{path}: image is only {rgb.shape[1]}x{rgb.shape[0]} pixels")
    return LoadedImage(rgb=np.ascontiguousarray(rgb), path=path, source_mode=mode, had_alpha=had_alpha,
                       exif_transposed=exif_orientation not in (None, 1))


def _decode(im: Image.Image) -> tuple[np.ndarray, bool]:
    """PIL image of any mode -> ((H, W, 3) uint8 RGB, had_alpha)."""
    mode = im.mode
    had_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in im.info)
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        grey = _to_uint8(np.asarray(im))
        return np.repeat(grey[..., None], 3, axis=2), False
    if mode == "CMYK":
        return np.asarray(im.convert("RGB")), False
    if mode in ("RGB", "RGBA", "RGBX"):
        return np.asarray(im)[..., :3], had_alpha
    if mode in ("L", "LA", "1"):
        grey = np.asarray(im.convert("L"))
        return np.repeat(grey[..., None], 3, axis=2), had_alpha
    # 16-bit RGB(A) TIFF/PNG: Pillow may expose them as raw modes; go through numpy when possible
    arr = np.asarray(im)
    if arr.ndim == 3 and arr.shape[2] >= 3 and arr.dtype != np.uint8:
        return _to_uint8(arr[..., :3]), arr.shape[2] == 4
    return np.asarray(im.convert("RGB")), had_alpha


def load_image(path: str | os.PathLike) -> np.ndarray:
    """(H, W, 3) uint8 RGB of the photo at ``path`` (EXIF orientation applied)."""
    return load_image_info(path).rgb
