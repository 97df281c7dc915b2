"""Build the compact training-data pack for our own InstMatt network (issue #10, item 2).

The pack is what travels to the lent GPU machine (which cannot see ``../shared``): single-person
cut-outs with soft alphas and precomputed foreground colours, plus person-free backgrounds, in the
layout :class:`instmatt_app.evaluation.synth.CutoutLibrary` / ``BackgroundLibrary`` read::

    <out>/cutouts_train/images/<subset>/<name>.jpg      photo (crop), JPEG q92
          cutouts_train/alphas/<subset>/<name>/00.png   8-bit alpha, same size
          cutouts_train/fg/<subset>/<name>.jpg          foreground colour F, same size, JPEG q95
          cutouts_val/...                               held-out identities, same layout
          backgrounds_train/*.jpg                       COCO backgrounds NOT used by synthetic/
          backgrounds_val/*.jpg                         the 20 backgrounds of synthetic/ (benchmark)
          pack.json                                     sources, split rule, counts, sizes, command

Sources (``--data``, default ``<repo>/../shared/data``):

* P3M portraits (``p3m/``): long side reduced to <= 1280 px (photo INTER_AREA, JPEG q92; alpha
  INTER_AREA). ``--p3m-val`` identities go to validation, the rest to training.
* COCO people (``coco_persons/``): binary polygon masks get soft edges by matting inside a band
  around the polygon with our RVM human matter (the larger of RVM on the whole photo and RVM on a
  crop around the person, box + 25 %): alpha = 1 in the polygon eroded by r, 0 outside the
  polygon dilated by r, RVM's alpha in the band (r = max(3, 2.5 % of the box height)); 0 in the
  band where another person's polygon (or a crowd region) covers the pixel and this one's does not.
  Instances are rejected when small (box height < ``--min-box-height``), crowd, missed by RVM (mean
  RVM alpha in the polygon < 0.7), when the soft alpha disagrees with the polygon
  (IoU(alpha > 0.5, polygon) < 0.8), when it is only a body part (keypoints annotated and
  <= 2 of them visible: hands, arms), when heavily covered by others (> 30 % of the polygon's outline
  touches another person), or when the generator would skip them anyway (cut by the top border or
  by both side borders of the photo). A crop (box + margin) of the photo and its alpha is saved.
  Photos are split by a hash of the COCO image id (``--coco-val-percent``), so a photo's people are
  never in both splits.
* Foreground F = ``pymatting.estimate_foreground_ml(photo, alpha)`` of every cut-out at its pack
  resolution (what ``CutoutLibrary.prepared`` reads instead of estimating it per process).

``--check N`` draws N composites from each split with the real generator and prints the mean
``SyntheticGenerator.sample`` time.

Usage: ``python tools/build_training_pack.py [OUT] [--data DIR] [--check 20]``
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from instmatt_app.io.atomic import atomic_open, atomic_write_bytes

P3M_VAL_DEFAULT = ("p_bac3c1ff", "p_bc5cfad1", "p_bd6af989")
P3M_LONG_SIDE = 1280
PHOTO_QUALITY = 92
FG_QUALITY = 95
MIN_RVM_MEAN = 0.7
MIN_IOU = 0.8
MAX_CONTACT = 0.3
MAX_PART_KEYPOINTS = 2  # annotated persons with <= 2 visible keypoints are hands, arms, backs


class PackError(RuntimeError):
    """Expected failure (missing or unreadable source file); the message names the file."""


# --------------------------------------------------------------------------- small helpers

def coco_is_val(image_id: int, val_percent: float) -> bool:
    """Deterministic photo-level split: sha256 of the decimal COCO image id, first 8 hex digits
    as an integer, modulo 100, is < val_percent -> validation."""
    h = int(hashlib.sha256(str(int(image_id)).encode()).hexdigest()[:8], 16)
    return (h % 100) < val_percent


def _read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    from instmatt_app.io.image_io import ImageLoadError, load_image

    if not path.is_file():
        raise PackError(f"{path}: file not found")
    try:
        return load_image(path)
    except ImageLoadError as exc:
        raise PackError(str(exc)) from None


def _read_grey(path: Path) -> np.ndarray:
    """(H, W) uint8 single-channel PNG."""
    import cv2

    if not path.is_file():
        raise PackError(f"{path}: file not found")
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise PackError(f"{path}: cannot read image")
    if a.ndim == 3:
        a = a[..., 0]
    if a.dtype != np.uint8:
        a = np.round(a / 257.0).astype(np.uint8)
    return a


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    import io

    from PIL import Image

    bio = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(bio, format="JPEG", quality=quality, subsampling=2)
    return bio.getvalue()


def _png(grey: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(grey), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:
        raise OSError("PNG encoding failed")
    return buf.tobytes()


def _disk(r: int) -> np.ndarray:
    import cv2

    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))


def estimate_fg(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Foreground colour F (H, W, 3) uint8 from a uint8 photo and (H, W) uint8 alpha
    (``pymatting.estimate_foreground_ml``, rounded to 8 bit)."""
    from pymatting import estimate_foreground_ml

    fg = estimate_foreground_ml(rgb.astype(np.float64) / 255.0, alpha.astype(np.float64) / 255.0)
    return np.clip(np.round(fg * 255.0), 0, 255).astype(np.uint8)


