"""The dark theme (palette + style sheet) of the desktop app."""
from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

__all__ = ["apply_dark_theme", "ACCENT", "CANVAS_BG", "CHECKER_LIGHT", "CHECKER_DARK"]

ACCENT = "#4c8dff"
CANVAS_BG = "#1b1c20"
CHECKER_LIGHT = "#5b5e66"
CHECKER_DARK = "#45474e"

_STYLE = f"""
QWidget {{ font-size: 9.5pt; }}
QMainWindow, QDialog {{ background: #26282d; }}
QMainWindow::separator {{ background: #1b1c20; width: 3px; height: 3px; }}
QDockWidget {{ color: #c9ccd3; titlebar-close-icon: none; }}
QDockWidget::title {{ background: #2e3036; padding: 5px 8px; border-bottom: 1px solid #1b1c20;
                      text-transform: uppercase; font-weight: 600; }}
QToolBar {{ background: #2e3036; border: none; spacing: 2px; padding: 3px; }}
QToolBar::separator {{ background: #44474f; width: 1px; height: 1px; margin: 4px 6px; }}
QToolButton {{ background: transparent; border: 1px solid transparent; border-radius: 4px; padding: 4px;
               color: #d7d9de; }}
QToolButton:hover {{ background: #3a3d44; }}
QToolButton:checked {{ background: #34496e; border-color: {ACCENT}; }}
QPushButton {{ background: #3a3d44; border: 1px solid #4a4d55; border-radius: 4px; padding: 5px 12px;
               color: #e4e6ea; }}
QPushButton:hover {{ background: #454851; }}
QPushButton:pressed {{ background: #2f3238; }}
QPushButton:checked {{ background: #34496e; border-color: {ACCENT}; }}
QPushButton:default {{ border-color: {ACCENT}; }}
QPushButton:disabled {{ color: #777a82; background: #303238; }}
QPushButton#primary {{ background: {ACCENT}; border-color: {ACCENT}; color: white; font-weight: 600; }}
QPushButton#primary:hover {{ background: #6aa1ff; }}
QPushButton#primary:disabled {{ background: #2f3f5c; border-color: #2f3f5c; color: #8d9098; }}
QListWidget, QTreeWidget, QTableWidget {{ background: #222429; border: 1px solid #1b1c20;
               alternate-background-color: #26282e; outline: 0; }}
QListWidget::item:selected, QTableWidget::item:selected {{ background: #34496e; color: white; }}
QHeaderView::section {{ background: #2e3036; color: #c9ccd3; border: none; padding: 4px; }}
QLineEdit, QSpinBox, QDoubleSpinBox, QComboBox {{ background: #1f2126; border: 1px solid #44474f;
               border-radius: 3px; padding: 3px 5px; color: #e4e6ea; selection-background-color: {ACCENT}; }}
QComboBox QAbstractItemView {{ background: #2a2c32; selection-background-color: #34496e; }}
QSlider::groove:horizontal {{ height: 4px; background: #1b1c20; border-radius: 2px; }}
QSlider::sub-page:horizontal {{ background: {ACCENT}; border-radius: 2px; }}
QSlider::handle:horizontal {{ background: #e4e6ea; width: 12px; height: 12px; margin: -5px 0;
               border-radius: 6px; }}
QProgressBar {{ background: #1f2126; border: 1px solid #44474f; border-radius: 3px; height: 14px;
               text-align: center; color: #e4e6ea; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 2px; }}
QStatusBar {{ background: #2e3036; color: #aeb1b8; }}
QStatusBar QLabel {{ color: #aeb1b8; padding: 0 6px; }}
QMenuBar {{ background: #2e3036; color: #d7d9de; }}
QMenuBar::item:selected {{ background: #3a3d44; }}
QMenu {{ background: #2a2c32; border: 1px solid #1b1c20; color: #e4e6ea; }}
QMenu::item:selected {{ background: #34496e; }}
QMenu::separator {{ height: 1px; background: #3a3d44; margin: 4px 8px; }}
QGroupBox {{ border: 1px solid #3a3d44; border-radius: 4px; margin-top: 14px; padding-top: 6px;
             color: #aeb1b8; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 4px; }}
QTabWidget::pane {{ border: 1px solid #3a3d44; }}
QTabBar::tab {{ background: #2e3036; color: #aeb1b8; padding: 5px 12px; border: none; }}
QTabBar::tab:selected {{ background: #3a3d44; color: white; }}
QLabel#muted {{ color: #8d9098; }}
QLabel#heading {{ color: #e4e6ea; font-weight: 600; }}
QFrame#banner {{ border-radius: 4px; }}
QFrame#banner[level="error"] {{ background: #5a2326; border: 1px solid #a33a40; }}
QFrame#banner[level="warning"] {{ background: #4f4220; border: 1px solid #9c7f2a; }}
QFrame#banner[level="info"] {{ background: #223a5c; border: 1px solid #3c6bb0; }}
QFrame#banner QLabel {{ color: #f1f2f4; }}
QCheckBox::indicator, QRadioButton::indicator, QListView::indicator {{ width: 14px; height: 14px;
               border: 1px solid #6a6e78; background: #1f2126; }}
QCheckBox::indicator, QListView::indicator {{ border-radius: 3px; }}
QRadioButton::indicator {{ border-radius: 8px; }}
QCheckBox::indicator:hover, QRadioButton::indicator:hover {{ border-color: {ACCENT}; }}
QCheckBox::indicator:checked, QListView::indicator:checked {{ background: {ACCENT}; border-color: {ACCENT};
               image: url(CHECK_PNG); }}
QRadioButton::indicator:checked {{ border-color: {ACCENT}; background: qradialgradient(cx:0.5, cy:0.5,
               radius:0.5, fx:0.5, fy:0.5, stop:0 #ffffff, stop:0.38 #ffffff, stop:0.48 {ACCENT}, stop:1 {ACCENT}); }}
QCheckBox::indicator:disabled, QRadioButton::indicator:disabled {{ border-color: #44474f; background: #2a2c31; }}
QScrollBar:vertical {{ background: #222429; width: 10px; }}
QScrollBar::handle:vertical {{ background: #44474f; border-radius: 4px; min-height: 20px; }}
QScrollBar::add-line, QScrollBar::sub-line {{ height: 0; width: 0; }}
"""


