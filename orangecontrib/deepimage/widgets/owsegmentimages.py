"""Segment Images: find, count and measure the objects in images (cells, nuclei, coins).

Two methods: a threshold (no training; CellProfiler's IdentifyPrimaryObjects) or a
pixel classifier trained on labels painted in the editor (ilastik's pixel
classification), whose prediction on the image on screen updates after every
stroke. The work is in orangecontrib.deepimage.segmentation (no Qt); the editor in
widgets/utils/labeleditor.py. Outputs: Objects (a row per object with its
measurements and a crop), Images (counts per image and masks), the Segmenter.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Dict, List, Optional

import numpy as np
from AnyQt.QtCore import QSize, QTimer
from AnyQt.QtWidgets import QFileDialog, QLabel, QMenu, QToolButton
from Orange.data import Table
from Orange.widgets import gui
from Orange.widgets.settings import Setting
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin
from Orange.widgets.widget import Input, Msg, Output, OWWidget

from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.core.segment.classifier import PixelClassifier
from orangecontrib.deepimage.core.segment.features import FEATURE_SETS
from orangecontrib.deepimage.core.segment.threshold import METHODS, ThresholdParams
from orangecontrib.deepimage.data import image_column, image_paths, image_values
from orangecontrib.deepimage.seglabels import (LABELS, MASKS, decode_labels, encode_labels,
                                               image_shapes, labels_from_folder)
from orangecontrib.deepimage.seglive import (PreviewMap, PreviewModels, View,
                                             live_classifier, live_segmenter, warm_features)
from orangecontrib.deepimage.segmentation import (PixelCache, SegmentationResult,
                                                  TrainedClassifiers, display_pixels,
                                                  preview_threshold, run_segmentation,
                                                  summary, train_and_segment)
from orangecontrib.deepimage.widgets.utils.labeleditor import LabelEditor
from orangecontrib.deepimage.widgets.utils.livepreview import LivePreview
from orangecontrib.deepimage.widgets.utils.segmenterfile import ClassifierFileBox

THRESHOLD, CLASSIFIER = 0, 1


METHOD_NAMES = {"otsu": "Otsu (global)", "li": "Li (global)", "local": "Local (adaptive)"}
FEATURE_NAMES = {"filters": "Filters (intensity, edges, texture)",
                 "deep": "Network (SqueezeNet layers)", "both": "Filters and network"}


class OWSegmentImages(OWWidget, ConcurrentWidgetMixin):
    name = "Segment Images"
    description = ("Find, count and measure the objects in images (cells, nuclei, "
                   "colonies, coins): by a threshold, or by a classifier trained on "
                   "labels you paint.")
    icon = "icons/SegmentImages.svg"
    priority = 25
    keywords = ("deep image, segment images, segmentation, cells, nuclei, objects, count, "
                "measure, mask, threshold, pixel classifier, label, ilastik")

    class Inputs:
        data = Input("Images", Table)
        segmenter = Input("Segmenter", PixelClassifier,
                          doc="A pixel classifier trained in another Segment Images.")

    class Outputs:
        objects = Output("Objects", Table, default=True,
                         doc="One row per object: measurements, class, and a crop.")
        images = Output("Images", Table, doc="The images with counts, and their masks.")
        skipped = Output("Skipped Images", Table)
        segmenter = Output("Segmenter", PixelClassifier,
                           doc="The trained pixel classifier, to apply elsewhere.")

    class Error(OWWidget.Error):
        no_image_column = Msg("The data has no image column (Import Images makes one).")
        failed = Msg("{}")
        classifier_file = Msg("{}")

    class Warning(OWWidget.Warning):
        images_skipped = Msg("{} could not be segmented; see the Skipped Images output.")
        label_files = Msg("Some label files were not used:\n{}")
        preview = Msg("Preview: {}")

    class Information(OWWidget.Information):
        paint = Msg("Paint background and objects on an image or two; the prediction "
                    "appears as you paint.")
        input_segmenter = Msg("Using the segmenter from the input.")
        loaded_segmenter = Msg("Using the classifier loaded from {}.")

    settings_version = 1
    method: int = Setting(THRESHOLD)
    threshold_method: int = Setting(0)  # index in METHODS
    dark: bool = Setting(False)
    limit_diameter: bool = Setting(False)
    min_diameter: int = Setting(8)
    max_diameter: int = Setting(60)
    correct_background: bool = Setting(True)
    split_touching: bool = Setting(True)
    fill_holes: bool = Setting(True)
    features: int = Setting(0)  # index in FEATURE_SETS
    write_crops: bool = Setting(True)
    class_names: List[str] = Setting(["Background", "Object"])
    #: painted labels, by the image column's value: PNG (base64) of the label image
    labels: Dict[str, str] = Setting({}, schema_only=True)
    #: a classifier file loaded instead of painting ("" none)
    classifier_file: str = Setting("", schema_only=True)
    auto_commit: bool = Setting(True)

    def __init__(self):
        OWWidget.__init__(self)
        ConcurrentWidgetMixin.__init__(self)
        self.data: Optional[Table] = None
        self.input_segmenter: Optional[PixelClassifier] = None
        self.paths: List[str] = []
        self.keys: List[str] = []
        self.pixels = PixelCache()
        self.trained = TrainedClassifiers()
        self.preview_models = PreviewModels()
        self._unsaved = set()  # keys of images whose labels are not yet in ``labels``
        self.settingsAboutToBePacked.connect(self._encode_labels)
        self.result: Optional[SegmentationResult] = None
        self._workdir = tempfile.mkdtemp(prefix="deepimage-segment-")
        self._runs = 0
        # after painting, segment every image once the user pauses (the preview first)
        self._commit_timer = QTimer(self, singleShot=True, interval=2500,
                                    timeout=lambda: self.commit.deferred())
        self.preview = LivePreview(self)
        self.preview.ready.connect(self._on_preview)
        self.preview.failed.connect(self._on_preview_failed)
        self.editor = LabelEditor(self._display_pixels)
        self.editor.set_class_names(self.class_names)
        self.editor.labels_changed.connect(self._on_labels_changed)
        self.editor.current_changed.connect(lambda _: self._request_preview())
        self.editor.classes_changed.connect(self._on_classes_changed)
        self.mainArea.layout().addWidget(self.editor)
        self._build_controls()
        if self.classifier_file and not self.file_box.load(self.classifier_file):
            self.classifier_file = ""
        self._update_enabled()

    def _build_controls(self) -> None:
        box = gui.vBox(self.controlArea, "Method")
        gui.radioButtons(box, self, "method", ["Threshold (no training)",
                                               "Classifier trained on painted labels"],
                         callback=self._on_method)
        self._threshold_controls()
        self._classifier_controls()
        self._object_controls()
        info = gui.vBox(self.controlArea, "Result")
        self.summary_label = QLabel("No data.", wordWrap=True)
        info.layout().addWidget(self.summary_label)
        self.cancel_button = gui.button(info, self, "Cancel", callback=self.cancel)
        self.cancel_button.setEnabled(False)
        gui.rubber(self.controlArea)
        gui.auto_apply(self.buttonsArea, self, "auto_commit")

    def _threshold_controls(self) -> None:
        self.threshold_box = box = gui.vBox(self.controlArea, "Threshold")
        gui.comboBox(box, self, "threshold_method", items=[METHOD_NAMES[m] for m in METHODS],
                     callback=self._on_option, label="Threshold:", orientation=0)
        gui.checkBox(box, self, "dark", "Dark objects on a light background",
                     callback=self._on_option)
        gui.checkBox(box, self, "correct_background", "Correct uneven illumination",
                     callback=self._on_option)
        gui.checkBox(box, self, "fill_holes", "Fill holes", callback=self._on_option)

    def _classifier_controls(self) -> None:
        self.classifier_box = box = gui.vBox(self.controlArea, "Classifier")
        gui.comboBox(box, self, "features", items=[FEATURE_NAMES[f] for f in FEATURE_SETS],
                     callback=self._on_option, label="Features:")
        load = QToolButton(text="Load Labels…", toolTip="Read label images or object masks "
                           "named like the images from a folder",
                           popupMode=QToolButton.ToolButtonPopupMode.InstantPopup)
        menu = QMenu(load)
        menu.addAction("Labels (0 unlabelled, 1 background, 2.. kinds)…",
                       lambda: self.load_labels_dialog(LABELS))
        menu.addAction("Object masks (0 background, 1..N objects)…",
                       lambda: self.load_labels_dialog(MASKS))
        load.setMenu(menu)
        box.layout().addWidget(load)
        gui.button(box, self, "Clear Labels of This Image", callback=self.clear_current)
        self.file_box = ClassifierFileBox(
            lambda: self.result.segmenter if self.result is not None else None)
        self.file_box.loaded.connect(self._on_classifier_loaded)
        self.file_box.failed.connect(self.Error.classifier_file)
        gui.vBox(self.controlArea, "Classifier File").layout().addWidget(self.file_box)

    def _object_controls(self) -> None:
        box = gui.vBox(self.controlArea, "Objects")
        gui.checkBox(box, self, "split_touching", "Split touching objects",
                     callback=self._on_option)
        row = gui.hBox(box)
        gui.checkBox(row, self, "limit_diameter", "Diameter", callback=self._on_option,
                     tooltip="Keep objects whose diameter (pixels) is in this range; it "
                             "also sets how touching objects are split.")
        gui.spin(row, self, "min_diameter", 1, 5000, callback=self._on_option,
                 controlWidth=55)
        gui.widgetLabel(row, "to")
        gui.spin(row, self, "max_diameter", 1, 5000, callback=self._on_option,
                 controlWidth=55)
        gui.widgetLabel(row, "px")
        gui.checkBox(box, self, "write_crops",
                     "Crop each object", callback=self._on_crops,
                     tooltip="Write a small image of every object (for Image Embedder), "
                             "named in the Objects "
                             "output's image column. Untick for many thousands of objects "
                             "when only the measurements are needed.")

    def sizeHint(self) -> QSize:
        return QSize(1100, 700)

    # --- inputs ------------------------------------------------------------------------
    @Inputs.data
    def set_data(self, data: Optional[Table]) -> None:
        self.cancel()
        self._encode_labels()  # the editor's strokes, before it takes the new images
        self.Error.clear()
        self.data, self.paths, self.keys = data, [], []
        column = image_column(data) if data is not None else None
        if data is not None and column is None:
            self.Error.no_image_column()
            self.data = None
        if self.data is not None:
            self.paths = image_paths(data, column)
            self.keys = image_values(data, column)
        names = [os.path.basename(p) for p in self.paths]
        self.editor.set_images(self.keys, names)
        self.editor.set_labels(self._stored_labels())
        self._update_enabled()

    @Inputs.segmenter
    def set_segmenter(self, segmenter: Optional[PixelClassifier]) -> None:
        self.input_segmenter = segmenter
        if segmenter is not None:
            self.method = CLASSIFIER  # a segmenter is connected to be used
        self._update_enabled()

    def handleNewSignals(self) -> None:
        self._request_preview()
        self.commit.now()

    def _stored_labels(self) -> Dict[str, np.ndarray]:
        found = {}
        for key in self.keys:
            if key in self.labels:
                try:
                    found[key] = decode_labels(self.labels[key])
                except (ValueError, OSError):
                    pass  # a damaged entry: that image is unlabelled
        return found

    def _display_pixels(self, key: str) -> np.ndarray:
        """The image as it is segmented (and labelled), in 8 bits."""
        return display_pixels(self.pixels.get(self.paths[self.keys.index(key)]))

    # --- options -----------------------------------------------------------------------
    def diameter(self) -> Optional[tuple]:
        """The expected (min, max) diameter in pixels, or None."""
        return tuple(sorted((self.min_diameter, self.max_diameter))) \
            if self.limit_diameter else None

    def threshold_params(self) -> ThresholdParams:
        return ThresholdParams(method=METHODS[self.threshold_method], dark=self.dark,
                               diameter=self.diameter(),
                               correct_background=self.correct_background,
                               split_touching=self.split_touching, fill_holes=self.fill_holes)

    def _run_options(self) -> dict:
        """How objects are made of a classifier's pixels, and whether crops are written."""
        return dict(crops=self.write_crops, split_touching=self.split_touching,
                    diameter=self.diameter())

    def _classifier_mode(self) -> bool:
        return self.method == CLASSIFIER

    def given_segmenter(self) -> Optional[PixelClassifier]:
        """The classifier to apply instead of training: the input's, else the loaded."""
        return self.input_segmenter or self.file_box.classifier

    def _update_enabled(self) -> None:
        mode = self._classifier_mode()
        from_input = self.input_segmenter is not None and mode
        given = self.given_segmenter() is not None and mode
        self.threshold_box.setEnabled(not mode)
        self.classifier_box.setEnabled(mode and not given)
        self.file_box.parentWidget().setEnabled(mode and not from_input)
        self.file_box.update_save()
        self.editor.set_editable(mode and not given)
        self.Information.input_segmenter(shown=from_input)
        self.Information.loaded_segmenter(os.path.basename(self.file_box.path),
                                          shown=given and not from_input)
        self.Information.paint(shown=mode and not given and self.data is not None
                               and not self.editor.labels)

    def _on_classifier_loaded(self, classifier: Optional[PixelClassifier]) -> None:
        self.Error.classifier_file.clear()
        self.classifier_file = self.file_box.path
        if classifier is not None:
            self.method = CLASSIFIER
        self._on_method()

    def _on_method(self) -> None:
        self._update_enabled()
        self._on_option()

    def _on_option(self) -> None:
        self._request_preview()
        self.commit.deferred()

    def _on_crops(self) -> None:
        self.commit.deferred()

    def _on_classes_changed(self) -> None:
        self.class_names = list(self.editor.class_names)

    # --- labels ------------------------------------------------------------------------
    def _on_labels_changed(self, key: str) -> None:
        # encoded (PNG) when the workflow is saved, not after every stroke: a large
        # image's labels take a good part of a second
        self.labels = {k: v for k, v in self.labels.items() if k != key}
        self._unsaved.add(key)
        self._update_enabled()
        self._request_preview()
        self._commit_timer.start()

    def _encode_labels(self) -> None:
        """Put the labels painted since the last save in the setting."""
        painted = {k: encode_labels(self.editor.labels[k]) for k in self._unsaved
                   if k in self.editor.labels}
        self.labels = {**self.labels, **painted}
        self._unsaved.clear()

    def labelled_paths(self) -> Dict[str, np.ndarray]:
        """The painted labels by image path (what training reads)."""
        return {self.paths[self.keys.index(k)]: v for k, v in self.editor.labels.items()
                if k in self.keys}

    def clear_current(self) -> None:
        if self.editor.current_key is not None:
            self.editor.canvas.clear_labels()

    def load_labels_dialog(self, kind: str) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder with label images")
        if folder:
            self.load_labels(folder, kind)

    def load_labels(self, folder: str, kind: str = LABELS) -> None:
        """Take labels (or masks) named like the images from ``folder``."""
        images = dict(zip(self.keys, self.paths))
        loaded = labels_from_folder(folder, images, image_shapes(images), kind)
        self.Warning.label_files("\n".join(loaded.problems[:5]), shown=bool(loaded.problems))
        if not loaded.labels:
            return
        highest = max(int(v.max()) for v in loaded.labels.values())
        while len(self.editor.class_names) < highest:
            self.editor.add_class()
        self.editor.set_labels({**self.editor.labels, **loaded.labels})
        self._unsaved.update(loaded.labels)
        self.method = CLASSIFIER
        self._on_method()

    # --- live preview ------------------------------------------------------------------
    def _request_preview(self) -> None:
        key = self.editor.current_key
        if key is None or self.data is None:
            return
        path = self.paths[self.keys.index(key)]
        if not self._classifier_mode():
            self.preview.request(key, preview_threshold, self.threshold_params(),
                                 self.pixels, path)
        elif self.given_segmenter() is not None:
            self.preview.request(key, live_segmenter, self.given_segmenter(), self.pixels,
                                 self.preview_models, path, self._view())
        elif self.editor.labels:
            self.preview.request(key, live_classifier, self.pixels, self.preview_models,
                                 self.labelled_paths(), FEATURE_SETS[self.features], path,
                                 list(self.editor.class_names), self._view())
        else:  # nothing painted yet: the image's features, for the first stroke
            self.editor.set_prediction(key, None)
            self.preview.request(key, warm_features, self.pixels, self.preview_models, path,
                                 FEATURE_SETS[self.features])

    def _view(self) -> Optional[View]:
        """The part of the current image in view (predicted first)."""
        canvas = self.editor.canvas
        return View(*canvas.visible_region()) if canvas.labels.size else None

    def _on_preview(self, key: str, result) -> None:
        self.Warning.preview.clear()
        if result is None:  # features computed ahead
            return
        if isinstance(result, PreviewMap):
            self.editor.set_prediction(key, result.class_map, result.top, result.left,
                                       result.step)
        else:  # the threshold's: (None, class map)
            self.editor.set_prediction(key, result[1])

    def _on_preview_failed(self, key: str, message: str) -> None:
        self.Warning.preview(message)

    # --- running -----------------------------------------------------------------------
    def _run_folder(self) -> str:
        self._runs += 1
        return os.path.join(self._workdir, f"run-{self._runs}")

    @gui.deferred
    def commit(self) -> None:
        self._commit_timer.stop()  # this run includes the strokes it was waiting for
        self.cancel()
        self.Error.failed.clear()
        self.Warning.images_skipped.clear()
        if self.data is None:
            self.summary_label.setText("No data.")
            self._send(None)
            return
        if self._classifier_mode() and self.given_segmenter() is None:
            if not self.editor.labels:
                self.summary_label.setText("Paint labels to train the classifier.")
                self._send(None)
                return
            self.start(train_and_segment, self.data, self.pixels, self.labelled_paths(),
                       FEATURE_SETS[self.features], list(self.editor.class_names),
                       self._run_folder(), trained=self.trained, **self._run_options())
        else:
            segmenter = self.given_segmenter() if self._classifier_mode() \
                else self.threshold_params()
            self.start(run_segmentation, self.data, segmenter, self._run_folder(),
                       **self._run_options())
        self.cancel_button.setEnabled(True)
        self.summary_label.setText(f"Segmenting {len(self.data):,} images…")

    def on_partial_result(self, _) -> None:
        pass

    def on_done(self, result: SegmentationResult) -> None:
        self.cancel_button.setEnabled(False)
        if result.n_skipped:
            n = result.n_skipped
            self.Warning.images_skipped(f"{n:,} image{'s' if n != 1 else ''}")
        self.summary_label.setText(summary(result) + ".")
        self._send(result)

    def on_exception(self, ex: Exception) -> None:
        self.cancel_button.setEnabled(False)
        if not isinstance(ex, Cancelled):
            self.Error.failed(str(ex) or type(ex).__name__)
        self.summary_label.setText("Nothing segmented.")
        self._send(None)

    def cancel(self) -> None:
        if self.task is not None:
            self.summary_label.setText("Cancelled.")
        self.cancel_button.setEnabled(False)
        super().cancel()

    def _send(self, result: Optional[SegmentationResult]) -> None:
        self.result = result
        self.file_box.update_save()
        self.Outputs.objects.send(result.objects if result else None)
        self.Outputs.images.send(result.images if result else None)
        self.Outputs.skipped.send(result.skipped if result else None)
        self.Outputs.segmenter.send(result.segmenter if result else None)

    def send_report(self) -> None:
        method = (f"threshold, {METHOD_NAMES[METHODS[self.threshold_method]]}"
                  if not self._classifier_mode() else
                  "segmenter from the input" if self.input_segmenter is not None else
                  f"classifier from {self.file_box.path}" if self.given_segmenter() else
                  f"classifier on {len(self.editor.labels)} labelled images, "
                  f"{FEATURE_NAMES[FEATURE_SETS[self.features]]}")
        self.report_items((("Method", method),
                           ("Result", self.summary_label.text())))

    @classmethod
    def migrate_settings(cls, settings, version) -> None:
        pass  # version 1 is the first

    def onDeleteWidget(self) -> None:
        self._commit_timer.stop()
        self.preview.stop()
        self.shutdown()
        super().onDeleteWidget()
        shutil.rmtree(self._workdir, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    import sys

    from orangewidget.utils.widgetpreview import WidgetPreview

    from orangecontrib.deepimage.core.images import find_images
    from orangecontrib.deepimage.data import image_table

    folder = sys.argv[1] if len(sys.argv) > 1 else "."
    WidgetPreview(OWSegmentImages).run(image_table(find_images(folder), folder))