def _cut_sides(alpha: np.ndarray) -> dict[str, bool]:
    from instmatt_app.evaluation.synth import _cut_sides as cs

    return cs(alpha)


# --------------------------------------------------------------------------- soft COCO alpha

def soft_alpha(rvm: np.ndarray, mask: np.ndarray, others: np.ndarray, box_h: float
               ) -> tuple[np.ndarray, dict]:
    """Soft alpha of one polygon person.

    rvm: (H, W) float32 [0, 1] RVM alpha of all humans in the photo. mask: (H, W) bool polygon of
    this person. others: (H, W) bool union of the other persons' polygons and crowd regions.
    box_h: the person's box height in px. Returns ((H, W) uint8 alpha, stats) with stats
    band_px, rvm_mean_in_polygon, iou, contact (share of the polygon outline touching others).
    """
    import cv2

    r = max(3, round(0.025 * box_h))
    m8 = mask.astype(np.uint8)
    inner = cv2.erode(m8, _disk(r)).astype(bool)
    outer = cv2.dilate(m8, _disk(r)).astype(bool)
    band = outer & ~inner
    alpha = np.zeros(mask.shape, np.float32)
    alpha[inner] = 1.0
    alpha[band] = rvm[band]
    alpha[band & others & ~mask] = 0.0
    a8 = np.clip(np.round(alpha * 255.0), 0, 255).astype(np.uint8)
    hard = a8 > 127
    inter = np.count_nonzero(hard & mask)
    union = np.count_nonzero(hard | mask)
    outline = mask & ~cv2.erode(m8, _disk(1)).astype(bool)
    near_others = cv2.dilate(others.astype(np.uint8), _disk(2)).astype(bool)
    n_out = np.count_nonzero(outline)
    stats = {
        "band_px": r,
        "rvm_mean_in_polygon": round(float(rvm[mask].mean()) if mask.any() else 0.0, 4),
        "iou": round(float(inter / union) if union else 0.0, 4),
        "contact": round(float(np.count_nonzero(outline & near_others) / n_out) if n_out else 0.0, 4),
    }
    return a8, stats


# --------------------------------------------------------------------------- writers

def _write_cutout(root: Path, subset: str, name: str, rgb: np.ndarray, alpha: np.ndarray) -> dict:
    fg = estimate_fg(rgb, alpha)
    files = {
        "image": f"images/{subset}/{name}.jpg",
        "alpha": f"alphas/{subset}/{name}/00.png",
        "fg": f"fg/{subset}/{name}.jpg",
    }
    atomic_write_bytes(root / files["image"], _jpeg(rgb, PHOTO_QUALITY))
    atomic_write_bytes(root / files["alpha"], _png(alpha))
    atomic_write_bytes(root / files["fg"], _jpeg(fg, FG_QUALITY))
    return {"files": files, "size_wh": [int(rgb.shape[1]), int(rgb.shape[0])],
            "bytes": sum((root / f).stat().st_size for f in files.values())}


