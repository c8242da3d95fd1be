"""A virtualised grid of image thumbnails: model, delegate, view and a large preview.

One QListView in IconMode over a list model of row indices: Qt paints only the
visible items, and the delegate asks the ThumbnailLoader for exactly those, so a
table of 100,000 images costs no more to show than one of a hundred.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

from AnyQt.QtCore import QAbstractListModel, QModelIndex, QRect, QSize, Qt
from AnyQt.QtGui import QColor, QImage, QKeyEvent, QPainter, QPen, QPixmap
from AnyQt.QtWidgets import (QDialog, QLabel, QListView, QStyle, QStyledItemDelegate,
                             QStyleOptionViewItem, QVBoxLayout, QWidget)

from .thumbnails import SIZE_BUCKETS, Failed, ThumbnailLoader, decode_side

__all__ = ["ThumbnailModel", "ThumbnailDelegate", "ThumbnailView", "ImagePreview",
           "PathRole", "MismatchRole"]

PathRole = Qt.ItemDataRole.UserRole + 1
MismatchRole = Qt.ItemDataRole.UserRole + 2
PREVIEW_SIDE = SIZE_BUCKETS[-1]
_ARROWS = (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down)


class ThumbnailModel(QAbstractListModel):
    """Row i is the i-th image: its path, title and whether its prediction is wrong.

    Titles are computed when asked (only visible rows are), so setting a large
    table costs one list of paths.
    """

    def __init__(self, paths: Sequence[str], title: Callable[[int], str] = lambda i: "",
                 mismatch: Optional[Sequence[bool]] = None, parent=None):
        super().__init__(parent)
        self._paths = list(paths)
        self._title = title
        self._mismatch = mismatch

    def rowCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self._paths)

    def set_titles(self, title: Callable[[int], str],
                   mismatch: Optional[Sequence[bool]] = None) -> None:
        self._title = title
        self._mismatch = mismatch
        if self._paths:
            self.dataChanged.emit(self.index(0), self.index(len(self._paths) - 1))

    def path(self, row: int) -> str:
        return self._paths[row]

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        row = index.row()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._title(row)
        if role in (PathRole, Qt.ItemDataRole.ToolTipRole):
            return self._paths[row]
        if role == MismatchRole:
            return bool(self._mismatch[row]) if self._mismatch is not None else False
        return None


class ThumbnailDelegate(QStyledItemDelegate):
    """Paints the thumbnail (or a placeholder while loading, or a crossed box when the
    file cannot be shown) with its title below; a red frame marks a wrong prediction."""

    MARGIN = 4

    def __init__(self, loader: ThumbnailLoader, parent=None):
        super().__init__(parent)
        self.loader = loader
        self.side = 128
        #: (path, image) -> the image to draw (Image Viewer lays heatmaps over it)
        self.overlay: Optional[Callable[[str, QImage], QImage]] = None

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        text_height = option.fontMetrics.height()
        return QSize(self.side + 2 * self.MARGIN, self.side + text_height + 3 * self.MARGIN)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex) -> None:
        painter.save()
        rect = option.rect
        palette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(rect, palette.highlight())
        box = QRect(rect.x() + self.MARGIN, rect.y() + self.MARGIN, self.side, self.side)
        path = index.data(PathRole) or ""
        thumbnail = self.loader.get(path, decode_side(self.side,
                                                      painter.device().devicePixelRatioF()))
        if isinstance(thumbnail, QImage) and self.overlay is not None:
            thumbnail = self.overlay(path, thumbnail)
        draw_thumbnail(painter, box, thumbnail)
        if index.data(MismatchRole):
            painter.setPen(QPen(QColor("#d62728"), 3))
            painter.drawRect(box.adjusted(1, 1, -1, -1))
        text_rect = QRect(rect.x() + self.MARGIN, box.bottom() + self.MARGIN,
                          rect.width() - 2 * self.MARGIN, option.fontMetrics.height())
        title = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        painter.setPen(palette.highlightedText().color() if selected else
                       palette.text().color())
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignCenter,
                         option.fontMetrics.elidedText(title, Qt.TextElideMode.ElideMiddle,
                                                       text_rect.width()))
        painter.restore()

    @staticmethod
    def _placeholder(painter: QPainter, box: QRect, failed: Optional[Failed]) -> None:
        painter.fillRect(box, QColor("#ececec"))
        if failed is None:  # still loading
            return
        painter.setPen(QPen(QColor("#b0b0b0"), 2))
        inner = box.adjusted(box.width() // 4, box.height() // 4,
                             -box.width() // 4, -box.height() // 4)
        painter.drawLine(inner.topLeft(), inner.bottomRight())
        painter.drawLine(inner.topRight(), inner.bottomLeft())


def draw_thumbnail(painter: QPainter, box: QRect, thumbnail) -> None:
    """A thumbnail centred in ``box`` at its aspect ratio, or the placeholder for one that
    is loading or failed (Image Viewer's and Image Grid's delegates)."""
    if isinstance(thumbnail, QImage):
        scaled = QSize(thumbnail.width(), thumbnail.height()).scaled(
            box.size(), Qt.AspectRatioMode.KeepAspectRatio)
        target = QRect(0, 0, scaled.width(), scaled.height())
        target.moveCenter(box.center())
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target, thumbnail)
    else:
        ThumbnailDelegate._placeholder(painter, box, thumbnail)


class PreviewingView:
    """For item views of images (Image Viewer's list, Image Grid's table): repaint when a
    thumbnail arrives, Space or double-click opens a large preview that follows the
    current item, and the preview closes with the view. The view sets ``loader``,
    ``delegate`` (with ``side``) and ``preview = None``."""

    preview_class: type = None  # ImagePreview, set below

    def _on_loaded(self, path: str, side: int) -> None:
        if side == decode_side(self.delegate.side, self.viewport().devicePixelRatioF()):
            self.viewport().update()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Space and self.currentIndex().isValid():
            if self.preview is not None and self.preview.isVisible():
                self.preview.close()
            else:
                self.open_preview(self.currentIndex())
            event.accept()
            return
        super().keyPressEvent(event)

    def currentChanged(self, current: QModelIndex, previous: QModelIndex) -> None:
        super().currentChanged(current, previous)
        if self.preview is not None and self.preview.isVisible() and current.isValid() \
                and current.data(PathRole):
            self.preview.show_image(current.data(PathRole),
                                    current.data(Qt.ItemDataRole.DisplayRole))

    def open_preview(self, index: QModelIndex) -> None:
        """Show the image at ``index`` large, in a separate window."""
        if not index.isValid() or not index.data(PathRole):
            return
        if self.preview is None:
            self.preview = self.preview_class(self.loader, self)
        self.preview.show_image(index.data(PathRole), index.data(Qt.ItemDataRole.DisplayRole))
        self.preview.show()
        self.preview.raise_()

    def hideEvent(self, event) -> None:
        if self.preview is not None:
            self.preview.close()
        super().hideEvent(event)


class ThumbnailView(PreviewingView, QListView):
    """An icon-mode list view of thumbnails; Space or double-click opens a preview."""

    def __init__(self, loader: ThumbnailLoader, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.loader = loader
        self.delegate = ThumbnailDelegate(loader, self)
        self.setItemDelegate(self.delegate)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(2000)
        self.setSpacing(4)
        self.setWrapping(True)
        self.setSelectionMode(QListView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QListView.ScrollMode.ScrollPerPixel)
        self.preview: Optional[ImagePreview] = None
        loader.loaded.connect(self._on_loaded)
        self.doubleClicked.connect(lambda index: self.open_preview(index))

    def set_thumbnail_size(self, side: int) -> None:
        self.delegate.side = side
        self.loader.clear_pending()
        self.setGridSize(QSize())  # let the delegate's size hint decide
        self.scheduleDelayedItemsLayout()
        self.viewport().update()



class ImagePreview(QDialog):
    """A large view of one image, decoded by the same loader (off the GUI thread)."""

    def __init__(self, loader: ThumbnailLoader, parent: Optional[QWidget] = None):
        super().__init__(parent, Qt.WindowType.Tool)
        self.loader = loader
        self.path = ""
        self.label = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.label.setMinimumSize(200, 200)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        self.resize(720, 560)
        loader.loaded.connect(self._on_loaded)

    def show_image(self, path: str, title: str = "") -> None:
        self.path = path or ""
        self.setWindowTitle(f"{title} — {self.path}" if title else self.path)
        self._update()

    def _on_loaded(self, path: str, side: int) -> None:
        if path == self.path and side == PREVIEW_SIDE:
            self._update()

    def _update(self) -> None:
        image = self.loader.get(self.path, PREVIEW_SIDE)
        overlay = getattr(getattr(self.parent(), "delegate", None), "overlay", None)
        if isinstance(image, QImage) and overlay is not None:
            image = overlay(self.path, image)
        if isinstance(image, QImage):
            ratio = self.label.devicePixelRatioF()  # device pixels, for HiDPI screens
            pixmap = QPixmap.fromImage(image).scaled(self.label.size() * ratio,
                                                     Qt.AspectRatioMode.KeepAspectRatio,
                                                     Qt.TransformationMode.SmoothTransformation)
            pixmap.setDevicePixelRatio(ratio)
            self.label.setPixmap(pixmap)
        else:
            self.label.setPixmap(QPixmap())
            self.label.setText("Loading…" if image is None else f"Cannot show this file: {image}")

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._update()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Space, Qt.Key.Key_Escape):
            self.close()
            return
        if event.key() in _ARROWS and isinstance(self.parent(), ThumbnailView):
            self.parent().keyPressEvent(event)  # browse without leaving the preview
            return
        super().keyPressEvent(event)


PreviewingView.preview_class = ImagePreview
