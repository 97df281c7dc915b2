"""Re-matting with edited guidance (engine calls, no Qt) and guidance editing."""
from __future__ import annotations

import numpy as np
import pytest

from instmatt_app.gui.brush import Stroke, edit_guidance
from instmatt_app.gui.engine_jobs import rematte


def _masks(result):
    return np.stack([inst.coarse_mask for inst in result.instances]).astype(np.float32)


def test_rematte_with_unchanged_masks_equals_engine_refine(engine, group_result):
    ref = engine.refine(group_result, "parallel", [0, 1])
    out = rematte(engine, group_result, _masks(group_result), "parallel", [0, 1], lambda *a: None)
    assert len(out.instances) == 2
    for a, b in zip(out.instances, ref.instances):
        np.testing.assert_allclose(a.alpha, b.alpha, atol=1e-6)


def test_rematte_follows_edited_guidance(engine, group_result):
    masks = _masks(group_result)
    ys, xs = np.nonzero(masks[1] > 0.5)
    y0, y1 = int(np.percentile(ys, 40)), int(np.percentile(ys, 60))
    masks[1, y0:y1] = 0.0  # "background" across the middle of person 1
    out = rematte(engine, group_result, masks, "parallel", None, lambda *a: None)
    before = group_result.instances[1].alpha[y0:y1].mean()
    after = out.instances[1].alpha[y0:y1].mean()
    assert after < 0.5 * before
    alphas = np.stack([i.alpha for i in out.instances])
    assert alphas.sum(axis=0).max() <= 1.0 + 1e-5  # the consistency step still holds


def _cov(shape, x, y, r=5):
    s = Stroke(shape, r, 1.0)
    s.add(x, y)
    return s.coverage()


def test_edit_guidance_labels():
    g = {1: np.zeros((40, 40), np.float32), 2: np.zeros((40, 40), np.float32)}
    g[2][:, 20:] = 1.0
    edit_guidance(g, 1, _cov((40, 40), 30, 20), "this")
    assert g[1][20, 30] == 1.0 and g[2][20, 30] == 0.0 and g[2][5, 30] == 1.0
    edit_guidance(g, 1, _cov((40, 40), 30, 20), "other")
    assert g[1][20, 30] == 0.0 and g[2][20, 30] == 1.0  # back to the neighbour that covered it
    edit_guidance(g, 1, _cov((40, 40), 30, 20), "background")
    assert g[1][20, 30] == 0.0 and g[2][20, 30] == 0.0 and g[2][5, 30] == 1.0
    with pytest.raises(ValueError, match="unknown guidance label"):
        edit_guidance(g, 1, _cov((40, 40), 30, 20), "sky")


def test_a_finished_task_lets_go_of_its_inputs(qtbot):
    """The job's closure (which holds a whole MattingResult in the GUI) is dropped when it ends, so
    the inputs do not live on in the task's reference cycle until a full garbage collection."""
    import weakref

    from instmatt_app.gui.worker import Task

    class Big:
        pass

    big = Big()
    ref = weakref.ref(big)

    def work(progress, cancelled, held=big):
        return 1

    task = Task(work)
    del work, big
    with qtbot.waitSignal(task.signals.done, timeout=5000):
        task.start()
    assert task.fn is None and ref() is None