def build_p3m(data: Path, out: Path, names: list[str] | None, val_names: set[str], log) -> list[dict]:
    import cv2

    p3m = data / "p3m"
    man = p3m / "manifest.csv"
    if not man.is_file():
        raise PackError(f"{man}: P3M manifest not found")
    with man.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    recs = []
    for row in rows:
        name = row["name"]
        if names is not None and name not in names:
            continue
        split = "val" if name in val_names else "train"
        rgb = _read_rgb(data / row["image"])
        alpha = _read_grey(data / row["alpha"])
        if rgb.shape[:2] != alpha.shape:
            raise PackError(f"{data / row['alpha']}: alpha size differs from the photo {data / row['image']}")
        h, w = alpha.shape
        f = min(1.0, P3M_LONG_SIDE / max(h, w))
        if f < 1.0:
            size = (max(1, round(w * f)), max(1, round(h * f)))
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
        rec = _write_cutout(out / f"cutouts_{split}", "p3m", name, rgb, alpha)
        cut = _cut_sides(alpha)
        rec.update(name=name, source="p3m", split=split, identity=name,
                   source_image=f"p3m/{Path(row['image']).relative_to('p3m')}",
                   source_alpha=f"p3m/{Path(row['alpha']).relative_to('p3m')}",
                   source_size_wh=[w, h], resize_factor=round(f, 5),
                   cut_by_border=[k for k, v in cut.items() if v],
                   usable_by_generator=not (cut["top"] or (cut["left"] and cut["right"])))
        recs.append(rec)
        log(f"  p3m {name} -> {split} {rec['size_wh'][0]}x{rec['size_wh'][1]} "
            f"({rec['bytes'] / 1e3:.0f} kB){'' if rec['usable_by_generator'] else ' [generator skips it]'}")
    return recs


