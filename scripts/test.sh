#!/usr/bin/env bash
# The test suite (installs first when needed). Extra arguments go to pytest, e.g. -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-run
# A reader that is not our writer, for the PSD tests (ImageMagick from Debian), when we may install it.
if ! dpkg -s imagemagick >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq imagemagick >/dev/null) \
      || echo "warning: could not install ImageMagick; PSD read-back tests will say so"
  fi
fi
export QT_QPA_PLATFORM=${QT_QPA_PLATFORM:-offscreen}
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
