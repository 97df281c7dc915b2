"""Atomic file writing: a crash or a full disk never leaves a half-written file behind.

Data is written to a temporary file in the destination folder, flushed and fsync'ed, then renamed
over the destination (``os.replace`` is atomic on POSIX and Windows). On any error the temporary
file is removed and the previous destination file, if any, is untouched.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterator

__all__ = ["atomic_open", "atomic_write_bytes", "atomic_save"]


def _target_mode(path: Path) -> int:
    """The replaced file's permissions, or what a plain ``open()`` would give (0666 minus umask)."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Context manager yielding a file object; the file appears at ``path`` only on success.

    mode: "wb" or "w" (text, UTF-8).
    """
    if mode not in ("wb", "w"):
        raise ValueError("atomic_open supports mode 'wb' or 'w'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _target_mode(path))  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def atomic_save(path: str | os.PathLike, writer: Callable[[IO], None]) -> None:
    """Call ``writer(fileobj)`` on a temporary binary file, then move it to ``path``.

    For libraries that write to a file object (PIL ``Image.save(fh, format=...)``, psd-tools
    ``PSDImage.save(fh)``).
    """
    with atomic_open(path, "wb") as fh:
        writer(fh)