def build_coco(data: Path, out: Path, rvm_path: Path, ids: list[int] | None, val_percent: float,
               min_box_h: float, log) -> tuple[list[dict], list[dict]]:
    from instmatt_app.nets.rvm import HumanMatter

    cp = data / "coco_persons"
    ann_path = cp / "annotations" / "person_instances.json"
    if not ann_path.is_file():
        raise PackError(f"{ann_path}: COCO person annotations not found")
    if not rvm_path.is_file():
        raise PackError(f"{rvm_path}: RVM model not found (run the model set-up first)")
    ann = json.loads(ann_path.read_text(encoding="utf-8"))
    by_img: dict[int, list[dict]] = {}
    for a in ann["annotations"]:
        by_img.setdefault(int(a["image_id"]), []).append(a)
    images = {int(im["id"]): im for im in ann["images"]}
    matter = HumanMatter(rvm_path)
    kept, rejected = [], []
    for img_id in sorted(images):
        if ids is not None and img_id not in ids:
            continue
        im = images[img_id]
        anns = by_img.get(img_id, [])
        cands = [a for a in anns if not a["iscrowd"] and a.get("mask_file") and a["bbox"][3] >= min_box_h]
        for a in anns:
            if a["iscrowd"]:
                rejected.append({"image_id": img_id, "ann_id": a["id"], "reason": "crowd"})
            elif a["bbox"][3] < min_box_h:
                rejected.append({"image_id": img_id, "ann_id": a["id"],
                                 "reason": f"box height {a['bbox'][3]:.0f} < {min_box_h:g}"})
        if not cands:
            continue
        photo_rel = im["pack_file"]
        rgb = _read_rgb(data / photo_rel)
        H, W = rgb.shape[:2]
        masks = {}
        for a in anns:
            if a.get("mask_file"):
                m = _read_grey(data / a["mask_file"]) > 127
                if m.shape != (H, W):
                    raise PackError(f"{data / a['mask_file']}: mask is {m.shape[1]}x{m.shape[0]}, "
                                    f"photo {data / photo_rel} is {W}x{H}")
                masks[a["id"]] = m
        crowd = np.zeros((H, W), bool)
        rle = cp / "crowd_ignore" / "coco" / f"{img_id:012d}_rle.png"
        if rle.is_file():
            crowd = _read_grey(rle) > 127
        rvm = matter(rgb)
        split = "val" if coco_is_val(img_id, val_percent) else "train"
        for a in cands:
            mask = masks[a["id"]]
            others = crowd.copy()
            for k, m in masks.items():
                if k != a["id"]:
                    others |= m
            x, y, bw, bh = a["bbox"]
            # RVM is a "main subject" matter: people at the back of the full photo are often
            # dropped, so it is also run on a crop around this person; the larger alpha is used.
            cm = 0.25 * max(bw, bh)
            cx0, cy0 = int(max(0, x - cm)), int(max(0, y - cm))
            cx1, cy1 = int(min(W, x + bw + cm)), int(min(H, y + bh + cm))
            rvm_i = rvm.copy()
            rvm_i[cy0:cy1, cx0:cx1] = np.maximum(
                rvm[cy0:cy1, cx0:cx1], matter(np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1])))
            alpha, st = soft_alpha(rvm_i, mask, others, bh)
            reason = None
            nkp = a.get("num_keypoints")
            if a.get("keypoints") is not None and nkp is not None and nkp <= MAX_PART_KEYPOINTS:
                reason = f"a body part, not a person ({nkp} COCO keypoint(s) <= {MAX_PART_KEYPOINTS})"
            elif st["rvm_mean_in_polygon"] < MIN_RVM_MEAN:
                reason = f"RVM missed it (mean alpha in polygon {st['rvm_mean_in_polygon']:.2f} < {MIN_RVM_MEAN})"
            elif st["iou"] < MIN_IOU:
                reason = f"soft alpha disagrees with the polygon (IoU {st['iou']:.2f} < {MIN_IOU})"
            elif st["contact"] > MAX_CONTACT:
                reason = f"heavily covered by others ({st['contact']:.0%} of its outline touches them)"
            ys, xs = np.nonzero(alpha)
            if reason is None and ys.size == 0:
                reason = "empty alpha"
            if reason is None:
                bx0, by0, bx1, by1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
                mg = max(16, round(float(0.08 * max(bx1 - bx0, by1 - by0))))
                X0, Y0 = max(0, bx0 - mg), max(0, by0 - mg)
                X1, Y1 = min(W, bx1 + mg), min(H, by1 + mg)
                crop_a = alpha[Y0:Y1, X0:X1]
                cut = _cut_sides(crop_a)
                if cut["top"] or (cut["left"] and cut["right"]):
                    reason = "cut by the photo's " + " and ".join(k for k, v in cut.items() if v) + \
                             " border(s): the generator would skip it"
            if reason is not None:
                rejected.append({"image_id": img_id, "ann_id": a["id"], "reason": reason, **st})
                continue
            name = f"{img_id:012d}_{a['mask_index']:02d}"
            rec = _write_cutout(out / f"cutouts_{split}", "coco", name,
                                np.ascontiguousarray(rgb[Y0:Y1, X0:X1]), np.ascontiguousarray(crop_a))
            rec.update(name=name, source="coco", split=split, identity=f"coco:{img_id}:{a['id']}",
                       source_image=photo_rel, source_mask=a["mask_file"], coco_ann_id=a["id"],
                       crop_xyxy=[int(X0), int(Y0), int(X1), int(Y1)], box_height=round(bh, 1),
                       cut_by_border=[k for k, v in cut.items() if v], usable_by_generator=True, **st)
            kept.append(rec)
        log(f"  coco {img_id:012d} -> {split}: {sum(r['split'] == split and r['source_image'] == photo_rel for r in kept)}"
            f" of {len(anns)} instance(s) kept")
    return kept, rejected


def copy_backgrounds(data: Path, out: Path, files: list[str] | None, log) -> dict:
    """Train = the COCO backgrounds NOT named in synthetic/composites.json; val = those named."""
    bg_dir = data / "coco_backgrounds" / "images"
    comp = data / "synthetic" / "composites.json"
    if not bg_dir.is_dir():
        raise PackError(f"{bg_dir}: background folder not found")
    if not comp.is_file():
        raise PackError(f"{comp}: synthetic/composites.json not found (needed for the background split)")
    used = {Path(r["background"]["file"]).name for r in json.loads(comp.read_text(encoding="utf-8"))["images"]}
    res = {"train": [], "val": []}
    for p in sorted(bg_dir.glob("*.jpg")):
        if files is not None and p.name not in files:
            continue
        split = "val" if p.name in used else "train"
        atomic_write_bytes(out / f"backgrounds_{split}" / p.name, p.read_bytes())
        res[split].append(p.name)
    log(f"  backgrounds: {len(res['train'])} train, {len(res['val'])} val (used by synthetic/)")
    return res


# --------------------------------------------------------------------------- check

