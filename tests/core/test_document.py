"""Document model: every command with undo / redo, events, locking, lazy colours, compositing."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

from instmatt_app.core.adjustments import Adjustments
from instmatt_app.core.commands import LayerLockedError
from instmatt_app.core.document import Document
from instmatt_app.core.result import Instance, MattingResult

TOL = 1 / 255


def make_result(image: np.ndarray, alphas: np.ndarray) -> MattingResult:
    insts = []
    for k, a in enumerate(alphas):
        ys, xs = np.nonzero(a > 0)
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        insts.append(Instance(index=k, box=box, score=1.0, coarse_mask=(a > 0.5).astype(np.float32),
                              trimask=np.stack([a > 0.5, a > 0.5, a <= 0.5]).astype(np.float32),
                              trimatte=np.stack([a, a, a]).astype(np.float32)))
    return MattingResult(image=image, instances=insts, order=list(range(len(insts))))


def load_sample(data_dir, name: str, scale: float = 0.4):
    d = data_dir / "synthetic"
    img = Image.open(d / "images_png" / "comp" / f"{name}.png").convert("RGB")
    w, h = round(img.width * scale), round(img.height * scale)
    image = np.asarray(img.resize((w, h), Image.LANCZOS))
    alphas = np.stack([cv2.resize(np.asarray(Image.open(f), np.float32) / 255, (w, h), interpolation=cv2.INTER_AREA)
                       for f in sorted((d / "alphas" / "comp" / name).glob("*.png"))])
    # the downscaled photo is consistent with the downscaled alphas up to resampling; that is all
    # the composite check needs, since colours are estimated from this photo.
    return image, alphas


@pytest.fixture(scope="module")
def sample(data_dir):
    return load_sample(data_dir, "dev_0000")   # 3 people, overlapping


@pytest.fixture
def doc(sample):
    image, alphas = sample
    return Document.from_result(make_result(image, alphas))


def photo(doc):
    return doc.image.astype(np.float32) / 255


def test_from_result_and_untouched_composite_equals_photo(doc, sample):
    image, alphas = sample
    assert [l.name for l in doc.layers] == ["Person 1", "Person 2", "Person 3"]
    assert len({l.id for l in doc.layers}) == 3
    assert all(l.colour is None for l in doc.layers)         # lazy
    comp = doc.composite()
    assert all(l.colour is not None and l.colour.shape == image.shape for l in doc.layers)
    assert comp.shape == image.shape and comp.dtype == np.float32
    assert np.abs(comp - photo(doc)).mean() <= TOL
    assert not doc.history.can_undo


def test_a_tri_matte_derived_from_the_alphas_is_not_kept(sample):
    """The engine's consistent results derive every tri-matte from the alphas: the document keeps
    none (0.3 GB per person at 24 MP); a matter's own α_r, α_b (explicit tri-mattes) are kept."""
    from instmatt_app.core.result import PeopleAlphas

    image, alphas = sample
    alphas = (alphas / np.maximum(alphas.sum(0), 1.0)).astype(np.float32)
    masks = (alphas > 0.5).astype(np.float32)
    people = PeopleAlphas(alphas, masks)
    derived = MattingResult(image=image, order=[0, 1, 2], instances=[
        Instance(index=k, box=(0.0, 0.0, 1.0, 1.0), score=1.0, coarse_mask=masks[k], people=people)
        for k in range(3)])
    doc = Document.from_result(derived)
    assert all(not i.has_own_trimatte for i in derived.instances)
    assert all(l.trimatte is None for l in doc.layers)
    for layer, a in zip(doc.layers, alphas):
        np.testing.assert_array_equal(layer.alpha, a)
        assert not np.shares_memory(layer.alpha, alphas)      # painted in place: the document's own
    own = Document.from_result(make_result(image, alphas))
    assert all(l.trimatte is not None and l.trimatte.shape == (3,) + image.shape[:2] for l in own.layers)


