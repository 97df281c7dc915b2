import hashlib
import json

import pytest
import torch

from instmatt_app import model_manager as mm


@pytest.fixture()
def models_tmp(tmp_path, monkeypatch):
    """A models folder with one small committed file, used instead of the real one."""
    d = tmp_path / "models"
    d.mkdir()
    payload = b"weights" * 100
    (d / "tiny.bin").write_bytes(payload)
    manifest = {"version": 1, "models": [{
        "name": "tiny", "role": "test", "file": "tiny.bin", "sha256": hashlib.sha256(payload).hexdigest(),
        "size": len(payload), "licence": "MIT", "origin": {"type": "test"}, "install": "committed"}]}
    (d / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("INSTMATT_MODELS", str(d))
    monkeypatch.setenv("INSTMATT_DATA", str(tmp_path / "userdata"))
    return d


def test_verify_detects_missing_and_corrupt(models_tmp):
    assert mm.verify() == [("tiny", "ok")]
    assert mm.model_path("tiny", check=True) == models_tmp / "tiny.bin"
    (models_tmp / "tiny.bin").write_bytes(b"x" * 700)
    assert mm.verify() == [("tiny", "sha256 mismatch")]
    with pytest.raises(mm.ModelError, match="corrupt"):
        mm.model_path("tiny", check=True)
    (models_tmp / "tiny.bin").unlink()
    assert mm.verify() == [("tiny", "missing")]
    with pytest.raises(mm.ModelError, match="models install"):
        mm.model_path("tiny")


def test_real_manifest_is_complete():
    """Every embedded model records name, role, file, sha256, size, licence and origin."""
    for e in mm.load_manifest(mm._REPO_MODELS / "manifest.json"):
        assert e.role and e.licence and e.origin and len(e.sha256) == 64 and e.size > 0
        assert e.install in ("committed", "extract", "pose-bundle")
        if e.install == "extract":
            assert {"package", "version", "path"} <= set(e.origin)


def test_pose_bundle_is_rebuilt_bit_identically():
    """Set-up builds the pose landmarker bundle from the mediapipe wheel's files: reproducible sha256."""
    entry = next(e for e in mm.load_manifest(mm._REPO_MODELS / "manifest.json") if e.install == "pose-bundle")
    data = mm.build_pose_bundle(entry.origin)
    assert hashlib.sha256(data).hexdigest() == entry.sha256


class _Payload:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_pickle_payload_is_refused_and_never_run(tmp_path, models_tmp, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "x": _Payload()}, bad)
    with pytest.raises(mm.ModelError, match="refused"):
        mm.add_user_model("maskrcnn", bad)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
    assert not (mm.user_models_dir() / "maskrcnn").exists()


def test_wrong_or_corrupt_weights_are_refused(tmp_path, models_tmp):
    wrong = tmp_path / "wrong.pth"
    torch.save({"foo.weight": torch.zeros(3)}, wrong)
    with pytest.raises(mm.ModelError, match="refused as a maskrcnn model"):
        mm.add_user_model("maskrcnn", wrong)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x04garbage")
    with pytest.raises(mm.ModelError, match="corrupt.pth"):
        mm.add_user_model("sam", corrupt)
    with pytest.raises(mm.ModelError, match="unknown model kind"):
        mm.add_user_model("yolo", wrong)
    assert mm.user_model("maskrcnn") is None


def test_official_instmatt_checkpoint_is_accepted(fixtures_dir, tmp_path, models_tmp):
    ckpt = fixtures_dir / "instmatt-official-random" / "checkpoint.pth"
    dest = mm.add_user_model("instmatt", ckpt)
    assert dest.is_file() and mm.user_model("instmatt") == dest
    rows = {r["name"]: r for r in mm.list_models()}
    assert rows["user-instmatt"]["sha256"] == mm.sha256_file(ckpt)


def test_text_file_is_refused_cleanly(tmp_path, models_tmp):
    notes = tmp_path / "notes.pth"
    notes.write_text("these are not weights\n")
    with pytest.raises(mm.ModelError, match="not a readable PyTorch weights file"):
        mm.add_user_model("instmatt", notes)
