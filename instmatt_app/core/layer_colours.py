"""Multi-layer colour estimation: the colour L_i of every person and L_0 of the background (Eq. 2).

Given the photo I and the instance alphas α_1..α_n (Σ α_i ≤ 1, α_0 = 1 − Σ α_i), find colour
layers L_0..L_n with

    I ≈ Σ_{i=0..n} α_i L_i                     (Eq. 2 of the paper)

that are smooth where their alpha is small. This generalises multi-level foreground estimation
(Germer et al. 2020, pymatting's ``estimate_foreground_ml``) from 2 to n + 1 layers. Per pixel and
colour channel the energy

    (Σ_j α_j L_j − I)² + Σ_j Σ_{q ∈ N4(p)} (ε + g |α_j(p) − α_j(q)|) (L_j(p) − L_j(q))²

is minimised for L(p) with the neighbours fixed. The normal equations are
(D + a aᵀ) L = a I + Σ_q w_q L(q) with D diagonal, so Sherman–Morrison gives the exact solution in
closed form for all layers of a pixel at once.

Coarse to fine, like pymatting: levels are the full size halved down to 1 pixel. Small levels
(≤ ``dense_pixels``) are solved everywhere. Larger levels are solved only on the *band*: pixels
where no layer is opaque (max_j α_j < 1 − 1e-3); elsewhere the opaque layer's colour is the photo
and the other layers keep the upsampled coarse fill (they have no weight there). At 24 MP with a
few people the band is a few percent of the photo, which is what makes the full-resolution pass
cheap. After the last dense level, the background behind people (α_0 < 0.05) is replaced by an
inpainted fill (:mod:`instmatt_app.core.inpaint`), so removing a person reveals a plausible
background. A final projection step on the band distributes the residual I − Σ α_j L_j over the
layers in proportion to α_j (the minimum-norm correction; a layer clipped at 0 or 1 drops out and
the others take the rest), so the reconstruction matches the photo to float precision.

The sweeps run as compiled Gauss–Seidel loops (numba, which pymatting depends on; compiled once
and cached next to this module). Without numba the same update runs as vectorised numpy Jacobi
sweeps over the band (slower, and it needs a few more sweeps for the same accuracy).

With numba, the band levels store each person's layer only inside the box of its weight (grown by
one pixel; :class:`~instmatt_app.core.boxed_image.BoxedImage` on output): outside it the person has
no weight at a pixel or its neighbours, so the layer takes no part in that pixel's update. A 60 MP
photo with four people then holds its people's colours in a fraction of four full-size planes.

numpy + OpenCV (+ numba when installed); no Qt, no torch.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from instmatt_app.core.boxed_image import BoxedImage
from instmatt_app.core.inpaint import fill_hidden_background

__all__ = ["LayerColours", "estimate_layer_colours", "normalise_alphas", "reconstruct"]

OPAQUE_TOL = 1e-3
# 8-bit photo values to [0, 1]: the same float32 product wherever the photo is read (kernels and numpy)
_U8_SCALE = np.float32(1.0 / 255.0)


@dataclass
class LayerColours:
    """Result of :func:`estimate_layer_colours`.

    people: n :class:`~instmatt_app.core.boxed_image.BoxedImage` (H, W, 3) float32 in [0, 1], the
        colour of each person (same order as the alphas), stored inside the box of the person's
        alpha grown by one pixel; they read as zero outside it, where the person has no weight.
    background: (H, W, 3) float32 in [0, 1], L_0 (inpainted where people hide it).
    """

    people: list[BoxedImage]
    background: np.ndarray

    @property
    def layers(self) -> np.ndarray:
        """(n, H, W, 3) float32: the people's colours at full size (a new array, zero outside each
        person's box; n full-size copies, for small images and tests)."""
        if not self.people:
            return np.zeros((0,) + self.background.shape, np.float32)
        return np.stack([p.full() for p in self.people])


def normalise_alphas(alphas: np.ndarray) -> np.ndarray:
    """Clip to [0, 1] and scale pixels where Σ α_i > 1 down to Σ = 1.

    alphas: (n, H, W) float. Returns (n, H, W) float32 (a new array).
    """
    return _normalise_in_place(np.array(alphas, dtype=np.float32))


def _normalise_in_place(a: np.ndarray) -> np.ndarray:
    """:func:`normalise_alphas` of a (n, H, W) float32 array, in place; returns it."""
    np.clip(a, 0.0, 1.0, out=a)
    if len(a) == 0:
        return a
    s = a.sum(axis=0)
    over = s > 1.0
    if over.any():
        a[:, over] /= s[over]
    return a


