"""Segment Anything backend with a tiny randomly initialised SAM built here (no download)."""
from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from segment_anything import sam_model_registry
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer

from instmatt_app.core.result import Detection
from instmatt_app.nets import registry
from instmatt_app.nets.sam import (SamDetector, SamInteractivePredictor, SamWeightsError, build_sam,
                                   load_state_dict_file, sam_config, tighten, validate_state_dict)

IMG = 128  # encoder input size: an 8x8 token grid with 2x2 attention windows


def make_tiny_sam(seed: int = 0) -> Sam:
    torch.manual_seed(seed)
    dim = 32
    grid = IMG // 16
    return Sam(
        image_encoder=ImageEncoderViT(img_size=IMG, patch_size=16, embed_dim=48, depth=3, num_heads=4, mlp_ratio=2.0,
                                      out_chans=dim, qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
                                      use_rel_pos=True, window_size=2, global_attn_indexes=(1,)),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(grid, grid), input_image_size=(IMG, IMG),
                                     mask_in_chans=8),
        mask_decoder=MaskDecoder(num_multimask_outputs=3,
                                 transformer=TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=64, num_heads=8),
                                 transformer_dim=dim, iou_head_depth=3, iou_head_hidden_dim=16),
    ).eval()


@pytest.fixture(scope="module")
def tiny_sd() -> dict:
    return make_tiny_sam().state_dict()


@pytest.fixture()
def photo() -> np.ndarray:
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (90, 150, 3), dtype=np.uint8)
    img[20:80, 50:90] = (200, 40, 40)
    return img


def test_config_is_read_from_shapes(tiny_sd):
    cfg = sam_config(tiny_sd)
    assert cfg.variant == "custom"
    assert (cfg.encoder_embed_dim, cfg.encoder_depth, cfg.encoder_num_heads) == (48, 3, 4)
    assert cfg.encoder_global_attn_indexes == (1,) and cfg.window_size == 2
    assert (cfg.image_size, cfg.patch_size, cfg.prompt_embed_dim) == (IMG, 16, 32)
    assert (cfg.decoder_depth, cfg.num_multimask_outputs, cfg.iou_head_depth) == (2, 3, 3)
    assert validate_state_dict(tiny_sd) is None


@pytest.mark.parametrize("variant, dim, depth, heads, glob", [
    ("vit_b", 768, 12, 12, (2, 5, 8, 11)), ("vit_l", 1024, 24, 16, (5, 11, 17, 23)),
    ("vit_h", 1280, 32, 16, (7, 15, 23, 31))])
def test_released_variants_recognised(variant, dim, depth, heads, glob):
    with torch.device("meta"):  # the real architectures, shapes only (no memory, no download)
        sd = sam_model_registry[variant]().state_dict()
    cfg = sam_config(sd)
    assert cfg.variant == variant
    assert (cfg.encoder_embed_dim, cfg.encoder_depth, cfg.encoder_num_heads) == (dim, depth, heads)
    assert cfg.encoder_global_attn_indexes == glob and cfg.window_size == 14 and cfg.image_size == 1024
    assert validate_state_dict(sd) is None


def test_validate_reasons(tiny_sd):
    assert "not a state dict" in validate_state_dict("hello")
    assert "empty" in validate_state_dict({})
    assert "not a Segment Anything checkpoint" in validate_state_dict({"backbone.conv1.weight": torch.zeros(1)})
    mobile = {k.replace("image_encoder.blocks", "image_encoder.layers"): v for k, v in tiny_sd.items()
              if k != "image_encoder.patch_embed.proj.weight"}
    assert "not SAM's ViT" in validate_state_dict(mobile)
    broken = dict(tiny_sd)
    del broken["mask_decoder.iou_token.weight"]
    assert "missing" in validate_state_dict(broken) and "iou_token" in validate_state_dict(broken)
    extra = dict(tiny_sd, **{"mask_decoder.extra.weight": torch.zeros(2)})
    assert "unexpected" in validate_state_dict(extra)
    bad = dict(tiny_sd, **{"mask_decoder.iou_token.weight": torch.zeros(1, 5)})
    assert "wrong shape" in validate_state_dict(bad)


def test_file_loading_and_registry(tmp_path, tiny_sd, photo):
    path = tmp_path / "sam_tiny.pth"
    torch.save(tiny_sd, path)
    det = registry.build("detector", "sam", weights=str(path))
    assert isinstance(det, SamDetector)
    # the weights really came from the file
    loaded = det.predictor.model.state_dict()
    assert all(torch.equal(loaded[k], tiny_sd[k]) for k in tiny_sd)
    (tmp_path / "junk.pth").write_bytes(b"\x00junk")
    with pytest.raises(SamWeightsError, match="junk.pth"):
        load_state_dict_file(tmp_path / "junk.pth")
    with pytest.raises(SamWeightsError, match="missing.pth"):
        load_state_dict_file(tmp_path / "missing.pth")
    with pytest.raises(SamWeightsError, match="needs a checkpoint"):
        registry.build("detector", "sam")


