"""A registry of named model builders, in the style of segment-anything's ``sam_model_registry``.

Every model the engine can use is built by a function registered under (kind, name), which takes
the path of its weights file (or None for an embedded default that finds its own files through
the model manager) and a device string, and returns a ready object.

Kinds used by the engine:

* ``detector``  → object with ``detect(image_rgb_uint8) -> list[Detection]``
* ``matter``    → object with ``matte(image_rgb_uint8, masks) -> (k, 3, H, W) tri-mattes``
* ``refiner``   → object with ``refine(image, trimattes, masks, mode, order) -> tri-mattes``
"""
from __future__ import annotations

from typing import Any, Callable

__all__ = ["register", "build", "names", "UnknownModelError"]

Builder = Callable[..., Any]
_REGISTRY: dict[tuple[str, str], Builder] = {}


class UnknownModelError(KeyError):
    """Raised for a (kind, name) nobody registered."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


def register(kind: str, name: str) -> Callable[[Builder], Builder]:
    """Decorator: register ``fn(weights=None, device="cpu", **options)`` as builder (kind, name)."""

    def deco(fn: Builder) -> Builder:
        _REGISTRY[(kind, name)] = fn
        return fn

    return deco


def names(kind: str) -> list[str]:
    """Registered builder names of one kind, sorted."""
    _load_builtin()
    return sorted(n for k, n in _REGISTRY if k == kind)


def build(kind: str, name: str, weights: str | None = None, device: str = "cpu", **options: Any) -> Any:
    """Build the model registered as (kind, name)."""
    _load_builtin()
    try:
        fn = _REGISTRY[(kind, name)]
    except KeyError:
        raise UnknownModelError(
            f"no {kind} called {name!r}; available: {', '.join(names(kind)) or 'none'}") from None
    return fn(weights=weights, device=device, **options)


_LOADED = False


def _load_builtin() -> None:
    """Import the modules whose import registers the built-in builders (once)."""
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    import importlib

    for mod in _BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:  # a backend module not present in this build
            if exc.name != mod:
                raise


# Modules that register builders when imported; each one is optional.
_BUILTIN_MODULES = [
    "instmatt_app.nets.default_detector",
    "instmatt_app.nets.default_matter",
    "instmatt_app.nets.lite_matter",
    "instmatt_app.nets.default_refiner",
    "instmatt_app.nets.instmatt_backend",
    "instmatt_app.nets.maskrcnn",
    "instmatt_app.nets.sam",
]