def check_pack(out: Path, n: int, log) -> dict:
    """Draw n composites per split with the real generator; returns timings and counts."""
    from instmatt_app.evaluation.synth import (
        BackgroundLibrary,
        CutoutLibrary,
        SyntheticGenerator,
        SynthInputError,
        SynthSettings,
    )

    res = {}
    for split, (lo, hi) in (("train", (2, 5)), ("val", (2, 4))):
        try:
            t0 = time.perf_counter()
            lib = CutoutLibrary(out / f"cutouts_{split}")
            bgs = BackgroundLibrary(out / f"backgrounds_{split}")
            gen = SyntheticGenerator(lib, bgs, SynthSettings(long_side=(640, 960), min_people=lo,
                                                             max_people=hi))
            t_open = time.perf_counter() - t0
            rng = np.random.default_rng(0)
            t0 = time.perf_counter()
            gen.sample(rng)  # first draw fills the per-cut-out cache
            t_first = time.perf_counter() - t0
        except SynthInputError as exc:
            res[split] = {"error": str(exc)}
            log(f"  check {split}: FAILED: {exc}")
            continue
        times, people, sources = [], [], {"p3m": 0, "coco": 0}
        for _ in range(n):
            t0 = time.perf_counter()
            s = gen.sample(rng)
            times.append(time.perf_counter() - t0)
            people.append(len(s.layers))
            for rec in s.layers:
                sources["coco" if rec["person"][0].isdigit() else "p3m"] += 1
        # warm: every cut-out prepared once
        t0 = time.perf_counter()
        for c in lib.cutouts:
            lib.prepared(c)
        t_prep_all = time.perf_counter() - t0
        res[split] = {"cutouts_loaded": len(lib.cutouts), "cutouts_skipped": lib.skipped,
                      "backgrounds": len(bgs.files), "open_s": round(t_open, 3),
                      "first_sample_s": round(t_first, 3), "prepare_rest_s": round(t_prep_all, 3),
                      "samples": n, "sample_mean_s": round(float(np.mean(times)), 4) if times else None,
                      "sample_max_s": round(float(np.max(times)), 4) if times else None,
                      "people_per_sample": {str(k): people.count(k) for k in sorted(set(people))},
                      "layers_by_source": sources}
        log(f"  check {split}: {len(lib.cutouts)} cut-outs load ({len(lib.skipped)} skipped), "
            f"{len(bgs.files)} backgrounds; sample() mean {res[split]['sample_mean_s']} s, "
            f"max {res[split]['sample_max_s']} s over {n}; people {res[split]['people_per_sample']}; "
            f"layers {sources}")
    return res


# --------------------------------------------------------------------------- main

