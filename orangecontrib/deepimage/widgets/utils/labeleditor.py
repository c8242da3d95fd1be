"""Segment Images' label editor: paint classes on a few images, see the prediction.

An image list on the left switches images; above the canvas, one button per class
(background and the kinds of object, each in its colour), an eraser, the brush
size, zoom and whether to show the prediction. The editor keeps the labels of
every image painted so far (``labels``: key -> uint8 array); the widget stores
them and trains on them. It knows nothing of training: it emits
``labels_changed(key)`` and ``current_changed(key)`` and is given the prediction
with ``set_prediction(key, class_map)``. Each stroke can be undone (Ctrl+Z, the
Undo button) and redone (Ctrl+Shift+Z), per image.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
from AnyQt.QtCore import QSize, Qt, Signal
from AnyQt.QtGui import QColor, QIcon, QKeySequence, QPixmap
from AnyQt.QtWidgets import (QAction, QButtonGroup, QCheckBox, QFrame, QHBoxLayout, QLabel,
                             QListWidget, QListWidgetItem, QScrollArea, QSizePolicy, QSlider,
                             QSplitter, QToolButton, QVBoxLayout, QWidget)

from .labelcanvas import CLASS_COLOURS, LabelCanvas
from .labelhistory import History

__all__ = ["LabelEditor", "ERASER"]

ERASER = 0
MAX_CLASSES = len(CLASS_COLOURS) - 1  # background + kinds


def _swatch(colour: str) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor(colour))
    return QIcon(pixmap)


class _ButtonStrip(QScrollArea):
    """A row of buttons that scrolls sideways when it does not fit, so that many kinds
    of object never widen the widget (Orange's rule: under 800 px); it asks for the
    whole row's width, and gets it when there is room."""

    def __init__(self, row: QWidget):
        super().__init__(widgetResizable=True, frameShape=QFrame.Shape.NoFrame)
        self.setWidget(row)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(150)
        self._hint = QSize(150, row.sizeHint().height())

    def fit(self) -> None:
        """Room for the buttons and, below them, the scroll bar (after buttons change)."""
        row = self.widget()
        buttons = [child for child in row.children() if isinstance(child, QWidget)]
        layout = row.layout()
        # from the buttons themselves: new ones are shown, and counted by the row's
        # layout, only when the event loop next runs
        width = sum(b.minimumWidth() or b.sizeHint().width() for b in buttons) + \
            layout.spacing() * max(len(buttons) - 1, 0)
        height = max((b.sizeHint().height() for b in buttons), default=row.sizeHint().height())
        row.setMinimumWidth(width)  # wider than the strip: it scrolls
        self._hint = QSize(width + 2, height + self.horizontalScrollBar().sizeHint().height())
        self.setFixedHeight(self._hint.height())
        self.updateGeometry()

    def sizeHint(self) -> QSize:
        return self._hint


class LabelEditor(QWidget):
    """Image list + class buttons + brush + LabelCanvas."""

    labels_changed = Signal(str)
    current_changed = Signal(str)
    classes_changed = Signal()

    def __init__(self, load: Callable[[str], np.ndarray], parent=None):
        """``load(key)`` returns an image's pixels for display (H x W x 3 uint8)."""
        super().__init__(parent)
        self._load = load
        self.labels: Dict[str, np.ndarray] = {}
        self.class_names: List[str] = ["Background", "Object"]
        self.current_key: Optional[str] = None
        self._keys: List[str] = []
        self._histories: Dict[str, History] = {}

        self.image_list = QListWidget(minimumWidth=96, maximumWidth=200)
        self.image_list.currentRowChanged.connect(self._on_row_changed)
        self.canvas = LabelCanvas()
        self.canvas.labels_changed.connect(self._on_painted)
        self.canvas.history_changed.connect(self._update_undo)

        self.class_buttons = QButtonGroup(self)
        self.class_buttons.idClicked.connect(self._on_class_chosen)
        self.class_box = QWidget()
        self.class_bar = QHBoxLayout(self.class_box)
        self.class_bar.setContentsMargins(0, 0, 0, 0)
        self.class_bar.setSpacing(2)
        self.add_button = QToolButton(text="+ Kind", toolTip="Add a kind of object")
        self.add_button.clicked.connect(lambda: self.add_class())
        self.brush = QSlider(Qt.Orientation.Horizontal, minimum=1, maximum=60, value=9,
                             toolTip="Brush diameter (image pixels)", minimumWidth=56,
                             maximumWidth=120)
        self.brush.valueChanged.connect(self._on_brush)
        self.brush_label = QLabel("Brush 9")
        self.preview_box = QCheckBox("Prediction", checked=True,
                                     toolTip="Lay the prediction over the image")
        self.preview_box.toggled.connect(self.canvas.set_show_prediction)
        self.status = QLabel("", wordWrap=True)

        # two rows (the classes; the brush and the view), so the widget fits a small
        # screen (Orange's rule: narrower than 800 px) with several kinds of object
        classes = QHBoxLayout()
        self.class_strip = _ButtonStrip(self.class_box)
        classes.addWidget(self.class_strip)
        classes.addWidget(self.add_button)
        classes.addStretch(1)
        tools = QHBoxLayout()
        tools.addWidget(self.brush_label)
        tools.addWidget(self.brush)
        for text, tip, slot in (("+", "Zoom in (Ctrl+wheel)", lambda: self.canvas.zoom(1.25)),
                                ("-", "Zoom out", lambda: self.canvas.zoom(0.8)),
                                ("Fit", "Show the whole image", self.canvas.fit)):
            button = QToolButton(text=text, toolTip=tip)
            button.clicked.connect(slot)
            tools.addWidget(button)
        tools.addStretch(1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.preview_box)
        self.undo_button = QToolButton(text="Undo", toolTip="Undo the last stroke (Ctrl+Z)",
                                       enabled=False)
        self.redo_button = QToolButton(text="Redo", enabled=False,
                                       toolTip="Paint again the stroke undone (Ctrl+Shift+Z)")
        for button, slot, keys in ((self.undo_button, self.canvas.undo, "Ctrl+Z"),
                                   (self.redo_button, self.canvas.redo, "Ctrl+Shift+Z")):
            button.clicked.connect(slot)
            bottom.addWidget(button)  # beside the status: the rows above are full
            self.addAction(QAction(self, triggered=slot, shortcut=QKeySequence(keys),
                                   shortcutContext=Qt.ShortcutContext.WidgetWithChildrenShortcut))
        right = QWidget()
        layout = QVBoxLayout(right)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(classes)
        layout.addLayout(tools)
        layout.addWidget(self.canvas, 1)
        layout.addLayout(bottom)
        splitter = QSplitter()
        splitter.addWidget(self.image_list)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(splitter)
        self._rebuild_class_buttons()

    # --- classes -----------------------------------------------------------------------
    def set_class_names(self, names: Sequence[str]) -> None:
        self.class_names = list(names)[:MAX_CLASSES]
        self._rebuild_class_buttons()

    def add_class(self, name: Optional[str] = None) -> None:
        if len(self.class_names) >= MAX_CLASSES:
            return
        self.class_names.append(name or f"Kind {len(self.class_names)}")
        self._rebuild_class_buttons()
        self.classes_changed.emit()

    def _rebuild_class_buttons(self) -> None:
        for button in self.class_buttons.buttons():
            self.class_buttons.removeButton(button)
            self.class_bar.removeWidget(button)
            button.setParent(None)
            button.deleteLater()
        entries = [(ERASER, "Eraser", "#ffffff")] + [
            (value, name, CLASS_COLOURS[value])
            for value, name in enumerate(self.class_names, start=1)]
        for value, name, colour in entries:
            button = QToolButton(text=name, checkable=True, icon=_swatch(colour),
                                 toolButtonStyle=Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
            button.setToolTip(f"Paint {name.lower()}" if value != ERASER else "Erase labels")
            button.setMinimumWidth(button.sizeHint().width())  # scroll, never cut the names
            self.class_buttons.addButton(button, value)
            self.class_bar.addWidget(button)
        chosen = min(self.canvas.current_class, len(self.class_names))
        self.select_class(chosen)
        self.add_button.setEnabled(len(self.class_names) < MAX_CLASSES)
        self.class_strip.fit()

    def select_class(self, value: int) -> None:
        """Paint with class ``value`` from now on (ERASER: erase)."""
        button = self.class_buttons.button(value)
        if button is not None:
            button.setChecked(True)
        self.canvas.current_class = value

    def _on_class_chosen(self, value: int) -> None:
        self.canvas.current_class = value

    def _on_brush(self, value: int) -> None:
        self.canvas.brush_size = value
        self.brush_label.setText(f"Brush {value}")

    # --- images ------------------------------------------------------------------------
    def set_images(self, keys: Sequence[str], names: Sequence[str]) -> None:
        """The images one can paint on (key: how labels are stored; name: shown)."""
        self._keys = list(keys)
        self.image_list.blockSignals(True)
        self.image_list.clear()
        for name in names:
            self.image_list.addItem(QListWidgetItem(name))
        self.image_list.blockSignals(False)
        self.current_key = None
        self._mark_labelled()
        if self._keys:
            self.image_list.setCurrentRow(0)
        else:
            self.canvas.set_image(None)

    def show_image(self, key: str) -> None:
        """Switch to the image ``key``."""
        if key in self._keys:
            self.image_list.setCurrentRow(self._keys.index(key))

    def _on_row_changed(self, row: int) -> None:
        self._store_current()
        if self.current_key is not None:
            self._histories[self.current_key] = self.canvas.history
        if row < 0 or row >= len(self._keys):
            self.current_key = None
            self.canvas.set_image(None)
            return
        key = self._keys[row]
        try:
            pixels = self._load(key)
        except Exception as ex:  # noqa: BLE001 -- an unreadable image is shown as such
            self.current_key = None
            self.canvas.set_image(None)
            self.status.setText(f"Cannot show this image: {ex}")
            return
        labels = self.labels.get(key)
        if labels is not None and labels.shape != pixels.shape[:2]:
            labels = None  # the file changed size since it was labelled
        self.current_key = key
        self.canvas.set_image(pixels, labels)
        self.canvas.set_history(self._histories.get(key))  # a stale step is refused
        self.current_changed.emit(key)

    def _store_current(self) -> None:
        if self.current_key is not None and self.canvas.labels.size:
            if self.canvas.labels.any():
                self.labels[self.current_key] = self.canvas.labels.copy()
            else:
                self.labels.pop(self.current_key, None)

    def _on_painted(self) -> None:
        self._store_current()
        self._mark_labelled()
        if self.current_key is not None:
            self.labels_changed.emit(self.current_key)

    def _mark_labelled(self) -> None:
        for row, key in enumerate(self._keys):
            item = self.image_list.item(row)
            font = item.font()
            font.setBold(key in self.labels)
            item.setFont(font)

    def set_labels(self, labels: Dict[str, np.ndarray]) -> None:
        """Replace all labels (e.g. loaded from a folder); the current image is redrawn.
        The strokes painted before cannot be undone any more."""
        self.labels = {key: value for key, value in labels.items() if value.any()}
        self._histories.clear()
        self._mark_labelled()
        key, self.current_key = self.current_key, None
        if key is not None:
            row = self._keys.index(key)
            self._on_row_changed(row)

    # --- prediction --------------------------------------------------------------------
    def set_prediction(self, key: str, class_map: Optional[np.ndarray], top: int = 0,
                       left: int = 0, step: int = 1) -> None:
        """The prediction for image ``key`` (or the part ``top::step``, ``left::step``
        of it); shown if it is the current image."""
        if key == self.current_key:
            self.canvas.set_prediction(class_map, top, left, step)

    def _update_undo(self) -> None:
        editable = self.canvas.editable
        self.undo_button.setEnabled(editable and self.canvas.history.can_undo)
        self.redo_button.setEnabled(editable and self.canvas.history.can_redo)

    def set_editable(self, editable: bool) -> None:
        """Whether one can paint (not with a segmenter from the input, or thresholds)."""
        self.canvas.editable = editable
        for button in self.class_buttons.buttons():
            button.setEnabled(editable)
        self.add_button.setEnabled(editable and len(self.class_names) < MAX_CLASSES)
        self.brush.setEnabled(editable)
        self._update_undo()
