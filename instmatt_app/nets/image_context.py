"""Per-photo cache of expensive results shared by the engine's stages.

The detector and the default matter both need the human alpha of the photo; the GUI re-mattes
one person or re-runs refinement many times on the same photo. An :class:`ImageContext` holds
what was computed once per photo (like ``SamPredictor.set_image``) so later calls reuse it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["ImageContext"]


@dataclass
class ImageContext:
    """image: (H, W, 3) uint8 RGB; ``cache`` maps a key to a computed value (arrays, features)."""

    image: np.ndarray
    cache: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def get(self, key: str, compute: Callable[[], Any], stage: str | None = None) -> Any:
        """The cached value of ``key``, computing it once (timed under ``stage``)."""
        if key not in self.cache:
            import time

            t0 = time.perf_counter()
            self.cache[key] = compute()
            if stage:
                self.timings[stage] = self.timings.get(stage, 0.0) + time.perf_counter() - t0
        return self.cache[key]
