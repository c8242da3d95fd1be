"""A grid of image thumbnails at fixed cells: model, delegate and view for Image Grid.

A QTableView over a rows x columns model: Qt paints only the visible cells and the
delegate asks the shared ThumbnailLoader for exactly those (lazily, off the GUI
thread), so a grid of thousands of images opens at once. Clicking, Ctrl/Shift-click
and dragging a rectangle select images; empty cells cannot be selected.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from AnyQt.QtCore import QAbstractTableModel, QModelIndex, QRect, QSize, Qt
from AnyQt.QtGui import QColor, QKeyEvent, QPainter, QPen
from AnyQt.QtWidgets import (QAbstractItemView, QHeaderView, QStyle, QStyledItemDelegate,
                             QStyleOptionViewItem, QTableView, QWidget)

from .thumbnails import ThumbnailLoader, decode_side
from .thumbnailview import ImagePreview, PathRole, PreviewingView, draw_thumbnail

__all__ = ["GridModel", "GridDelegate", "GridView", "RowRole", "ColorRole", "SubsetRole"]

RowRole = Qt.ItemDataRole.UserRole + 10  # the data row shown in a cell, -1 when empty
ColorRole = Qt.ItemDataRole.UserRole + 11  # the frame colour (QColor) or None
SubsetRole = Qt.ItemDataRole.UserRole + 12  # False when a subset is given and the row is not in it


class GridModel(QAbstractTableModel):
    """Cell (r, c) shows data row ``grid[r, c]`` (-1: empty). Titles, colours and the
    subset are computed per cell when asked, so only visible cells cost anything."""

    def __init__(self, grid: np.ndarray, paths: Sequence[str], parent=None):
        super().__init__(parent)
        self.grid = np.asarray(grid, dtype=int)
        self.paths = list(paths)
        self._title: Callable[[int], str] = lambda row: ""
        self._color: Callable[[int], Optional[QColor]] = lambda row: None
        self._subset: Optional[np.ndarray] = None

    def rowCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else self.grid.shape[0]

    def columnCount(self, parent: QModelIndex | None = None) -> int:
        return 0 if parent is not None and parent.isValid() else self.grid.shape[1]

    def row_at(self, index: QModelIndex) -> int:
        return int(self.grid[index.row(), index.column()]) if index.isValid() else -1

    def index_of(self, row: int) -> QModelIndex:
        where = np.argwhere(self.grid == row)
        return self.index(*where[0]) if len(where) else QModelIndex()

    def set_decorations(self, title: Optional[Callable[[int], str]] = None,
                        color: Optional[Callable[[int], Optional[QColor]]] = None,
                        subset: Optional[np.ndarray] = None) -> None:
        """Replace the titles, frame colours or subset mask (None keeps titles/colours)."""
        if title is not None:
            self._title = title
        if color is not None:
            self._color = color
        self._subset = subset
        if self.grid.size:
            self.dataChanged.emit(self.index(0, 0),
                                  self.index(self.grid.shape[0] - 1, self.grid.shape[1] - 1))

    def flags(self, index: QModelIndex) -> Qt.ItemFlag:
        if self.row_at(index) < 0:
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        row = self.row_at(index)
        if row < 0:
            return -1 if role == RowRole else None
        if role == RowRole:
            return row
        if role == Qt.ItemDataRole.DisplayRole:
            return self._title(row)
        if role == PathRole:
            return self.paths[row]
        if role == Qt.ItemDataRole.ToolTipRole:
            title = self._title(row)
            return f"{title}\n{self.paths[row]}" if title else self.paths[row]
        if role == ColorRole:
            return self._color(row)
        if role == SubsetRole:
            return True if self._subset is None else bool(self._subset[row])
        return None


class GridDelegate(QStyledItemDelegate):
    """The thumbnail fitted into its cell, framed in its colour, titled underneath;
    rows outside a given subset are faded."""

    MARGIN = 3
    FRAME = 3

    def __init__(self, loader: ThumbnailLoader, parent=None):
        super().__init__(parent)
        self.loader = loader
        self.side = 100
        self.show_titles = False

    def cell_size(self, text_height: int) -> QSize:
        extra = text_height + self.MARGIN if self.show_titles else 0
        return QSize(self.side + 2 * self.MARGIN, self.side + 2 * self.MARGIN + extra)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return self.cell_size(option.fontMetrics.height())

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex) -> None:
        if index.data(RowRole) in (None, -1):
            return
        painter.save()
        rect = option.rect
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        if selected:
            painter.fillRect(rect, option.palette.highlight())
        if not index.data(SubsetRole):
            painter.setOpacity(0.25)
        side = min(self.side, rect.width() - 2 * self.MARGIN, rect.height() - 2 * self.MARGIN)
        box = QRect(rect.x() + (rect.width() - side) // 2, rect.y() + self.MARGIN, side, side)
        thumbnail = self.loader.get(index.data(PathRole) or "",
                                    decode_side(self.side, painter.device().devicePixelRatioF()))
        draw_thumbnail(painter, box, thumbnail)
        color = index.data(ColorRole)
        if color is not None:
            painter.setPen(QPen(color, self.FRAME))
            half = self.FRAME // 2
            painter.drawRect(box.adjusted(half, half, -half - 1, -half - 1))
        if self.show_titles:
            text_rect = QRect(rect.x() + 1, box.bottom() + self.MARGIN, rect.width() - 2,
                              option.fontMetrics.height())
            painter.setPen(option.palette.highlightedText().color() if selected else
                           option.palette.text().color())
            title = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
            painter.drawText(text_rect, Qt.AlignmentFlag.AlignCenter,
                             option.fontMetrics.elidedText(title, Qt.TextElideMode.ElideRight,
                                                           text_rect.width()))
        painter.restore()


_ARROWS = (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down)


class GridPreview(ImagePreview):
    """The large preview; the arrow keys move through the grid without leaving it."""

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in _ARROWS and isinstance(self.parent(), GridView):
            self.parent().keyPressEvent(event)
            return
        super().keyPressEvent(event)


class GridView(PreviewingView, QTableView):
    """Fixed-size cells with no headers or lines; Space or a double-click opens a preview."""

    preview_class = GridPreview

    def __init__(self, loader: ThumbnailLoader, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.loader = loader
        self.delegate = GridDelegate(loader, self)
        self.setItemDelegate(self.delegate)
        for header in (self.horizontalHeader(), self.verticalHeader()):
            header.hide()
            header.setSectionResizeMode(QHeaderView.ResizeMode.Fixed)
            header.setMinimumSectionSize(1)
        self.setShowGrid(False)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectItems)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setWordWrap(False)
        self.preview: Optional[GridPreview] = None
        loader.loaded.connect(self._on_loaded)
        self.doubleClicked.connect(self.open_preview)

    def set_cell_size(self, side: int, show_titles: bool) -> None:
        self.delegate.side = side
        self.delegate.show_titles = show_titles
        self.loader.clear_pending()
        size = self.delegate.cell_size(self.fontMetrics().height())
        self.horizontalHeader().setDefaultSectionSize(size.width())
        self.verticalHeader().setDefaultSectionSize(size.height())
        self.viewport().update()
