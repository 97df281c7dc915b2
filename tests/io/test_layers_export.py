"""Layered PSD / PNG / TIFF export, read back by psd-tools and by ImageMagick (another program)."""
from __future__ import annotations

import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest
from PIL import Image
from psd_tools import PSDImage

from instmatt_app.core.adjustments import Adjustments
from instmatt_app.core.document import Document
from instmatt_app.core.result import Instance, MattingResult
from instmatt_app.io.export import export_result
from instmatt_app.io.psd_export import export_document_psd, needs_psb, write_layered_psd


def _result(data_dir, name="dev_0000", scale=0.35):
    d = data_dir / "synthetic"
    img = Image.open(d / "images_png" / "comp" / f"{name}.png").convert("RGB")
    w, h = round(img.width * scale), round(img.height * scale)
    image = np.asarray(img.resize((w, h), Image.LANCZOS))
    insts = []
    for k, f in enumerate(sorted((d / "alphas" / "comp" / name).glob("*.png"))):
        a = cv2.resize(np.asarray(Image.open(f), np.float32) / 255, (w, h), interpolation=cv2.INTER_AREA)
        insts.append(Instance(index=k, box=(0, 0, w, h), score=1.0, coarse_mask=(a > 0.5).astype(np.float32),
                              trimask=np.zeros((3, h, w), np.float32), trimatte=np.stack([a, a, a])))
    return MattingResult(image=image, instances=insts, extras={"source": f"/photos/{name}.jpg"})


@pytest.fixture(scope="module")
def result(data_dir):
    return _result(data_dir)


@pytest.fixture(scope="module")
def doc(result):
    d = Document.from_result(result)
    d.ensure_colours()
    return d


def _magick() -> str:
    exe = shutil.which("identify")
    if exe is None or "ImageMagick" not in subprocess.run([exe, "-version"], capture_output=True, text=True).stdout:
        pytest.fail("ImageMagick is needed to check the PSD with another program: apt-get install -y imagemagick")
    return exe


def _convert() -> list[str]:
    """ImageMagick's converter: IM7 ``magick``, Debian's IM6 binary by its own name, else ``convert``."""
    _magick()
    for name in ("magick", "convert-im6.q16", "convert"):
        exe = shutil.which(name)
        if exe:
            return [exe]
    pytest.fail("ImageMagick's convert was not found")


def _im_layers(path):
    """[(index, width, height, x, y, label)] as ImageMagick's identify sees the file."""
    out = subprocess.run([_magick(), "-format", "%p %w %h %X %Y %l\n", str(path)],
                         capture_output=True, text=True, check=True).stdout
    rows = []
    for line in out.strip().splitlines():
        p, w, h, x, y, *label = line.split(" ")
        rows.append((int(p), int(w), int(h), int(x), int(y), " ".join(label)))
    return rows


def _im_alpha(path, index, w, h, depth):
    raw = subprocess.run(_convert() + [f"{path}[{index}]", "-alpha", "extract", "-depth", str(depth),
                          "-endian", "LSB", "gray:-"], capture_output=True, check=True).stdout
    dt = np.uint8 if depth == 8 else np.dtype("<u2")
    return np.frombuffer(raw, dt).reshape(h, w).astype(np.float32) / (255.0 if depth == 8 else 65535.0)


def _box(a, bit_depth=8):
    """Box of the pixels whose alpha survives quantisation (what the exporter crops to)."""
    ys, xs = np.nonzero(a >= 0.5 / (255.0 if bit_depth == 8 else 65535.0))
    return ys.min(), ys.max() + 1, xs.min(), xs.max() + 1


