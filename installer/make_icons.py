"""Render the app icon (resources/icons/instmatt.svg) into the per-platform icon files.

    python installer/make_icons.py            # Linux PNG sizes -> resources/linux/icons/NxN/
    python installer/make_icons.py --ico F    # also a Windows .ico (needs Pillow)
    python installer/make_icons.py --icns F   # also a macOS .icns (needs Pillow)

Uses Qt's SVG renderer (PySide6's QSvgRenderer), which renders the icon's gradients and masks
faithfully; Pillow packs the PNGs into .ico / .icns.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SVG = ROOT / "resources" / "icons" / "instmatt.svg"
SIZES = (16, 32, 48, 64, 128, 256, 512)
ICON_NAME = "org.instmatt.Studio.png"


def render(sizes=SIZES, out_dir: Path = ROOT / "resources" / "linux" / "icons") -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - needed for painting
    renderer = QSvgRenderer(str(SVG))
    if not renderer.isValid():
        raise SystemExit(f"{SVG}: not a valid SVG")
    written = []
    for s in sizes:
        img = QImage(s, s, QImage.Format.Format_ARGB32)
        img.fill(Qt.GlobalColor.transparent)
        p = QPainter(img)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(p)
        p.end()
        path = out_dir / f"{s}x{s}" / ICON_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.png")
        if not img.save(str(tmp), "PNG"):
            raise SystemExit(f"could not write {path}")
        os.replace(tmp, path)  # atomic
        written.append(path)
    return written


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ico", type=Path, help="also write a Windows .ico with 16-256 px images")
    ap.add_argument("--icns", type=Path, help="also write a macOS .icns with 16-512 px images")
    args = ap.parse_args()
    paths = render()
    print("\n".join(str(p) for p in paths))
    if args.ico:
        from PIL import Image

        big = Image.open(paths[SIZES.index(256)])
        tmp = args.ico.with_suffix(".tmp.ico")
        big.save(tmp, format="ICO", sizes=[(s, s) for s in (16, 32, 48, 64, 128, 256)])
        os.replace(tmp, args.ico)
        print(args.ico)
    if args.icns:
        from PIL import Image

        big = Image.open(paths[SIZES.index(512)])
        tmp = args.icns.with_suffix(".tmp.icns")
        big.save(tmp, format="ICNS")
        os.replace(tmp, args.icns)
        print(args.icns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
