"""Image Viewer: thumbnails of the images a table refers to; the selection goes out.

Thumbnails are decoded lazily in worker threads (only what is on screen) in a
virtualised grid, so 100,000 rows scroll smoothly. When the data carries
predictions (Test & Score -> Confusion Matrix, Predictions) the title shows them
and wrong ones get a red frame. The selection is kept by image (the image column's
value), as orange3-imageanalytics keeps it: a Reload upstream that adds files keeps
the same images selected. With a Trainer's model on the Model input, "Show where
the network looks" lays Grad-CAM heatmaps (core.explain) over the visible
thumbnails and the preview, titled with the network's prediction. Data from Segment
Images (a ``mask`` column) gets the outline of every object drawn over its image.
"""
from __future__ import annotations

from typing import Callable, List, Optional

import numpy as np
from AnyQt.QtCore import QItemSelection, QItemSelectionModel, QSize, QTimer
from AnyQt.QtGui import QImage
from AnyQt.QtWidgets import QLabel
from Orange.base import Model
from Orange.data import DiscreteVariable, Domain, StringVariable, Table, Variable
from Orange.widgets import gui
from Orange.widgets.settings import ContextSetting, DomainContextHandler, Setting
from Orange.widgets.utils.annotated_data import create_annotated_table
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin
from Orange.widgets.utils.itemmodels import DomainModel
from Orange.widgets.widget import Input, Msg, Output, OWWidget

from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.core.explain import Explanation, not_ours_message
from orangecontrib.deepimage.data import image_column, image_paths, image_values
from orangecontrib.deepimage.learner import ImageClassifierModel
from orangecontrib.deepimage.widgets.utils.heatmaps import HeatmapCache, run_explain
from orangecontrib.deepimage.widgets.utils.outlines import OutlineCache
from orangecontrib.deepimage.widgets.utils.report import thumbnails_html
from orangecontrib.deepimage.widgets.utils.thumbnails import Failed, ThumbnailLoader
from orangecontrib.deepimage.widgets.utils.thumbnailview import ThumbnailModel, ThumbnailView


def prediction_columns(domain: Domain) -> List[DiscreteVariable]:
    """Columns that predict the class (as Confusion Matrix and Predictions add them):
    discrete, not the class itself, with the class's values."""
    class_var = domain.class_var
    if not isinstance(class_var, DiscreteVariable):
        return []
    return [var for var in domain.metas + domain.attributes
            if isinstance(var, DiscreteVariable) and var is not class_var
            and tuple(var.values) == tuple(class_var.values)]


def default_title(domain: Domain, image_var: Optional[Variable]) -> Optional[Variable]:
    """A prediction column if there is one, else the class, else the image name."""
    predictions = prediction_columns(domain)
    if predictions:
        return predictions[0]
    if domain.class_var is not None:
        return domain.class_var
    strings = [v for v in domain.metas if isinstance(v, StringVariable) and v is not image_var]
    named = [v for v in strings if v.name == "image name"]
    return (named or strings or [image_var])[0]


def titles_for(table: Table, var: Optional[Variable]
               ) -> "tuple[Callable[[int], str], Optional[np.ndarray]]":
    """(row -> title, wrong-prediction flags or None) for the title column ``var``."""
    if var is None:
        return (lambda row: ""), None
    values = table.get_column(var)
    class_var = table.domain.class_var
    if var in prediction_columns(table.domain):
        truth = table.get_column(class_var).astype(float)
        predicted = values.astype(float)
        wrong = ~np.isnan(truth) & ~np.isnan(predicted) & (truth != predicted)

        def title(row: int) -> str:
            text = var.str_val(values[row])
            return f"{text} (true: {class_var.str_val(truth[row])})" if wrong[row] else text
        return title, wrong
    return (lambda row: var.str_val(values[row])), None


REPORT_THUMBNAILS = 8
MAX_SIZE = 1024  # thumbnails up to this side (px), as in orange3-imageanalytics


#: images explained per run of the worker: about a screenful of thumbnails
EXPLAIN_CHUNK = 48


