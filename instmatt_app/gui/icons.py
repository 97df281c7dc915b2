"""Icons: qtawesome glyphs in the theme's colours, and the app icon (resources/icons/instmatt.svg)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PySide6.QtGui import QIcon

__all__ = ["icon", "app_icon", "APP_ICON_PATH"]

APP_ICON_PATH = Path(__file__).resolve().parents[2] / "resources" / "icons" / "instmatt.svg"


@lru_cache(maxsize=None)
def icon(name: str, colour: str = "#d7d9de") -> QIcon:
    """A qtawesome icon (e.g. "mdi6.brush") tinted for the dark theme; an empty icon if unknown."""
    import qtawesome as qta

    try:
        return qta.icon(name, color=colour, color_active="#ffffff", color_disabled="#6f727a")
    except Exception:  # noqa: BLE001 - a missing glyph must never stop the app
        return QIcon()


def app_icon() -> QIcon:
    """The application icon (the bundled SVG, or a qtawesome fallback when it is not shipped)."""
    if APP_ICON_PATH.is_file():
        return QIcon(str(APP_ICON_PATH))
    return icon("mdi6.account-multiple", "#4c8dff")
