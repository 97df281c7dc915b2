"""``instmatt-app``: start the desktop application.

Usage: ``instmatt-app [PHOTO_OR_PROJECT]``. Returns the Qt event loop's exit code.
"""
from __future__ import annotations

import argparse
import sys

__all__ = ["run", "create_app"]


def create_app(argv: list[str] | None = None):
    """The QApplication (created once), with the dark theme and the app icon."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from instmatt_app.gui.icons import app_icon
    from instmatt_app.gui.theme import apply_dark_theme

    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(["instmatt-app"] + list(argv or []))
        app.setApplicationName("InstMatt Studio")
        app.setOrganizationName("InstMatt")
        app.setApplicationDisplayName("InstMatt Studio")
    apply_dark_theme(app)
    app.setWindowIcon(app_icon())
    return app


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="instmatt-app", description="InstMatt Studio: every person in a "
                                     "photo as a soft, editable layer.")
    parser.add_argument("file", nargs="?", help="a photo or an .instmatt project to open")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    app = create_app()
    from instmatt_app.gui.main_window import MainWindow

    win = MainWindow()
    win.show()
    if args.file:
        from PySide6.QtCore import QTimer

        QTimer.singleShot(0, lambda: win.open_path(args.file))
    return int(app.exec())