class OWImageViewer(OWWidget, ConcurrentWidgetMixin):
    name = "Image Viewer"
    description = "Browse the images a table refers to; select some for further analysis."
    icon = "icons/ImageViewer.svg"
    priority = 30
    keywords = "deep image, image viewer, thumbnails, images, browse, gallery"

    class Inputs:
        data = Input("Data", Table)
        model = Input("Model", Model, doc="A Trainer's model (or Load Model's), to show "
                                          "where the network looks.")

    class Outputs:
        selected_data = Output("Selected Images", Table, default=True)
        data = Output("Data", Table, doc="The input data with a 'Selected' column.")

    class Error(OWWidget.Error):
        no_image_column = Msg("The data has no text or categorical meta column with image "
                              "file names or URLs.")
        explain_failed = Msg("Could not compute heatmaps: {}")

    class Warning(OWWidget.Warning):
        not_our_model = Msg("{}")
        unreadable = Msg("{} of the images shown so far cannot be read (missing file or not "
                         "an image); they are drawn as crossed boxes.")

    settingsHandler = DomainContextHandler()
    settings_version = 2
    image_attr: Optional[Variable] = ContextSetting(None)
    title_attr: Optional[Variable] = ContextSetting(None)
    image_size: int = Setting(128)
    show_heatmaps: bool = Setting(False)
    show_outlines: bool = Setting(True)
    #: the selected images (values of the image column), restored when the saved
    #: workflow is opened, and kept when new data has the same images
    selection: Optional[List[str]] = Setting(None, schema_only=True)
    auto_commit: bool = Setting(True)
    graph_name = "view"

    def __init__(self):
        super().__init__()
        ConcurrentWidgetMixin.__init__(self)
        self.data: Optional[Table] = None
        self.model: Optional[ImageClassifierModel] = None  # ours, else None
        self.explainer = None  # core.explain.Explainer, built in the worker
        self._explain_timer = QTimer(self, singleShot=True, interval=100,
                                     timeout=self._explain_wanted)
        self.heatmaps = HeatmapCache(on_wanted=self._explain_timer.start)
        self.outlines = OutlineCache()
        self.paths: List[str] = []
        self._values: List[str] = []  # the image column's values, which name the selection
        self._path_set: set = set()
        self._unreadable: set = set()
        self._pending_selection = self.selection

        # text or categorical metas, as orange3-imageanalytics offers them
        self.image_model = DomainModel(order=DomainModel.METAS,
                                       valid_types=(StringVariable, DiscreteVariable))
        gui.comboBox(self.controlArea, self, "image_attr", box="Image Column",
                     model=self.image_model, callback=self._on_image_attr_changed,
                     contentsLength=14, searchable=True,
                     tooltip="The column with image file names or URLs")
        self.title_model = DomainModel(placeholder="(none)")
        gui.comboBox(self.controlArea, self, "title_attr", box="Title",
                     model=self.title_model, callback=self._update_titles,
                     contentsLength=14, searchable=True,
                     tooltip="Text under each image. A prediction column shows wrong "
                             "predictions framed in red, with the true class.")
        box = gui.vBox(self.controlArea, "Image Size")
        gui.hSlider(box, self, "image_size", minValue=48, maxValue=MAX_SIZE, step=16,
                    callback=self._update_size, createLabel=False)
        self.outline_box = gui.checkBox(
            gui.vBox(self.controlArea, "Objects"), self, "show_outlines",
            "Show object outlines", callback=self._refresh,
            tooltip="Outlines of the objects Segment Images found (its Images output "
                    "has a mask per image).")
        self.outline_box.setEnabled(False)
        box = gui.vBox(self.controlArea, "Network")
        self.heatmap_box = gui.checkBox(
            box, self, "show_heatmaps", "Show where the network looks",
            callback=self._on_show_heatmaps,
            tooltip="Grad-CAM: red where the features that raised the predicted class are. "
                    "Needs a Trainer's model on the Model input.")
        self.model_label = QLabel("No model: connect a Trainer or Load Model.", wordWrap=True)
        box.layout().addWidget(self.model_label)
        self.info_label = QLabel("No data.", wordWrap=True)
        info = gui.vBox(self.controlArea, "Info")
        info.layout().addWidget(self.info_label)
        self.hint_label = QLabel("<small>Space or double-click: a larger view of the "
                                 "image.</small>", wordWrap=True)
        info.layout().addWidget(self.hint_label)
        gui.rubber(self.controlArea)
        gui.auto_send(self.buttonsArea, self, "auto_commit")

        self.loader = ThumbnailLoader(self)
        self.loader.loaded.connect(self._on_loaded)
        self.view = ThumbnailView(self.loader)
        self.view.set_thumbnail_size(self.image_size)
        self.view.delegate.overlay = self._overlay
        self.mainArea.layout().addWidget(self.view)
        self._set_model([])
        self._update_model_info()

    def sizeHint(self) -> QSize:
        return QSize(900, 640)

    @Inputs.data
    def set_data(self, data: Optional[Table]) -> None:
        self.closeContext()
        self.Error.clear()
        self.data = data
        self.image_attr = self.title_attr = None
        domain = data.domain if data is not None else None
        self.image_model.set_domain(domain)
        self.title_model.set_domain(domain)
        if data is not None and not self.image_model:
            self.Error.no_image_column()
            self.data = None
        if self.data is not None:
            self.image_attr = image_column(data) or next(
                v for v in self.image_model if isinstance(v, Variable))
            self.title_attr = default_title(domain, self.image_attr)
            self.openContext(data)
        # the images selected before (or saved with the workflow), wherever they are now
        selection = self._pending_selection if self._pending_selection is not None \
            else self.selection
        self._pending_selection = None
        self._setup()
        self.selection = None
        if selection and self.data is not None:
            wanted = set(selection)
            self._select_rows([row for row, value in enumerate(self._values)
                               if value in wanted])
        self.commit.now()

    def _on_image_attr_changed(self) -> None:
        self._setup()
        self.commit.deferred()

    def _setup(self) -> None:
        """(Re)build the model for the current data, image column and titles."""
        self.Warning.unreadable.clear()
        self._unreadable = set()
        self.loader.clear_pending()
        if self.data is None or self.image_attr is None:
            self.paths, self._values = [], []
        else:
            self.paths = image_paths(self.data, self.image_attr)
            self._values = image_values(self.data, self.image_attr)
        self._path_set = set(self.paths)
        self.outline_box.setEnabled(self.outlines.set_table(self.data, self.paths))
        self._set_model(self.paths)
        self._update_titles()

    def _set_model(self, paths: List[str]) -> None:
        old, old_selection = self.view.model(), self.view.selectionModel()
        self.view.setModel(ThumbnailModel(paths, parent=self.view))
        for obj in (old, old_selection):
            if obj is not None:
                obj.deleteLater()
        self.view.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self._update_info()

    def _update_titles(self) -> None:
        if self.data is None:
            return
        title, mismatch = titles_for(self.data, self.title_attr)
        if self._heatmaps_on():
            title = self._network_title(title)
        self.view.model().set_titles(title, mismatch)

    def _network_title(self, title: Callable[[int], str]) -> Callable[[int], str]:
        """Titles with the network's prediction and probability where it is known,
        and the true class when the data has it and it differs."""
        class_var = self.data.domain.class_var
        truth = (self.data.get_column(class_var) if isinstance(class_var, DiscreteVariable)
                 else None)

        def network_title(row: int) -> str:
            known = self.heatmaps.get(self.paths[row])
            if not isinstance(known, Explanation):
                return title(row)
            text = f"{known.predicted} {known.probability:.0%}"
            if truth is not None and not np.isnan(truth[row]) \
                    and class_var.str_val(truth[row]) != known.predicted:
                text += f" (true: {class_var.str_val(truth[row])})"
            return text
        return network_title

    # --- heatmaps -----------------------------------------------------------------------
    @Inputs.model
    def set_model(self, model: Optional[Model]) -> None:
        self.cancel()
        self.Warning.not_our_model.clear()
        self.Error.explain_failed.clear()
        self.heatmaps.clear()
        self.explainer = None
        self.model = model if isinstance(model, ImageClassifierModel) else None
        if model is not None and self.model is None:
            self.Warning.not_our_model(not_ours_message(model))
        self._update_model_info()
        self._refresh()

    def _heatmaps_on(self) -> bool:
        return self.show_heatmaps and self.model is not None

    def _update_model_info(self) -> None:
        model = self.model
        if model is not None:
            text = (f"{model.spec.display_name}, {len(model.class_values)} classes "
                    f"({', '.join(model.class_values[:4])}"
                    f"{', ...' if len(model.class_values) > 4 else ''}), {model.image_size} px")
        elif self.Warning.not_our_model.is_shown():
            text = "This model cannot show where it looks."
        else:
            text = "No model: connect a Trainer or Load Model."
        self.model_label.setText(text)
        self.heatmap_box.setEnabled(model is not None)

    def _on_show_heatmaps(self) -> None:
        if not self.show_heatmaps:
            self.cancel()
        self._refresh()

    def _overlay(self, path: str, image: QImage) -> QImage:
        if self._heatmaps_on():
            image = self.heatmaps.overlaid(path, image)
        return self.outlines.overlaid(path, image) if self.show_outlines else image

    def _refresh(self) -> None:
        """Repaint the thumbnails, their titles and the preview."""
        self._update_titles()
        self.view.viewport().update()
        preview, current = self.view.preview, self.view.currentIndex()
        if preview is not None and preview.isVisible() and current.isValid():
            self.view.currentChanged(current, current)

    def _explain_wanted(self) -> None:
        """Explain the thumbnails painted since the last run (one run at a time)."""
        if not self._heatmaps_on() or self.task is not None:
            return
        paths = self.heatmaps.take_wanted(EXPLAIN_CHUNK)
        if paths:
            self.start(run_explain, self.model, self.explainer, paths)

    def on_partial_result(self, result) -> None:
        self.explainer, explanations, skipped = result
        if explanations or skipped:
            self.heatmaps.store(explanations, skipped)
            self._refresh()

    def on_done(self, _) -> None:
        self._explain_timer.start()  # what was painted meanwhile (not from on_done itself)

    def on_exception(self, ex: Exception) -> None:
        if not isinstance(ex, Cancelled):
            self.Error.explain_failed(str(ex) or type(ex).__name__)

    def _update_size(self) -> None:
        self.view.set_thumbnail_size(self.image_size)

    def _on_loaded(self, path: str, side: int) -> None:
        if path in self._path_set and isinstance(self.loader.cached(path, side), Failed):
            self._unreadable.add(path)
            self.Warning.unreadable(f"{len(self._unreadable):,}")

    # --- selection --------------------------------------------------------------------
    def selected_rows(self) -> List[int]:
        return sorted(index.row() for index in self.view.selectionModel().selectedIndexes())

    def _select_rows(self, rows: List[int]) -> None:
        model = self.view.model()
        selection = QItemSelection()
        for row in rows:
            selection.select(model.index(row), model.index(row))
        self.view.selectionModel().select(selection,
                                          QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def _on_selection_changed(self) -> None:
        rows = self.selected_rows()
        self.selection = [self._values[row] for row in rows] or None
        self._update_info()
        self.commit.deferred()

    def _update_info(self) -> None:
        if not self.paths:
            self.info_label.setText("No data.")
            return
        selected = len(self.view.selectionModel().selectedIndexes())
        text = f"{len(self.paths):,} images"
        if selected:
            text += f", {selected:,} selected"
        self.info_label.setText(text)

    @gui.deferred
    def commit(self) -> None:
        if self.data is None:
            self.Outputs.selected_data.send(None)
            self.Outputs.data.send(None)
            return
        rows = self.selected_rows()
        self.Outputs.selected_data.send(self.data[rows] if rows else None)
        self.Outputs.data.send(create_annotated_table(self.data, rows))

    def send_report(self) -> None:
        selected = self.selected_rows()
        self.report_items((("Images", f"{len(self.paths):,}"),
                           ("Selected", f"{len(selected):,}"),
                           ("Image column", self.image_attr), ("Title", self.title_attr)))
        if self.paths:
            rows = (selected or range(len(self.paths)))[:REPORT_THUMBNAILS]
            title, _ = titles_for(self.data, self.title_attr)
            self.report_raw("Selected images" if selected else "Images",
                            thumbnails_html([self.paths[r] for r in rows],
                                            [title(r) for r in rows]))

    @classmethod
    def migrate_settings(cls, settings, version):
        if version is not None and version < 2:
            # version 1 saved row numbers, which name other images once files are added
            settings.pop("selection", None)

    def onDeleteWidget(self) -> None:
        self._explain_timer.stop()
        self.heatmaps.on_wanted = lambda: None
        self.shutdown()
        self.loader.shutdown()
        super().onDeleteWidget()


if __name__ == "__main__":  # pragma: no cover
    import sys

    from orangewidget.utils.widgetpreview import WidgetPreview

    from orangecontrib.deepimage.core.images import find_images
    from orangecontrib.deepimage.data import image_table

    folder = sys.argv[1] if len(sys.argv) > 1 else "."
    WidgetPreview(OWImageViewer).run(image_table(find_images(folder), folder))