def test_empty_document_composite_is_the_photo(sample):
    doc = Document(sample[0])
    assert doc.layers == []
    assert np.abs(doc.composite() - photo(doc)).max() < 1e-6
    with pytest.raises(ValueError, match="uint8"):
        Document(sample[0].astype(np.float32))


def test_layer_alphas_invert_eq14(doc):
    a = doc.layer_alphas()
    vis = np.stack([l.alpha for l in doc.layers])
    from instmatt_app.core.compositing import visible_alphas
    assert np.abs(visible_alphas(a) - vis).max() < 1e-5


def check_undo_redo(doc, before, after_check):
    """after_check(doc) must hold after do and redo; the composite after undo equals ``before``."""
    after_check(doc)
    assert doc.history.can_undo
    assert doc.history.undo()
    assert np.abs(doc.composite() - before).max() < 1e-6
    assert doc.history.can_redo
    assert doc.history.redo()
    after_check(doc)


def test_rename_undo_redo(doc):
    lid = doc.layers[0].id
    doc.rename(lid, "Alice")
    assert doc.history.undo_label == "Rename to 'Alice'"
    assert doc.layer(lid).name == "Alice"
    doc.history.undo()
    assert doc.layer(lid).name == "Person 1" and doc.history.redo_label == "Rename to 'Alice'"
    doc.history.redo()
    assert doc.layer(lid).name == "Alice"
    with pytest.raises(ValueError):
        doc.rename(lid, "   ")


def test_hide_shows_background_and_undo(doc):
    before = doc.composite()
    front = doc.layers[-1]
    others = sum(l.alpha for l in doc.layers[:-1])
    region = (front.alpha > 0.99) & (others == 0)

    def hidden(d):
        comp = d.composite()
        assert np.abs(comp[region] - before[region]).mean() > 0.05      # the person is gone there
        assert np.allclose(comp[region], d.background_colour[region], atol=1e-5)  # background shows
        far = np.stack([l.alpha for l in d.layers]).sum(0) == 0
        assert np.abs(comp[far] - before[far]).max() < 1e-6             # nothing else moves
    doc.set_visible(front.id, False)
    check_undo_redo(doc, before, hidden)


def test_remove_and_restore(doc):
    before = doc.composite()
    lid = doc.layers[1].id
    doc.remove(lid)
    assert doc.layer(lid).removed and len(doc.layers) == 3       # still there, restorable
    removed = doc.composite()
    assert np.abs(removed - before)[doc.layer(lid).alpha > 0.5].mean() > 0.02
    doc.restore(lid)
    assert not doc.layer(lid).removed
    assert np.abs(doc.composite() - before).max() < 1e-6
    doc.history.undo()                                            # undo restore
    assert doc.layer(lid).removed
    doc.history.undo()                                            # undo remove
    assert np.abs(doc.composite() - before).max() < 1e-6


def test_recolour_changes_only_that_person(doc):
    before = doc.composite()
    lid = doc.layers[0].id
    mine = doc.layer(lid).alpha

    def recoloured(d):
        comp = d.composite()
        changed = np.abs(comp - before).max(axis=2) > 1e-5
        assert changed[mine > 0.9].mean() > 0.5
        assert not changed[mine == 0].any()
        assert d.layer(lid).adjustments.exposure == 1.0
    doc.set_adjustments(lid, Adjustments(exposure=1.0, hue=20))
    check_undo_redo(doc, before, recoloured)


def test_reorder_changes_overlaps_only(doc):
    before = doc.composite()
    ids = [l.id for l in doc.layers]
    new = ids[::-1]
    # overlap of the stacking alphas: a back person whose visible share is tiny behind a nearly
    # opaque front person still has a large stacking alpha there (α' / (1 - α'_front))
    overlap = (doc.layer_alphas() > 0).sum(axis=0) >= 2

    def reordered(d):
        assert [l.id for l in d.layers] == new
        comp = d.composite()
        diff = np.abs(comp - before).max(axis=2)
        assert diff[~overlap].max() < 1e-4      # single-person pixels do not care about order
        assert diff[overlap].max() > 0.05       # the back person now covers the front one
    doc.reorder(new)
    check_undo_redo(doc, before, reordered)
    with pytest.raises(ValueError, match="permutation"):
        doc.reorder(ids[:2])


