"""``.instmatt`` project files: round trip, versioning, clear errors, atomic saves."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from instmatt_app.core.adjustments import Adjustments
from instmatt_app.core.document import Document
from instmatt_app.io.project_file import ProjectFileError, load_project, save_project


@pytest.fixture
def doc(data_dir):
    img = Image.open(data_dir / "qualitative" / "images" / "zidane.jpg").convert("RGB").resize((160, 90))
    image = np.asarray(img)
    d = Document(image)
    yy, xx = np.mgrid[0:90, 0:160]
    a1 = np.clip(1.2 - np.hypot(yy - 45, xx - 50) / 25, 0, 1).astype(np.float32)     # soft disc
    a2 = np.clip((xx - 100) / 30.0, 0, 1).astype(np.float32) * (1 - a1)               # ramp
    a2[0, 0] = 1 / 65535 * 7                                                           # needs 16 bit
    d.add_person(a1, np.stack([a1, a1 * 0.5, 1 - a1]), name="Zinédine")
    d.add_person(a2, None)
    ids = [l.id for l in d.layers]
    d.set_adjustments(ids[0], Adjustments(hue=30, exposure=-0.5))
    d.set_visible(ids[1], False)
    d.set_locked(ids[1], True)
    d.set_colour_tag(ids[0], "#123456")
    d.reorder(ids[::-1])
    d.set_background("blurred", blur_radius=5.5)
    return d


def test_round_trip(tmp_path, doc):
    path = save_project(doc, tmp_path / "session")
    assert path.name == "session.instmatt"
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("project.json"))
        assert not any(n.endswith((".pkl", ".pickle", ".npy")) for n in zf.namelist())
    assert meta["format"] == "instmatt-project" and meta["version"] == "1.0"
    back = load_project(path)
    assert np.array_equal(back.image, doc.image)
    assert [l.id for l in back.layers] == [l.id for l in doc.layers]
    assert back.photo_order == doc.photo_order
    for a, b in zip(doc.layers, back.layers):
        assert (a.name, a.visible, a.locked, a.colour_tag, a.adjustments, a.removed) == \
               (b.name, b.visible, b.locked, b.colour_tag, b.adjustments, b.removed)
        assert np.abs(a.alpha - b.alpha).max() <= 0.5 / 65535 + 1e-7
        assert (a.trimatte is None) == (b.trimatte is None)
        if a.trimatte is not None:
            assert np.abs(a.trimatte - b.trimatte).max() <= 0.5 / 65535 + 1e-7
    assert back.background.mode == "blurred" and back.background.blur_radius == 5.5
    assert not back.history.can_undo
    assert np.abs(back.composite() - doc.composite()).max() < 1e-3
    # new ids continue after the loaded ones
    new = back.add_person(np.zeros(back.shape, np.float32))
    assert new.id > max(l.id for l in doc.layers)


def test_replaced_background_image_round_trips(tmp_path, doc):
    bg = np.zeros((30, 40, 3), np.uint8)
    bg[..., 2] = 255
    doc.set_background("replaced", image=bg)
    back = load_project(save_project(doc, tmp_path / "b.instmatt"))
    assert back.background.mode == "replaced" and np.array_equal(back.background.image, bg)


def _rewrite(path, **changes):
    with zipfile.ZipFile(path) as zf:
        items = {n: zf.read(n) for n in zf.namelist()}
    meta = json.loads(items["project.json"])
    meta.update(changes)
    items["project.json"] = json.dumps(meta).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in items.items():
            zf.writestr(n, data)


def test_future_major_version_is_refused(tmp_path, doc):
    path = save_project(doc, tmp_path / "f.instmatt")
    _rewrite(path, version="1.7", future_key={"x": 1})
    assert len(load_project(path).layers) == 2            # newer minor: extra keys ignored
    _rewrite(path, version="2.0")
    with pytest.raises(ProjectFileError, match=r"f\.instmatt.*newer.*2\.0"):
        load_project(path)


def test_bad_files_give_clear_errors(tmp_path, doc):
    not_zip = tmp_path / "photo.instmatt"
    not_zip.write_bytes(b"\x89PNG not a project")
    with pytest.raises(ProjectFileError, match="photo.instmatt is not an InstMatt project"):
        load_project(not_zip)
    with pytest.raises(ProjectFileError, match="no such file"):
        load_project(tmp_path / "missing.instmatt")
    path = save_project(doc, tmp_path / "d.instmatt")
    with zipfile.ZipFile(path) as zf:
        items = {n: zf.read(n) for n in zf.namelist() if not n.startswith("alphas/")}
    with zipfile.ZipFile(path, "w") as zf:
        for n, data in items.items():
            zf.writestr(n, data)
    with pytest.raises(ProjectFileError, match=r"d\.instmatt: alpha of layer \d+ .* missing"):
        load_project(path)
    other = tmp_path / "other.instmatt"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("project.json", json.dumps({"format": "something-else"}))
    with pytest.raises(ProjectFileError, match="not an InstMatt project"):
        load_project(other)


def test_failed_save_keeps_the_old_file(tmp_path, doc, monkeypatch):
    path = save_project(doc, tmp_path / "keep.instmatt")
    old = path.read_bytes()
    doc.rename(doc.layers[1].id, "Changed")
    real_writestr = zipfile.ZipFile.writestr
    calls = []

    def failing_writestr(self, *args, **kwargs):   # the disk fills up after the first entry
        calls.append(args[0])
        if len(calls) > 1:
            raise OSError("No space left on device")
        return real_writestr(self, *args, **kwargs)
    monkeypatch.setattr(zipfile.ZipFile, "writestr", failing_writestr)
    with pytest.raises(OSError, match="No space"):
        save_project(doc, path)
    assert len(calls) == 2                      # it failed mid-write, not before writing
    assert path.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == ["keep.instmatt"]   # no temp file left
