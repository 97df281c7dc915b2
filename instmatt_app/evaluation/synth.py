"""HIM2K-style synthetic multi-person composites (InstMatt, CVPR 2022, §4 "HIM2K", Eq. 13-14).

Real single-person cut-outs (photo + alpha) are pasted back to front over a person-free
background, ``I_i = alpha_i F_i + (1 - alpha_i) I_{i-1}`` (Eq. 13, ``I_0 = B``); the ground truth of
person i is its visible share ``alpha'_i = alpha_i prod_{k>i} (1 - alpha_k)`` (Eq. 14).

* Foreground colour F = ``pymatting.estimate_foreground_ml(photo, alpha)`` on the cut-out's alpha
  box (plus a margin), at the largest size a layer can be pasted at (never above the photo's own
  resolution); cached per cut-out for the life of the :class:`CutoutLibrary`. A precomputed
  foreground ``fg/<subset>/<name>.(png|jpg)`` beside ``images/`` (RGB, the photo's size; written by
  ``tools/build_training_pack.py``) is used instead of estimating it.
* Each pasted alpha is resized (INTER_AREA when shrinking, INTER_LINEAR when enlarging) and
  rounded to 8 bit before it is used, so the saved 8-bit GT agrees with the image.
* Layout (eye-level scene): persons cut by their photo's bottom edge ("front") stand in front with
  the cut at or below the frame bottom, heads roughly level, later layers slightly larger and
  lower; persons whose feet are visible ("back") stand on a ground plane behind them (contact
  line from a horizon and a 1.4-1.7 m camera height); a person cut at a side of its photo touches
  that side of the frame. Cut-outs cut by two opposite borders, or at the top, are not used.
* A layout is kept only if every person overlaps another, has <= ``max_occlusion`` of its in-frame
  alpha hidden, >= 50 % of its alpha in the frame and >= 1 % of the image visible, and at least one
  person is >= 5 % occluded.

Python API for on-the-fly training data: ``gen = SyntheticGenerator(CutoutLibrary(dir),
BackgroundLibrary(dir)); sample = gen.sample(rng)`` returns arrays (:class:`SyntheticSample`).
:func:`generate_dataset` writes the HIM2K layout (``images/comp/<name>.jpg``,
``images_png/comp/<name>.png``, ``alphas/comp/<name>/NN.png``, ``composites.json``).
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from instmatt_app.core.compositing import composite_sequence, visible_alphas
from instmatt_app.evaluation.imq import IMQInputError, read_alpha_raw
from instmatt_app.io.image_io import IMAGE_SUFFIXES, ImageLoadError, load_image

__all__ = [
    "SynthInputError",
    "Cutout",
    "CutoutLibrary",
    "BackgroundLibrary",
    "SynthSettings",
    "SyntheticSample",
    "SyntheticGenerator",
    "generate_dataset",
]

SIDES = ("top", "bottom", "left", "right")


class SynthInputError(ValueError):
    """Bad generator input (missing folder, no usable cut-out or background, unreadable file);
    the message names the file or folder."""


# --------------------------------------------------------------------------- reading

def _read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, EXIF orientation applied (:func:`instmatt_app.io.image_io.load_image`)."""
    try:
        return load_image(path)
    except ImageLoadError as exc:
        raise SynthInputError(str(exc)) from None


def _read_grey(path: Path) -> np.ndarray:
    """(H, W) uint8 alpha, read as strictly as IMQ reads mattes (16-bit is reduced to 8)."""
    try:
        a = read_alpha_raw(path)
    except IMQInputError as exc:
        raise SynthInputError(str(exc)) from None
    return a if a.dtype == np.uint8 else np.round(a / 257.0).astype(np.uint8)


