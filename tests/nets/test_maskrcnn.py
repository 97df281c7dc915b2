"""Mask R-CNN backend: state-dict validation, loading from a file, detection post-processing.

Every network here is torchvision's architecture with random weights built in the test (nothing is
downloaded).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

from instmatt_app.core.result import Detection
from instmatt_app.nets import registry
from instmatt_app.nets.maskrcnn import (MaskRCNNDetector, MaskRCNNWeightsError, build_maskrcnn_detector,
                                        load_state_dict_file, state_dict_variant, validate_state_dict)


@pytest.fixture(scope="module")
def v1_state_dict() -> dict:
    torch.manual_seed(0)
    return maskrcnn_resnet50_fpn(weights=None, weights_backbone=None).state_dict()


def test_validate_accepts_torchvision_state_dict(v1_state_dict):
    assert state_dict_variant(v1_state_dict) == "v1"
    assert validate_state_dict(v1_state_dict) is None
    assert validate_state_dict({"model": v1_state_dict}) is None  # training-checkpoint wrapper


def test_validate_accepts_legacy_key_names(v1_state_dict):
    sd = dict(v1_state_dict)
    sd["rpn.head.conv.weight"] = sd.pop("rpn.head.conv.0.0.weight")
    sd["roi_heads.mask_head.mask_fcn1.bias"] = sd.pop("roi_heads.mask_head.0.0.bias")
    sd["backbone.body.bn1.num_batches_tracked"] = torch.tensor(0)
    assert validate_state_dict(sd) is None


@pytest.mark.parametrize("bad, words", [
    ([1, 2, 3], "not a state dict"),
    ({}, "empty"),
    ({"image_encoder.pos_embed": torch.zeros(1)}, "not a torchvision Mask R-CNN"),
])
def test_validate_rejects_other_things(bad, words):
    reason = validate_state_dict(bad)
    assert reason is not None and words in reason


def test_validate_names_missing_and_misshapen_tensors(v1_state_dict):
    sd = dict(v1_state_dict)
    del sd["roi_heads.mask_predictor.mask_fcn_logits.weight"]
    reason = validate_state_dict(sd)
    assert "missing" in reason and "mask_fcn_logits.weight" in reason
    sd = dict(v1_state_dict)
    sd["roi_heads.box_head.fc7.weight"] = torch.zeros(3, 3)
    reason = validate_state_dict(sd)
    assert "wrong shape" in reason and "fc7" in reason


def test_load_file_errors_name_the_file(tmp_path, v1_state_dict):
    missing = tmp_path / "nope.pth"
    with pytest.raises(MaskRCNNWeightsError, match="nope.pth"):
        load_state_dict_file(missing)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint")
    with pytest.raises(MaskRCNNWeightsError, match="junk.pth"):
        load_state_dict_file(junk)
    other = tmp_path / "other.pth"
    torch.save({"a.weight": torch.zeros(2)}, other)
    with pytest.raises(MaskRCNNWeightsError, match="other.pth.*not a torchvision Mask R-CNN"):
        load_state_dict_file(other)
    with pytest.raises(MaskRCNNWeightsError, match="needs a weights file"):
        build_maskrcnn_detector(None)


def test_registry_builds_from_file_and_detects(tmp_path, v1_state_dict):
    path = tmp_path / "maskrcnn.pth"
    sd = dict(v1_state_dict)
    bias = sd["roi_heads.box_predictor.cls_score.bias"].clone()
    bias[1] = 12.0  # the random network now calls every box a confident person
    sd["roi_heads.box_predictor.cls_score.bias"] = bias
    torch.save(sd, path)
    det = registry.build("detector", "maskrcnn", weights=str(path), device="cuda",
                         min_area_fraction=0.0, min_size=160, max_size=240)
    assert isinstance(det, MaskRCNNDetector) and det.variant == "v1"
    assert det.device in ("cpu", "cuda")
    det.to("cpu")
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (120, 180, 3), dtype=np.uint8)
    found = det.detect(image)
    assert len(found) > 0
    assert [d.score for d in det.detect(image, context=None)] == [d.score for d in found]
    for d in found:
        assert d.score >= 0.7
        assert isinstance(d, Detection) and d.source == "maskrcnn"
        assert d.mask.shape == (120, 180) and d.mask.dtype == np.float32
        assert 0.0 <= d.mask.min() and d.mask.max() <= 1.0
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 <= x1 <= 180 and 0 <= y0 <= y1 <= 120
    scores = [d.score for d in found]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(ValueError, match="uint8"):
        det.detect(image.astype(np.float32))


def test_postprocess_keeps_only_confident_large_people(v1_state_dict):
    det = MaskRCNNDetector(v1_state_dict, min_size=160, max_size=240)
    h, w = 50, 100
    masks = np.zeros((5, 1, h, w), np.float32)
    masks[0, 0, :, :50] = 0.9   # person, 0.95, half the image -> kept
    masks[1, 0, :, :50] = 0.9   # person, 0.5 -> below score threshold
    masks[2, 0, :, :50] = 0.9   # a dog (label 18), 0.99 -> not a person
    masks[3, 0, :2, :10] = 0.9  # person, 0.9, 20 px = 0.4 % -> too small
    masks[4, 0, 10:40, 60:90] = 0.8  # person, 0.8, 18 % -> kept
    out = {"boxes": np.array([[0, 0, 50, 50], [0, 0, 50, 50], [0, 0, 50, 50], [0, 0, 10, 2], [60, 10, 90, 40]],
                             np.float32),
           "labels": np.array([1, 1, 18, 1, 1]), "scores": np.array([0.95, 0.5, 0.99, 0.9, 0.8], np.float32),
           "masks": masks}
    found = det._postprocess(out, (h, w))
    assert [d.score for d in found] == pytest.approx([0.95, 0.8])
    assert found[1].box == (60.0, 10.0, 90.0, 40.0)
    np.testing.assert_allclose(found[0].mask, masks[0, 0])
    det.min_area_fraction = 0.0
    assert len(det._postprocess(out, (h, w))) == 3


def test_cuda_out_of_memory_falls_back_to_cpu(v1_state_dict, monkeypatch):
    det = MaskRCNNDetector(v1_state_dict, min_size=160, max_size=240)
    det.device = "cuda"  # as if the network were on a GPU that runs out of memory
    real_forward = det._forward
    calls = []

    def forward(image):
        calls.append(det.device)
        if det.device != "cpu":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real_forward(image)

    monkeypatch.setattr(det, "_forward", forward)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    image = np.full((60, 80, 3), 127, np.uint8)
    assert isinstance(det.detect(image), list)
    assert calls == ["cuda", "cpu"] and det.device == "cpu"
    assert next(det.net.parameters()).device.type == "cpu"
