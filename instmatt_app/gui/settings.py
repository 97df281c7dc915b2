"""Persistent preferences and the recent-files list (QSettings; an INI file path for tests)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QSettings

__all__ = ["AppSettings"]

_DEFAULTS = {"device": "auto", "refine": "parallel", "guidance_passes": 8, "person_boxes": "auto", "autosave_s": 60, "brush_size": 40,
             "brush_hardness": 0.7, "export_bit_depth": 8, "export_alpha_as": "transparency", "export_formats": "psd,png"}


class AppSettings:
    """Typed access to the app's settings. ``path`` = an INI file (tests) or None (the user's store)."""

    MAX_RECENT = 10

    def __init__(self, path: str | Path | None = None):
        if path is None:
            self._s = QSettings("InstMatt", "InstMatt Studio")
        else:
            self._s = QSettings(str(path), QSettings.IniFormat)

    def get(self, key: str):
        default = _DEFAULTS.get(key)
        v = self._s.value(key, default)
        if isinstance(default, bool):
            return v in (True, "true", "1", 1)
        if isinstance(default, int):
            try:
                return int(v)
            except (TypeError, ValueError):
                return default
        if isinstance(default, float):
            try:
                return float(v)
            except (TypeError, ValueError):
                return default
        return v

    def set(self, key: str, value) -> None:
        self._s.setValue(key, value)
        self._s.sync()

    def recent_files(self) -> list[str]:
        v = self._s.value("recent_files", [])
        if isinstance(v, str):
            v = [v]
        return [p for p in (v or []) if p]

    def add_recent(self, path: str | Path) -> None:
        p = str(Path(path).resolve())
        files = [f for f in self.recent_files() if f != p]
        self._s.setValue("recent_files", [p] + files[: self.MAX_RECENT - 1])
        self._s.sync()

    def clear_recent(self) -> None:
        self._s.setValue("recent_files", [])
        self._s.sync()
