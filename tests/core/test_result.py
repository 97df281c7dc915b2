"""The engine's result objects: tri-mattes and tri-masks derived from the people's alphas on access."""
import numpy as np
import pytest

from instmatt_app.core.result import Instance, MattingResult, PeopleAlphas
from instmatt_app.core.trimask import trimasks


def _people(k: int = 3, h: int = 12, w: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    alphas = rng.random((k, h, w)).astype(np.float32)
    alphas /= np.maximum(alphas.sum(0), 1.0)[None]           # Σ α ≤ 1, as after the consistency step
    masks = (rng.random((k, h, w)) > 0.5).astype(np.float32) * rng.random((k, h, w)).astype(np.float32)
    return alphas, masks


@pytest.mark.parametrize("mode", ["union", "sum"])
def test_trimatte_and_trimask_are_derived_from_the_shared_alphas_and_masks(mode):
    alphas, masks = _people()
    people = PeopleAlphas(alphas, masks, mode)
    expected_masks = trimasks(masks, mode)
    total = alphas.sum(0)
    for i in range(len(alphas)):
        inst = Instance(index=i, box=(0, 0, 16, 12), score=1.0, coarse_mask=masks[i], people=people)
        assert inst.alpha is people.alphas[i] or np.shares_memory(inst.alpha, alphas)   # no copy
        tri = inst.trimatte
        assert tri.shape == (3, 12, 16) and tri.dtype == np.float32
        np.testing.assert_allclose(tri[0], alphas[i])
        np.testing.assert_allclose(tri[1], total - alphas[i], atol=1e-6)              # α_r = Σ others
        np.testing.assert_allclose(tri[2], 1 - total, atol=1e-6)                       # α_b = 1 − Σ
        np.testing.assert_allclose(tri.sum(0), 1.0, atol=1e-5)
        np.testing.assert_allclose(inst.trimask, expected_masks[i], atol=1e-6)
        assert inst.trimatte is not tri                        # computed on access, not kept


def test_explicit_trimatte_is_kept_as_given():
    alphas, masks = _people(k=2)
    tri = np.stack([alphas[0], np.full_like(alphas[0], 0.25), np.full_like(alphas[0], 0.5)])
    inst = Instance(index=0, box=(0, 0, 1, 1), score=1.0, coarse_mask=masks[0], trimatte=tri,
                    people=PeopleAlphas(alphas, masks))
    assert inst.trimatte is tri and np.shares_memory(inst.alpha, tri)
    np.testing.assert_allclose(inst.trimask, trimasks(masks)[0], atol=1e-6)           # still derived
    plain = Instance(index=0, box=(0, 0, 1, 1), score=1.0, coarse_mask=masks[0], trimask=tri, trimatte=tri)
    assert plain.trimask is tri and plain.trimatte is tri


def test_missing_or_mismatched_data_is_a_clear_error():
    alphas, masks = _people(k=2)
    with pytest.raises(ValueError, match="needs alpha"):
        Instance(index=0, box=(0, 0, 1, 1), score=1.0, coarse_mask=masks[0], trimask=masks)
    with pytest.raises(ValueError, match="needs trimask"):
        Instance(index=0, box=(0, 0, 1, 1), score=1.0, coarse_mask=masks[0], trimatte=np.stack([alphas[0]] * 3))
    with pytest.raises(ValueError, match="both be"):
        PeopleAlphas(alphas, masks[:1])


def test_result_alphas_and_background():
    alphas, masks = _people(k=3)
    people = PeopleAlphas(alphas, masks)
    insts = [Instance(index=i, box=(0, 0, 1, 1), score=1.0, coarse_mask=masks[i], people=people) for i in range(3)]
    r = MattingResult(image=np.zeros((12, 16, 3), np.uint8), instances=insts)
    np.testing.assert_array_equal(r.alphas, alphas)
    np.testing.assert_allclose(r.background_alpha, 1 - alphas.sum(0), atol=1e-6)
    assert "index=1" in repr(insts[1])


def test_a_result_can_adopt_alphas_held_elsewhere():
    """adopt_alphas: the instances take the given planes (a document's layers) and the result lets
    its own (k, H, W) stack go; tri-mattes follow the adopted alphas."""
    alphas, masks = _people()
    people = PeopleAlphas(alphas, masks)
    insts = [Instance(index=i, box=(0, 0, 16, 12), score=1.0, coarse_mask=masks[i], people=people) for i in range(3)]
    res = MattingResult(image=np.zeros((12, 16, 3), np.uint8), instances=insts)
    _ = insts[0].trimatte                                   # the total is cached: must follow the adoption
    held = [a.copy() * 0.5 for a in alphas]
    res.adopt_alphas(held)
    assert all(inst.alpha is h for inst, h in zip(insts, held))
    assert not any(np.shares_memory(a, alphas) for a in people.alphas)   # the stack is no longer referenced
    np.testing.assert_allclose(insts[1].trimatte[1], held[0] + held[2], atol=1e-6)
    with pytest.raises(ValueError, match="3 alphas"):
        res.adopt_alphas(held[:2])
    with pytest.raises(ValueError, match="float32"):
        res.adopt_alphas([h.astype(np.float64) for h in held])
