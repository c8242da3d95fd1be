"""Label Images' grid: thumbnails of some rows in some order, with their label or prediction.

A ThumbnailView (virtualised, thumbnails decoded lazily off the GUI thread) over a
model whose items are data rows in the order of the current view ("All", "Next to
label", "Check my labels"). Titles and frames are computed per painted item from
arrays the widget hands over, so 20,000 images cost no more than a screenful.
Number keys are the view's labelling keys (not Qt's keyboard search).
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
from AnyQt.QtCore import QAbstractListModel, QModelIndex, Qt, pyqtSignal as Signal
from AnyQt.QtGui import QColor, QKeyEvent, QPainter, QPen
from AnyQt.QtWidgets import QStyleOptionViewItem

from .thumbnails import ThumbnailLoader
from .thumbnailview import MismatchRole, PathRole, ThumbnailDelegate, ThumbnailView

__all__ = ["LabelGridModel", "LabelDelegate", "LabelGridView", "ColorRole", "RowRole",
           "item_title"]

ColorRole = Qt.ItemDataRole.UserRole + 20  # the label's colour (QColor) or None
RowRole = Qt.ItemDataRole.UserRole + 21  # the data row an item shows


def item_title(label: Optional[str], predicted: Optional[str], confidence: float) -> str:
    """'cat' (labelled, the model agrees or has not spoken), 'cat (model: dog 81%)'
    (labelled, the model disagrees), 'dog? 81%' (unlabelled, predicted), ''."""
    guess = f"{predicted} {confidence:.0%}" if predicted is not None \
        and np.isfinite(confidence) else ""
    if label is not None:
        return f"{label} (model: {guess})" if guess and predicted != label else label
    return f"{predicted}? {confidence:.0%}" if guess else ""


class LabelGridModel(QAbstractListModel):
    """Item i shows data row ``order[i]``. ``describe(row) -> (title, colour, mismatch)``
    is called only for painted items."""

    def __init__(self, paths: Sequence[str], parent=None):
        super().__init__(parent)
        self.paths = list(paths)
        self.order = np.arange(len(self.paths))
        self.describe: Callable[[int], tuple] = lambda row: ("", None, False)

    def rowCount(self, parent: Optional[QModelIndex] = None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.order)

    def set_order(self, order: Sequence[int]) -> None:
        """Show these data rows, in this order."""
        self.beginResetModel()
        self.order = np.asarray(order, dtype=int)
        self.endResetModel()

    def refresh(self) -> None:
        """Titles and frames changed (labels or predictions): repaint what is shown."""
        if len(self.order):
            self.dataChanged.emit(self.index(0), self.index(len(self.order) - 1))

    def row_of(self, item: int) -> int:
        return int(self.order[item])

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.order):
            return None
        row = int(self.order[index.row()])
        if role == RowRole:
            return row
        if role == PathRole:
            return self.paths[row]
        if role == Qt.ItemDataRole.DisplayRole:
            return self.describe(row)[0]
        if role == Qt.ItemDataRole.ToolTipRole:
            title = self.describe(row)[0]
            return f"{title}\n{self.paths[row]}" if title else self.paths[row]
        if role == ColorRole:
            return self.describe(row)[1]
        if role == MismatchRole:
            return self.describe(row)[2]
        return None


class LabelDelegate(ThumbnailDelegate):
    """The thumbnail with its title; a labelled image is framed in its class's colour
    (inside the red frame of a label the model disagrees with)."""

    FRAME = 4

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex) -> None:
        super().paint(painter, option, index)
        color = index.data(ColorRole)
        if isinstance(color, QColor):
            painter.save()
            rect = option.rect
            inset = self.MARGIN + (4 if index.data(MismatchRole) else 0)
            box = rect.adjusted(inset, inset, 0, 0)
            box.setWidth(self.side - 2 * (inset - self.MARGIN))
            box.setHeight(self.side - 2 * (inset - self.MARGIN))
            half = self.FRAME // 2
            painter.setPen(QPen(color, self.FRAME))
            painter.drawRect(box.adjusted(half, half, -half, -half))
            painter.restore()


class LabelGridView(ThumbnailView):
    """ThumbnailView whose number keys label: ``number_pressed(n)`` for 0-9, and
    ``unlabel_pressed`` for Delete and Backspace."""

    number_pressed = Signal(int)
    unlabel_pressed = Signal()

    def __init__(self, loader: ThumbnailLoader, parent=None):
        super().__init__(loader, parent)
        self.delegate = LabelDelegate(loader, self)
        self.setItemDelegate(self.delegate)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        modifiers = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        if modifiers == Qt.KeyboardModifier.NoModifier:
            key = event.key()
            if Qt.Key.Key_0 <= key <= Qt.Key.Key_9:
                self.number_pressed.emit(key - Qt.Key.Key_0)
                event.accept()
                return
            if key in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace):
                self.unlabel_pressed.emit()
                event.accept()
                return
        super().keyPressEvent(event)

    def selected_rows(self) -> list:
        """The data rows of the selected items, in view order."""
        model = self.model()
        items = sorted(index.row() for index in self.selectionModel().selectedIndexes())
        return [model.row_of(item) for item in items]
