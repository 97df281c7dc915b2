"""The image canvas: zoom (wheel, fit, 100 %), pan (space-drag, middle button), checkerboard under
transparency, HiDPI-sharp drawing, a brush cursor, stroke events and numbered badges.

Coordinates in signals are photo pixels (float x right, y down). "100 %" means one photo pixel per
*device* pixel, so the view is sharp on HiDPI screens.
"""
from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QWidget

from instmatt_app.gui.qt_image import qimage_from_array
from instmatt_app.gui.theme import CANVAS_BG, CHECKER_DARK, CHECKER_LIGHT

__all__ = ["Canvas"]

_MIN_SCALE, _MAX_SCALE = 0.02, 32.0


def dropped_files(event) -> list[str]:
    """Local file paths carried by a drag-and-drop event (empty when it carries none)."""
    mime = event.mimeData()
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []


class Canvas(QWidget):
    """Shows one RGB/RGBA numpy image. ``tool`` is "select" (clicks) or "paint" (strokes)."""

    clicked = Signal(float, float)
    strokeBegan = Signal(float, float)
    strokeMoved = Signal(float, float)
    strokeEnded = Signal()
    zoomChanged = Signal(float)  # percent (device pixels per photo pixel × 100)
    filesDropped = Signal(list)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setFocusPolicy(Qt.StrongFocus)
        self.setMouseTracking(True)
        self.setAcceptDrops(True)
        self.setMinimumSize(200, 150)
        self._image = None
        self._overlay = None
        self._overlay_opacity = 1.0
        self._preview_colour = QColor("#ffffff")
        self._size = (0, 0)
        self._scale = 1.0  # device pixels per photo pixel
        self._origin = QPointF(0, 0)
        self._fit_mode = True
        self.tool = "select"
        self.brush_radius = 20.0  # photo pixels
        self.badges: list[tuple[float, float, str, str]] = []
        self.placeholder = "Open a photo (Ctrl+O) or drop it here"
        self.busy_text = ""  # shown as a pill at the top while a background job runs
        self._space = False
        self._pan_from: QPointF | None = None
        self._press: QPointF | None = None
        self._stroking = False
        self._mouse: QPointF | None = None

    # -- content -----------------------------------------------------------------------
    def set_image(self, arr: np.ndarray | None, keep_view: bool = True) -> None:
        """Show ``arr`` ((H, W, 3) RGB or (H, W, 4) RGBA uint8); a new size refits the view."""
        if arr is None:
            self._image, self._size = None, (0, 0)
            self.update()
            return
        new_size = (arr.shape[1], arr.shape[0])
        self._image = qimage_from_array(arr)
        if new_size != self._size or not keep_view:
            self._size = new_size
            self.fit()
        self.update()

    def set_overlay(self, rgba: np.ndarray | None) -> None:
        """An RGBA uint8 layer drawn over the image (the stroke being painted); None removes it."""
        self._overlay = None if rgba is None else qimage_from_array(rgba)
        self._overlay_opacity = 1.0
        self.update()

    def preview_begin(self, colour: str) -> None:
        """Start drawing a stroke preview (a photo-sized translucent layer painted with ``colour``)."""
        from PySide6.QtGui import QImage

        w, h = self._size
        self._overlay = QImage(w, h, QImage.Format_ARGB32_Premultiplied)
        self._overlay.fill(Qt.transparent)
        self._preview_colour = QColor(colour)
        self._overlay_opacity = 0.45

    def preview_segment(self, x0: float, y0: float, x1: float, y1: float, radius: float) -> None:
        """Add one segment (photo pixels) of the stroke being painted to the preview."""
        if self._overlay is None:
            return
        qp = QPainter(self._overlay)
        qp.setRenderHint(QPainter.Antialiasing, True)
        pen = QPen(self._preview_colour, 2 * radius, Qt.SolidLine, Qt.RoundCap, Qt.RoundJoin)
        qp.setPen(pen)
        qp.drawLine(QPointF(x0, y0), QPointF(x1, y1))
        qp.end()
        self.update()

    def preview_clear(self) -> None:
        self._overlay = None
        self._overlay_opacity = 1.0
        self.update()

    def has_image(self) -> bool:
        return self._image is not None

    # -- view transform ----------------------------------------------------------------
    @property
    def zoom_percent(self) -> float:
        return self._scale * 100.0

    def _lscale(self) -> float:
        return self._scale / self.devicePixelRatioF()

    def to_image(self, p: QPointF) -> QPointF:
        s = self._lscale()
        return QPointF((p.x() - self._origin.x()) / s, (p.y() - self._origin.y()) / s)

    def to_widget(self, x: float, y: float) -> QPointF:
        s = self._lscale()
        return QPointF(self._origin.x() + x * s, self._origin.y() + y * s)

    def fit(self) -> None:
        """Ctrl+0: the whole photo in the window."""
        w, h = self._size
        if not w:
            return
        margin = 16
        ls = min((self.width() - 2 * margin) / w, (self.height() - 2 * margin) / h)
        ls = max(ls, 1e-3)
        self._scale = ls * self.devicePixelRatioF()
        self._origin = QPointF((self.width() - w * ls) / 2, (self.height() - h * ls) / 2)
        self._fit_mode = True
        self.zoomChanged.emit(self.zoom_percent)
        self.update()

    def set_zoom(self, scale: float, anchor: QPointF | None = None) -> None:
        """Set device pixels per photo pixel (1.0 = 100 %), keeping ``anchor`` (widget point) fixed."""
        if not self._size[0]:
            return
        anchor = anchor if anchor is not None else QPointF(self.width() / 2, self.height() / 2)
        ip = self.to_image(anchor)
        self._scale = min(max(scale, _MIN_SCALE), _MAX_SCALE)
        ls = self._lscale()
        self._origin = QPointF(anchor.x() - ip.x() * ls, anchor.y() - ip.y() * ls)
        self._fit_mode = False
        self.zoomChanged.emit(self.zoom_percent)
        self.update()

    def actual_size(self) -> None:
        """Ctrl+1: 100 % (one photo pixel per device pixel)."""
        self.set_zoom(1.0)

    def zoom_by(self, factor: float, anchor: QPointF | None = None) -> None:
        self.set_zoom(self._scale * factor, anchor)

    # -- events ------------------------------------------------------------------------
    def resizeEvent(self, event) -> None:  # noqa: N802
        if self._fit_mode:
            self.fit()
        super().resizeEvent(event)

    def wheelEvent(self, event) -> None:  # noqa: N802
        steps = event.angleDelta().y() / 120.0
        if steps:
            self.zoom_by(math.pow(1.25, steps), event.position())
        event.accept()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key_Space and not event.isAutoRepeat():
            self._space = True
            self.setCursor(Qt.OpenHandCursor)
            return
        super().keyPressEvent(event)

    def keyReleaseEvent(self, event) -> None:  # noqa: N802
        if event.key() == Qt.Key_Space and not event.isAutoRepeat():
            self._space = False
            self._update_cursor()
            return
        super().keyReleaseEvent(event)

    def _update_cursor(self) -> None:
        self.setCursor(Qt.BlankCursor if self.tool == "paint" else Qt.ArrowCursor)

    def set_tool(self, tool: str) -> None:
        self.tool = tool
        self._update_cursor()
        self.update()

    def mousePressEvent(self, event) -> None:  # noqa: N802
        pos = event.position()
        if event.button() == Qt.MiddleButton or (event.button() == Qt.LeftButton and self._space):
            self._pan_from = pos
            self.setCursor(Qt.ClosedHandCursor)
            return
        if event.button() != Qt.LeftButton or self._image is None:
            return
        ip = self.to_image(pos)
        if self.tool == "paint":
            self._stroking = True
            self.strokeBegan.emit(ip.x(), ip.y())
        else:
            self._press = pos

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        pos = event.position()
        self._mouse = pos
        if self._pan_from is not None:
            self._origin += pos - self._pan_from
            self._pan_from = pos
            self._fit_mode = False
        elif self._stroking:
            ip = self.to_image(pos)
            self.strokeMoved.emit(ip.x(), ip.y())
        self.update()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        pos = event.position()
        if self._pan_from is not None and event.button() in (Qt.MiddleButton, Qt.LeftButton):
            self._pan_from = None
            self.setCursor(Qt.OpenHandCursor if self._space else
                           (Qt.BlankCursor if self.tool == "paint" else Qt.ArrowCursor))
            return
        if event.button() != Qt.LeftButton:
            return
        if self._stroking:
            self._stroking = False
            self.strokeEnded.emit()
        elif self._press is not None:
            moved = (pos - self._press).manhattanLength()
            self._press = None
            if moved < 6:
                ip = self.to_image(pos)
                w, h = self._size
                if 0 <= ip.x() < w and 0 <= ip.y() < h:
                    self.clicked.emit(ip.x(), ip.y())

    def leaveEvent(self, event) -> None:  # noqa: N802
        self._mouse = None
        self.update()

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if dropped_files(event):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = dropped_files(event)
        if paths:
            self.filesDropped.emit(paths)
            event.acceptProposedAction()

    # -- painting ----------------------------------------------------------------------
    def _checker_brush(self) -> QBrush:
        dpr = self.devicePixelRatioF()
        n = max(1, int(round(8 * dpr)))
        pm = QPixmap(2 * n, 2 * n)
        pm.fill(QColor(CHECKER_LIGHT))
        qp = QPainter(pm)
        qp.fillRect(0, 0, n, n, QColor(CHECKER_DARK))
        qp.fillRect(n, n, n, n, QColor(CHECKER_DARK))
        qp.end()
        pm.setDevicePixelRatio(dpr)
        return QBrush(pm)

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(CANVAS_BG))
        if self._image is None:
            p.setPen(QColor("#6f727a"))
            f = QFont(self.font())
            f.setPointSizeF(f.pointSizeF() * 1.4)
            p.setFont(f)
            p.drawText(self.rect(), Qt.AlignCenter, self.placeholder)
            p.end()
            return
        w, h = self._size
        ls = self._lscale()
        target = QRectF(self._origin.x(), self._origin.y(), w * ls, h * ls)
        p.setBrushOrigin(target.topLeft())
        p.fillRect(target, self._checker_brush())
        p.setRenderHint(QPainter.SmoothPixmapTransform, self._scale < 1.0)
        p.drawImage(target, self._image)
        if self._overlay is not None:
            p.setOpacity(self._overlay_opacity)
            p.drawImage(target, self._overlay)
            p.setOpacity(1.0)
        p.setRenderHint(QPainter.Antialiasing, True)
        p.setPen(QPen(QColor(0, 0, 0, 120), 1))
        p.setBrush(Qt.NoBrush)
        p.drawRect(target.adjusted(-0.5, -0.5, 0.5, 0.5))
        self._paint_badges(p)
        if self.busy_text:
            f = QFont(self.font())
            f.setPointSizeF(f.pointSizeF() * 1.1)
            p.setFont(f)
            tw = p.fontMetrics().horizontalAdvance(self.busy_text) + 36
            pill = QRectF((self.width() - tw) / 2, 14, tw, 30)
            p.setPen(Qt.NoPen)
            p.setBrush(QColor(20, 21, 25, 215))
            p.drawRoundedRect(pill, 15, 15)
            p.setPen(QColor("#e4e6ea"))
            p.drawText(pill, Qt.AlignCenter, self.busy_text)
        if self.tool == "paint" and self._mouse is not None and self._pan_from is None and not self._space:
            r = self.brush_radius * ls
            p.setPen(QPen(QColor(0, 0, 0, 200), 2.5))
            p.drawEllipse(self._mouse, r, r)
            p.setPen(QPen(QColor(255, 255, 255, 230), 1.2))
            p.drawEllipse(self._mouse, r, r)
        p.end()

    def _paint_badges(self, p: QPainter) -> None:
        if not self.badges:
            return
        f = QFont(self.font())
        f.setBold(True)
        f.setPointSizeF(max(9.0, f.pointSizeF() * 1.2))
        p.setFont(f)
        for x, y, text, colour in self.badges:
            c = self.to_widget(x, y)
            r = 14.0
            p.setPen(QPen(QColor("#ffffff"), 2))
            p.setBrush(QColor(colour))
            p.drawEllipse(c, r, r)
            p.setPen(QColor("#ffffff"))
            p.drawText(QRectF(c.x() - r, c.y() - r, 2 * r, 2 * r), Qt.AlignCenter, text)
