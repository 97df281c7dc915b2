"""The default matter's ownership split and tri-matte invariants (small arrays + one real photo)."""
import numpy as np

from instmatt_app.nets.default_matter import DefaultMatter, ownership
from instmatt_app.nets.image_context import ImageContext


def _two_masks():
    m = np.zeros((2, 60, 100), np.float32)
    m[0, 10:50, 10:48] = 1
    m[1, 10:50, 52:90] = 1
    return m


def test_ownership_sums_to_at_most_one_and_follows_the_masks():
    m = np.zeros((2, 160, 240), np.float32)
    m[0, 40:120, 40:118] = 1
    m[1, 40:120, 122:200] = 1
    own = ownership(m, spread_px=20.0)
    assert own.shape == m.shape and (own.sum(0) <= 1 + 1e-5).all()
    assert own[0, 80, 60] > 0.99 and own[1, 80, 60] < 0.01       # inside person 0
    assert own[1, 80, 180] > 0.99 and own[0, 80, 180] < 0.01     # inside person 1
    assert abs(own[0, 80, 119] - own[1, 80, 120]) < 1e-3         # the gap is split symmetrically
    assert own[:, 80, 119:121].sum(0).min() > 0.5                  # ... and owned (hair, edges)
    assert own[0, 80, 112] > 0.95                                  # near its own edge, a person wins
    assert own[:, 155, 5].sum() < 0.05                             # far from everyone: nobody's


def test_matte_splits_the_human_alpha_without_creating_any():
    img = np.full((60, 100, 3), 128, np.uint8)
    ctx = ImageContext(img)
    human = np.zeros((60, 100), np.float32)
    human[8:52, 8:92] = 0.9
    ctx.cache["human_alpha"] = human  # what RVM would have said
    tri = DefaultMatter().matte(img, _two_masks(), context=ctx)
    assert tri.shape == (2, 3, 60, 100)
    np.testing.assert_allclose(tri.sum(1), 1.0, atol=1e-5)      # α_t + α_r + α_b = 1
    assert (tri[:, 0].sum(0) <= human + 1e-5).all()               # never more alpha than humans there
    np.testing.assert_allclose(tri[0, 0, 30, 20], 0.9, atol=1e-3)
    np.testing.assert_allclose(tri[0, 1, 30, 80], 0.9, atol=1e-3)  # α_r of person 0 is person 1


def test_a_person_the_human_matter_dropped_keeps_an_alpha():
    img = np.zeros((60, 100, 3), np.uint8)
    img[10:50, 52:90] = 220                                       # a bright person on a dark ground
    ctx = ImageContext(img)
    human = np.zeros((60, 100), np.float32)
    human[10:50, 10:48] = 1.0                                     # RVM saw only person 0
    ctx.cache["human_alpha"] = human
    tri = DefaultMatter().matte(img, _two_masks(), context=ctx)
    assert tri[1, 0, 20:40, 60:80].mean() > 0.8                   # the mask fallback brings person 1 back
    assert tri[1, 0, 2:8, 2:8].max() < 0.05


def test_alphas_are_the_tri_mattes_first_channel_below_the_working_resolution():
    """The engine's path (alphas only, full-resolution buffers reused) gives the α_t of ``matte``,
    also when ownership is computed at a working resolution below the photo's and with the fallback."""
    from instmatt_app.nets.default_matter import MatterConfig

    img = np.zeros((120, 200, 3), np.uint8)
    img[20:100, 104:180] = 220
    ctx = ImageContext(img)
    human = np.zeros((120, 200), np.float32)
    human[20:100, 20:96] = 1.0                                     # person 1 dropped: the fallback
    ctx.cache["human_alpha"] = human
    masks = np.zeros((2, 120, 200), np.float32)
    masks[0, 20:100, 20:96] = 1
    masks[1, 20:100, 104:180] = 1
    matter = DefaultMatter(config=MatterConfig(work_side=64))
    a = matter.alphas(img, masks, context=ctx)
    tri = matter.matte(img, masks, context=ctx)
    assert a.shape == (2, 120, 200) and a.dtype == np.float32
    np.testing.assert_array_equal(a, tri[:, 0])
    assert (a.sum(0) <= 1 + 1e-6).all() and a[1, 40:80, 120:160].mean() > 0.8
    assert matter.alphas(img, masks[:0], context=ctx).shape == (0, 120, 200)
