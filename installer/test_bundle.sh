#!/usr/bin/env bash
# Check a built bundle the way a user's machine sees it: copy it outside the source tree, run it with a
# clean environment (no PYTHONPATH, no project venv, HOME in a temp dir, offscreen Qt), time --selftest.
#   bash installer/test_bundle.sh [dist/instmatt-studio]
set -euo pipefail
APP=$(cd "${1:-dist/instmatt-studio}" && pwd)
TMP=$(mktemp -d /tmp/bundle-test.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
cp -a "$APP" "$TMP/instmatt-studio"
mkdir -p "$TMP/home"
cd "$TMP"
run() { env -i PATH=/usr/bin:/bin HOME="$TMP/home" QT_QPA_PLATFORM=offscreen LANG=C.UTF-8 "$@"; }
echo "== bundle: $(du -sh "$TMP/instmatt-studio" | cut -f1) in $(find "$TMP/instmatt-studio" -type f | wc -l) files"
t0=$(date +%s.%N)
run "$TMP/instmatt-studio/instmatt-studio" --selftest
t1=$(date +%s.%N)
echo "== --selftest passed in $(echo "$t1 - $t0" | bc) s (first run for this user: numba compiles into ~/.cache/numba)"
run "$TMP/instmatt-studio/instmatt-studio" --selftest >/dev/null 2>&1
t2=$(date +%s.%N)
echo "== --selftest second run: $(echo "$t2 - $t1" | bc) s"
run "$TMP/instmatt-studio/instmatt" --version
run "$TMP/instmatt-studio/instmatt" models verify
t3=$(date +%s.%N)
run "$TMP/instmatt-studio/instmatt" --help >/dev/null
t4=$(date +%s.%N)
echo "== start-up (instmatt --help): $(echo "$t4 - $t3" | bc) s"
echo "== desktop app starts (offscreen, 20 s, opening the sample photo) and keeps running"
run "$TMP/instmatt-studio/instmatt-studio" "$TMP/instmatt-studio/_internal/resources/sample/two_portraits.jpg" \
  > "$TMP/gui.log" 2>&1 &
gui=$!
sleep 20
if ! kill -0 "$gui" 2>/dev/null; then
  wait "$gui" || true; cat "$TMP/gui.log"; echo "test_bundle.sh: the desktop app exited during start-up" >&2; exit 1
fi
kill "$gui"; wait "$gui" 2>/dev/null || true
if grep -E "Traceback|Error" "$TMP/gui.log" | grep -v "absl::Init" ; then
  echo "test_bundle.sh: the desktop app reported errors (above)" >&2; exit 1
fi
echo "== per-user install with desktop integration (into the temp HOME), then uninstall"
run "$TMP/instmatt-studio/install.sh" --no-check
for f in .local/bin/instmatt-studio .local/share/applications/org.instmatt.Studio.desktop \
         .local/share/mime/packages/org.instmatt.Studio.xml .local/share/icons/hicolor/256x256/apps/org.instmatt.Studio.png; do
  [ -e "$TMP/home/$f" ] || { echo "test_bundle.sh: install.sh did not create ~/$f" >&2; exit 1; }
done
run "$TMP/home/.local/bin/instmatt" models verify >/dev/null
run "$TMP/home/.local/opt/instmatt-studio/install.sh" --uninstall
[ ! -e "$TMP/home/.local/opt/instmatt-studio" ] || { echo "test_bundle.sh: uninstall left files" >&2; exit 1; }
echo "== bundle OK"