@pytest.mark.parametrize("bit_depth,alpha_as", [(8, "transparency"), (16, "mask"), (8, "mask")])
def test_psd_read_back_by_imagemagick_and_psd_tools(tmp_path, doc, bit_depth, alpha_as):
    doc.rename(doc.layers[0].id, "Anna B")
    path = export_document_psd(doc, tmp_path / "group.psd", bit_depth=bit_depth, alpha_as=alpha_as)
    doc.history.undo()
    assert path.exists() and path.suffix == ".psd"
    H, W = doc.shape
    stack = doc.layer_alphas()
    names = ["Anna B"] + [l.name for l in doc.layers[1:]]

    # ImageMagick: merged image + background + one layer per person (groups are not images)
    rows = _im_layers(path)
    assert len(rows) == 2 + len(doc.layers)
    assert rows[0][1:3] == (W, H) and rows[1][1:3] == (W, H) and rows[1][5] == "Background"
    tol = 1.01 / 255 if bit_depth == 8 else 2.0 / 65535
    for k, row in enumerate(rows[2:]):
        y0, y1, x0, x1 = _box(stack[k], bit_depth)
        assert row[1:5] == (x1 - x0, y1 - y0, x0, y0), (k, row)
        assert row[5] == names[k]
        im_alpha = _im_alpha(path, row[0], x1 - x0, y1 - y0, bit_depth)
        assert np.abs(im_alpha - stack[k][y0:y1, x0:x1]).max() <= tol
    # the merged preview ImageMagick shows is the photo
    raw = subprocess.run(_convert() + [f"{path}[0]", "-depth", "8", "rgb:-"], capture_output=True, check=True).stdout
    merged = np.frombuffer(raw, np.uint8).reshape(H, W, 3).astype(np.float32)
    assert np.abs(merged - doc.image).mean() <= 1.0

    # psd-tools
    psd = PSDImage.open(path)
    assert psd.depth == bit_depth and psd.version == 1 and psd.has_preview()
    assert [l.name for l in psd] == ["Background", "People"]
    group = psd[1]
    assert group.is_group() and [l.name for l in group] == names
    for k, layer in enumerate(group):
        y0, y1, x0, x1 = _box(stack[k], bit_depth)
        if alpha_as == "mask":
            assert layer.has_mask() and layer.mask.bbox == (x0, y0, x1, y1)
            a = layer.numpy("mask")[..., -1]
        else:
            assert not layer.has_mask()
            a = layer.numpy("shape")[..., -1]
        assert np.abs(a - stack[k][y0:y1, x0:x1]).max() <= (1.01 / 255 if bit_depth == 8 else 2.0 / 65535)
        colour = layer.numpy("color")
        assert np.abs(colour - doc.layers[k].colour[y0:y1, x0:x1]).max() <= (0.51 / 255 if bit_depth == 8 else 1e-4)
    full = psd.composite(force=True)           # psd-tools' own compositor agrees with the photo
    assert np.abs(np.asarray(full.convert("RGB"), np.float32) - doc.image).mean() <= 1.0


def test_psd_respects_hidden_removed_and_adjusted_people(tmp_path, doc):
    a, b, c = (l.id for l in doc.layers)
    doc.set_visible(a, False)
    doc.remove(b)
    doc.set_adjustments(c, Adjustments(exposure=1.0))
    try:
        path = export_document_psd(doc, tmp_path / "edited.psd")
        psd = PSDImage.open(path)
        group = psd[1]
        assert [l.name for l in group] == [doc.layer(a).name, doc.layer(c).name]
        assert group[0].visible is False and group[1].visible is True
        merged = np.asarray(psd.topil().convert("RGB"), np.float32) / 255
        assert np.abs(merged - doc.composite()).mean() < 1.0 / 255
    finally:
        for _ in range(3):
            doc.history.undo()


def test_psb_when_the_psd_limits_are_exceeded(tmp_path):
    assert needs_psb(30_001, 10, 1, 8) and not needs_psb(30_000, 10, 1, 8)
    assert needs_psb(20_000, 20_000, 2, 8)          # 3 x 4 B x 400 MP = 4.8 GB > 2 GB
    assert not needs_psb(15_000, 10_000, 5, 8, layer_pixels=150_000_000)   # 2 x 4 B x 150 MP = 1.2 GB
    assert needs_psb(15_000, 10_000, 5, 16, layer_pixels=150_000_000)      # 2.4 GB at 16 bit
    h, w = 8, 30_010
    a = np.zeros((1, h, w), np.float32)
    a[0, 2:6, 100:140] = 1.0
    colours = np.full((1, h, w, 3), 0.5, np.float32)
    path = write_layered_psd(tmp_path / "wide.psd", np.zeros((h, w, 3), np.uint8), a, colours,
                             np.zeros((h, w, 3), np.float32), ["P"])
    assert path.suffix == ".psb"
    psd = PSDImage.open(path)
    assert psd.version == 2 and psd.width == w and psd[1][0].bbox == (100, 2, 140, 6)


def test_export_result_png_tiff_psd(tmp_path, result, doc):
    files = export_result(result, tmp_path / "out", formats={"psd", "png", "tiff"}, bit_depth=16)
    names = sorted(p.name for p in files)
    k = len(result.instances)
    assert "dev_0000.psd" in names and "dev_0000_composite.png" in names and "dev_0000_composite.tif" in names
    assert len([n for n in names if n.endswith("_alpha.png")]) == k
    assert all(p.exists() for p in files)
    # 16-bit RGBA person PNG: colour + stacking alpha
    person = tmp_path / "out" / "dev_0000_01_Person_1.png"
    arr = cv2.imread(str(person), cv2.IMREAD_UNCHANGED)
    assert arr.dtype == np.uint16 and arr.shape == doc.shape + (4,)
    stack = doc.layer_alphas()
    assert np.abs(arr[..., 3] / 65535.0 - stack[0]).max() < 1e-4
    matte = cv2.imread(str(tmp_path / "out" / "dev_0000_01_Person_1_alpha.png"), cv2.IMREAD_UNCHANGED)
    assert matte.dtype == np.uint16 and np.abs(matte / 65535.0 - result.instances[0].alpha).max() < 1e-4
    comp = cv2.imread(str(tmp_path / "out" / "dev_0000_composite.png"), cv2.IMREAD_UNCHANGED)
    assert np.abs(comp[..., ::-1] / 257.0 - result.image).mean() <= 1.0
    # TIFF: real (unassociated) alpha, read by tifffile and by ImageMagick
    import tifffile  # a dependency of the TIFF export (16-bit needs it)
    tif = tmp_path / "out" / "dev_0000_01_Person_1.tif"
    page = tifffile.TiffFile(tif).pages[0]
    assert page.dtype == np.uint16 and page.shape == doc.shape + (4,) and page.extrasamples == (2,)
    assert np.abs(page.asarray()[..., 3] / 65535.0 - stack[0]).max() < 1e-4
    _magick()
    info = subprocess.run(["identify", "-format", "%[channels] %z", str(tif)], capture_output=True, text=True).stdout
    assert info.startswith("srgba") and info.endswith("16")


