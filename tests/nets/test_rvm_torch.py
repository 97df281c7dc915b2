"""RVM ported to PyTorch: the ported network reproduces the shipped ONNX model on a real photo."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from instmatt_app.model_manager import model_path
from instmatt_app.nets.rvm_torch import (
    RVM,
    RVMWeightError,
    _read_initializers_protobuf,
    load_rvm_onnx_weights,
    rvm_from_onnx,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def onnx_file() -> Path:
    p = model_path("rvm-mobilenetv3")
    if not p.is_file():
        pytest.fail(f"{p} missing: run `instmatt models install` (scripts/setup.sh does)")
    return p


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    img = cv2.cvtColor(cv2.imread(str(ROOT / "resources/sample/two_portraits.jpg")), cv2.COLOR_BGR2RGB)
    return cv2.resize(img, (384, int(384 * img.shape[0] / img.shape[1])), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_port_matches_onnx_runtime(onnx_file, photo, ratio):
    import onnxruntime as ort

    src = np.ascontiguousarray(photo.transpose(2, 0, 1)[None], dtype=np.float32) / 255
    sess = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    rec = [np.zeros((1, 1, 1, 1), np.float32)] * 4
    fgr, pha, *_ = sess.run(None, {"src": src, "r1i": rec[0], "r2i": rec[1], "r3i": rec[2], "r4i": rec[3],
                                   "downsample_ratio": np.array([ratio], np.float32)})
    model = rvm_from_onnx(onnx_file)
    with torch.no_grad():
        fgr_t, pha_t = model(torch.from_numpy(src), ratio)
    assert pha_t.shape == pha.shape
    assert np.abs(pha_t.numpy() - pha).max() < 1e-4
    assert np.abs(fgr_t.numpy() - fgr).max() < 1e-4
    assert 0.05 < pha.mean() < 0.95          # a real photo with people: not a degenerate output


def test_protobuf_reader_reads_every_initialiser(onnx_file):
    inits = _read_initializers_protobuf(onnx_file)
    assert len(inits) == 170
    assert tuple(inits["project_mat.conv.weight"].shape) == (4, 16, 1, 1)
    model = RVM()
    load_rvm_onnx_weights(model, onnx_file)   # every shape checked inside


def test_bad_files_are_refused(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07this is not an onnx model")
    with pytest.raises(RVMWeightError):
        rvm_from_onnx(bad)
    with pytest.raises(RVMWeightError, match="not found"):
        rvm_from_onnx(tmp_path / "missing.onnx")
