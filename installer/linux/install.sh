#!/usr/bin/env bash
# Install (or remove) the built InstMatt Studio folder for one user, with desktop integration:
# app menu entry, icons, and the .instmatt MIME type opening in the app. No root needed.
#
#   ./install.sh [--no-check] copy this folder to ~/.local/opt/instmatt-studio, link
#                             ~/.local/bin/instmatt-studio and ~/.local/bin/instmatt, register menu entry + MIME
#                             then run --selftest once (checks the install and compiles numba's
#                             kernels into ~/.cache/numba, ~40 s on a 2-core CPU, so the first photo is fast)
#   ./install.sh --uninstall  remove all of that again
#   PREFIX=/opt/instmatt-studio BIN_DIR=/usr/local/bin XDG_DATA_HOME=/usr/local/share sudo -E ./install.sh
#
# Run it from the built bundle (dist/instmatt-studio/install.sh, copied there by installer/build.sh).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
PREFIX=${PREFIX:-$HOME/.local/opt/instmatt-studio}
BIN_DIR=${BIN_DIR:-$HOME/.local/bin}
DATA=${XDG_DATA_HOME:-$HOME/.local/share}
SHARE="$HERE/share"     # the desktop file, MIME xml and icons (resources/linux of the source tree)
ID=org.instmatt.Studio

refresh() {
  command -v update-mime-database >/dev/null && update-mime-database "$DATA/mime" || true
  command -v update-desktop-database >/dev/null && update-desktop-database "$DATA/applications" || true
  command -v gtk-update-icon-cache >/dev/null && gtk-update-icon-cache -q -t "$DATA/icons/hicolor" || true
}

if [ "${1:-}" = "--uninstall" ]; then
  rm -f "$BIN_DIR/instmatt-studio" "$BIN_DIR/instmatt" "$DATA/applications/$ID.desktop" "$DATA/mime/packages/$ID.xml"
  rm -f "$DATA"/icons/hicolor/*/apps/$ID.png "$DATA"/icons/hicolor/*/mimetypes/application-x-instmatt-project.png
  rm -rf "$PREFIX"
  refresh
  echo "InstMatt Studio removed."
  exit 0
fi

[ -x "$HERE/instmatt-studio" ] || { echo "install.sh: $HERE/instmatt-studio not found; run me from the built bundle" >&2; exit 1; }
[ -f "$SHARE/$ID.desktop" ] || { echo "install.sh: $SHARE/$ID.desktop missing from the bundle" >&2; exit 1; }
if [ "$HERE" != "$PREFIX" ]; then
  mkdir -p "$(dirname "$PREFIX")"
  rm -rf "$PREFIX.new"
  cp -a "$HERE" "$PREFIX.new"
  rm -rf "$PREFIX"
  mv "$PREFIX.new" "$PREFIX"
fi
mkdir -p "$BIN_DIR" "$DATA/applications" "$DATA/mime/packages"
ln -sfn "$PREFIX/instmatt-studio" "$BIN_DIR/instmatt-studio"
ln -sfn "$PREFIX/instmatt-studio" "$BIN_DIR/instmatt"   # same executable, answers as the CLI
sed "s|^Exec=instmatt-studio|Exec=$PREFIX/instmatt-studio|" "$SHARE/$ID.desktop" > "$DATA/applications/$ID.desktop"
cp "$SHARE/$ID.mime.xml" "$DATA/mime/packages/$ID.xml"
for d in "$SHARE"/icons/*x*; do
  s=$(basename "$d")
  mkdir -p "$DATA/icons/hicolor/$s/apps" "$DATA/icons/hicolor/$s/mimetypes"
  cp "$d/$ID.png" "$DATA/icons/hicolor/$s/apps/$ID.png"
  cp "$d/$ID.png" "$DATA/icons/hicolor/$s/mimetypes/application-x-instmatt-project.png"
done
refresh
command -v xdg-mime >/dev/null && xdg-mime default "$ID.desktop" application/x-instmatt-project || true
if [ "${1:-}" != "--no-check" ]; then
  echo "Checking the installation (matting the bundled sample; the first run compiles, ~1 minute) ..."
  QT_QPA_PLATFORM=offscreen "$PREFIX/instmatt-studio" --selftest 2>/dev/null | tail -1 \
    || { echo "install.sh: the self-test failed; run '$PREFIX/instmatt-studio --selftest --traceback'" >&2; exit 1; }
fi
echo "InstMatt Studio installed in $PREFIX; run 'instmatt-studio' (or the menu entry), 'instmatt --help' for the CLI."
case ":$PATH:" in *":$BIN_DIR:"*) ;; *) echo "note: $BIN_DIR is not on your PATH" ;; esac
