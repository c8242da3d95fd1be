"""Segment Images' classifier file: load a pixel classifier saved by
`deepimage segment-train` or by the widget's Save, save the one trained here.

Files are read by PixelClassifier.load (core/segment/classifier_file.py): a skops
archive whose every type is checked first; a file that is not ours, from another
format version or damaged is refused with SegmenterFileError, and no code from the
file runs.
"""
from __future__ import annotations

import os
from typing import Callable, Optional

from AnyQt.QtCore import Signal
from AnyQt.QtWidgets import QFileDialog, QHBoxLayout, QLabel, QToolButton, QVBoxLayout, QWidget
from orangewidget.utils.signals import PartialSummary, summarize

from orangecontrib.deepimage.core.segment.classifier import PixelClassifier, SegmenterFileError

__all__ = ["ClassifierFileBox", "FILE_FILTER"]

FILE_FILTER = "Pixel classifier (*.skops);;All files (*)"


@summarize.register(PixelClassifier)
def _summarize_segmenter(segmenter: PixelClassifier) -> PartialSummary:
    names = ", ".join(segmenter.class_names)
    return PartialSummary("pixel classifier",
                          f"Pixel classifier ({segmenter.features} features): {names}")


class ClassifierFileBox(QWidget):
    """"Load Classifier…", "Save Classifier…" and "Forget" buttons and the name of the
    file in use. ``loaded(classifier or None)`` when a file is loaded or forgotten;
    ``failed(message)`` when a file is refused or cannot be written."""

    loaded = Signal(object)
    failed = Signal(str)

    def __init__(self, to_save: Callable[[], Optional[PixelClassifier]], parent=None):
        """``to_save()``: the classifier Save writes (None: nothing to save yet)."""
        super().__init__(parent)
        self._to_save = to_save
        self.path = ""
        self.classifier: Optional[PixelClassifier] = None
        self.load_button = QToolButton(text="Load Classifier…", toolTip=(
            "Apply a pixel classifier saved by this widget or by `deepimage "
            "segment-train` instead of painting labels"))
        self.save_button = QToolButton(text="Save…", enabled=False,
                                       toolTip="Save the trained pixel classifier to a file")
        self.forget_button = QToolButton(text="Forget", enabled=False,
                                         toolTip="Stop using the loaded classifier")
        self.load_button.clicked.connect(self.load_dialog)
        self.save_button.clicked.connect(self.save_dialog)
        self.forget_button.clicked.connect(self.forget)
        self.label = QLabel(wordWrap=True, visible=False)
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        for button in (self.load_button, self.save_button, self.forget_button):
            row.addWidget(button)
        row.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.label)

    def load(self, path: str) -> bool:
        """Use the classifier in ``path``; False (and ``failed``) if it is refused."""
        try:
            classifier = PixelClassifier.load(path)
        except (SegmenterFileError, OSError) as ex:
            self.failed.emit(str(ex))
            return False
        self.path, self.classifier = path, classifier
        self.label.setText(f"Using {os.path.basename(path)}: "
                           f"{', '.join(classifier.class_names)}")
        self.label.setVisible(True)
        self.forget_button.setEnabled(True)
        self.loaded.emit(classifier)
        return True

    def forget(self) -> None:
        self.path, self.classifier = "", None
        self.label.setText("")
        self.label.setVisible(False)
        self.forget_button.setEnabled(False)
        self.loaded.emit(None)

    def save(self, path: str) -> bool:
        """Write the classifier ``to_save()`` gives to ``path``."""
        classifier = self._to_save()
        if classifier is None:
            return False
        try:
            classifier.save(path)
        except (OSError, RuntimeError) as ex:
            self.failed.emit(f"Cannot save {path}: {ex}")
            return False
        return True

    def update_save(self) -> None:
        """Enable Save when there is a classifier to save."""
        self.save_button.setEnabled(self._to_save() is not None)

    def load_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load Pixel Classifier",
                                              os.path.dirname(self.path), FILE_FILTER)
        if path:
            self.load(path)

    def save_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save Pixel Classifier",
                                              "segmenter.skops", FILE_FILTER)
        if path:
            self.save(path)