def _dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default=str(REPO / "train_pack"), help="pack folder (default: train_pack/)")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="development data folder")
    ap.add_argument("--rvm", default=str(REPO / "models" / "rvm_mobilenetv3_fp32.onnx"), help="RVM ONNX model")
    ap.add_argument("--p3m-val", default=",".join(P3M_VAL_DEFAULT), help="held-out P3M identities (comma list)")
    ap.add_argument("--coco-val-percent", type=float, default=15.0, help="share of COCO photos held out")
    ap.add_argument("--min-box-height", type=float, default=120.0, help="smallest COCO person box height (px)")
    ap.add_argument("--p3m", default=None, help="only these P3M names (comma list; for tests)")
    ap.add_argument("--coco-ids", default=None, help="only these COCO image ids (comma list; for tests)")
    ap.add_argument("--backgrounds", default=None, help="only these background files (comma list; for tests)")
    ap.add_argument("--check", type=int, default=20, help="composites drawn per split to check and time (0: skip)")
    ap.add_argument("--force", action="store_true", help="replace an existing pack folder")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    out, data = Path(args.out), Path(args.data)
    try:
        if not data.is_dir():
            raise PackError(f"{data}: development data folder not found (--data)")
        if out.exists() and any(out.iterdir()):
            if not args.force:
                raise PackError(f"{out}: folder exists and is not empty (use --force to replace it)")
            if not (out / "pack.json").is_file():
                raise PackError(f"{out}: not a training pack (no pack.json); refusing to delete it")
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        val_names = {s for s in args.p3m_val.split(",") if s}
        p3m_names = [s for s in args.p3m.split(",") if s] if args.p3m else None
        coco_ids = [int(s) for s in args.coco_ids.split(",") if s] if args.coco_ids else None
        bg_files = [s for s in args.backgrounds.split(",") if s] if args.backgrounds else None
        log("P3M portraits")
        p3m = build_p3m(data, out, p3m_names, val_names, log)
        log("COCO people")
        coco, rejected = build_coco(data, out, Path(args.rvm), coco_ids, args.coco_val_percent,
                                    args.min_box_height, log)
        log("Backgrounds")
        bgs = copy_backgrounds(data, out, bg_files, log)
        build_s = time.perf_counter() - t0
        cut = p3m + coco
        train_ids = {r["identity"] for r in cut if r["split"] == "train"}
        val_ids = {r["identity"] for r in cut if r["split"] == "val"}
        if train_ids & val_ids:
            raise PackError(f"split leak: {sorted(train_ids & val_ids)} in both splits")
        counts = {f"{src}_{sp}": sum(r["source"] == src and r["split"] == sp for r in cut)
                  for src in ("p3m", "coco") for sp in ("train", "val")}
        doc = {
            "description": "Training-data pack for the InstMatt network (issue #10): single-person "
                           "cut-outs (HIM2K layout, with precomputed foreground fg/) and person-free "
                           "backgrounds, read by instmatt_app.evaluation.synth.",
            "command": "python tools/build_training_pack.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "data": str(data),
            "split_rule": {
                "p3m": f"identities {sorted(val_names)} -> val, all other P3M portraits -> train",
                "coco": f"photo-level: int(sha256(str(image_id)).hexdigest()[:8], 16) % 100 < "
                        f"{args.coco_val_percent:g} -> val (a photo's people never in both splits)",
                "backgrounds": "COCO backgrounds named in synthetic/composites.json -> val (the benchmark's), "
                               "all others -> train",
            },
            "p3m": {"long_side_max": P3M_LONG_SIDE, "resize": "cv2 INTER_AREA (photo and alpha)",
                    "photo_jpeg_quality": PHOTO_QUALITY},
            "coco": {"min_box_height": args.min_box_height,
                     "soft_alpha": "1 in polygon eroded by r, 0 outside polygon dilated by r, RVM alpha "
                                   "in the band, 0 in the band where another person/crowd covers the "
                                   "pixel and this polygon does not; r = max(3, round(0.025 box_h))",
                     "rvm_model": Path(args.rvm).name,
                     "rvm_alpha": "max(RVM on the whole photo, RVM on the person's box + 25 % crop)",
                     "reject": {"rvm_mean_in_polygon_below": MIN_RVM_MEAN, "iou_below": MIN_IOU,
                                "outline_contact_above": MAX_CONTACT,
                                "body_part": f"keypoints annotated and num_keypoints <= {MAX_PART_KEYPOINTS}",
                                "generator_unusable": "cut by the top border or both side borders"},
                     "crop_margin": "max(16, 8 % of the alpha box's long side), clipped to the photo",
                     "photo_jpeg_quality": PHOTO_QUALITY},
            "foreground": {"method": "pymatting.estimate_foreground_ml(photo, alpha) at pack resolution",
                           "file": "fg/<subset>/<name>.jpg, same size as the photo, JPEG q95 (4:2:0)"},
            "counts": {**counts, "coco_rejected": len(rejected),
                       "backgrounds_train": len(bgs["train"]), "backgrounds_val": len(bgs["val"]),
                       "generator_usable_train": sum(r["usable_by_generator"] and r["split"] == "train" for r in cut),
                       "generator_usable_val": sum(r["usable_by_generator"] and r["split"] == "val" for r in cut)},
            "build_seconds": round(build_s, 1),
            "cutouts": cut,
            "coco_rejected": rejected,
            "backgrounds": bgs,
        }
        if args.check > 0:
            log("Check with the generator")
            doc["check"] = check_pack(out, args.check, log)
        sizes = {p.name: _dir_bytes(p) for p in sorted(out.iterdir()) if p.is_dir()}
        doc["sizes_bytes"] = sizes
        with atomic_open(out / "pack.json", "w") as fh:
            json.dump(doc, fh, indent=1)
            fh.write("\n")
        total = _dir_bytes(out)
        log(f"counts: {doc['counts']}")
        for k, v in sizes.items():
            log(f"  {k}: {v / 1e6:.2f} MB")
        log(f"pack {out}: {total / 1e6:.2f} MB ({total / 2**20:.2f} MiB) in "
            f"{sum(1 for f in out.rglob('*') if f.is_file())} files; built in {build_s:.0f} s")
        return 0
    except PackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