def test_predict_shapes_and_postprocessing(tiny_sd, photo):
    pred = SamInteractivePredictor(build_sam(tiny_sd))
    pred.set_image(photo)
    mask, score = pred.predict(points=[(70, 50)], labels=[1])
    assert mask.shape == (90, 150) and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0 and np.isfinite(score)
    # the returned mask is SAM's best candidate: sigmoid of its logits, > 0.5 = SAM's binary mask
    logits, scores, _ = pred._predictor.predict(point_coords=np.array([[70.0, 50.0]]), point_labels=np.array([1]),
                                                multimask_output=True, return_logits=True)
    best = int(np.argmax(scores))
    assert score == pytest.approx(float(scores[best]))
    np.testing.assert_array_equal(mask > 0.5, logits[best] > pred.model.mask_threshold)
    mask_b, _ = pred.predict(points=[(70, 50), (10, 10)], labels=[1, 0], box=(40, 10, 100, 85))
    assert mask_b.shape == (90, 150)
    with pytest.raises(ValueError, match="labels"):
        pred.predict(points=[(1, 1), (2, 2)], labels=[1])
    with pytest.raises(ValueError, match="point or a box"):
        pred.predict()


def test_embedding_computed_once_per_photo(tiny_sd, photo):
    pred = SamInteractivePredictor(build_sam(tiny_sd), cache_size=2)
    with pytest.raises(RuntimeError, match="set_image"):
        pred.predict(points=[(1, 1)])
    calls = []
    encoder = pred.model.image_encoder
    encoder.register_forward_hook(lambda *a: calls.append(1))
    for x in (20, 60, 100, 140):
        pred.set_image(photo)
        pred.predict(points=[(x, 45)])
    pred.set_image(photo.copy())  # same pixels, another array: still cached
    assert len(calls) == 1 and pred.embeddings_computed == 1
    other = photo[::-1].copy()
    pred.set_image(other)
    first_other = pred.predict(points=[(20, 20)])[0]
    pred.set_image(photo)  # back to the first photo: from the cache
    assert len(calls) == 2
    pred.set_image(other)
    np.testing.assert_array_equal(pred.predict(points=[(20, 20)])[0], first_other)
    assert len(calls) == 2


def test_tighten_keeps_disagreeing_masks(tiny_sd, photo):
    pred = SamInteractivePredictor(build_sam(tiny_sd))
    pred.set_image(photo)
    sam_mask, _ = pred.predict(box=(45, 15, 95, 85))
    agree = Detection(box=(45, 15, 95, 85), score=0.9, mask=(sam_mask > 0.5).astype(np.float32), source="default")
    empty_box = np.zeros((90, 150), np.float32)
    empty_box[0:5, 0:5] = 1.0
    disagree = Detection(box=(45, 15, 95, 85), score=0.8, mask=empty_box, source="default")
    assert (sam_mask > 0.5).any()  # (seeded random SAM: 39 % of the photo)
    out = tighten(pred, photo, [agree, disagree])
    assert out[0].source == "default+sam" and np.array_equal(out[0].mask, sam_mask)
    assert out[1] is disagree
    assert tighten(pred, photo, []) == []


def test_sam_detector_tightens_base_detections(tiny_sd, photo):
    class FixedBase:
        def detect(self, image):
            mask = np.zeros(image.shape[:2], np.float32)
            mask[20:80, 50:90] = 1.0
            return [Detection(box=(50, 20, 90, 80), score=0.9, mask=mask, source="fixed")]

    det = SamDetector(SamInteractivePredictor(build_sam(tiny_sd)), min_agreement=0.0)
    det._base = FixedBase()
    out = det.detect(photo)
    assert len(out) == 1 and out[0].source == "fixed+sam" and out[0].mask.shape == (90, 150)
    assert out[0].box == (50, 20, 90, 80)


def test_cuda_out_of_memory_falls_back_to_cpu(tiny_sd, photo, monkeypatch):
    pred = SamInteractivePredictor(build_sam(tiny_sd))
    pred.device = "cuda"  # as if the encoder ran on a GPU that runs out of memory
    real_set_image = pred._predictor.set_image
    calls = []

    def set_image(image, image_format="RGB"):
        calls.append(pred.device)
        if pred.device != "cpu":
            raise torch.cuda.OutOfMemoryError("CUDA out of memory")
        return real_set_image(image, image_format=image_format)

    monkeypatch.setattr(pred._predictor, "set_image", set_image)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    pred.set_image(photo)
    assert calls == ["cuda", "cpu"] and pred.device == "cpu" and pred.embeddings_computed == 1
    assert pred.predict(points=[(70, 50)])[0].shape == (90, 150)
