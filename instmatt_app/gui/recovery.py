"""Autosave files for crash recovery: ``<folder>/autosave.instmatt`` + ``autosave.json`` (what it was
and when). A normal exit deletes them; finding them at start means the app did not close normally.
Writes are atomic (``io.project_file`` and ``io.atomic``)."""
from __future__ import annotations

import json
import time
from pathlib import Path

__all__ = ["RecoveryStore"]


class RecoveryStore:
    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @property
    def project_path(self) -> Path:
        return self.folder / "autosave.instmatt"

    @property
    def meta_path(self) -> Path:
        return self.folder / "autosave.json"

    def exists(self) -> bool:
        return self.project_path.is_file()

    def save(self, doc, photo: Path | None, project: Path | None) -> None:
        """Write ``doc`` and where it came from. Raises what ``save_project`` raises."""
        from instmatt_app.io import project_file
        from instmatt_app.io.atomic import atomic_write_bytes

        project_file.save_project(doc, self.project_path)
        meta = {"photo": str(photo or ""), "project": str(project or ""), "time": time.time()}
        atomic_write_bytes(self.meta_path, json.dumps(meta).encode())

    def describe(self) -> str:
        """" from 14:02 on 26 Nov (group.jpg)" or "" when the record is unreadable."""
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return ""
        when = time.strftime(" from %H:%M on %d %b", time.localtime(float(meta.get("time", 0))))
        src = Path(meta.get("project") or meta.get("photo") or "").name
        return when + (f" ({src})" if src else "")

    def discard(self) -> None:
        for p in (self.project_path, self.meta_path):
            try:
                p.unlink()
            except OSError:
                pass
