"""Multi-instance refinement for the embedded default: parallel and cycle, without InstMatt weights.

The default matter (:mod:`instmatt_app.nets.default_matter`) gives every pixel a human alpha T
(Σ_i α_t,i) and splits it among the instances by soft mask ownership. Where people touch or
overlap that split only follows the coarse masks. This module re-decides the split there with
the image, in the two strategies of the paper (§3.3); ``docs/refinement.md`` justifies the design
against Eq. 7–9 and gives the measurements.

Shares. s_i = α_t,i / T (Σ_i s_i = 1 where T > 0). Refinement changes the shares only, so the
human alpha (the matter's job) is kept and α_t,i = T · s_i, Σ_i α_t,i ≤ T ≤ 1.

Steps (all at a working resolution, long side ``work_side``):

1. **Contested band** (the analogue of the official disagreement map, which is identically 0
   for the default's exactly consistent tri-mattes): pixels within ``band`` of two instances'
   presence (α_t > ``presence`` or mask > 0.5).
2. **Windows**: connected components of the band, as padded boxes; boxes that overlap are merged
   (the role of the official NMS: no pixel is solved twice).
3. **Solve** in every window, with the closed-form matting Laplacian L of the image crop
   (pymatting ``cf_laplacian``, colour-line model): each instance solves a *claim* problem,
   min_x xᵀ L x + λ‖x − s0‖² over the band, with x fixed outside the band (the unrefined share
   s0) and on the core pixels (masks eroded by ``core``): R on core pixels inside its own mask,
   0 on the others; it keeps min(x, R).

   * **parallel**: all instances at once from the same unrefined state: R = 1 on core pixels only
     its mask claims; where several masks claim a pixel, R = its unrefined share among the
     claimers (the matter's view), so the refiner prefers nobody.
   * **cycle** (``order``, first refined first): one after another, R = 1 − Σ (shares of the
     instances refined before): an earlier instance claims contested pixels first, later ones
     share what remains. With the true front-to-back order this is the compositing model of the
     data (Eq. 13: a back person's visible alpha is its alpha times what the front ones leave).

   The known pixels are the same for every instance, mode and order, so each window's system
   is factorised once (SuperLU) and every claim is a back-substitution.
4. The change of the shares is upsampled to full resolution and applied inside the windows'
   band only: everything outside the band is returned unchanged.

Everything that does not depend on the order (working images, band, windows, Laplacians and
their factorisations) is cached in the :class:`ImageContext`, so re-running cycle refinement
after an order change only redoes the back-substitutions.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse
import scipy.sparse.linalg

from instmatt_app.nets.image_context import ImageContext
from instmatt_app.nets.registry import register

__all__ = [
    "MODES",
    "DefaultRefiner",
    "RefinementError",
    "RefinerConfig",
    "contested_band",
    "refine_shares_window",
    "shares",
]

MODES = ("none", "parallel", "cycle")


class RefinementError(ValueError):
    """Bad input to the refiner (shapes, mode, order); the message says what is wrong."""


@dataclass
class RefinerConfig:
    """work_side: long side of the working resolution (px). band / core: half-width of the
    contested band and erosion of the masks into cores, as fractions of the working long side.
    presence: α_t above which an instance counts as present. epsilon / radius: the matting
    Laplacian's regulariser and window radius. min_total: human alpha below which a pixel counts
    as background for the shares. regulariser: λ, the pull of the solved pixels towards the
    unrefined share (keeps wide unknown areas from drifting; makes every system non-singular)."""

    work_side: int = 640
    band: float = 0.015
    core: float = 0.0015
    presence: float = 0.05
    epsilon: float = 1e-6
    radius: int = 1
    min_total: float = 0.02
    regulariser: float = 0.02


def shares(alphas: np.ndarray, masks: np.ndarray, min_total: float = 0.02) -> tuple[np.ndarray, np.ndarray]:
    """Split of the human alpha among the instances.

    alphas: (k, h, w) float32 α_t in [0, 1] (Σ ≤ 1); masks: (k, h, w) float32 coarse masks.
    Returns (shares (k, h, w) float32 with Σ_i = 1 at every pixel, total (h, w) float32 = Σ_i α).
    Where the total is below ``min_total`` (background) the shares follow the nearest mask (a wide
    blur of the masks, normalised; uniform where no mask reaches) so they are defined everywhere.
    """
    k, h, w = alphas.shape
    total = alphas.sum(axis=0)
    out = np.empty((k, h, w), np.float32)
    people = total >= min_total
    out[:] = alphas / np.maximum(total, 1e-6)[None]
    if (~people).any():
        sigma = max(2.0, 0.05 * max(h, w))
        blurred = np.stack([cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma)
                            for m in masks]) + 1e-6
        blurred /= blurred.sum(axis=0, keepdims=True)
        out[:, ~people] = blurred[:, ~people]
    out /= np.maximum(out.sum(axis=0, keepdims=True), 1e-6)
    return out, total.astype(np.float32)


def _disk(radius: int) -> np.ndarray:
    r = max(1, int(radius))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def contested_band(alphas: np.ndarray, masks: np.ndarray, band_px: int, presence: float = 0.05) -> np.ndarray:
    """Pixels where two or more instances compete.

    alphas, masks: (k, h, w) float32 in [0, 1]. band_px: how far (px) from an instance's presence
    (α > ``presence`` or mask > 0.5) it still competes. Returns (h, w) bool: within band_px of
    the presence of at least two instances.
    """
    k = alphas.shape[0]
    if k < 2:
        return np.zeros(alphas.shape[1:], bool)
    kernel = _disk(band_px)
    count = np.zeros(alphas.shape[1:], np.uint8)
    for i in range(k):
        present = ((alphas[i] > presence) | (masks[i] > 0.5)).astype(np.uint8)
        count += cv2.dilate(present, kernel) > 0
    return count >= 2


def _windows(band: np.ndarray, pad: int) -> list[tuple[int, int, int, int]]:
    """Padded boxes (x1, y1, x2, y2), x2/y2 exclusive, around the band's connected components;
    overlapping boxes are merged until none overlap."""
    n, _, stats, _ = cv2.connectedComponentsWithStats(band.astype(np.uint8), connectivity=8)
    h, w = band.shape
    boxes = []
    for c in range(1, n):
        x, y, bw, bh, _ = stats[c]
        boxes.append([max(0, x - pad), max(0, y - pad), min(w, x + bw + pad), min(h, y + bh + pad)])
    merged = True
    while merged and len(boxes) > 1:
        merged = False
        out: list[list[int]] = []
        for b in boxes:
            for o in out:
                if b[0] < o[2] and o[0] < b[2] and b[1] < o[3] and o[1] < b[3]:
                    o[:] = [min(o[0], b[0]), min(o[1], b[1]), max(o[2], b[2]), max(o[3], b[3])]
                    merged = True
                    break
            else:
                out.append(list(b))
        boxes = out
    return [tuple(b) for b in boxes]


@dataclass
class _Window:
    """One window at working resolution: its box, the instances in it, its band and cores, the
    matting Laplacian of the image crop and, per known-pixel pattern, the factorised system."""

    box: tuple[int, int, int, int]
    members: np.ndarray            # instance indices present in the window
    band: np.ndarray               # (h, w) bool
    cores: np.ndarray              # (n, h, w) bool eroded masks, rows follow ``members``
    inside: np.ndarray             # (n, h, w) bool masks > 0.5
    s0: np.ndarray                 # (n, h, w) float64 unrefined shares
    laplacian: scipy.sparse.csr_matrix
    factor: tuple | None = None

    def system(self, regulariser: float):
        """(unknown flat indices, known flat indices, L_UK, factorised L_UU + λI); known = outside
        the band ∪ every core. Independent of the mode and the order, so computed once."""
        if self.factor is None:
            known = (~self.band | self.cores.any(axis=0)).reshape(-1)
            unknown_idx = np.flatnonzero(~known)
            known_idx = np.flatnonzero(known)
            if unknown_idx.size == 0:
                self.factor = (unknown_idx, known_idx, None, None)
            else:
                L = self.laplacian
                rows = L[unknown_idx]
                L_uu = rows[:, unknown_idx] + regulariser * scipy.sparse.identity(unknown_idx.size, format="csr")
                self.factor = (unknown_idx, known_idx, rows[:, known_idx].tocsr(),
                               scipy.sparse.linalg.splu(L_uu.tocsc()))
        return self.factor


def refine_shares_window(win: _Window, mode: str, order: Sequence[int], regulariser: float) -> np.ndarray:
    """Refined shares of one window's members: (n, h, w) float64, Σ ≤ 1.

    Every instance solves the same *claim* problem — share R (what is left to claim) on the core
    pixels (of anyone) inside its own mask, 0 on the other core pixels, the unrefined share outside the band, the matting
    Laplacian in between — and keeps min(x, R):

    * parallel: all instances at once (from the same unrefined state); a core pixel claimed by
      one instance is its own (R = 1), one claimed by several keeps the unrefined split among
      them (R = its unrefined share among the claimers), so nobody is preferred;
    * cycle: one after another in ``order``; R = 1 − Σ (shares of the instances refined before).

    mode: "parallel" | "cycle"; order: global instance indices, first refined first.
    """
    n, h, w = win.s0.shape
    unknown, known, L_uk, lu = win.system(regulariser)
    if lu is None:
        return win.s0.copy()
    s0 = win.s0.reshape(n, -1)
    any_core = win.cores.reshape(n, -1).any(axis=0)
    claims = win.inside.reshape(n, -1) & any_core[None]

    def claim(r: int, value: np.ndarray | float, cap: np.ndarray | float) -> np.ndarray:
        target = s0[r].copy()
        target[any_core] = 0.0
        target[claims[r]] = value if np.isscalar(value) else value[claims[r]]
        x = target.copy()
        x[unknown] = lu.solve(-(L_uk @ target[known]) + regulariser * target[unknown])
        return np.clip(x, 0.0, cap)

    if mode == "parallel":
        # a pixel several masks claim keeps the unrefined split among its claimers (the matter's
        # view from the same unrefined state); one claimed by a single mask is that instance's
        claimed_s0 = np.where(claims, s0, 0.0)
        split = claimed_s0 / np.maximum(claimed_s0.sum(axis=0), 1e-6)[None]
        split[:, claims.sum(axis=0) == 1] = claims[:, claims.sum(axis=0) == 1]
        out = np.stack([claim(r, split[r], 1.0) for r in range(n)])
        out /= np.maximum(out.sum(axis=0), 1.0)[None]
    else:
        out = np.empty_like(s0)
        rank = {int(g): p for p, g in enumerate(order)}
        remaining = np.ones(h * w)
        for r in sorted(range(n), key=lambda r: rank[int(win.members[r])]):
            out[r] = claim(r, remaining, remaining)
            remaining = np.maximum(remaining - out[r], 0.0)
    # mass lost to clipping goes back in proportion, so Σ s = Σ s0 (= 1 where there is a person)
    want, have = s0.sum(axis=0), out.sum(axis=0)
    fix = (have > 1e-6) & (have < want)
    out[:, fix] *= (want[fix] / have[fix])[None]
    return out.reshape(n, h, w)


def _upsample(a: np.ndarray, grid) -> np.ndarray:
    """(n, h, w) working-resolution window → the full-resolution strip ``grid`` describes: a pair of
    remap coordinate arrays (bilinear), or a pair of slices when working and full resolution agree."""
    if isinstance(grid[0], slice):
        return a[:, grid[0], grid[1]]
    mx, my = grid
    return np.stack([cv2.remap(np.ascontiguousarray(c), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for c in a])


def _pair_energy(win: _Window, rows: np.ndarray, regulariser: float) -> float:
    """Matting-Laplacian energy of a window's shares when only ``rows`` (window rows, first
    refined first) are refined in cycle order and the other members keep their unrefined share."""
    order = [int(win.members[r]) for r in rows] + [int(g) for g in win.members if g not in set(win.members[rows])]
    shares_ = refine_shares_window(win, "cycle", order, regulariser)
    L = win.laplacian
    return float(sum(x @ (L @ x) for x in shares_[rows].reshape(len(rows), -1)))


class DefaultRefiner:
    """``refine(image, trimattes, masks, mode, order, context) -> (k, 3, H, W)`` (module docstring)."""

    name = "default"

    def __init__(self, device: str = "cpu", config: RefinerConfig | None = None):
        self.device = device
        self.config = config or RefinerConfig()
        import pymatting  # noqa: F401 - loaded with the refiner (≈ 0.5 s), not during the first photo

    # -- order-independent preparation (cached per photo) ------------------------------
    def _prepare(self, image: np.ndarray, alphas: np.ndarray, masks: np.ndarray, ctx: ImageContext) -> dict:
        cfg = self.config
        H, W = image.shape[:2]
        s = min(1.0, cfg.work_side / max(H, W))
        wsize = (max(1, round(W * s)), max(1, round(H * s)))

        def down(a: np.ndarray) -> np.ndarray:
            return cv2.resize(a, wsize, interpolation=cv2.INTER_AREA) if s < 1.0 else a

        small_a = np.clip(np.stack([down(a) for a in alphas]).astype(np.float32), 0.0, 1.0)
        small_m = np.stack([down(m.astype(np.float32)) for m in masks])
        digest = hashlib.sha1()
        digest.update(np.round(small_a * 255).astype(np.uint8).tobytes())
        digest.update(np.round(small_m * 255).astype(np.uint8).tobytes())
        digest.update(repr((cfg, H, W)).encode())
        key = "default_refiner:" + digest.hexdigest()
        return ctx.get(key, lambda: self._compute_prep(image, small_a, small_m, s, wsize), stage="refine_prepare")

    def _compute_prep(self, image: np.ndarray, small_a: np.ndarray, small_m: np.ndarray, s: float,
                      wsize: tuple[int, int]) -> dict:
        from pymatting import cf_laplacian

        cfg = self.config
        side = max(wsize)
        band_px = max(2, round(cfg.band * side))
        core_px = max(1, round(cfg.core * side))
        band = contested_band(small_a, small_m, band_px, cfg.presence)
        prep = {"scale": s, "wsize": wsize, "band": band, "windows": []}
        if not band.any():
            return prep
        work = cv2.resize(image, wsize, interpolation=cv2.INTER_AREA) if s < 1.0 else image
        work = work.astype(np.float64) / 255.0
        s0, _ = shares(small_a, small_m, cfg.min_total)
        kernel = _disk(core_px)
        cores = np.stack([cv2.erode((m > 0.5).astype(np.uint8), kernel) > 0 for m in small_m])
        pad = cfg.radius + 2
        for (x1, y1, x2, y2) in _windows(band, pad):
            wb = band[y1:y2, x1:x2].copy()
            # the window border is always known (the Laplacian needs its neighbours)
            wb[:cfg.radius + 1, :] = wb[-cfg.radius - 1:, :] = False
            wb[:, :cfg.radius + 1] = wb[:, -cfg.radius - 1:] = False
            present = [i for i in range(small_a.shape[0])
                       if (s0[i, y1:y2, x1:x2][wb] > 1e-3).any() or cores[i, y1:y2, x1:x2].any()]
            if len(present) < 2 or not wb.any():
                continue
            # a pixel whose Laplacian window lies entirely in the known set contributes nothing
            is_known = ~cv2.dilate(wb.astype(np.uint8), _disk(2 * cfg.radius)).astype(bool)
            L = cf_laplacian(np.ascontiguousarray(work[y1:y2, x1:x2]), epsilon=cfg.epsilon, radius=cfg.radius,
                             is_known=is_known)
            members = np.array(present)
            prep["windows"].append(_Window(box=(x1, y1, x2, y2), members=members, band=wb,
                                           cores=cores[members, y1:y2, x1:x2],
                                           inside=small_m[members, y1:y2, x1:x2] > 0.5,
                                           s0=s0[members, y1:y2, x1:x2].astype(np.float64),
                                           laplacian=L.tocsr()))
        return prep

    # -- order estimation ----------------------------------------------------------------
    def estimate_order(self, image: np.ndarray, trimattes: np.ndarray, masks: np.ndarray,
                       context: ImageContext | None = None) -> list[int]:
        """A front-to-back order guessed from the image, for cycle refinement.

        trimattes: (k, 3, H, W) tri-mattes or (k, H, W) alphas, float32 in [0, 1].

        For every pair of instances whose masks both claim some pixels, both cycle orders of
        the pair are solved in their windows and the one whose shares cost less matting-Laplacian
        energy (Σ xᵀ L x: transitions that follow image edges are cheap) wins: the front person's
        silhouette is a real edge of the photo, the back person's mask edge inside the front
        person is not. Instances are sorted by their net wins (energy margins), ties by how
        low their mask reaches in the photo (lower = nearer in an eye-level photo).
        Returns a permutation of range(k), front first.
        """
        trimattes = np.asarray(trimattes, np.float32)
        masks = np.asarray(masks, np.float32)
        alphas = trimattes[:, 0] if trimattes.ndim == 4 else trimattes
        k = trimattes.shape[0]
        bottoms = [float(np.nonzero(m.max(axis=1) > 0.5)[0].max()) if (m > 0.5).any() else -1.0 for m in masks]
        if k < 2:
            return list(range(k))
        ctx = context or ImageContext(image)
        prep = self._prepare(image, alphas, masks, ctx)
        score = np.zeros(k)
        for win in prep["windows"]:
            inside = win.inside & win.cores.any(axis=0)[None]
            n = len(win.members)
            for a in range(n):
                for b in range(a + 1, n):
                    if not (inside[a] & inside[b]).any():
                        continue  # no conflicting claims: the order cannot change the split
                    pair = np.array([a, b])
                    e_ab = _pair_energy(win, pair, self.config.regulariser)
                    e_ba = _pair_energy(win, pair[::-1], self.config.regulariser)
                    ga, gb = int(win.members[a]), int(win.members[b])
                    score[ga] += e_ba - e_ab
                    score[gb] += e_ab - e_ba
        return sorted(range(k), key=lambda i: (-score[i], -bottoms[i], i))

    # -- the refinement ------------------------------------------------------------------
    def refine(self, image: np.ndarray, trimattes: np.ndarray, masks: np.ndarray, mode: str = "parallel",
               order: Sequence[int] | None = None, context: ImageContext | None = None) -> np.ndarray:
        """image: (H, W, 3) uint8 RGB; trimattes: (k, 3, H, W) float32 [α_t, α_r, α_b] in [0, 1];
        masks: (k, H, W) float32 coarse masks in [0, 1]; mode: "none" | "parallel" | "cycle";
        order: permutation of range(k), first refined first (cycle; ignored otherwise); None in
        cycle mode: the order :meth:`estimate_order` guesses from the image.

        Returns new (k, 3, H, W) float32 tri-mattes: α_t clipped to [0, 1] and refined in the
        contested band (bit-for-bit the input's outside it); where it changed, Σ_i α_t,i ≤ 1,
        α_r = Σ_{j≠i} α_t,j and α_b = 1 − Σ_j α_t,j (elsewhere α_r, α_b are the input's).
        (:meth:`refine_alphas` does the same on the α_t alone, in place.)
        """
        self._check(image, trimattes, masks, 4, mode, order)
        out = np.array(trimattes, np.float32)  # a copy
        if mode == "none" or len(out) < 2:
            return out
        alphas = out[:, 0]
        np.clip(alphas, 0.0, 1.0, out=alphas)
        touched = self._refine_in_place(image, alphas, np.asarray(masks, np.float32), mode, order, context)
        # α_r = Σ_{j≠i} α_t,j and α_b = 1 − Σ α_t where α_t changed (elsewhere they are the input's)
        for fy1, fy2, fx1, fx2 in touched:
            sub = out[:, :, fy1:fy2, fx1:fx2]
            total = sub[:, 0].sum(axis=0)
            over = total > 1.0
            if over.any():  # only for inconsistent input (Σ α_t > 1 before refinement)
                sub[:, 0, over] /= total[over]
                total = sub[:, 0].sum(axis=0)
            sub[:, 1] = total[None] - sub[:, 0]
            sub[:, 2] = 1.0 - total[None]
            np.clip(sub, 0.0, 1.0, out=sub)
        return out

    def refine_alphas(self, image: np.ndarray, alphas: np.ndarray, masks: np.ndarray, mode: str = "parallel",
                      order: Sequence[int] | None = None, context: ImageContext | None = None) -> np.ndarray:
        """The refinement on the instance alphas alone, in place (no full-resolution copy).

        alphas: (k, H, W) float32 α_t in [0, 1] (Σ ≤ 1), a writable array: clipped to [0, 1] and
        refined in the contested band, every other pixel left as it is; returned. image, masks,
        mode, order: as for :meth:`refine` (α_t of the result is the α_t :meth:`refine` gives).
        The full-resolution work is done window by window, in strips of rows.
        """
        self._check(image, alphas, masks, 3, mode, order)
        if not isinstance(alphas, np.ndarray) or alphas.dtype != np.float32 or not alphas.flags.writeable:
            raise RefinementError("alphas must be a writable float32 array (they are refined in place)")
        if mode == "none" or len(alphas) < 2:
            return alphas
        np.clip(alphas, 0.0, 1.0, out=alphas)
        for fy1, fy2, fx1, fx2 in self._refine_in_place(image, alphas, np.asarray(masks, np.float32), mode,
                                                        order, context):
            sub = alphas[:, fy1:fy2, fx1:fx2]
            total = sub.sum(axis=0)
            over = total > 1.0
            if over.any():  # only for inconsistent input (Σ α_t > 1 before refinement)
                sub[:, over] /= total[over]
        return alphas

    @staticmethod
    def _check(image: np.ndarray, arr: np.ndarray, masks: np.ndarray, ndim: int, mode: str,
               order: Sequence[int] | None) -> tuple[int, int, int]:
        """Validate the inputs of refine (ndim 4, tri-mattes) / refine_alphas (ndim 3); (k, H, W)."""
        if mode not in MODES:
            raise RefinementError(f"unknown refinement mode {mode!r} (use none, parallel or cycle)")
        if image.ndim != 3 or image.shape[2] != 3:
            raise RefinementError(f"image must be (H, W, 3) RGB, got {image.shape}")
        H, W = image.shape[:2]
        shape = np.shape(arr)
        if ndim == 4 and (len(shape) != 4 or shape[1] != 3 or shape[2:] != (H, W)):
            raise RefinementError(f"trimattes must be (k, 3, {H}, {W}), got {shape}")
        if ndim == 3 and (len(shape) != 3 or shape[1:] != (H, W)):
            raise RefinementError(f"alphas must be (k, {H}, {W}), got {shape}")
        k = shape[0]
        if np.shape(masks) != (k, H, W):
            raise RefinementError(f"masks must be ({k}, {H}, {W}), got {np.shape(masks)}")
        if order is not None:
            order = [int(i) for i in order]
            if sorted(order) != list(range(k)):
                raise RefinementError(f"order must list each of the {k} instances once (0..{k - 1}), got {order}")
        return k, H, W

    # rows of a window refined at a time at full resolution (bounds the temporaries)
    STRIP_PIXELS = 1 << 20

    def _refine_in_place(self, image: np.ndarray, alphas: np.ndarray, masks: np.ndarray, mode: str,
                         order: Sequence[int] | None, context: ImageContext | None
                         ) -> list[tuple[int, int, int, int]]:
        """Refine ``alphas`` ((k, H, W) float32, already clipped) in place; returns the full-resolution
        boxes (y1, y2, x1, x2) that changed."""
        H, W = image.shape[:2]
        ctx = context or ImageContext(image)
        if order is None:
            order = self.estimate_order(image, alphas, masks, ctx) if mode == "cycle" else list(range(len(alphas)))
        order = [int(i) for i in order]
        prep = self._prepare(image, alphas, masks, ctx)
        s = prep["scale"]
        touched: list[tuple[int, int, int, int]] = []
        for win in prep["windows"]:
            refined = refine_shares_window(win, mode, order, self.config.regulariser)
            delta = (refined - win.s0).astype(np.float32)
            delta[:, ~win.band] = 0.0
            if not np.abs(delta).max() > 1e-6:
                continue
            x1, y1, x2, y2 = win.box
            fx1, fy1 = int(np.floor(x1 / s)), int(np.floor(y1 / s))
            fx2, fy2 = min(W, int(np.ceil(x2 / s))), min(H, int(np.ceil(y2 / s)))
            s0_small = win.s0.astype(np.float32)
            # working pixel (x, y) covers full-res [x/s, (x+1)/s): full-res centres mapped back
            map_x = ((np.arange(fx1, fx2, dtype=np.float32) + 0.5) * s - 0.5 - x1).astype(np.float32)
            strip = max(1, self.STRIP_PIXELS // max(1, fx2 - fx1))
            changed_any = False
            for ty1 in range(fy1, fy2, strip):
                ty2 = min(fy2, ty1 + strip)
                if s < 1.0:
                    map_y = ((np.arange(ty1, ty2, dtype=np.float32) + 0.5) * s - 0.5 - y1).astype(np.float32)
                    grid = np.meshgrid(map_x, map_y)
                else:
                    grid = (slice(ty1 - y1, ty2 - y1), slice(fx1 - x1, fx2 - x1))
                d_full = _upsample(delta, grid)
                changed = np.abs(d_full).max(axis=0) > 1e-6
                if not changed.any():
                    continue
                changed_any = True
                rows = win.members
                a_c = alphas[rows, ty1:ty2, fx1:fx2][:, changed]               # (n, m) members' alphas
                tot = a_c.sum(axis=0)
                # the unrefined shares at full resolution; where there is (almost) no human alpha
                # the working-resolution shares, upsampled (their value hardly matters there)
                s0_c = np.where(tot >= self.config.min_total, a_c / np.maximum(tot, 1e-6),
                                _upsample(s0_small, grid)[:, changed])
                sh = np.clip(s0_c + d_full[:, changed], 0.0, 1.0)
                sh /= np.maximum(sh.sum(axis=0), 1.0)
                ys, xs = np.nonzero(changed)
                ys += ty1
                xs += fx1
                for r, g in enumerate(rows):
                    alphas[g, ys, xs] = tot * sh[r]
            if changed_any:
                touched.append((fy1, fy2, fx1, fx2))
        return touched


@register("refiner", "default")
def build_default_refiner(weights: str | None = None, device: str = "cpu", **options) -> DefaultRefiner:
    return DefaultRefiner(device=device, config=RefinerConfig(**options))
