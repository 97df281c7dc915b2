"""``--selftest``: prove an installed (or frozen) app works end to end, without the source tree or network.

Steps: open the bundled sample photo ``resources/sample/two_portraits.jpg``, matte it with the
engine (embedded default models, CPU), export a layered PSD into a temporary folder, read the PSD
back with psd-tools and check it (size, one layer per person plus the background, alpha values in
range). Prints one line per step with its time and returns 0 on success, 1 with a message naming
the failed step otherwise.

Works the same in a source checkout (resources/ beside the package) and in a PyInstaller bundle
(resources/ and models/ collected into ``sys._MEIPASS``, which is the parent of the frozen
``instmatt_app`` package, so the same relative path finds them).

Entry points call :func:`main` when ``--selftest`` is in ``argv``; ``python -m instmatt_app.selftest``
runs it directly.
"""
from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["SelftestError", "main", "run_selftest", "sample_path", "wants_selftest"]

SAMPLE_REL = Path("resources") / "sample" / "two_portraits.jpg"
MIN_PEOPLE = 2  # the sample photo shows two people side by side


class SelftestError(RuntimeError):
    """One self-test step failed; the message says which and why."""


def _app_root() -> Path:
    """Folder holding ``resources/`` and ``models/``: ``sys._MEIPASS`` when frozen, else the repository."""
    if getattr(sys, "frozen", False) and hasattr(sys, "_MEIPASS"):
        return Path(sys._MEIPASS)  # type: ignore[attr-defined]
    return Path(__file__).resolve().parent.parent


def sample_path() -> Path:
    """Path of the bundled sample photo (may not exist; :func:`run_selftest` reports that)."""
    return _app_root() / SAMPLE_REL


def run_selftest(log: Callable[[str], None] = print, min_people: int = MIN_PEOPLE) -> dict[str, float]:
    """Run every step; returns seconds per step. Raises :class:`SelftestError` on the first failure."""
    import numpy as np

    times: dict[str, float] = {}
    t_all = time.perf_counter()

    def step(name: str, t0: float) -> None:
        times[name] = time.perf_counter() - t0
        log(f"selftest: {name:<8} ok  ({times[name]:.2f} s)")

    t0 = time.perf_counter()
    photo = sample_path()
    if not photo.is_file():
        raise SelftestError(f"sample photo missing: {photo}")
    from instmatt_app.io.image_io import load_image

    image = load_image(photo)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise SelftestError(f"{photo}: decoded as {image.shape} {image.dtype}, expected (H, W, 3) uint8")
    step("load", t0)

    t0 = time.perf_counter()
    from instmatt_app.model_manager import models_dir, verify

    problems = [(n, msg) for n, msg in verify() if msg != "ok"]
    if problems:
        raise SelftestError("embedded models in " + str(models_dir()) + ": "
                            + "; ".join(f"{n}: {m}" for n, m in problems))
    step("models", t0)

    t0 = time.perf_counter()
    from instmatt_app.pipeline import Engine, EngineConfig

    result = Engine(EngineConfig(device="cpu")).run(image)
    k = len(result.instances)
    if k < min_people:
        raise SelftestError(f"matting {photo.name}: found {k} people, expected at least {min_people}")
    alphas = result.alphas
    if alphas.shape != (k,) + image.shape[:2] or not np.isfinite(alphas).all() \
            or alphas.min() < 0 or alphas.max() > 1:
        raise SelftestError(f"matting {photo.name}: alphas {alphas.shape} outside [0, 1] or not finite")
    if (alphas > 0.5).reshape(k, -1).sum(1).min() < 0.01 * image.shape[0] * image.shape[1]:
        raise SelftestError(f"matting {photo.name}: a person's matte covers under 1% of the photo")
    step("matte", t0)

    t0 = time.perf_counter()
    from instmatt_app.io.psd_export import export_result_psd

    with tempfile.TemporaryDirectory(prefix="instmatt-selftest-") as tmp:
        out = export_result_psd(result, Path(tmp) / "selftest.psd")
        _check_psd(out, image.shape[1], image.shape[0], k)
    step("psd", t0)
    times["total"] = time.perf_counter() - t_all
    log(f"selftest: passed, {k} people, {times['total']:.2f} s")
    return times


def _check_psd(path: Path, width: int, height: int, people: int) -> None:
    """Read ``path`` back: size, ``people`` pixel layers plus a background, some opaque pixels."""
    import numpy as np
    from psd_tools import PSDImage

    if not path.is_file() or path.stat().st_size == 0:
        raise SelftestError(f"PSD export wrote nothing at {path}")
    try:
        psd = PSDImage.open(path)
    except Exception as exc:
        raise SelftestError(f"{path.name}: psd-tools cannot read it back ({exc})") from exc
    if psd.size != (width, height):
        raise SelftestError(f"{path.name}: size {psd.size}, expected {(width, height)}")
    pixel_layers = [layer for layer in psd.descendants() if layer.kind == "pixel"]
    if len(pixel_layers) != people + 1:
        raise SelftestError(f"{path.name}: {len(pixel_layers)} pixel layers, expected {people} people + background")
    for layer in pixel_layers:
        arr = layer.numpy()
        if arr is None or arr.size == 0 or not np.isfinite(arr).all():
            raise SelftestError(f"{path.name}: layer {layer.name!r} has no readable pixels")


def wants_selftest(argv: list[str]) -> bool:
    return "--selftest" in argv


def main(argv: list[str] | None = None) -> int:
    """Run the self-test; exit status 0 = passed, 1 = failed (message on stderr)."""
    argv = sys.argv[1:] if argv is None else argv
    if any(a in ("-h", "--help") for a in argv):
        print("usage: instmatt-app --selftest [--traceback]\n\nMattes the bundled sample photo, exports a PSD to a "
              "temporary folder and checks it; exit status 0 when everything works.")
        return 0
    try:
        run_selftest()
    except SelftestError as exc:
        print(f"selftest: FAILED: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - report the step's error without a traceback dump
        print(f"selftest: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        if "--traceback" in argv:
            import traceback

            traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