def test_background_modes(doc):
    before = doc.composite()
    alphas = np.stack([l.alpha for l in doc.layers])
    empty = alphas.sum(0) == 0
    people = alphas.sum(0) > 0.999
    h, w = doc.shape
    green = np.zeros((h // 2, w // 2, 3), np.uint8)
    green[..., 1] = 200

    def replaced(d):
        comp = d.composite()
        assert np.allclose(comp[empty], [0, 200 / 255, 0], atol=1e-5)
        assert np.abs(comp[people] - before[people]).max() < 2e-3   # α_0 ≤ 0.001 there
        assert d.background.mode == d.background_mode == "replaced"
    doc.set_background("replaced", image=green)
    check_undo_redo(doc, before, replaced)

    doc.set_background("blurred", blur_radius=8)
    blurred = doc.composite()
    grad = lambda x: np.abs(np.diff(x, axis=1)).max(axis=2)[:, 1:][empty[:, 2:] & empty[:, 1:-1]].mean()  # noqa
    assert grad(blurred) < 0.6 * grad(before)

    doc.set_background("transparent")
    rgba = doc.composite_rgba()
    assert np.allclose(rgba[..., 3], np.clip(alphas.sum(0), 0, 1), atol=1e-4)
    assert doc.history.undo_label == "Background"
    with pytest.raises(ValueError, match="background mode"):
        doc.set_background("sepia")
    with pytest.raises(ValueError, match="uint8"):
        doc.set_background("replaced", image=np.zeros((4, 4), np.float32))


def test_lock_refuses_edits(doc):
    lid = doc.layers[0].id
    doc.set_locked(lid, True)
    n = len(doc.history)
    for edit in (lambda: doc.rename(lid, "x"), lambda: doc.remove(lid),
                 lambda: doc.set_adjustments(lid, Adjustments(hue=5)),
                 lambda: doc.set_alpha(lid, np.zeros(doc.shape, np.float32))):
        with pytest.raises(LayerLockedError, match="locked"):
            edit()
    assert len(doc.history) == n and doc.layer(lid).name == "Person 1"
    doc.set_visible(lid, False)                # allowed on a locked layer
    doc.set_colour_tag(lid, "#00FF00")
    assert doc.layer(lid).colour_tag == "#00ff00"
    with pytest.raises(ValueError):
        doc.set_colour_tag(lid, "green")
    doc.history.undo(); doc.history.undo(); doc.history.undo()
    assert not doc.layer(lid).locked and doc.layer(lid).visible


def test_brush_stroke_is_one_step_with_a_small_box(doc):
    doc.ensure_colours()
    before = doc.composite()
    target = doc.layers[-1]
    other_far = doc.layers[0]
    old_alpha = target.alpha.copy()
    new_alpha = old_alpha.copy()
    ys, xs = np.nonzero(old_alpha > 0.99)
    cy, cx = int(ys.mean()), int(xs.mean())
    new_alpha[cy - 10:cy + 10, cx - 15:cx + 15] = 0.0      # erase a patch (one stroke)
    far_colour = other_far.colour.copy()
    events = []
    unsub = doc.subscribe(events.append)
    cmd = doc.set_alpha(target.id, new_alpha)
    assert cmd.old.shape == (20, 30) and cmd.box == (cy - 10, cy + 10, cx - 15, cx + 15)
    assert [e.kind for e in events] == ["changed", "history"]
    assert target.id in events[0].layer_ids and events[0].box == cmd.box
    assert not doc.colours_valid                              # region marked dirty, not all
    comp = doc.composite()                                    # re-estimates only that region
    assert np.abs(comp - photo(doc)).mean() <= TOL
    changed = np.abs(comp - before).max(axis=2) > 1e-4
    ys, xs = np.nonzero(changed)
    assert ys.min() >= cy - 10 - 80 and ys.max() < cy + 10 + 80
    if not (other_far.alpha[max(0, cy - 80):cy + 80, max(0, cx - 80):cx + 80] > 0).any():
        assert np.array_equal(other_far.colour, far_colour)  # not involved: untouched
    doc.history.undo()
    assert np.array_equal(doc.layer(target.id).alpha, old_alpha)
    doc.history.redo()
    assert np.array_equal(doc.layer(target.id).alpha, new_alpha)
    unsub()
    doc.history.undo()
    assert len(events) == 2 + 2 + 2                           # nothing after unsubscribing
    assert doc.set_alpha(target.id, old_alpha) is None        # no change, no command


def test_a_read_only_document_can_share_the_results_alphas(sample):
    """share_alphas: the layers use the instances' alphas themselves (no 0.9 GB copy at 60 MP) and
    the document composes the same; alphas outside [0, 1] are still copied and clipped."""
    image, alphas = sample
    result = make_result(image, alphas)
    shared = Document.from_result(result, share_alphas=True)
    copied = Document.from_result(result)
    assert all(l.alpha is inst.alpha for l, inst in zip(shared.layers, result.instances))
    assert not any(np.shares_memory(l.alpha, inst.alpha) for l, inst in zip(copied.layers, result.instances))
    assert np.array_equal(shared.composite(), copied.composite())
    over = make_result(image, alphas * 1.5)
    doc = Document.from_result(over, share_alphas=True)
    assert all(l.alpha is not inst.alpha and l.alpha.max() <= 1.0 for l, inst in zip(doc.layers, over.instances))


def test_a_stroke_beyond_a_persons_box_grows_its_colour_layer(doc):
    """Colour layers are stored inside the person's box; painting the person further out extends
    the box, and the new pixels get estimated colours (the photo is still reproduced)."""
    doc.ensure_colours()
    target = doc.layers[0]
    y0, y1, x0, x1 = target.colour.box
    H, W = doc.shape
    assert (y1 - y0) * (x1 - x0) < H * W                      # a box, not the whole photo
    assert not target.alpha[:y0].any() and not target.alpha[:, :x0].any()
    assert not target.alpha[y1:].any() and not target.alpha[:, x1:].any()
    free = [(sy, sx) for sy in range(0, H - 12, 6) for sx in range(0, W - 12, 6)
            if not (y0 <= sy + 12 and sy <= y1 and x0 <= sx + 12 and sx <= x1)
            and not any((l.alpha[sy:sy + 12, sx:sx + 12] > 0).any() for l in doc.layers)]
    sy, sx = free[len(free) // 2]                             # a spot where nobody is
    new_alpha = target.alpha.copy()
    new_alpha[sy:sy + 12, sx:sx + 12] = 0.6                   # paint the person there
    doc.set_alpha(target.id, new_alpha)
    comp = doc.composite()
    ny0, ny1, nx0, nx1 = target.colour.box
    assert ny0 <= min(y0, sy) and ny1 >= max(y1, sy + 12) and nx0 <= min(x0, sx) and nx1 >= max(x1, sx + 12)
    assert np.abs(comp - photo(doc)).mean() <= TOL
    patch = (slice(sy, sy + 12), slice(sx, sx + 12))
    assert np.abs(comp[patch] - photo(doc)[patch]).max() <= 2 / 255
    assert target.colour[patch].any()                         # estimated there, not left at zero


def test_add_person_and_replace_people(doc, sample):
    image, alphas = sample
    doc.ensure_colours()
    before = doc.composite()
    n_before = len(doc.layers)
    # a "person" added by the user over a background area, here a copy of person 1's alpha
    new = doc.add_person(np.zeros(doc.shape, np.float32), name="Extra")
    assert doc.layers[-1] is new and new.name == "Extra" and len(doc.layers) == n_before + 1
    assert new.id not in [l.id for l in doc.layers[:-1]]
    assert np.abs(doc.composite() - before).max() < 1e-5      # zero alpha adds nothing
    doc.history.undo()
    assert len(doc.layers) == n_before
    doc.history.redo()
    assert doc.layers[-1].id == new.id

    ids_before = [l.id for l in doc.layers]
    result = make_result(image, alphas[:2])
    doc.replace_people(result)
    assert len(doc.layers) == 2 and not set(l.id for l in doc.layers) & set(ids_before)
    assert not doc.colours_valid                     # new people: colours estimated again
    # person 3 is now part of the background layer, and the photo is still reproduced
    assert np.abs(doc.composite() - photo(doc)).mean() <= TOL
    assert np.abs(doc.background_colour - photo(doc))[alphas[2] > 0.99].mean() < 0.02
    doc.history.undo()
    assert [l.id for l in doc.layers] == ids_before
    with pytest.raises(ValueError, match="alpha"):
        doc.add_person(np.zeros((5, 5), np.float32))


def test_replace_people_can_take_colours_estimated_elsewhere(doc, sample, monkeypatch):
    """The GUI estimates the new people's colours in its worker (a document of the same result) and
    hands them over: nothing is estimated again, and the composite is the one estimating gives."""
    image, alphas = sample
    doc.ensure_colours()
    ids_before = [l.id for l in doc.layers]
    result = make_result(image, alphas[:2])
    worker = Document.from_result(result, share_alphas=True)
    worker.ensure_colours()
    expected = worker.composite()
    import instmatt_app.core.document as document_module
    calls = []
    monkeypatch.setattr(document_module, "estimate_layer_colours",
                        lambda *a, **k: calls.append(1) or pytest.fail("colours estimated again"))
    layers = doc.replace_people(result, colours=worker, share_alphas=True)
    assert doc.colours_valid and not set(l.id for l in layers) & set(ids_before)
    assert all(l.alpha is inst.alpha for l, inst in zip(layers, result.instances))
    assert np.array_equal(doc.composite(), expected) and not calls
    assert doc.history.nbytes > 0                    # the previous people are kept for undo
    doc.history.undo()
    assert [l.id for l in doc.layers] == ids_before
    monkeypatch.undo()
    doc.history.redo()                               # estimated again on a redo
    assert not doc.colours_valid
    assert np.abs(doc.composite() - expected).max() < 1e-5


def test_unknown_layer_id(doc):
    with pytest.raises(KeyError, match="no layer with id 999"):
        doc.rename(999, "x")


def test_undo_history_keeps_a_memory_budget(doc):
    """Old steps are dropped once the undo data passes max_bytes; the latest step always stays."""
    doc.history.max_bytes = 3 * doc.shape[0] * doc.shape[1] * 4 * 2      # three full-frame strokes (old + new)
    target = doc.layers[0]
    full = []
    for k in range(5):                                                    # five full-frame strokes
        alpha = np.full(doc.shape, 0.1 * (k + 1), np.float32)
        doc.set_alpha(target.id, alpha)
        full.append(alpha)
    assert doc.history.nbytes <= doc.history.max_bytes
    undone = 0
    while doc.history.undo():
        undone += 1
    assert undone == 3 and np.array_equal(target.alpha, full[1])          # back to the oldest kept state
    doc.history.max_bytes = 1                                             # smaller than any step
    doc.set_alpha(target.id, full[4])
    assert doc.history.can_undo and doc.history.undo() and np.array_equal(target.alpha, full[1])
    assert not doc.history.can_undo


def test_a_view_that_redraws_only_the_changed_regions_stays_equal_to_the_composite(doc):
    """composite_changes + composite_region, as the app's composite view uses them."""
    cache = doc.composite()
    token, boxes = doc.composite_changes(None)
    assert boxes is None                                   # nothing known yet: everything
    assert np.array_equal(doc.composite_region((5, 40, 7, 33)), cache[5:40, 7:33])
    with pytest.raises(ValueError):
        doc.composite_region((0, doc.shape[0] + 1, 0, 5))
    H, W = doc.shape
    a, b = doc.layers[0], doc.layers[-1]
    ys, xs = np.nonzero(b.alpha > 0.99)
    cy, cx = int(ys.mean()), int(xs.mean())
    stroke = b.alpha.copy()
    stroke[cy - 8:cy + 8, cx - 12:cx + 12] = 0.0

    def redraw(expect_local: bool) -> list:
        nonlocal token, cache
        token, boxes = doc.composite_changes(token)
        assert (boxes is not None) == expect_local
        if boxes is None:
            cache = doc.composite()
        else:
            for y0, y1, x0, x1 in boxes:
                cache[y0:y1, x0:x1] = doc.composite_region((y0, y1, x0, x1))
        assert np.abs(cache - doc.composite()).max() <= 1e-6
        return boxes

    assert redraw(True) == []                              # nothing changed
    doc.set_alpha(b.id, stroke)                            # a brush stroke: its box and the colours around it
    boxes = redraw(True)
    assert len(boxes) >= 1 and sum((y1 - y0) * (x1 - x0) for y0, y1, x0, x1 in boxes) < 0.5 * H * W
    doc.history.undo()
    redraw(True)
    doc.history.redo()
    redraw(True)
    doc.set_adjustments(a.id, Adjustments(hue=120.0, saturation=0.3))   # recolour: that person only
    redraw(True)
    doc.set_visible(a.id, False)
    redraw(True)
    doc.history.undo()
    doc.history.undo()
    redraw(True)
    doc.reorder([l.id for l in doc.layers][::-1])          # not local
    redraw(False)
    doc.set_background("blurred", blur_radius=6.0)
    redraw(False)
    doc.set_alpha(a.id, np.zeros_like(a.alpha))            # local again, on a blurred background
    redraw(True)
    doc.set_background("replaced", image=np.arange(40 * 60 * 3, dtype=np.uint8).reshape(40, 60, 3))
    redraw(False)
    doc.set_alpha(b.id, b.alpha * 0.5)                     # a stroke on a replaced background
    redraw(True)
    doc.history.undo()
    redraw(True)
    doc.remove(b.id)                                       # like hiding: where that person was
    redraw(True)
    doc.add_person(stroke)                                 # a new person: not local
    redraw(False)
    assert Document(doc.image).composite_changes(token)[1] is None   # another document's token


def test_stacking_alphas_after_strokes_are_those_of_a_fresh_document(doc):
    first = doc.layer_alphas()
    b = doc.layers[-1]
    for k, (dy, dx) in enumerate([(0, 0), (15, -20), (-10, 25)]):
        stroke = b.alpha.copy()
        ys, xs = np.nonzero(stroke > 0.5)
        cy, cx = int(ys.mean()) + dy, int(xs.mean()) + dx
        stroke[cy - 6:cy + 6, cx - 9:cx + 9] = 0.2 * k
        doc.set_alpha(b.id, stroke)
    doc.history.undo()
    again = doc.layer_alphas()                      # only the strokes' boxes computed again, in place
    fresh = Document(doc.image, [l for l in doc.layers], list(doc.photo_order)).layer_alphas()
    assert np.array_equal(again, fresh)
    assert again is first and doc.layer_alphas() is again and not again.flags.writeable
    doc.reorder([l.id for l in doc.layers][::-1])
    assert doc.layer_alphas() is not first          # another order: a new array


@pytest.mark.parametrize("mode, extra", [
    ("original", {}), ("blurred", {"blur_radius": 5.0}),
    ("replaced", {"image": np.arange(30 * 50 * 3, dtype=np.uint8).reshape(30, 50, 3)})])
def test_a_region_of_the_background_is_that_part_of_the_whole(doc, mode, extra):
    doc.set_background(mode, **extra)
    whole = doc.background_image()
    H, W = doc.shape
    for y0, y1, x0, x1 in [(0, H, 0, W), (0, 17, 0, 23), (H // 3, H // 2, W // 4, W // 2), (H - 9, H, W - 30, W)]:
        part = doc.background_image((y0, y1, x0, x1))   # a blur sees the region grown by its reach
        np.testing.assert_allclose(part, whole[y0:y1, x0:x1], rtol=0, atol=1e-6)