def test_export_options_and_errors(tmp_path, doc):
    ids = [l.id for l in doc.layers]
    files = export_result(doc, tmp_path, formats=["png"], people=[ids[1]], stem="x")
    persons = [p.name for p in files if re.match(r"x_\d\d_", p.name) and not p.name.endswith("_alpha.png")]
    assert persons == ["x_02_Person_2.png"]
    img = Image.open(tmp_path / "x_composite.png")
    assert img.mode == "RGB" and img.size == (doc.shape[1], doc.shape[0])
    with pytest.raises(ValueError, match="format"):
        export_result(doc, tmp_path, formats={"jpeg"})
    assert {p.suffix for p in export_result(doc, tmp_path / "s", formats="psd, tif")} == {".psd", ".tif"}
    with pytest.raises(ValueError, match="bit depth"):
        export_result(doc, tmp_path, formats={"png"}, bit_depth=12)
    with pytest.raises(ValueError, match="no person with id"):
        export_result(doc, tmp_path, formats={"png"}, people=[999])
    # transparent background: composite PNG with alpha = coverage
    doc.set_background("transparent")
    try:
        export_result(doc, tmp_path, formats={"png"}, stem="t")
        rgba = np.asarray(Image.open(tmp_path / "t_composite.png"))
        assert rgba.shape[2] == 4
        cover = np.clip(sum(l.alpha for l in doc.layers), 0, 1)
        assert np.abs(rgba[..., 3] / 255.0 - cover).max() <= 1 / 255 + 1e-6
    finally:
        doc.history.undo()


def test_failed_export_leaves_no_partial_file(tmp_path, doc, monkeypatch):
    path = export_document_psd(doc, tmp_path / "keep.psd")
    old = path.read_bytes()
    real_save = PSDImage.save

    def crash_mid_write(self, fh, *args, **kwargs):
        fh.write(b"8BPS half a file")
        raise OSError("No space left on device")
    monkeypatch.setattr(PSDImage, "save", crash_mid_write)
    with pytest.raises(OSError, match="No space"):
        export_document_psd(doc, path)
    monkeypatch.setattr(PSDImage, "save", real_save)
    assert path.read_bytes() == old
    with pytest.raises(OSError, match="power cut"):
        _fail_png(monkeypatch, doc, tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.psd", "new"]
    assert list((tmp_path / "new").iterdir()) == []


def _fail_png(monkeypatch, doc, out):
    """PNG export where the machine dies after the data is written but before the rename."""
    import instmatt_app.io.atomic as atomic

    def failing_replace(src, dst):
        raise OSError("power cut before rename")
    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    try:
        export_result(doc, out, formats={"png"}, stem="s")
    finally:
        monkeypatch.undo()


def test_unicode_layer_names(tmp_path):
    a = np.zeros((1, 20, 30), np.float32)
    a[0, 5:10, 5:10] = 1.0
    name = "李雷 😀 Zinédine"
    path = write_layered_psd(tmp_path / "u.psd", np.zeros((20, 30, 3), np.uint8), a,
                             np.full((1, 20, 30, 3), 0.5, np.float32), np.zeros((20, 30, 3), np.float32), [name])
    assert [l.name for l in PSDImage.open(path)[1]] == [name]


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_quantise_rounds_half_to_even_and_clips(tmp_path, bit_depth):
    """PNG quantisation: round(x · (2^bits − 1)), halves to even, clipped; float64 and out-of-range
    input; a cut-out PNG reads back as the quantised colour and alpha."""
    from instmatt_app.io.png_export import quantise, write_rgba_png
    top = 2 ** bit_depth - 1
    x = np.array([-0.2, 0.0, 0.25, 0.5, 1.0, 1.3], np.float64)
    q = quantise(x, bit_depth)
    assert q.dtype == (np.uint8 if bit_depth == 8 else np.uint16)
    assert q.tolist() == [0, 0, round(0.25 * top), round(0.5 * top), top, top]   # 127.5 -> 128, 32767.5 -> 32768
    with pytest.raises(ValueError, match="bit depth"):
        quantise(x, 12)
    rng = np.random.default_rng(4)
    rgb, a = rng.random((7, 9, 3), dtype=np.float32), rng.random((7, 9), dtype=np.float32)
    path = write_rgba_png(tmp_path / f"q{bit_depth}.png", rgb, a, bit_depth)
    back = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
    assert np.array_equal(back, quantise(np.dstack([rgb, a]), bit_depth))
