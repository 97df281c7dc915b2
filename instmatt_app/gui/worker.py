"""Background work: long engine calls run on a worker thread, the UI stays responsive.

``Task(fn)`` runs ``fn(progress, cancelled)`` on the global thread pool, where ``progress(stage,
fraction)`` reports and ``cancelled()`` returns True once :meth:`Task.cancel` was called (the engine
checks it between stages and raises ``Cancelled``). Results come back on the GUI thread as signals.
"""
from __future__ import annotations

import threading
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

__all__ = ["Task", "TaskSignals"]


class TaskSignals(QObject):
    progress = Signal(str, float)
    finished = Signal(object)  # fn's return value
    failed = Signal(object, str)  # the exception, its traceback text
    cancelled = Signal()
    done = Signal()  # always last, after finished/failed/cancelled


class _Runnable(QRunnable):
    def __init__(self, task: "Task"):
        super().__init__()
        self.setAutoDelete(True)
        self._task = task

    def run(self) -> None:
        self._task._execute()


class Task:
    """One background job; keep a reference until ``signals.done``."""

    def __init__(self, fn: Callable[[Callable[[str, float], None], Callable[[], bool]], Any], name: str = ""):
        self.fn = fn
        self.name = name
        self.signals = TaskSignals()
        self._cancel = threading.Event()
        self.running = False

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def is_cancelled(self) -> bool:
        return self._cancel.is_set()

    def start(self, pool: QThreadPool | None = None) -> "Task":
        self.running = True
        (pool or QThreadPool.globalInstance()).start(_Runnable(self))
        return self

    def _execute(self) -> None:
        from instmatt_app.pipeline import Cancelled

        try:
            out = self.fn(lambda stage, frac: self.signals.progress.emit(str(stage), float(frac)),
                          self._cancel.is_set)
        except Cancelled:
            self.signals.cancelled.emit()
        except BaseException as exc:  # noqa: BLE001 - shown to the user, the app keeps running
            if self._cancel.is_set():
                self.signals.cancelled.emit()
            else:
                self.signals.failed.emit(exc, traceback.format_exc())
        else:
            if self._cancel.is_set():
                self.signals.cancelled.emit()
            else:
                self.signals.finished.emit(out)
        finally:
            # drop the job's closure now: it holds its inputs (at 60 MP a whole MattingResult, GBs),
            # and the task and its connected slots form a cycle that only a full gc pass would free
            self.fn = None
            self.running = False
            self.signals.done.emit()
