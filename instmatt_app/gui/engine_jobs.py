"""Engine calls the GUI makes after the first run (no Qt): re-matting with edited guidance.

:meth:`~instmatt_app.pipeline.Engine.rematte` re-runs matting + refinement from edited coarse masks,
reusing the photo's cached per-photo work; :func:`rematte` adds the GUI's defaults and progress report.
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
    k = len(masks)
    if order is None or sorted(order) != list(range(k)):
        order = list(range(k))
    progress("matte", 0.5)
    return engine.rematte(base, masks.astype(np.float32), mode, order, added=[added] if added is not None else None)