def _resize(a: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """cv2 resize, INTER_AREA when shrinking, INTER_LINEAR when enlarging."""
    import cv2

    w, h = size_wh
    shrink = w * h < a.shape[0] * a.shape[1]
    return cv2.resize(a, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


# --------------------------------------------------------------------------- cut-outs

@dataclass
class Cutout:
    """One single-person cut-out.

    box: (x0, y0, x1, y1) of alpha > 0 in the photo (x1/y1 exclusive); cut: the photo borders the
    person is cut by (alpha > 0.5 along >= 2 % of that border); usable: False when cut by two
    opposite borders or by the top one.
    """

    name: str
    image_path: Path
    alpha_path: Path
    size_wh: tuple[int, int]
    box: tuple[int, int, int, int]
    cut: dict[str, bool]
    fg_path: Path | None = None  # precomputed foreground colour (RGB, the photo's size), if any

    @property
    def usable(self) -> bool:
        c = self.cut
        return not (c["top"] or (c["left"] and c["right"]))

    @property
    def group(self) -> str:
        """"front" (cut by the bottom border: a portrait) or "back" (feet visible)."""
        return "front" if self.cut["bottom"] else "back"


def _cut_sides(alpha: np.ndarray) -> dict[str, bool]:
    m = alpha > 127
    h, w = m.shape
    lines = {"top": (m[0], w), "bottom": (m[-1], w), "left": (m[:, 0], h), "right": (m[:, -1], h)}
    return {k: bool(np.count_nonzero(v) >= max(10, 0.02 * n)) for k, (v, n) in lines.items()}


@dataclass
class _Prepared:
    alpha: np.ndarray  # (h, w) uint8, alpha box at the photo's resolution
    fg: np.ndarray  # (hw, ww, 3) float32 [0,1], foreground colour of the box at working scale
    work_scale: float


class CutoutLibrary:
    """Single-person cut-outs in HIM2K layout: ``images/<subset>/<name>.<ext>`` with
    ``alphas/<subset>/<name>/<one file>.png`` (folders with several alpha files are skipped).

    max_paste_height: the largest pasted alpha-box height in px; the foreground is estimated at
    that size (or the photo's, if smaller). Foreground estimates are cached in memory.

    Precomputed foreground: when ``fg/<subset>/<name>.png`` (or ``.jpg``) exists beside
    ``images/`` — (H, W, 3) 8-bit RGB colour F, the same size as the photo (F =
    ``estimate_foreground_ml(photo, alpha)`` at that resolution) — :meth:`prepared` crops and
    resizes it instead of running the (about 1 s per cut-out) estimate.
    """

    def __init__(self, root: str | os.PathLike, max_paste_height: int = 1152):
        self.root = Path(root)
        if not self.root.is_dir():
            raise SynthInputError(f"{self.root}: cut-out folder does not exist")
        images_dir, alphas_dir = self.root / "images", self.root / "alphas"
        if not images_dir.is_dir() or not alphas_dir.is_dir():
            raise SynthInputError(f"{self.root}: expected images/<subset>/<name>.jpg and "
                                  "alphas/<subset>/<name>/00.png (HIM2K layout)")
        self.max_paste_height = int(max_paste_height)
        self.cutouts: list[Cutout] = []
        self.skipped: list[str] = []
        self._cache: dict[str, _Prepared] = {}
        for img in sorted(images_dir.glob("*/*")):
            if img.suffix.lower() not in IMAGE_SUFFIXES or img.name.startswith("."):
                continue
            afolder = alphas_dir / img.parent.name / img.stem
            afiles = sorted(p for p in afolder.glob("*.png")) if afolder.is_dir() else []
            if len(afiles) != 1:
                self.skipped.append(f"{img.stem}: {len(afiles)} alpha files in {afolder}")
                continue
            alpha = _read_grey(afiles[0])
            ys, xs = np.nonzero(alpha)
            if ys.size == 0:
                self.skipped.append(f"{img.stem}: empty alpha {afiles[0]}")
                continue
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            fg_path = next((p for p in (self.root / "fg" / img.parent.name / f"{img.stem}{ext}"
                                        for ext in (".png", ".jpg", ".jpeg")) if p.is_file()), None)
            c = Cutout(img.stem, img, afiles[0], (alpha.shape[1], alpha.shape[0]), box,
                       _cut_sides(alpha), fg_path)
            if not c.usable:
                self.skipped.append(f"{img.stem}: cut by its photo's " +
                                    " and ".join(k for k, v in c.cut.items() if v) + " border(s)")
                continue
            self.cutouts.append(c)
        if not self.cutouts:
            raise SynthInputError(f"{self.root}: no usable single-person cut-out found"
                                  + (f" (skipped: {'; '.join(self.skipped)})" if self.skipped else ""))

    def prepared(self, c: Cutout) -> _Prepared:
        """Alpha box and foreground colour of one cut-out (estimated once, then cached)."""
        key = f"{c.name}@{self.max_paste_height}"
        if key in self._cache:
            return self._cache[key]
        if c.fg_path is not None:
            prep = self._prepared_from_file(c)
            self._cache[key] = prep
            return prep
        import cv2
        from pymatting import estimate_foreground_ml

        photo = _read_rgb(c.image_path)
        alpha = _read_grey(c.alpha_path)
        if photo.shape[:2] != alpha.shape:
            raise SynthInputError(f"{c.alpha_path}: alpha is {alpha.shape[1]}x{alpha.shape[0]} but "
                                  f"the photo {c.image_path} is {photo.shape[1]}x{photo.shape[0]}")
        x0, y0, x1, y1 = c.box
        h, w = alpha.shape
        scale = min(1.0, self.max_paste_height / (y1 - y0))
        m = int(math.ceil(16 / scale))  # context margin around the alpha box
        X0, Y0, X1, Y1 = max(0, x0 - m), max(0, y0 - m), min(w, x1 + m), min(h, y1 + m)
        ph, pa = photo[Y0:Y1, X0:X1], alpha[Y0:Y1, X0:X1]
        if scale < 1.0:
            size = (max(1, round((X1 - X0) * scale)), max(1, round((Y1 - Y0) * scale)))
            ph = cv2.resize(ph, size, interpolation=cv2.INTER_AREA)
            pa = cv2.resize(pa, size, interpolation=cv2.INTER_AREA)
        fg = estimate_foreground_ml(ph.astype(np.float64) / 255.0, pa.astype(np.float64) / 255.0)
        fg = np.clip(fg, 0.0, 1.0).astype(np.float32)
        # crop the estimate to the alpha box (in working-scale coordinates)
        sx, sy = fg.shape[1] / (X1 - X0), fg.shape[0] / (Y1 - Y0)
        fx0, fy0 = int(round((x0 - X0) * sx)), int(round((y0 - Y0) * sy))
        fx1 = max(fx0 + 1, int(round((x1 - X0) * sx)))
        fy1 = max(fy0 + 1, int(round((y1 - Y0) * sy)))
        prep = _Prepared(alpha[y0:y1, x0:x1].copy(), np.ascontiguousarray(fg[fy0:fy1, fx0:fx1]), scale)
        self._cache[key] = prep
        return prep

    def _prepared_from_file(self, c: Cutout) -> _Prepared:
        """Alpha box and the precomputed foreground ``c.fg_path`` cropped to it, reduced
        (INTER_AREA) to the working scale."""
        import cv2

        fg = _read_rgb(c.fg_path)
        alpha = _read_grey(c.alpha_path)
        if fg.shape[:2] != alpha.shape:
            raise SynthInputError(f"{c.fg_path}: foreground is {fg.shape[1]}x{fg.shape[0]} but the "
                                  f"alpha {c.alpha_path} is {alpha.shape[1]}x{alpha.shape[0]}")
        x0, y0, x1, y1 = c.box
        scale = min(1.0, self.max_paste_height / (y1 - y0))
        box = fg[y0:y1, x0:x1]
        if scale < 1.0:
            size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
            box = cv2.resize(box, size, interpolation=cv2.INTER_AREA)
        f32 = box.astype(np.float32)
        f32 *= np.float32(1.0 / 255.0)
        return _Prepared(alpha[y0:y1, x0:x1].copy(), f32, scale)


class BackgroundLibrary:
    """Person-free background photos: the image files of a folder.

    A ``manifest.csv`` in the folder or its parent with columns ``file`` and ``scene_backdrop`` is
    honoured: only rows with ``scene_backdrop=yes`` are used (matched by file name).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        if not self.root.is_dir():
            raise SynthInputError(f"{self.root}: background folder does not exist")
        files = sorted(p for p in self.root.iterdir()
                       if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        self.manifest: Path | None = None
        for cand in (self.root / "manifest.csv", self.root.parent / "manifest.csv"):
            if cand.is_file():
                with cand.open(newline="", encoding="utf-8") as fh:
                    rows = list(csv.DictReader(fh))
                if rows and "scene_backdrop" in rows[0] and "file" in rows[0]:
                    keep = {Path(r["file"]).name for r in rows
                            if r["scene_backdrop"].strip().lower() in ("yes", "true", "1")}
                    files = [p for p in files if p.name in keep]
                    self.manifest = cand
                    break
        if not files:
            raise SynthInputError(f"{self.root}: no background images found"
                                  + (f" with scene_backdrop=yes in {self.manifest}" if self.manifest else ""))
        self.files = files

    def load(self, path: Path, long_side: int) -> np.ndarray:
        """The background resized (Lanczos) to the given long side: (H, W, 3) uint8."""
        from PIL import Image

        rgb = _read_rgb(path)
        h, w = rgb.shape[:2]
        f = long_side / max(h, w)
        size = (max(1, round(w * f)), max(1, round(h * f)))
        return np.asarray(Image.fromarray(rgb).resize(size, Image.LANCZOS))


# --------------------------------------------------------------------------- generator

@dataclass
class SynthSettings:
    """Generator settings (recorded in composites.json)."""

    min_people: int = 2
    max_people: int = 5
    max_occlusion: float = 0.6
    min_in_frame: float = 0.5
    min_visible_area: float = 0.01
    min_max_occlusion: float = 0.05
    long_side: tuple[int, int] = (1024, 1280)
    scale_range: tuple[float, float] = (0.35, 0.90)
    check_long_side: int = 400  # layouts are checked at this resolution, then again at full size


@dataclass
class SyntheticSample:
    """One composite. Layer i = composite order (0 = back-most).

    image: (H, W, 3) float32 [0, 1], Eq. 13 before 8-bit rounding; image_u8: its rounding.
    alphas: (n, H, W) float32 visible alphas alpha'_i (Eq. 14) — the ground truth.
    pasted_alphas: (n, H, W) float32 alpha_i as pasted (8-bit values).
    foregrounds: (n, H, W, 3) float32 [0, 1] colour F_i (0 outside the pasted box).
    background: (H, W, 3) float32 [0, 1] (8-bit values).
    order: layer indices back to front (always 0..n-1: arrays are already in composite order).
    layers: per-layer parameters (person, flip, scale, offsets, occlusion, ...); meta: the rest.
    """

    image: np.ndarray
    image_u8: np.ndarray
    alphas: np.ndarray
    pasted_alphas: np.ndarray
    foregrounds: np.ndarray
    background: np.ndarray
    order: list[int]
    layers: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Layer:
    cutout: Cutout
    flip: bool
    s: float  # alpha-box height / canvas height
    x0: int = 0
    y0: int = 0
    pw: int = 1
    ph: int = 1
    depth: int = 0
    ltr: int = 0
    ground: float | None = None

    def cut(self) -> dict[str, bool]:
        c = dict(self.cutout.cut)
        if self.flip:
            c["left"], c["right"] = c["right"], c["left"]
        return c


class SyntheticGenerator:
    """Draws layouts and renders composites (see the module docstring)."""

    def __init__(self, cutouts: CutoutLibrary, backgrounds: BackgroundLibrary,
                 settings: SynthSettings | None = None):
        self.cutouts = cutouts
        self.backgrounds = backgrounds
        self.settings = settings or SynthSettings()
        st = self.settings
        if not 1 <= st.min_people <= st.max_people:
            raise SynthInputError(f"need 1 <= min_people <= max_people (got {st.min_people}, {st.max_people})")
        if len(cutouts.cutouts) < st.min_people:
            raise SynthInputError(f"{cutouts.root}: {len(cutouts.cutouts)} usable cut-out(s), fewer than "
                                  f"--min-people {st.min_people}")
        if not 0.0 < st.max_occlusion <= 1.0:
            raise SynthInputError(f"max_occlusion must be in (0, 1], got {st.max_occlusion}")
        if not 16 <= st.long_side[0] <= st.long_side[1]:
            raise SynthInputError(f"long side range must satisfy 16 <= lo <= hi, got {st.long_side}")
        cutouts.max_paste_height = max(16, int(math.ceil(st.scale_range[1] * st.long_side[1])))
        self._previews: dict[str, np.ndarray] = {}

    # ---------------------------------------------------------------- layout
    def _propose(self, rng: np.random.Generator, people: Sequence[Cutout], H: int, W: int,
                 shrink: float) -> tuple[list[_Layer], dict] | None:
        st = self.settings
        lo_s = st.scale_range[0]

        def clamp(s: float) -> float:
            return float(min(st.scale_range[1], max(lo_s, s)))

        layers = [_Layer(c, bool(rng.random() < 0.5), 0.0) for c in people]
        # side cuts: at most one person touching each side; flip to resolve, else fail
        for _ in range(4):
            lefts = [L for L in layers if L.cut()["left"]]
            rights = [L for L in layers if L.cut()["right"]]
            if len(lefts) <= 1 and len(rights) <= 1:
                break
            (lefts if len(lefts) > 1 else rights)[-1].flip ^= True
        else:
            return None
        if sum(L.cut()["left"] for L in layers) > 1 or sum(L.cut()["right"] for L in layers) > 1:
            return None
        front = [L for L in layers if L.cutout.group == "front"]
        back = [L for L in layers if L.cutout.group == "back"]
        rng.shuffle(front)
        # front: heads roughly level, later layers slightly larger and lower
        s_base = rng.uniform(0.55, 0.78) * shrink
        step = rng.uniform(0.03, 0.08)
        for r, L in enumerate(front):
            L.s = clamp(s_base * (1 + step * r) * rng.uniform(0.97, 1.03))
        meta: dict[str, Any] = {"horizon_y": None, "camera_height_m": None}
        for r, L in enumerate(front):
            bx0, by0, bx1, by1 = L.cutout.box
            f = L.s * H / (by1 - by0)
            L.pw, L.ph = max(1, round((bx1 - bx0) * f)), max(1, round((by1 - by0) * f))
            drop = rng.uniform(0.0, 0.15) * L.ph * (r / max(1, len(front) - 1))
            L.y0 = int(round(H + drop - L.ph))
        if back:
            if front:
                horizon = float(np.mean([L.y0 for L in front])) + rng.uniform(0.0, 0.08) * H
            else:
                horizon = rng.uniform(0.25, 0.5) * H
            cam = rng.uniform(1.4, 1.7)
            meta.update(horizon_y=round(horizon, 1), camera_height_m=round(cam, 3))
            for L in back:
                bx0, by0, bx1, by1 = L.cutout.box
                s = rng.uniform(0.35, 0.65) * shrink
                s_cap = max(0.0, (1.06 * H - horizon) * 1.7 / cam) / H  # contact <= 1.06 H
                L.s = clamp(min(s, s_cap))
                f = L.s * H / (by1 - by0)
                L.pw, L.ph = max(1, round((bx1 - bx0) * f)), max(1, round((by1 - by0) * f))
                L.ground = horizon + L.ph * cam / 1.7
                L.y0 = int(round(L.ground - L.ph))
            back.sort(key=lambda L: L.ground)  # farther (higher contact line) first
        ordered = back + front
        for d, L in enumerate(ordered):
            L.depth = d
        # left to right: a person cut at the left (right) of its photo is leftmost (rightmost)
        mid = [L for L in layers if not (L.cut()["left"] or L.cut()["right"])]
        rng.shuffle(mid)
        ltr = [L for L in layers if L.cut()["left"]] + mid + [L for L in layers if L.cut()["right"]]
        centres = [0.0]
        for a, b in zip(ltr, ltr[1:]):
            centres.append(centres[-1] + rng.uniform(0.45, 0.90) * 0.5 * (a.pw + b.pw))
        shift = rng.uniform(0.3, 0.7) * W - 0.5 * (centres[0] + centres[-1])
        for i, (L, cx) in enumerate(zip(ltr, centres)):
            L.ltr = i
            L.x0 = int(round(cx + shift - L.pw / 2))
            if L.cut()["left"]:
                L.x0 = 0
            elif L.cut()["right"]:
                L.x0 = W - L.pw
        return ordered, meta

    # ---------------------------------------------------------------- rendering
    def _layer_arrays(self, L: _Layer, f_canvas: float, with_fg: bool):
        """Pasted alpha (float32, 8-bit values) and colour of a layer at canvas scale f_canvas."""
        prep = self.cutouts.prepared(L.cutout) if with_fg else None
        alpha = prep.alpha if prep is not None else self._alpha_box(L.cutout)
        size = (max(1, round(L.pw * f_canvas)), max(1, round(L.ph * f_canvas)))
        a = _resize(alpha, size).astype(np.float32)  # uint8 in, rounded uint8 out
        a = np.round(a) / np.float32(255.0)
        fg = None
        if prep is not None:
            fg = np.clip(_resize(prep.fg, size), 0.0, 1.0)
        if L.flip:
            a = a[:, ::-1]
            fg = fg[:, ::-1] if fg is not None else None
        return a, fg

    def _alpha_box(self, c: Cutout) -> np.ndarray:
        """The alpha box reduced to <= 512 px high (INTER_AREA), for the quick layout checks."""
        if c.name not in self._previews:
            x0, y0, x1, y1 = c.box
            a = _read_grey(c.alpha_path)[y0:y1, x0:x1]
            f = min(1.0, 512 / a.shape[0])
            if f < 1.0:
                a = _resize(a, (max(1, round(a.shape[1] * f)), max(1, round(a.shape[0] * f))))
            self._previews[c.name] = np.ascontiguousarray(a)
        return self._previews[c.name]

    def _render_alphas(self, layers: Sequence[_Layer], H: int, W: int, f: float, with_fg: bool):
        h, w = max(1, round(H * f)), max(1, round(W * f))
        n = len(layers)
        alphas = np.zeros((n, h, w), np.float32)
        fgs = np.zeros((n, h, w, 3), np.float32) if with_fg else None
        full_sums = np.zeros(n)
        for i, L in enumerate(layers):
            a, fg = self._layer_arrays(L, f, with_fg)
            full_sums[i] = float(a.sum())
            x0, y0 = int(round(L.x0 * f)), int(round(L.y0 * f))
            ys, xs = slice(max(0, y0), min(h, y0 + a.shape[0])), slice(max(0, x0), min(w, x0 + a.shape[1]))
            if ys.start >= ys.stop or xs.start >= xs.stop:
                continue
            src = (slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0))
            alphas[i, ys, xs] = a[src]
            if with_fg:
                fgs[i, ys, xs] = fg[src]
        return alphas, fgs, full_sums

    def _check(self, alphas: np.ndarray, full_sums: np.ndarray) -> tuple[bool, list[dict]]:
        st = self.settings
        n, h, w = alphas.shape
        vis = visible_alphas(alphas)
        supp = alphas > 0.1
        stats, ok = [], True
        for i in range(n):
            inside = float(alphas[i].sum())
            in_frame = inside / full_sums[i] if full_sums[i] > 0 else 0.0
            occluded = 1.0 - float(vis[i].sum()) / inside if inside > 0 else 1.0
            visible = float(vis[i].sum()) / (h * w)
            overlaps = any(np.any(supp[i] & supp[j]) for j in range(n) if j != i)
            stats.append({"in_frame_fraction": in_frame, "occluded_fraction": occluded,
                          "visible_area_fraction_of_image": visible, "overlaps": overlaps})
            ok &= (in_frame >= st.min_in_frame and occluded <= st.max_occlusion
                   and visible >= st.min_visible_area and (overlaps or n == 1))
        if n > 1:
            ok &= max(s["occluded_fraction"] for s in stats) >= st.min_max_occlusion
        return bool(ok), stats

    def sample(self, rng: np.random.Generator | int | None = None, background: Path | None = None,
               ) -> SyntheticSample:
        """Draw and render one composite (see :class:`SyntheticSample`).

        rng: a numpy Generator or seed. background: a file of the background library to use
        (default: random). Raises :class:`SynthInputError` when no valid layout is found.
        """
        rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        st = self.settings
        pool = list(self.cutouts.cutouts)
        bgs = [background] if background is not None else []
        for bg_try in range(5):
            bg_path = bgs[bg_try] if bg_try < len(bgs) else \
                self.backgrounds.files[int(rng.integers(len(self.backgrounds.files)))]
            long_side = int(rng.integers(st.long_side[0], st.long_side[1] + 1))
            bg_u8 = self.backgrounds.load(bg_path, long_side)
            H, W = bg_u8.shape[:2]
            f_chk = min(1.0, st.check_long_side / max(H, W))
            for draw in range(3):
                n = int(rng.integers(st.min_people, min(st.max_people, len(pool)) + 1))
                people = [pool[i] for i in rng.choice(len(pool), size=n, replace=False)]
                for attempt in range(400):
                    shrink = 0.9 ** (attempt // 100)
                    proposal = self._propose(rng, people, H, W, shrink)
                    if proposal is None:
                        continue
                    layers, meta = proposal
                    a_small, _, sums_small = self._render_alphas(layers, H, W, f_chk, False)
                    if not self._check(a_small, sums_small)[0]:
                        continue
                    alphas, fgs, sums = self._render_alphas(layers, H, W, 1.0, True)
                    ok, stats = self._check(alphas, sums)
                    if not ok:
                        continue
                    meta.update(layout_tries=attempt + 1 + 400 * draw, person_shrink=round(shrink, 4),
                                background_file=bg_path, canvas_long_side=long_side)
                    return self._finish(bg_u8, layers, alphas, fgs, stats, meta)
        raise SynthInputError("no valid layout found after 5 backgrounds x 3 draws x 400 tries; "
                              "loosen --max-occlusion or --min-people")

    def _finish(self, bg_u8, layers, alphas, fgs, stats, meta) -> SyntheticSample:
        background = bg_u8.astype(np.float32) / np.float32(255.0)
        image = composite_sequence(background, alphas, fgs)
        image_u8 = np.clip(np.round(image * 255.0), 0, 255).astype(np.uint8)
        vis = visible_alphas(alphas)
        H, W = bg_u8.shape[:2]
        recs = []
        for i, (L, s) in enumerate(zip(layers, stats)):
            bx0, by0, bx1, by1 = L.cutout.box
            def box_of(m):
                ys, xs = np.nonzero(m)
                return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] if ys.size else None
            cut = L.cut()
            recs.append({
                "index": i,
                "person": L.cutout.name,
                "flip": L.flip,
                "scale_of_canvas_height": round(L.s, 4),
                "resize_factor": round(L.ph / (by1 - by0), 5),
                "source_crop_xyxy": [bx0, by0, bx1, by1],
                "paste_offset_xy": [L.x0, L.y0],
                "pasted_size_wh": [L.pw, L.ph],
                "cut_at_frame": {k: bool(cut[k]) and (
                    (k == "bottom" and L.y0 + L.ph >= H) or (k == "top" and L.y0 <= 0) or
                    (k == "left" and L.x0 <= 0) or (k == "right" and L.x0 + L.pw >= W)) for k in SIDES},
                "depth_rank": L.depth,
                "left_to_right_rank": L.ltr,
                "group": L.cutout.group,
                "ground_contact_y": None if L.ground is None else round(L.ground, 1),
                "bbox_alpha_in_frame_xyxy": box_of(alphas[i] > 0),
                "bbox_visible_xyxy": box_of(vis[i] >= 0.5 / 255),
                "in_frame_fraction": round(s["in_frame_fraction"], 4),
                "occluded_fraction": round(s["occluded_fraction"], 4),
                "visible_area_fraction_of_image": round(s["visible_area_fraction_of_image"], 5),
            })
        return SyntheticSample(image=image, image_u8=image_u8, alphas=vis, pasted_alphas=alphas,
                               foregrounds=fgs, background=background, order=list(range(len(layers))),
                               layers=recs, meta=meta)


# --------------------------------------------------------------------------- data set writer

def _png_bytes(a: np.ndarray) -> bytes:
    import cv2

    arr = a if a.ndim == 2 else a[..., ::-1]  # RGB -> BGR for OpenCV
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(arr))
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def _jpeg_bytes(rgb: np.ndarray, quality: int = 95) -> bytes:
    from PIL import Image

    bio = io.BytesIO()
    Image.fromarray(rgb).save(bio, format="JPEG", quality=quality, subsampling=2)
    return bio.getvalue()


def generate_dataset(cutouts_dir: str | os.PathLike | CutoutLibrary,
                     backgrounds_dir: str | os.PathLike | BackgroundLibrary,
                     out_dir: str | os.PathLike, n: int, seed: int,
                     settings: SynthSettings | None = None, subset: str = "comp", prefix: str = "syn",
                     progress: Callable[[int, int], None] | None = None) -> dict:
    """Write ``n`` composites in HIM2K layout under ``out_dir`` and return the composites.json dict.

    Image i is drawn from ``numpy.random.default_rng([seed, i])``, so the same seed reproduces the
    same files (and image i does not depend on n); backgrounds are used in a seed-shuffled cycle
    (each at most once until all are used). Every file is written atomically.
    cutouts_dir / backgrounds_dir may be ready libraries (reuses their foreground cache).
    """
    from instmatt_app.io.atomic import atomic_open, atomic_write_bytes

    settings = settings or SynthSettings()
    if n < 1:
        raise SynthInputError(f"-n must be >= 1 (got {n})")
    cut = cutouts_dir if isinstance(cutouts_dir, CutoutLibrary) else CutoutLibrary(cutouts_dir)
    bgs = backgrounds_dir if isinstance(backgrounds_dir, BackgroundLibrary) else BackgroundLibrary(backgrounds_dir)
    gen = SyntheticGenerator(cut, bgs, settings)
    out = Path(out_dir)
    bg_cycle = np.random.default_rng([seed, 1 << 30]).permutation(len(bgs.files))
    records = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        bg = bgs.files[int(bg_cycle[i % len(bg_cycle)])]
        s = gen.sample(rng, background=bg)
        name = f"{prefix}_{i:04d}"
        rel_jpg = f"images/{subset}/{name}.jpg"
        rel_png = f"images_png/{subset}/{name}.png"
        atomic_write_bytes(out / rel_jpg, _jpeg_bytes(s.image_u8))
        atomic_write_bytes(out / rel_png, _png_bytes(s.image_u8))
        for k, a in enumerate(s.alphas):
            atomic_write_bytes(out / f"alphas/{subset}/{name}/{k:02d}.png",
                               _png_bytes(np.clip(np.round(a * 255.0), 0, 255).astype(np.uint8)))
        H, W = s.image_u8.shape[:2]
        bgf = Path(s.meta["background_file"])
        layers = []
        for rec in s.layers:
            c = next(c for c in cut.cutouts if c.name == rec["person"])
            layers.append({**rec, "alpha_file": f"alphas/{subset}/{name}/{rec['index']:02d}.png",
                           "person_files": {"image": str(c.image_path.relative_to(cut.root)),
                                            "alpha": str(c.alpha_path.relative_to(cut.root))}})
        records.append({
            "name": name, "image": rel_jpg, "image_png": rel_png, "width": W, "height": H,
            "n_instances": len(s.layers),
            "background": {"file": bgf.name, "original_size_wh": None, "resize": "PIL LANCZOS to canvas"},
            "layout_tries": s.meta["layout_tries"], "person_shrink": s.meta["person_shrink"],
            "horizon_y": s.meta["horizon_y"], "camera_height_m": s.meta["camera_height_m"],
            "order_back_to_front": [rec["person"] for rec in s.layers],
            "layers_back_to_front": layers,
        })
        if progress:
            progress(i + 1, n)
    doc = {
        "description": "Synthetic human-instance-matting set built like HIM2K's synthetic subset "
                       "(InstMatt, CVPR 2022, Eq. 13): I_i = alpha_i F_i + (1 - alpha_i) I_{i-1}, "
                       "I_0 = background; GT alpha'_i = alpha_i * prod_{k>i} (1 - alpha_k), saved as "
                       "round(255 alpha'_i).",
        "generator": "instmatt synth (instmatt_app.evaluation.synth)",
        "seed": seed,
        "n": n,
        "cutouts": str(cut.root),
        "backgrounds": str(bgs.root),
        "background_manifest": str(bgs.manifest) if bgs.manifest else None,
        "cutouts_used": [c.name for c in cut.cutouts],
        "cutouts_skipped": cut.skipped,
        "layer_numbering": "NN.png in composite order: 00 = first composited = back-most",
        "foreground_colour": "pymatting estimate_foreground_ml(photo, alpha) on the alpha box (+margin), "
                             "at most at the largest paste height",
        "alpha_resampling": "cv2 INTER_AREA when shrinking, INTER_LINEAR when enlarging; pasted alpha "
                            "rounded to 8 bit before compositing",
        "jpeg": {"quality": 95, "chroma_subsampling": "4:2:0", "encoder": "Pillow"},
        "settings": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(settings).items()},
        "images": records,
    }
    with atomic_open(out / "composites.json", "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    return doc