def apply_dark_theme(app: QApplication) -> None:
    """Fusion style + a dark palette + the app's style sheet."""
    app.setStyle("Fusion")
    pal = QPalette()
    colours = {
        QPalette.Window: "#26282d", QPalette.WindowText: "#d7d9de", QPalette.Base: "#1f2126",
        QPalette.AlternateBase: "#26282e", QPalette.ToolTipBase: "#2a2c32", QPalette.ToolTipText: "#e4e6ea",
        QPalette.Text: "#e4e6ea", QPalette.Button: "#3a3d44", QPalette.ButtonText: "#e4e6ea",
        QPalette.BrightText: "#ffffff", QPalette.Highlight: ACCENT, QPalette.HighlightedText: "#ffffff",
        QPalette.Link: ACCENT, QPalette.PlaceholderText: "#7b7e86",
    }
    for role, hexcol in colours.items():
        pal.setColor(role, QColor(hexcol))
    for role in (QPalette.WindowText, QPalette.Text, QPalette.ButtonText):
        pal.setColor(QPalette.Disabled, role, QColor("#6f727a"))
    app.setPalette(pal)
    app.setStyleSheet(_STYLE.replace("CHECK_PNG", _check_png()))


def _check_png() -> str:
    """A white check mark (qtawesome glyph) saved once as a PNG for the style sheet's url()."""
    import tempfile
    from pathlib import Path

    path = Path(tempfile.gettempdir()) / "instmatt-studio-check.png"
    if not path.is_file():
        from instmatt_app.gui.icons import icon

        icon("mdi6.check-bold", "#ffffff").pixmap(28, 28).save(str(path))
    return path.as_posix()
