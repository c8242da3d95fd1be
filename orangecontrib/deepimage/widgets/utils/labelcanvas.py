"""A canvas to paint labels on an image with a brush, with a prediction laid over it.

The labels are a uint8 array as large as the image (0 unlabelled, 1 background, 2..
kinds of object); painting stamps discs along the stroke into that array and
redraws only the overlay. Left button paints with the current class (0 erases),
the right or middle button drags the view, Ctrl+wheel zooms. Each stroke is one
step of ``history`` (undo, redo).
"""
from __future__ import annotations

from typing import Iterable, Optional, Sequence

import numpy as np
from AnyQt.QtCore import QPointF, Qt, Signal
from AnyQt.QtGui import QColor, QImage, QPainter, QPixmap
from AnyQt.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView

from .labelhistory import History

__all__ = ["CLASS_COLOURS", "LabelCanvas", "History", "colour_table", "rgba_to_qimage"]

#: label value -> colour: 0 unlabelled (transparent), 1 background, 2.. kinds
CLASS_COLOURS = ["#00000000", "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                 "#e377c2", "#8c564b", "#bcbd22", "#17becf"]


def colour_table(alpha: int) -> np.ndarray:
    """RGBA per label value (256 rows), with ``alpha`` for every class but unlabelled."""
    table = np.zeros((256, 4), np.uint8)
    for value, name in enumerate(CLASS_COLOURS[1:], start=1):
        colour = QColor(name)
        table[value] = (colour.red(), colour.green(), colour.blue(), alpha)
    return table


def rgba_to_qimage(pixels: np.ndarray) -> QImage:
    """A copy of an H x W x 4 uint8 array as a QImage."""
    height, width, _ = pixels.shape
    pixels = np.ascontiguousarray(pixels)
    return QImage(pixels.data, width, height, 4 * width,
                  QImage.Format.Format_RGBA8888).copy()


def _rgb_to_qimage(pixels: np.ndarray) -> QImage:
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    height, width, _ = pixels.shape
    pixels = np.ascontiguousarray(pixels[..., :3].astype(np.uint8))
    return QImage(pixels.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def _disc_offsets(radius: float) -> tuple[np.ndarray, np.ndarray]:
    r = int(np.ceil(radius))
    ys, xs = np.mgrid[-r:r + 1, -r:r + 1]
    inside = xs ** 2 + ys ** 2 <= radius ** 2 + 0.25
    return ys[inside], xs[inside]


class LabelCanvas(QGraphicsView):
    """The image, the prediction (semi-transparent) and the labels, zoomable.

    ``labels_changed`` is emitted once per stroke, when the button is released (or
    after ``paint_stroke``), so listeners retrain once per stroke.
    """

    labels_changed = Signal()
    history_changed = Signal()

    LABEL_ALPHA, PREDICTION_ALPHA = 230, 110

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setBackgroundBrush(QColor("#3a3a3a"))
        self._image_item = QGraphicsPixmapItem()
        self._prediction_item = QGraphicsPixmapItem()
        self._labels_item = QGraphicsPixmapItem()
        for z, item in enumerate((self._image_item, self._prediction_item,
                                  self._labels_item)):
            item.setZValue(z)
            self.scene().addItem(item)
        self.labels = np.zeros((0, 0), np.uint8)
        self.current_class = 1
        self.brush_size = 9  # diameter in image pixels
        self.editable = True
        self.show_prediction = True
        self._prediction: Optional[np.ndarray] = None
        self._placement = (0, 0, 1)
        self.history = History()
        self._before: Optional[np.ndarray] = None  # the labels when a stroke began
        self._auto_fit = True  # fit the image to the view until the user zooms
        self._last: Optional[QPointF] = None
        self._panning: Optional[QPointF] = None
        self._label_colours = colour_table(self.LABEL_ALPHA)
        self._prediction_colours = colour_table(self.PREDICTION_ALPHA)
        self._prediction_colours[1, 3] = 0  # predicted background: leave the image visible

    # --- content -----------------------------------------------------------------------
    def set_image(self, pixels: Optional[np.ndarray],
                  labels: Optional[np.ndarray] = None) -> None:
        """Show ``pixels`` (H x W [x 3] uint8) with ``labels`` (or none yet)."""
        self._prediction = None
        self._prediction_item.setPixmap(QPixmap())
        if pixels is None:
            self.labels = np.zeros((0, 0), np.uint8)
            self._image_item.setPixmap(QPixmap())
            self._labels_item.setPixmap(QPixmap())
            return
        height, width = pixels.shape[:2]
        self.labels = (labels.astype(np.uint8).copy() if labels is not None
                       else np.zeros((height, width), np.uint8))
        self._image_item.setPixmap(QPixmap.fromImage(_rgb_to_qimage(pixels)))
        self.scene().setSceneRect(0, 0, width, height)
        self._redraw_labels()
        self._auto_fit = True
        self.fit()

    def set_prediction(self, class_map: Optional[np.ndarray], top: int = 0, left: int = 0,
                       step: int = 1) -> None:
        """Lay a class map (1 background, 2.. kinds) over the image, or remove it; a
        map of part of the image (the view first) covers the pixels ``top::step``,
        ``left::step``."""
        self._prediction, self._placement = class_map, (top, left, step)
        height, width = self.labels.shape
        if class_map is None or not self.show_prediction \
                or top + (class_map.shape[0] - 1) * step >= height \
                or left + (class_map.shape[1] - 1) * step >= width:
            self._prediction_item.setPixmap(QPixmap())
            return
        rgba = self._prediction_colours[np.clip(class_map, 0, 255).astype(np.uint8)]
        self._prediction_item.setPixmap(QPixmap.fromImage(rgba_to_qimage(rgba)))
        self._prediction_item.setPos(left - (step - 1) / 2, top - (step - 1) / 2)
        self._prediction_item.setScale(step)

    def set_show_prediction(self, show: bool) -> None:
        self.show_prediction = show
        self.set_prediction(self._prediction, *self._placement)

    def visible_region(self, margin: float = 0.1) -> tuple[int, int, int, int, int]:
        """(top, left, bottom, right, step): the image pixels in view, with ``margin``
        (a fraction of the view) around them, and how many pixels share a screen pixel
        (1 when zoomed in)."""
        height, width = self.labels.shape
        rect = self.mapToScene(self.viewport().rect()).boundingRect()
        pad_x, pad_y = rect.width() * margin, rect.height() * margin
        top, left = max(0, int(rect.top() - pad_y)), max(0, int(rect.left() - pad_x))
        bottom = min(height, int(np.ceil(rect.bottom() + pad_y)))
        right = min(width, int(np.ceil(rect.right() + pad_x)))
        if bottom <= top or right <= left:
            top, left, bottom, right = 0, 0, height, width
        scale = max(abs(self.transform().m11()), 1e-6)
        return top, left, bottom, right, max(1, int(round(1 / scale)))

    def _redraw_labels(self, top: int = 0, left: int = 0, bottom: "int | None" = None,
                       right: "int | None" = None) -> None:
        """Draw the labels again, all of them or the rectangle given (a brush's dab:
        only that part is coloured and painted into the pixmap)."""
        pixmap = self._labels_item.pixmap()
        if bottom is None or pixmap.isNull() or bottom <= top or right <= left:
            rgba = self._label_colours[self.labels]
            self._labels_item.setPixmap(QPixmap.fromImage(rgba_to_qimage(rgba)))
            return
        patch = rgba_to_qimage(self._label_colours[self.labels[top:bottom, left:right]])
        painter = QPainter(pixmap)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Source)
        painter.drawImage(left, top, patch)
        painter.end()
        self._labels_item.setPixmap(pixmap)

    # --- painting ----------------------------------------------------------------------
    def stamp(self, points: Iterable[Sequence[float]], value: Optional[int] = None) -> None:
        """Paint discs of the brush's size at ``points`` (x, y in image pixels) and along
        the segments between them, with ``value`` (default: the current class)."""
        if self.labels.size == 0:
            return
        value = self.current_class if value is None else value
        dy, dx = _disc_offsets(max(self.brush_size, 1) / 2)
        height, width = self.labels.shape
        points = [tuple(map(float, p)) for p in points]
        centres = points[:1]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            steps = max(int(np.hypot(x1 - x0, y1 - y0) / max(self.brush_size / 4, 0.5)), 1)
            centres += [(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)
                        for t in np.linspace(0, 1, steps + 1)[1:]]
        for x, y in centres:
            ys, xs = np.round(y + dy).astype(int), np.round(x + dx).astype(int)
            keep = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
            self.labels[ys[keep], xs[keep]] = value
        reach = int(np.ceil(max(self.brush_size, 1) / 2)) + 1
        cy, cx = np.array([c[1] for c in centres]), np.array([c[0] for c in centres])
        self._redraw_labels(max(0, int(cy.min()) - reach), max(0, int(cx.min()) - reach),
                            min(height, int(cy.max()) + reach + 1),
                            min(width, int(cx.max()) + reach + 1))

    def paint_stroke(self, points: Sequence[Sequence[float]], value: Optional[int] = None
                     ) -> None:
        """A whole stroke, as a mouse would paint it (one step to undo); emits
        ``labels_changed``."""
        self.begin_stroke()
        self.stamp(points, value)
        self.end_stroke()

    def begin_stroke(self) -> None:
        """Remember the labels as they are, to undo the stroke that begins."""
        self._before = self.labels.copy()

    def end_stroke(self) -> None:
        """The stroke is done: one step in the history, ``labels_changed``."""
        if self._before is not None and self.history.record(self._before, self.labels):
            self.history_changed.emit()
        self._before = None
        self.labels_changed.emit()

    def clear_labels(self) -> None:
        self.begin_stroke()
        self.labels[:] = 0
        self._redraw_labels()
        self.end_stroke()

    def undo(self) -> None:
        """Take back the last stroke (or clearing)."""
        self._step(self.history.undo)

    def redo(self) -> None:
        """Paint again the stroke last taken back."""
        self._step(self.history.redo)

    def _step(self, move) -> None:
        if self.editable and self.labels.size and move(self.labels):
            self._redraw_labels()
            self.history_changed.emit()
            self.labels_changed.emit()

    def set_history(self, history: Optional["History"]) -> None:
        """The undo history of the image now shown (the editor keeps one per image)."""
        self.history = history or History()
        self.history_changed.emit()

    # --- zoom --------------------------------------------------------------------------
    def fit(self) -> None:
        """Show the whole image (and keep it whole when the view is resized)."""
        self._auto_fit = True
        if not self.scene().sceneRect().isEmpty():
            self.fitInView(self.scene().sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)

    def zoom(self, factor: float) -> None:
        self._auto_fit = False
        self.scale(factor, factor)

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._auto_fit:
            self.fit()

    def has_prediction(self) -> bool:
        """Whether a prediction is laid over the image now."""
        return not self._prediction_item.pixmap().isNull()

    @property
    def prediction(self) -> Optional[np.ndarray]:
        """The class map last given (shown or not)."""
        return self._prediction

    def wheelEvent(self, event) -> None:
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom(1.25 if event.angleDelta().y() > 0 else 0.8)
            event.accept()
        else:
            super().wheelEvent(event)

    # --- mouse -------------------------------------------------------------------------
    def _image_point(self, event) -> QPointF:
        return self.mapToScene(event.position().toPoint() if hasattr(event, "position")
                               else event.pos())

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.editable \
                and self.labels.size:
            self._last = self._image_point(event)
            self.begin_stroke()
            self.stamp([(self._last.x(), self._last.y())])
        elif event.button() in (Qt.MouseButton.RightButton, Qt.MouseButton.MiddleButton):
            self._panning = event.position() if hasattr(event, "position") else event.pos()
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        if self._last is not None:
            point = self._image_point(event)
            self.stamp([(self._last.x(), self._last.y()), (point.x(), point.y())])
            self._last = point
        elif self._panning is not None:
            position = event.position() if hasattr(event, "position") else event.pos()
            delta = position - self._panning
            self._panning = position
            for bar, step in ((self.horizontalScrollBar(), delta.x()),
                              (self.verticalScrollBar(), delta.y())):
                bar.setValue(int(bar.value() - step))
        event.accept()

    def mouseReleaseEvent(self, event) -> None:
        if self._last is not None:
            self._last = None
            self.end_stroke()
        self._panning = None
        event.accept()