def reconstruct(alphas: np.ndarray, layers, background: np.ndarray) -> np.ndarray:
    """Σ α_i L_i + α_0 L_0 (Eq. 2). alphas (n, H, W), layers (n, H, W, 3) or n
    :class:`BoxedImage` (added inside their boxes only), background (H, W, 3).

    Returns (H, W, 3) float32.
    """
    a = np.asarray(alphas, dtype=np.float32)
    a0 = np.clip(1.0 - a.sum(axis=0), 0.0, 1.0) if len(a) else np.ones(background.shape[:2], np.float32)
    out = a0[..., None] * background
    for ai, li in zip(a, layers):
        if isinstance(li, BoxedImage):
            y0, y1, x0, x1 = li.box
            out[y0:y1, x0:x1] += ai[y0:y1, x0:x1, None] * li.pixels
        else:
            out += ai[..., None] * li
    return out.astype(np.float32, copy=False)


def _level_sizes(h: int, w: int) -> list[tuple[int, int]]:
    """(h, w) of every pyramid level, coarse to fine: the full size halved (rounding up) down to
    1 pixel, so that the large levels are exact 2× steps (cheap area averaging)."""
    sizes = [(h, w)]
    while max(sizes[-1]) > 1:
        ph, pw = sizes[-1]
        sizes.append(((ph + 1) // 2, (pw + 1) // 2))
    return sizes[::-1]


def _resize(arr: np.ndarray, hw: tuple[int, int], interp: int) -> np.ndarray:
    """cv2.resize for (h, w) or (h, w, c) float32; returns the input when the size matches."""
    h, w = hw
    if arr.shape[:2] == (h, w):
        return arr
    out = cv2.resize(arr, (w, h), interpolation=interp)
    if arr.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


def _neighbours(idx: np.ndarray, h: int, w: int) -> tuple[np.ndarray, ...]:
    """Flat indices of the 4-neighbours (left, right, up, down; clamped at the border)."""
    y, x = np.divmod(idx, w)
    return (idx - (x > 0), idx + (x < w - 1), idx - w * (y > 0), idx + w * (y < h - 1))


def _bilinear_gather(coarse_flat: np.ndarray, cidx: tuple, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of coarse_flat (h'·w', 3) at precomputed corner indices / weights."""
    i00, i01, i10, i11 = cidx
    top = coarse_flat[i00] * (1 - fx) + coarse_flat[i01] * fx
    bot = coarse_flat[i10] * (1 - fx) + coarse_flat[i11] * fx
    return top * (1 - fy) + bot * fy


def _bilinear_setup(idx: np.ndarray, h: int, w: int, hc: int, wc: int):
    """Corner flat indices and weights to sample a (hc, wc) grid at fine pixels ``idx`` of an
    (h, w) grid (pixel-centre convention, like cv2.INTER_LINEAR)."""
    y, x = np.divmod(idx, w)
    sy = np.clip((y + 0.5) * (hc / h) - 0.5, 0, hc - 1).astype(np.float32)
    sx = np.clip((x + 0.5) * (wc / w) - 0.5, 0, wc - 1).astype(np.float32)
    y0, x0 = sy.astype(np.int32), sx.astype(np.int32)
    y1, x1 = np.minimum(y0 + 1, hc - 1), np.minimum(x0 + 1, wc - 1)
    fy, fx = (sy - y0)[:, None], (sx - x0)[:, None]
    r0, r1 = y0 * wc, y1 * wc
    return (r0 + x0, r0 + x1, r1 + x0, r1 + x1), fy, fx


def _solve_on(L: np.ndarray, A: np.ndarray, img: np.ndarray, band: np.ndarray | None,
              iterations: int, eps: float, gw: float, coarse: np.ndarray | None = None) -> None:
    """Jacobi sweeps of the per-pixel closed-form update on the pixels of ``band`` (all if None).

    L: (K, h, w, 3) float32, updated in place; A: (K, h, w) float32 layer weights (Σ_K = 1);
    img: (h, w, 3) float32; band: (h, w) bool or None; coarse: optional (K, h', w', 3) previous
    level: the active pixels of each layer start from its bilinear upsampling (the rest of L is
    expected to hold a cheap nearest-neighbour upsampling).

    With a band, layer j is only updated on the band pixels where it is *active* (α_j > 0 at the
    pixel or a 4-neighbour); elsewhere its data term and gradient weights vanish, so its update
    would only smooth the fill it already has from the coarser level. Inactive layers have
    α_j = 0 and so do not enter the Sherman–Morrison coupling either.
    """
    K, h, w = A.shape
    if iterations <= 0:
        return
    if band is None:
        bidx = np.arange(h * w, dtype=np.int64)
    else:
        bidx = np.flatnonzero(band)
    m = bidx.size
    if m == 0:
        return
    Af = A.reshape(K, -1)
    Lf = L.reshape(K, -1, 3)
    imgb = img.reshape(-1, 3)
    q = np.ones(m, np.float32)
    per_layer = []  # (band positions, neighbour positions, weights, 1/D, a, vals, data)
    kernel = np.ones((3, 3), np.uint8)
    kernel[0, 0] = kernel[0, 2] = kernel[2, 0] = kernel[2, 2] = 0
    if coarse is not None and band is not None:
        hc, wc = coarse.shape[1:3]
        cidx, fy, fx = _bilinear_setup(bidx, h, w, hc, wc)
    for j in range(K):
        if band is None:
            bp = None
            idx = bidx
        else:
            act = cv2.dilate((A[j] > 0).astype(np.uint8), kernel).reshape(-1)[bidx].astype(bool)
            bp = np.flatnonzero(act)
            idx = bidx[bp]
        mj = idx.size
        if mj == 0:
            continue
        if coarse is not None and band is not None:
            Lf[j, idx] = _bilinear_gather(coarse[j].reshape(-1, 3), tuple(c[bp] for c in cidx), fy[bp], fx[bp])
        nbs = _neighbours(idx, h, w)
        a = Af[j, idx]
        wts = [eps + gw * np.abs(a - Af[j, nb]) for nb in nbs]
        inv_d = 1.0 / (wts[0] + wts[1] + wts[2] + wts[3])
        if band is None:
            nbpos = nbs
            vals = Lf[j, idx].copy()
        else:
            # neighbour positions in [active pixels of this layer | fixed outside values]
            srt = np.searchsorted(idx, np.concatenate(nbs))
            srt = np.minimum(srt, mj - 1)
            allnb = np.concatenate(nbs)
            inside = idx[srt] == allnb
            ext, inv = np.unique(allnb[~inside], return_inverse=True)
            posall = np.where(inside, srt, 0)
            posall[~inside] = mj + inv
            nbpos = tuple(posall[k * mj:(k + 1) * mj] for k in range(4))
            vals = np.concatenate([Lf[j, idx], Lf[j, ext]], axis=0)
        a_over_d = a * inv_d
        if bp is None:
            q += a * a_over_d
        else:
            q[bp] += a * a_over_d
        data = a[:, None] * imgb[idx]
        per_layer.append((j, idx, bp, nbpos, wts, inv_d, a_over_d, a, vals, data))
    for _ in range(iterations):
        S = np.zeros((m, 3), np.float32)
        us = []
        for (_j, _idx, bp, nbpos, wts, inv_d, _a_over_d, a, vals, data) in per_layer:
            b = data.copy()
            for wt, nb in zip(wts, nbpos):
                b += wt[:, None] * vals[nb]
            b *= inv_d[:, None]                          # u = D⁻¹ b
            if bp is None:
                S += a[:, None] * b
            else:
                S[bp] += a[:, None] * b
            us.append(b)
        S /= q[:, None]                                  # (aᵀ D⁻¹ b) / (1 + aᵀ D⁻¹ a)
        for (_j, idx, bp, _nbpos, _wts, _inv_d, a_over_d, _a, vals, _data), u in zip(per_layer, us):
            u -= a_over_d[:, None] * (S if bp is None else S[bp])
            np.clip(u, 0.0, 1.0, out=u)
            vals[:len(idx)] = u
    for (j, idx, *_rest, vals, _data) in per_layer:
        Lf[j, idx] = vals[:len(idx)]


try:  # numba comes with pymatting; the numpy sweeps below are the fallback
    from numba import njit
except ImportError:  # pragma: no cover
    njit = None

if njit is not None:
    # ---- the compiled kernels work on layers stored inside boxes ----
    # buf: flat float32 buffer holding all layers of a level; geo[j] = (offset in buf, y0, x0, h, w)
    # of layer j's box. On band levels (boxed) layer 0, the background, is the whole level and a
    # person's box is its support grown by one pixel: a pixel outside layer j's box has α_j = 0
    # there and at its 4-neighbours, so layer j neither enters that pixel's coupled update nor needs
    # a value there. Full-size layers (K, h, w, 3) are the case where every box is the whole level
    # (:func:`_boxed_from_full`).

    @njit(cache=True, nogil=True)
    def _boxed_index(geo, j, y, x):  # pragma: no cover - compiled
        """Index in buf of layer j's red value at (y, x), or -1 outside its box."""
        yy, xx = y - geo[j, 1], x - geo[j, 2]
        if yy < 0 or xx < 0 or yy >= geo[j, 3] or xx >= geo[j, 4]:
            return -1
        return geo[j, 0] + (yy * geo[j, 4] + xx) * 3

    @njit(cache=True, nogil=True)
    def _coarse_index(cgeo, j, y, x):  # pragma: no cover - compiled
        """Index of layer j's red value at (y, x) of the coarser level, clamped into its box
        (-1 for an empty box)."""
        bh, bw = cgeo[j, 3], cgeo[j, 4]
        if bh == 0 or bw == 0:
            return -1
        yy = min(max(y - cgeo[j, 1], 0), bh - 1)
        xx = min(max(x - cgeo[j, 2], 0), bw - 1)
        return cgeo[j, 0] + (yy * bw + xx) * 3

    @njit(cache=True, nogil=True)
    def _upsample_boxed(buf, geo, cbuf, cgeo, hc, wc, A, img, iscale, thr):  # pragma: no cover - compiled
        """Fill every box: nearest upsampling of the coarser level (cbuf, cgeo, hc × wc), or the
        photo's colour (img × iscale) where the layer is opaque (weight ≥ thr)."""
        K, h, w = A.shape
        for j in range(K):
            off, y0, x0, bh, bw = geo[j, 0], geo[j, 1], geo[j, 2], geo[j, 3], geo[j, 4]
            for yy in range(bh):
                y = y0 + yy
                yc = min(hc - 1, y * hc // h)
                for xx in range(bw):
                    x = x0 + xx
                    i = off + (yy * bw + xx) * 3
                    if A[j, y, x] >= thr:
                        buf[i] = np.float32(img[y, x, 0]) * iscale
                        buf[i + 1] = np.float32(img[y, x, 1]) * iscale
                        buf[i + 2] = np.float32(img[y, x, 2]) * iscale
                        continue
                    ic = _coarse_index(cgeo, j, yc, min(wc - 1, x * wc // w))
                    for c in range(3):
                        buf[i + c] = cbuf[ic + c] if ic >= 0 else 0.0

    @njit(cache=True, nogil=True)
    def _bilinear_band_boxed(buf, geo, cbuf, cgeo, hc, wc, h, w, ys, xs):  # pragma: no cover - compiled
        """Bilinear sample of the coarser level at the band pixels inside each box."""
        K = geo.shape[0]
        ry, rx = hc / h, wc / w
        for n in range(ys.size):
            y, x = ys[n], xs[n]
            sy = min(max((y + 0.5) * ry - 0.5, 0.0), hc - 1.0)
            sx = min(max((x + 0.5) * rx - 0.5, 0.0), wc - 1.0)
            y0, x0 = int(sy), int(sx)
            y1, x1 = min(y0 + 1, hc - 1), min(x0 + 1, wc - 1)
            fy, fx = sy - y0, sx - x0
            for j in range(K):
                i = _boxed_index(geo, j, y, x)
                if i < 0:
                    continue
                i00, i01 = _coarse_index(cgeo, j, y0, x0), _coarse_index(cgeo, j, y0, x1)
                i10, i11 = _coarse_index(cgeo, j, y1, x0), _coarse_index(cgeo, j, y1, x1)
                if i00 < 0:
                    continue
                for c in range(3):
                    top = cbuf[i00 + c] * (1 - fx) + cbuf[i01 + c] * fx
                    bot = cbuf[i10 + c] * (1 - fx) + cbuf[i11 + c] * fx
                    buf[i + c] = top * (1 - fy) + bot * fy

    @njit(cache=True, nogil=True)
    def _gs_sweeps_boxed(buf, geo, A, img, iscale, ys, xs, iterations, eps, gw):  # pragma: no cover - compiled
        """Gauss–Seidel sweeps of the closed-form update (Sherman–Morrison over the layers of a
        pixel) over the pixels (ys[n], xs[n]), in that order: a layer takes part at a pixel inside
        its box; its 4-neighbours are clamped to the box. The photo's colour is img × iscale."""
        K = A.shape[0]
        u = np.empty((K, 3), np.float32)
        av = np.empty(K, np.float32)
        dv = np.empty(K, np.float32)
        at = np.empty(K, np.int64)
        for _ in range(iterations):
            for n in range(ys.size):
                y, x = ys[n], xs[n]
                q = 1.0
                s0 = s1 = s2 = 0.0
                for j in range(K):
                    i = _boxed_index(geo, j, y, x)
                    at[j] = i
                    if i < 0:
                        continue
                    off, by0, bx0, bh, bw = geo[j, 0], geo[j, 1], geo[j, 2], geo[j, 3], geo[j, 4]
                    aj = A[j, y, x]
                    b0 = aj * (np.float32(img[y, x, 0]) * iscale)
                    b1 = aj * (np.float32(img[y, x, 1]) * iscale)
                    b2 = aj * (np.float32(img[y, x, 2]) * iscale)
                    dj = 0.0
                    for k in range(4):
                        if k == 0:
                            y2, x2 = y, max(x - 1, bx0)
                        elif k == 1:
                            y2, x2 = y, min(x + 1, bx0 + bw - 1)
                        elif k == 2:
                            y2, x2 = max(y - 1, by0), x
                        else:
                            y2, x2 = min(y + 1, by0 + bh - 1), x
                        wt = eps + gw * abs(aj - A[j, y2, x2])
                        dj += wt
                        i2 = off + ((y2 - by0) * bw + (x2 - bx0)) * 3
                        b0 += wt * buf[i2]
                        b1 += wt * buf[i2 + 1]
                        b2 += wt * buf[i2 + 2]
                    u[j, 0] = b0 / dj
                    u[j, 1] = b1 / dj
                    u[j, 2] = b2 / dj
                    av[j] = aj
                    dv[j] = dj
                    q += aj * aj / dj
                    s0 += aj * u[j, 0]
                    s1 += aj * u[j, 1]
                    s2 += aj * u[j, 2]
                s0 /= q
                s1 /= q
                s2 /= q
                for j in range(K):
                    i = at[j]
                    if i < 0:
                        continue
                    f = av[j] / dv[j]
                    buf[i] = min(1.0, max(0.0, u[j, 0] - f * s0))
                    buf[i + 1] = min(1.0, max(0.0, u[j, 1] - f * s1))
                    buf[i + 2] = min(1.0, max(0.0, u[j, 2] - f * s2))

    @njit(cache=True, nogil=True)
    def _project_band_boxed(buf, geo, A, img, iscale, ys, xs, steps, tol):  # pragma: no cover - compiled
        """Minimum-norm correction of the residual I − Σ α_j L_j (I = img × iscale) at the pixels
        (ys[n], xs[n]), per channel, over the layers that can still move towards it (an active set:
        clipped layers drop out; outside its box a layer has no weight)."""
        K = A.shape[0]
        at = np.empty(K, np.int64)
        for n in range(ys.size):
            y, x = ys[n], xs[n]
            for j in range(K):
                at[j] = _boxed_index(geo, j, y, x)
            for c in range(3):
                for _ in range(steps):
                    r = np.float32(img[y, x, c]) * iscale
                    for j in range(K):
                        if at[j] >= 0:
                            r -= A[j, y, x] * buf[at[j] + c]
                    if abs(r) <= tol:
                        break
                    norm = 0.0
                    for j in range(K):
                        if at[j] < 0:
                            continue
                        v = buf[at[j] + c]
                        if (r > 0 and v < 1.0) or (r < 0 and v > 0.0):
                            norm += A[j, y, x] * A[j, y, x]
                    if norm < 1e-12:
                        break
                    for j in range(K):
                        if at[j] < 0:
                            continue
                        v = buf[at[j] + c]
                        if (r > 0 and v < 1.0) or (r < 0 and v > 0.0):
                            buf[at[j] + c] = min(1.0, max(0.0, v + A[j, y, x] * r / norm))


def _support_boxes(A: np.ndarray) -> list[tuple[int, int, int, int] | None]:
    """Per layer of A (K, H, W): the box (y0, y1, x0, x1) of its pixels above zero grown by one
    pixel (clipped to the photo), or None when it has none; layer 0 (background) is the photo."""
    K, H, W = A.shape
    boxes: list[tuple[int, int, int, int] | None] = [(0, H, 0, W)]
    for j in range(1, K):
        pos = A[j] > 0
        rows, cols = np.flatnonzero(pos.any(axis=1)), np.flatnonzero(pos.any(axis=0))
        if rows.size == 0:
            boxes.append(None)
            continue
        boxes.append((max(0, int(rows[0]) - 1), min(H, int(rows[-1]) + 2),
                      max(0, int(cols[0]) - 1), min(W, int(cols[-1]) + 2)))
    return boxes


def _boxed_from_full(L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(buf, geo) of full-size layers L (K, h, w, 3), C-contiguous: every box is the whole level;
    buf is a view of L (the kernels write into L)."""
    K, h, w, _ = L.shape
    if not L.flags.c_contiguous:
        raise ValueError("layers must be C-contiguous")
    geo = np.array([(j * h * w * 3, 0, 0, h, w) for j in range(K)], np.int64).reshape(K, 5)
    return L.reshape(-1), geo


def _band_level_boxed(coarse: tuple[np.ndarray, np.ndarray, int, int], A: np.ndarray, img: np.ndarray,
                      iterations: int, eps: float, gw: float, project: bool) -> tuple[np.ndarray, np.ndarray, float]:
    """One band level on boxed layers (numba only): upsample the coarser level (buf, geo, hc, wc),
    sweep on the band of mixed pixels and, when ``project``, match the photo there. A: (K, h, w)
    weights, img: (h, w, 3) float32 in [0, 1] or uint8 (read × 1/255 where needed: a 60 MP photo as
    float32 is 0.7 GB). Returns (buf, geo, band fraction); inside each box the layers are the
    full-size solve's to the solver's precision."""
    K, h, w = A.shape
    boxes = _support_boxes(A)
    geo = np.zeros((K, 5), np.int64)
    off = 0
    for j, b in enumerate(boxes):
        y0, y1, x0, x1 = b if b is not None else (0, 0, 0, 0)
        geo[j] = (off, y0, x0, y1 - y0, x1 - x0)
        off += (y1 - y0) * (x1 - x0) * 3
    buf = np.empty(off, np.float32)
    cbuf, cgeo, hc, wc = coarse
    iscale = _U8_SCALE if img.dtype == np.uint8 else np.float32(1.0)
    _upsample_boxed(buf, geo, cbuf, cgeo, hc, wc, A, img, iscale, np.float32(1.0 - OPAQUE_TOL))
    band = A.max(axis=0) < 1.0 - OPAQUE_TOL
    band_frac = float(band.mean())
    ys, xs = np.nonzero(band)
    del band
    ys, xs = ys.astype(np.int32), xs.astype(np.int32)
    if ys.size:
        _bilinear_band_boxed(buf, geo, cbuf, cgeo, hc, wc, h, w, ys, xs)
        _gs_sweeps_boxed(buf, geo, A, img, iscale, ys, xs, iterations, np.float32(eps), np.float32(gw))
        if project:
            _project_band_boxed(buf, geo, A, img, iscale, ys, xs, K + 1, np.float32(0.1 / 255))
    return buf, geo, band_frac


def _boxed_result(buf: np.ndarray, geo: np.ndarray, H: int, W: int) -> LayerColours:
    """LayerColours whose background and people are views of the full-resolution level's buffer."""
    def view(j: int) -> np.ndarray:
        o, _y0, _x0, bh, bw = (int(v) for v in geo[j])
        return buf[o:o + bh * bw * 3].reshape(bh, bw, 3)

    people = [BoxedImage((H, W), (int(g[1]), int(g[1] + g[3]), int(g[2]), int(g[2] + g[4])), view(j))
              for j, g in enumerate(geo) if j > 0]
    return LayerColours(people, view(0))


def _solve_level(L, A, img, band, iterations, eps, gw, coarse=None) -> None:
    """One level's sweeps: compiled Gauss–Seidel when numba is there, else numpy Jacobi."""
    if njit is None:
        _solve_on(L, A, img, band, iterations, eps, gw, coarse=coarse)
        return
    K, h, w = A.shape
    ys, xs = np.nonzero(band if band is not None else np.ones((h, w), bool))
    ys, xs = ys.astype(np.int32), xs.astype(np.int32)
    if ys.size == 0:
        return
    buf, geo = _boxed_from_full(L)
    if band is not None and coarse is not None:
        cbuf, cgeo = _boxed_from_full(coarse)
        _bilinear_band_boxed(buf, geo, cbuf, cgeo, coarse.shape[1], coarse.shape[2], h, w, ys, xs)
    _gs_sweeps_boxed(buf, geo, A, img, np.float32(1.0), ys, xs, iterations, np.float32(eps), np.float32(gw))


def _project(L: np.ndarray, A: np.ndarray, img: np.ndarray, band: np.ndarray, steps: int | None = None,
             tol: float = 0.1 / 255) -> None:
    """Add the residual I − Σ α_j L_j to the layers in proportion to α_j (min-norm), on the band
    pixels whose residual exceeds ``tol``; a layer clipped at 0 or 1 drops out and the others take
    the rest (K + 1 steps reach the exact solution whenever one exists in [0, 1])."""
    if steps is None:
        steps = A.shape[0] + 1
    if njit is not None:
        ys, xs = np.nonzero(band)
        buf, geo = _boxed_from_full(L)
        _project_band_boxed(buf, geo, A, img, np.float32(1.0), ys.astype(np.int32), xs.astype(np.int32), steps,
                            np.float32(tol))
        return
    K = A.shape[0]
    idx = np.flatnonzero(band)
    if idx.size == 0:
        return
    Lf = L.reshape(K, -1, 3)
    Af = A.reshape(K, -1)
    target = img.reshape(-1, 3)[idx]
    r = target - np.einsum("km,kmc->mc", Af[:, idx], Lf[:, idx])
    bad = np.abs(r).max(axis=1) > tol
    idx, r, target = idx[bad], r[bad], target[bad]
    if idx.size == 0:
        return
    a = Af[:, idx][..., None]                      # (K, m, 1)
    lv = Lf[:, idx]                                # (K, m, 3)
    for step in range(steps):
        if step:
            r = target - (a * lv).sum(axis=0)
        free = ((r[None] > 0) & (lv < 1.0)) | ((r[None] < 0) & (lv > 0.0))
        free &= (np.abs(r) > tol)[None]
        norm = (a * a * free).sum(axis=0)          # (m, 3)
        lv += np.where(free, a * (r / np.maximum(norm, 1e-12))[None], 0.0)
        np.clip(lv, 0.0, 1.0, out=lv)
    Lf[:, idx] = lv


def estimate_layer_colours(image: np.ndarray, alphas: np.ndarray, *, regularization: float = 1e-5,
                           gradient_weight: float = 1.0, small_size: int = 32,
                           small_iterations: int = 10, big_iterations: int = 4,
                           full_iterations: int = 2,
                           dense_pixels: int = 400_000, inpaint_hidden: bool = True,
                           inpaint_max_side: int = 768, boxed: bool = True,
                           stats: dict | None = None) -> LayerColours:
    """Estimate the colour of every person and of the background.

    image: (H, W, 3) float32 in [0, 1], or uint8 (× 1/255 in float32; the full-resolution level then
        reads the 8-bit photo itself, which saves a float32 copy: 0.7 GB at 60 MP).
    alphas: (n, H, W) float in [0, 1] (uint8 is scaled by 1/255), Σ_i α_i ≤ 1 (pixels above 1 are
        scaled down); n may be 0. A sequence of n (H, W) arrays is taken as well, and saves a stacked
        copy (1 GB at 60 MP with 4 people: the document passes its layers' alphas so).
    regularization: ε of the smoothness weight ε + g |Δα| (pymatting's default 1e-5).
    gradient_weight: g (larger: smoother layers).
    small_size / small_iterations / big_iterations / full_iterations: sweeps per level (levels
        whose sides are both ≤ small_size get small_iterations, the full-resolution level
        full_iterations, the others big_iterations).
    dense_pixels: levels with at most this many pixels are solved everywhere, larger ones only on
        the band of mixed pixels.
    inpaint_hidden: replace the background where α_0 < 0.05 by an inpainted fill.
    boxed: solve the band-only levels with every person's layer stored inside its box only
        (with numba; what keeps big photos in memory). False: solve them full size and crop at the
        end (the reference; the same inside the boxes to the solver's precision).
    stats: optional dict that receives per-stage CPU seconds and band sizes (for benchmarks).

    Returns :class:`LayerColours` with the people's colours (boxed, see there) and the background
    (H, W, 3), float32 in [0, 1]. Σ α_i L_i (with α_0 = 1 − Σ α_i) reproduces the photo to float
    rounding.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"image must be (H, W, 3); got {img.shape}")
    photo8 = np.ascontiguousarray(img) if img.dtype == np.uint8 else None
    if photo8 is not None:
        img = photo8.astype(np.float32)
        img *= _U8_SCALE
    img = np.ascontiguousarray(img, dtype=np.float32)
    H, W = img.shape[:2]
    a_in = [np.asarray(a) for a in alphas]
    for a in a_in:
        if a.shape != (H, W):
            raise ValueError(f"alphas must be (n, {H}, {W}); got an alpha of shape {a.shape}")
    n = len(a_in)
    if n == 0:
        return LayerColours([], img.copy())
    K = n + 1
    A_full = np.empty((K, H, W), np.float32)
    for j, a in enumerate(a_in, 1):
        A_full[j] = a
        if a.dtype == np.uint8:
            A_full[j] /= 255.0
    del a_in
    _normalise_in_place(A_full[1:])
    A_full[0] = np.clip(1.0 - A_full[1:].sum(axis=0), 0.0, 1.0)

    clock = time.process_time
    t0 = clock()
    rec = stats if stats is not None else {}
    sizes = _level_sizes(H, W)
    # image and weight pyramids, each level area-downsampled from the next finer one
    pyr_img: list[np.ndarray] = [img]
    pyr_a: list[np.ndarray] = [A_full]
    for (h, w) in reversed(sizes[:-1]):
        prev_a = pyr_a[-1]
        pyr_img.append(_resize(pyr_img[-1], (h, w), cv2.INTER_AREA))
        pyr_a.append(np.stack([_resize(prev_a[j], (h, w), cv2.INTER_AREA) for j in range(K)]))
    pyr_img.reverse()
    pyr_a.reverse()
    if photo8 is not None and boxed and njit is not None and H * W > dense_pixels:
        pyr_img[-1] = photo8     # the boxed full-resolution level reads the 8-bit photo
        img = None
    rec["pyramid_s"] = clock() - t0
    # initial 1x1 level: mean colour where each layer is (nearly) opaque, at a ~64 px level
    ci = next(i for i, (h, w) in enumerate(sizes) if max(h, w) >= 64 or i == len(sizes) - 1)
    c_img, c_a = pyr_img[ci].reshape(-1, 3), pyr_a[ci].reshape(K, -1)
    mean_all = c_img.mean(axis=0)
    L = np.empty((K, 1, 1, 3), np.float32)
    for j in range(K):
        sel = c_a[j] > 0.9
        L[j, 0, 0] = c_img[sel].mean(axis=0) if sel.any() else mean_all
    inpainted = not inpaint_hidden
    state = None    # (buf, geo, h, w) of the last boxed level
    for li, (h, w) in enumerate(sizes):
        t_lvl = clock()
        full = (h, w) == (H, W)
        lvl_img, A = pyr_img[li], pyr_a[li]
        # upsample the previous level's layers (bilinear; on band levels nearest everywhere and
        # bilinear only on the band, where the values matter)
        dense = h * w <= dense_pixels
        small = h <= small_size and w <= small_size
        iters = small_iterations if small else (full_iterations if full else big_iterations)
        if not dense and boxed and njit is not None:      # every band level from here on: boxed
            if state is None:
                state = _boxed_from_full(L) + L.shape[1:3]
                L = None
            buf, geo, band_frac = _band_level_boxed(state, A, lvl_img, iters, regularization, gradient_weight,
                                                    project=full)
            state = (buf, geo, h, w)
            del buf, geo
            if not full:
                pyr_img[li] = pyr_a[li] = None
            rec[f"level_{w}x{h}_s"] = clock() - t_lvl
            rec[f"level_{w}x{h}_band"] = band_frac
            continue
        opaque_done = False
        if L.shape[1:3] != (h, w):
            up = np.empty((K, h, w, 3), np.float32)
            if not dense and njit is not None:   # nearest, or the photo where a layer is opaque
                _upsample_boxed(*_boxed_from_full(up), *_boxed_from_full(L), L.shape[1], L.shape[2], A, lvl_img,
                                np.float32(1.0), np.float32(1.0 - OPAQUE_TOL))
                opaque_done = True
            else:
                for j in range(K):
                    cv2.resize(L[j], (w, h), dst=up[j],
                               interpolation=cv2.INTER_LINEAR if dense else cv2.INTER_NEAREST)
            prev, L = L, up
            del up
        else:
            prev = None
        if dense:
            _solve_level(L, A, lvl_img, None, iters, regularization, gradient_weight)
        else:
            amax = A.max(axis=0)
            band = amax < 1.0 - OPAQUE_TOL
            band_frac = band.mean()
            del amax
            if not opaque_done:
                for j in range(K):
                    np.copyto(L[j], lvl_img, where=(A[j] >= 1.0 - OPAQUE_TOL)[..., None])
            _solve_level(L, A, lvl_img, band, iters, regularization, gradient_weight, coarse=prev)
            del prev
            if full:
                _project(L, A, lvl_img, band)
            del band
        # inpaint the hidden background once, at the last level small enough for a dense solve
        nxt = sizes[li + 1] if li + 1 < len(sizes) else None
        if not inpainted and (nxt is None or nxt[0] * nxt[1] > dense_pixels):
            L[0] = fill_hidden_background(L[0], A[0], threshold=0.3, max_side=inpaint_max_side)
            inpainted = True
        if not full:
            pyr_img[li] = pyr_a[li] = None  # free the level
        if not dense:
            rec[f"level_{w}x{h}_s"] = clock() - t_lvl
            rec[f"level_{w}x{h}_band"] = float(band_frac)
    del pyr_img, pyr_a
    if state is not None:
        rec["total_s"] = clock() - t0
        return _boxed_result(state[0], state[1], H, W)
    if sizes[-1] == (H, W) and H * W <= dense_pixels:
        _project(L, A_full, img, np.ones((H, W), bool))
    rec["total_s"] = clock() - t0
    boxes = _support_boxes(A_full)
    people = [BoxedImage.crop(L[j], boxes[j]) for j in range(1, K)]
    background = L[0].copy()           # not a view that would keep all K full-size layers alive
    return LayerColours(people, background)
