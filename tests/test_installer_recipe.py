"""The installer recipe (installer/, resources/linux/) references files that exist and agree with each other.

The full bundle build (installer/build.sh, ~3 minutes, ~1.2 GB) is a separate command, not part of
this suite; these checks are fast. One end-to-end check runs installer/entry.py --selftest from
outside the source tree with torchvision made unimportable (the bundle ships without it).
"""
from __future__ import annotations

import ast
import configparser
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
INSTALLER = REPO / "installer"
SPEC = INSTALLER / "instmatt.spec"
LINUX = REPO / "resources" / "linux"
DESKTOP = LINUX / "org.instmatt.Studio.desktop"
MIME = LINUX / "org.instmatt.Studio.mime.xml"
MIME_NS = "{http://www.freedesktop.org/standards/shared-mime-info}"


def _spec_tree() -> ast.Module:
    return ast.parse(SPEC.read_text(encoding="utf-8"), filename=str(SPEC))


def _spec_constant(name: str):
    """Value of a literal top-level assignment ``NAME = <literal>`` in the spec."""
    for node in _spec_tree().body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{SPEC.name} has no literal {name} = ...")


def _repo_paths_in(text: str) -> set[str]:
    """Repository-relative paths (installer/..., resources/..., models/...) mentioned in a script."""
    found = set(re.findall(r"(?<![\w/.$])((?:installer|resources|models)/[\w.\-/]*[\w])", text))
    return {p for p in found if "*" not in p}


def test_spec_is_python_and_names_existing_files():
    _spec_tree()  # parses
    for rel in _spec_constant("RESOURCE_FILES"):
        assert (REPO / rel).is_file(), f"{SPEC.name} bundles {rel}, which does not exist"
    text = SPEC.read_text(encoding="utf-8")
    paths = _repo_paths_in(text)
    for rel in paths:
        assert (REPO / rel).exists(), f"{SPEC.name} references {rel}, which does not exist"
    assert '[str(ROOT / "installer" / "entry.py")]' in text and (INSTALLER / "entry.py").is_file()
    for m in re.findall(r'ROOT / "installer" / "([\w.]+)" / "([\w.]+)"', text):
        assert (INSTALLER / m[0] / m[1]).is_file(), f"{SPEC.name} names installer/{m[0]}/{m[1]}, missing"
    for m in re.findall(r'ROOT / "installer" / "([\w.]+)"\)', text):
        assert (INSTALLER / m).is_file(), f"{SPEC.name} names installer/{m}, missing"


