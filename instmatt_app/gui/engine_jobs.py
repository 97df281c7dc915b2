"""Engine calls the GUI makes after the first run (no Qt): re-matting with edited guidance.

The engine's :meth:`~instmatt_app.pipeline.Engine.refine` re-runs matting + refinement from the
coarse masks held by a result, reusing the photo's cached per-photo work (``ImageContext`` in
``result.extras["context"]``). :func:`rematte` hands it a copy of the result whose coarse masks are
the user's edited guidance (and, for "add person", one more mask).
"""
from __future__ import annotations

import numpy as np

__all__ = ["rematte"]


def rematte(engine, base, masks: np.ndarray, mode: str, order, progress, added=None):
    """Re-run matting + refinement with new coarse masks, reusing ``base``'s cached per-photo work.

    engine: the :class:`~instmatt_app.pipeline.Engine` that made ``base`` (a MattingResult).
    masks: (k, H, W) float32 in [0, 1], one per instance of ``base`` in its order, plus one more
    at the end when ``added`` (the :class:`~instmatt_app.core.result.Detection` of a new person).
    mode: "parallel" | "cycle"; order: instance indices (cycle: first refined first), None = 0..k-1.
    progress(stage, fraction): reports. Returns a new MattingResult with k instances.
    """
    from instmatt_app.core.result import Instance, MattingResult
    from instmatt_app.core.trimask import trimasks

    mode_tm = "sum" if engine.matting_name == "instmatt" else engine.config.trimask_mode
    tm = trimasks(masks.astype(np.float32), mode_tm)
    insts = []
    for i, m in enumerate(masks):
        if i < len(base.instances):
            old = base.instances[i]
            ys, xs = np.nonzero(m > 0.5)
            box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)) if len(xs) else old.box
            insts.append(Instance(index=i, box=box, score=old.score, coarse_mask=m, trimask=tm[i],
                                  trimatte=old.trimatte, source=old.source))
        else:
            insts.append(Instance(index=i, box=added.box, score=added.score, coarse_mask=m, trimask=tm[i],
                                  trimatte=np.zeros((3,) + m.shape, np.float32), source=added.source))
    k = len(insts)
    if order is None or sorted(order) != list(range(k)):
        order = list(range(k))
    tmp = MattingResult(image=base.image, instances=insts, order=order, refine_mode=base.refine_mode,
                        device=base.device, timings=dict(base.timings), models=base.models, extras=base.extras)
    progress("matte", 0.5)
    return engine.refine(tmp, mode, order)
