"""GUI test fixtures: offscreen Qt, one engine and one matting result shared by the whole session."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

PHOTO = "qualitative/images/zidane.jpg"
GROUP = "dev_0009"


@pytest.fixture(scope="session")
def qapp_cls():
    """pytest-qt builds the QApplication; make it ours (theme, icon)."""
    from PySide6.QtWidgets import QApplication

    return QApplication


@pytest.fixture(scope="session")
def photo_path(data_dir):
    return data_dir / PHOTO


@pytest.fixture(scope="session")
def engine():
    from instmatt_app.pipeline import Engine, EngineConfig

    return Engine(EngineConfig(device="cpu"))


@pytest.fixture(scope="session")
def group_path(data_dir):
    """A two-person group photo of the synthetic set (overlapping people, known alphas)."""
    return data_dir / "synthetic" / "images" / "comp" / f"{GROUP}.jpg"


@pytest.fixture(scope="session")
def group_result(engine, group_path):
    """The engine's result on the group photo, guided by the people's true masks so that the
    edit tests do not depend on the detector (computed once, a few seconds on the 2-core CPU)."""
    from PIL import Image

    from instmatt_app.io.image_io import load_image

    folder = group_path.parents[2] / "alphas" / "comp" / GROUP
    masks = np.stack([(np.asarray(Image.open(p)) > 127).astype(np.float32) for p in sorted(folder.glob("*.png"))])
    result = engine.run(load_image(group_path), masks=masks)
    assert len(result.instances) == 2
    return result


@pytest.fixture(scope="session")
def group_doc(group_result):
    """Its document with the colour layers estimated (once); tests get deep copies."""
    from instmatt_app.core.document import Document

    doc = Document.from_result(group_result)
    doc.ensure_colours()
    return doc


@pytest.fixture
def make_window(qtbot, qapp, engine, tmp_path):
    """Factory: a shown MainWindow with private settings and recovery folder, using the shared engine."""
    from PySide6.QtWidgets import QApplication

    from instmatt_app.gui.app import create_app
    from instmatt_app.gui.main_window import MainWindow
    from instmatt_app.gui.settings import AppSettings

    create_app()

    def make(recovery_dir=None):
        win = MainWindow(AppSettings(tmp_path / "settings.ini"), engine_factory=lambda device: engine,
                         recovery_dir=recovery_dir or tmp_path / "recovery")
        win.ask_before_discarding = False  # no modal Save / Discard question when tests close windows
        qtbot.addWidget(win)
        win.resize(1280, 800)
        win.show()
        qtbot.waitExposed(win)
        win.activateWindow()  # window shortcuts (B, E, Ctrl+Z, ...) need the active window
        qtbot.waitUntil(lambda: QApplication.activeWindow() is win, timeout=5000)
        return win

    return make


@pytest.fixture
def window(make_window, group_result, group_doc, group_path):
    """A window showing the shared result (no engine run) in a fresh copy of its document."""
    import copy

    win = make_window()
    win.set_result(group_result, group_path, doc=copy.deepcopy(group_doc))
    return win


def point_inside(alpha_self: np.ndarray, alpha_others: np.ndarray) -> tuple[float, float]:
    """A pixel (x + .5, y + .5) deep inside a person: alpha ~1 there and far from the edge."""
    import cv2

    solid = ((alpha_self > 0.95) & (alpha_others < 0.05)).astype(np.uint8)
    dist = cv2.distanceTransform(solid, cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x) + 0.5, float(y) + 0.5


def click_canvas(qtbot, win, x: float, y: float):
    """Click photo pixel (x, y) on the canvas with the real mouse path."""
    from PySide6.QtCore import QPoint, Qt

    p = win.canvas.to_widget(x, y)
    qtbot.mouseClick(win.canvas, Qt.LeftButton, pos=QPoint(round(p.x()), round(p.y())))


def drag_canvas(qtbot, win, points: list[tuple[float, float]]):
    """Press at the first photo point, move through the others, release at the last (one stroke)."""
    from PySide6.QtCore import QPoint, Qt

    pts = [win.canvas.to_widget(x, y) for x, y in points]
    qp = [QPoint(round(p.x()), round(p.y())) for p in pts]
    qtbot.mousePress(win.canvas, Qt.LeftButton, pos=qp[0])
    for p in qp[1:]:
        qtbot.mouseMove(win.canvas, pos=p)
    qtbot.mouseRelease(win.canvas, Qt.LeftButton, pos=qp[-1])