def test_spec_bundles_the_manifest_models_where_the_model_manager_looks():
    manifest = json.loads((REPO / "models" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["models"], "empty model manifest"
    text = SPEC.read_text(encoding="utf-8")
    # the spec reads the manifest and puts every listed file under "models" in the bundle ...
    assert 'ROOT / "models" / "manifest.json"' in text and '"models")' in text
    # ... which is where model_manager looks in a frozen app
    mm = (REPO / "instmatt_app" / "model_manager.py").read_text(encoding="utf-8")
    assert 'Path(sys._MEIPASS) / "models"' in mm


def test_spec_excludes_torchvision_and_keeps_what_start_up_imports():
    excludes = set(re.findall(r'"([\w.]+)"', SPEC.read_text(encoding="utf-8").split("excludes = [", 1)[1].split("]", 1)[0]))
    assert "torchvision" in excludes
    # import mediapipe imports matplotlib.pyplot; numba needs numba.cuda's _devicearray; the
    # registry and CLI import modules by name (collected with collect_submodules("instmatt_app"))
    for needed in ("matplotlib", "numba.cuda", "torch.testing._internal", "PySide6.QtSvg", "PySide6.QtWidgets"):
        assert needed not in excludes, f"{needed} must stay in the bundle"
    assert 'collect_submodules("instmatt_app")' in SPEC.read_text(encoding="utf-8")


@pytest.mark.parametrize("script", ["build.sh", "test_bundle.sh", "linux/install.sh"])
def test_shell_scripts_reference_existing_files_and_parse(script):
    path = INSTALLER / script
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert os.access(path, os.X_OK), f"{path} is not executable"
    for rel in _repo_paths_in(text):
        assert (REPO / rel).exists(), f"{script} references {rel}, which does not exist"
    r = subprocess.run(["bash", "-n", str(path)], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_build_uses_a_separate_venv_and_cpu_torch_without_torchvision():
    text = (INSTALLER / "build.sh").read_text(encoding="utf-8")
    venv = re.search(r"BUILD_VENV=\$\{BUILD_VENV:-([^}]+)\}", text).group(1)
    assert Path(venv).resolve() != (REPO / ".venv").resolve()
    assert "torch==2.13.0" in text
    assert not re.search(r'pip install[^\n]*"torchvision', text)
    assert "installer/instmatt.spec" in text


def test_desktop_entry_matches_spec_icons_and_mime():
    cp = configparser.ConfigParser(interpolation=None, strict=True)
    cp.optionxform = str
    cp.read(DESKTOP, encoding="utf-8")
    e = cp["Desktop Entry"]
    for key in ("Type", "Name", "Exec", "Icon", "MimeType", "Categories"):
        assert e.get(key), f"{DESKTOP.name}: {key} missing"
    assert e["Type"] == "Application"
    assert e["Exec"].split()[0] == _spec_constant("APP_NAME")
    assert e["MimeType"].endswith(";") and e["Categories"].endswith(";")
    icon = e["Icon"]
    sizes = sorted(int(d.name.split("x")[0]) for d in (LINUX / "icons").iterdir() if d.is_dir())
    assert {48, 128, 256} <= set(sizes)
    for s in sizes:
        png = LINUX / "icons" / f"{s}x{s}" / f"{icon}.png"
        with Image.open(png) as im:
            assert im.size == (s, s) and im.mode == "RGBA", f"{png}: {im.size} {im.mode}"
            alpha = im.getchannel("A")
            assert alpha.getextrema() == (0, 255), f"{png}: expected transparent corners and an opaque body"
    mime_types = {m.get("type") for m in ET.parse(MIME).getroot().iter(MIME_NS + "mime-type")}
    assert mime_types <= set(e["MimeType"].rstrip(";").split(";"))


def test_mime_glob_is_the_project_suffix():
    from instmatt_app.io.project_file import SUFFIX

    root = ET.parse(MIME).getroot()
    globs = [g.get("pattern") for g in root.iter(MIME_NS + "glob")]
    assert globs == ["*" + SUFFIX]
    (mt,) = root.iter(MIME_NS + "mime-type")
    assert mt.find(MIME_NS + "sub-class-of").get("type") == "application/zip"  # projects are zips


def test_windows_and_macos_icons_exist():
    with Image.open(INSTALLER / "windows" / "instmatt.ico") as ico:
        assert (256, 256) in ico.info["sizes"]
    with Image.open(INSTALLER / "macos" / "instmatt.icns") as icns:
        assert icns.format == "ICNS"


def test_readme_covers_every_platform_and_documents_the_choice():
    text = (INSTALLER / "README.md").read_text(encoding="utf-8")
    for word in ("PyInstaller", "briefcase", "Windows", "macOS", "Linux", ".instmatt", "CUDA", "--selftest"):
        assert word in text, f"installer/README.md does not mention {word}"
    for rel in _repo_paths_in(text):
        assert (REPO / rel).exists(), f"installer/README.md references {rel}, which does not exist"


def test_selftest_fails_clearly_without_the_sample(monkeypatch, capsys, tmp_path):
    from instmatt_app import selftest

    monkeypatch.setattr(selftest, "sample_path", lambda: tmp_path / "nope.jpg")
    assert selftest.main([]) == 1
    err = capsys.readouterr().err
    assert "sample photo missing" in err and "nope.jpg" in err


def test_entry_selftest_outside_the_source_tree_without_torchvision(tmp_path):
    """installer/entry.py --selftest (what the bundle runs) from another folder, torchvision unimportable."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _NoTorchvision:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torchvision' or name.startswith('torchvision.'):\n"
        "            raise ModuleNotFoundError(\"No module named 'torchvision'\", name=name)\n"
        "sys.meta_path.insert(0, _NoTorchvision())\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "INSTMATT_MODELS")}
    env.update(PYTHONPATH=str(tmp_path), QT_QPA_PLATFORM="offscreen")
    r = subprocess.run([sys.executable, str(INSTALLER / "entry.py"), "--selftest", "--traceback"],
                       check=False, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "selftest: passed" in r.stdout
    m = re.search(r"selftest: passed, (\d+) people", r.stdout)
    assert m and int(m.group(1)) >= 2
