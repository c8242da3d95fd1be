"""Label Images: label images with a few clicks while a quick model learns from them.

The input is a table of images, embedded by Image Embedder or not (then the widget
embeds them with the chosen network). Select thumbnails and press a class's button or
its key (1-9) to label them; "Next to label" shows the images that would teach the
model most (core.labelling.suggest_next), "Check my labels" the labels the data
contradicts (label_issues). After each change a worker refits the quick model
(labelling_jobs.run_refresh): every thumbnail shows the predicted class and its
probability, the status line the accuracy estimated from the labels so far.

Labels are keyed by image (content hash and path, labelling_session.LabelSession) and
saved with the workflow; nothing is ever lost: Ctrl+Z undoes any change, and labels of
images that left the data are kept until they return.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from AnyQt.QtCore import QItemSelection, QItemSelectionModel, QSize, QTimer
from AnyQt.QtGui import QKeySequence, QShortcut
from AnyQt.QtWidgets import QComboBox, QLabel
from Orange.base import Model
from Orange.data import Table
from Orange.widgets import gui
from Orange.widgets.settings import Setting
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin
from Orange.widgets.widget import Input, Msg, Output, OWWidget

from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.core.labelling.worker import RefitWorker
from orangecontrib.deepimage.core.models import MODELS
from orangecontrib.deepimage.data import image_column, image_paths
from orangecontrib.deepimage.embedder_job import EmbedderChoice, EmbedderPool
from orangecontrib.deepimage.labelling_jobs import (Prepared, Refresh, annotated_images,
                                                    label_name, labelled_images,
                                                    run_prepare, run_refresh, status_text)
from orangecontrib.deepimage.labelling_model import embedding_columns
from orangecontrib.deepimage.labelling_session import LabelSession, SessionError
from orangecontrib.deepimage.widgets.utils.labelclasses import (
    ClassButtons, ask_merge, ask_new_class, ask_rename, class_colors, class_keys)
from orangecontrib.deepimage.widgets.utils.labelgrid import (LabelGridModel, LabelGridView,
                                                             item_title)
from orangecontrib.deepimage.widgets.utils.thumbnails import ThumbnailLoader

ALL, NEXT, CHECK = range(3)
VIEWS = ("All images", "Next to label", "Check my labels")


class OWLabelImages(OWWidget, ConcurrentWidgetMixin):
    name = "Label Images"
    description = ("Label images with a few clicks; a quick model learns as you go and "
                   "asks for the images that would teach it most.")
    icon = "icons/LabelImages.svg"
    priority = 35
    keywords = "deep image, label images, annotate, active learning, teach, tag, classes"

    class Inputs:
        data = Input("Images", Table, default=True)

    class Outputs:
        labelled = Output("Labelled Images", Table, default=True,
                          doc="Only the labelled images, with the label as the class.")
        images = Output("Images", Table, doc="Every image with its label, prediction "
                                             "and confidence.")
        model = Output("Model", Model, doc="The quick model (logistic regression on the "
                                           "embeddings).")

    class Error(OWWidget.Error):
        no_images = Msg("The data has no image column (a text column marked type=image, "
                        "as Import Images makes).")
        failed = Msg("{}")
        saved_labels = Msg("{} The saved labels are kept unchanged.")

    class Warning(OWWidget.Warning):
        refused = Msg("{}")
        orphans = Msg("{} labels are for images that are not in the data now; they are "
                      "kept with the workflow and come back with the images.")
        network = Msg("{}")
        skipped = Msg("{} images could not be read and cannot be labelled.")

    class Information(OWWidget.Information):
        notes = Msg("{}")

    settings_version = 1
    #: LabelSession.to_settings(): the labels, keyed by image
    labels: dict = Setting({}, schema_only=True)
    view: int = Setting(ALL)
    network: str = Setting("squeezenet")
    thumbnail_size: int = Setting(96)
    auto_commit: bool = Setting(True)
    want_main_area = True
    refit_in_process = True  # False: refit in a thread of this process (as before)

    def __init__(self):
        super().__init__()
        ConcurrentWidgetMixin.__init__(self)
        self.data: Optional[Table] = None
        self.prepared: Optional[Prepared] = None
        self.refresh: Optional[Refresh] = None
        self.pool = EmbedderPool()
        self.refitter = RefitWorker(self.refit_in_process)  # the refits' own process
        self._keep_saved = False  # saved labels this version cannot read: never overwrite
        self.session = self._restore_session()
        self._labels: list = []
        self._colors: list = []
        self._refit_timer = QTimer(self, singleShot=True, interval=150, timeout=self._refit)
        self._setup_gui()

    def _restore_session(self) -> LabelSession:
        try:
            return LabelSession.from_settings(self.labels)
        except SessionError as error:
            self._keep_saved = True
            self.Error.saved_labels(str(error))
            return LabelSession()

    def _setup_gui(self) -> None:
        box = gui.vBox(self.controlArea, "Classes")
        self.class_buttons = ClassButtons()
        self.class_buttons.clicked.connect(
            lambda name: self.label_rows(self.selected_rows(), name))
        box.layout().addWidget(self.class_buttons)
        row = gui.hBox(box)
        for text, slot in (("Add…", self._add_dialog), ("Rename…", self._rename_dialog),
                           ("Merge…", self._merge_dialog)):
            gui.button(row, self, text, callback=slot, autoDefault=False)
        row = gui.hBox(box)
        gui.button(row, self, "Unlabel", callback=self.unlabel_selected, autoDefault=False,
                   tooltip="Remove the labels of the selected images (Delete)")
        self.undo_button = gui.button(row, self, "Undo", callback=self.undo,
                                      autoDefault=False)
        self.seed_button = gui.button(box, self, "Start from the class column",
                                      callback=self.start_from_class_column,
                                      autoDefault=False)
        gui.radioButtons(self.controlArea, self, "view", VIEWS, box="Show",
                         callback=self._view_changed)
        box = gui.vBox(self.controlArea, "Embedding")
        self.network_combo = QComboBox(toolTip=(
            "The network that embeds the images when the input has no embeddings "
            "(connect Image Embedder before this widget to use a server's network)"))
        self.network_combo.addItems([spec.display_name for spec in MODELS.values()])
        self._network_keys = list(MODELS)
        self.network_combo.setCurrentIndex(self._network_keys.index(self.network)
                                           if self.network in self._network_keys else 0)
        self.network_combo.activated.connect(self._network_changed)
        box.layout().addWidget(self.network_combo)
        gui.hSlider(self.controlArea, self, "thumbnail_size", box="Image Size", minValue=48,
                    maxValue=256, step=16, createLabel=False, callback=self._resize)
        self.status_label = QLabel("No data.", wordWrap=True)
        gui.vBox(self.controlArea, "Status").layout().addWidget(self.status_label)
        gui.rubber(self.controlArea)
        gui.auto_send(self.buttonsArea, self, "auto_commit")

        self.loader = ThumbnailLoader(self)
        self.view_widget = LabelGridView(self.loader)
        self.view_widget.set_thumbnail_size(self.thumbnail_size)
        self.view_widget.number_pressed.connect(self._number_pressed)
        self.view_widget.unlabel_pressed.connect(self.unlabel_selected)
        self.mainArea.layout().addWidget(self.view_widget)
        self.grid = LabelGridModel([], parent=self.view_widget)
        self.grid.describe = self._describe
        self.view_widget.setModel(self.grid)
        self.view_widget.selectionModel().selectionChanged.connect(self._update_status)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Undo), self, self.undo)
        self._update_controls()

    def sizeHint(self) -> QSize:
        return QSize(1000, 680)

    # --- input ------------------------------------------------------------------------
    @Inputs.data
    def set_data(self, data: Optional[Table]) -> None:
        self.cancel()
        self._refit_timer.stop()
        for group in (self.Error.no_images, self.Error.failed, self.Warning, self.Information):
            group.clear()
        self.data, self.prepared, self.refresh = data, None, None
        self.session.attach(None)
        if data is not None and image_column(data) is None:
            self.Error.no_images()
            self.data = None
        self._set_rows()
        if self.data is not None:
            self._prepare()
        self.commit.now()

    def _prepare(self) -> None:
        self.status_label.setText("Reading the images…")
        self.refitter.warm_up()  # its process starts while the images are read
        self.start(run_prepare, self.data, self._choice(), self.pool)

    def _choice(self) -> EmbedderChoice:
        self.network = self._network_keys[self.network_combo.currentIndex()]
        return EmbedderChoice(model=self.network)

    def _network_changed(self, _=None) -> None:
        if self.data is not None and not embedding_columns(self.data.domain):
            self.set_data(self.data)

    def _prepared(self, prepared: Prepared) -> None:
        self.prepared = prepared
        self.session.attach(prepared.keys)
        if prepared.skipped is not None:
            self.Warning.skipped(f"{len(prepared.skipped):,}")
        change = self.session.network_change(prepared.embeddings, prepared.network)
        if change:
            self.Warning.network(change)
        self.grid = LabelGridModel(image_paths(prepared.table), parent=self.view_widget)
        self._install_grid()
        self._labels_changed(save=False)

    def on_done(self, result) -> None:
        if isinstance(result, Prepared):
            self._prepared(result)
        elif isinstance(result, Refresh):
            self._refreshed(result)

    def on_exception(self, ex: Exception) -> None:
        if not isinstance(ex, Cancelled):
            self.Error.failed(str(ex) or type(ex).__name__)
            self._update_status()

    def on_partial_result(self, _) -> None: pass

    # --- labelling ------------------------------------------------------------------
    def selected_rows(self) -> list:
        """The data rows of the selected thumbnails."""
        return self.view_widget.selected_rows()

    def label_rows(self, rows, class_name: str) -> bool:
        """Label these data rows (the widget's buttons and keys call this)."""
        return self._change(lambda: self.session.assign(rows, class_name), advance=True)

    def _number_pressed(self, number: int) -> None:
        classes = self.session.classes
        name = class_keys(classes).get(number)
        if name is None and all(len(c) == 1 and c.isdigit() for c in classes):
            name = str(number)  # digits (or no classes yet): the key makes its class
        if name is not None:
            self.label_rows(self.selected_rows(), name)
        elif number == 0:
            self.unlabel_selected()

    def unlabel_selected(self) -> bool:
        return self._change(lambda: self.session.unlabel(self.selected_rows()))

    def add_class(self, name: str) -> bool:
        return self._change(lambda: self.session.add_class(name))

    def rename_class(self, old: str, new: str) -> bool:
        return self._change(lambda: self.session.rename_class(old, new))

    def merge_classes(self, sources, target: str) -> bool:
        return self._change(lambda: self.session.merge_classes(sources, target))

    def start_from_class_column(self) -> bool:
        """Label every image with the input's class (only into an empty session)."""
        class_var = self.data.domain.class_var if self.prepared is not None else None
        if class_var is None or not class_var.is_discrete or self.session.records \
                or self.session.seeded:
            return False
        table = self.prepared.table
        values = [None if np.isnan(v) else class_var.values[int(v)]
                  for v in table.get_column(class_var)]
        return self._change(lambda: self.session.seed_from(values, class_var.values))

    def undo(self) -> bool:
        """Undo the last change (Ctrl+Z); False when there is nothing to undo."""
        return self.session.can_undo() and self._change(self.session.undo)

    def _change(self, change, advance: bool = False) -> bool:
        """Apply a change of the session; say why when it is refused."""
        self.Warning.refused.clear()
        if self._keep_saved:
            return False
        before = self.selected_rows()
        try:
            change()
        except SessionError as error:
            self.Warning.refused(str(error))
            return False
        self._labels_changed()
        if advance and before:
            self._select_after(before)
        return True

    def _labels_changed(self, save: bool = True) -> None:
        if save and not self._keep_saved:
            self.labels = self.session.to_settings()
        self._labels = self.session.row_labels()
        if self.prepared is not None and save:
            self.session.remember_network(self.prepared.embeddings, self.prepared.network)
            self.Warning.network.clear()
        self.Warning.orphans.clear()
        orphans = self.session.orphans() if self.prepared is not None else 0
        if orphans:
            self.Warning.orphans(f"{orphans:,}")
        self._colors = class_colors(len(self.session.classes))
        if self.view != ALL:
            self._set_rows()
        self.grid.refresh()
        self._update_controls()
        self._refit_timer.start()

    def _select_after(self, rows: list) -> None:
        """After labelling, select the next image to look at (keys keep working)."""
        order = self.grid.order
        if not len(order):
            return
        if self.view == ALL:
            where = int(np.flatnonzero(np.isin(order, rows)).max()) + 1
        else:
            where = 0  # labelled images left the view: the next one is first now
        self._select_items([min(where, len(order) - 1)])

    def _select_items(self, items: list) -> None:
        selection = QItemSelection()
        for item in items:
            index = self.grid.index(item)
            selection.select(index, index)
        self.view_widget.selectionModel().select(
            selection, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        if items:
            self.view_widget.selectionModel().setCurrentIndex(
                self.grid.index(items[0]), QItemSelectionModel.SelectionFlag.NoUpdate)
            self.view_widget.scrollTo(self.grid.index(items[0]))

    # --- the model, refitted after each change ----------------------------------------
    def _refit(self) -> None:
        if self.prepared is None or self.Error.failed.is_shown():
            return
        features = embedding_columns(self.prepared.table.domain)
        self.start(run_refresh, self.prepared.embeddings, list(self._labels),
                   list(self.session.classes), features,
                   class_name=label_name(self.prepared.table.domain),
                   with_scores=self.view == CHECK, worker=self.refitter,
                   token=self.prepared.token)

    def _current_refresh(self) -> Optional[Refresh]:
        refresh = self.refresh
        if refresh is None or refresh.classes != tuple(self.session.classes) \
                or len(refresh.labels) != len(self._labels):
            return None
        return refresh

    def _refreshed(self, refresh: Refresh) -> None:
        if refresh.labels != tuple(self._labels) or \
                refresh.classes != tuple(self.session.classes):
            return  # the labels changed meanwhile; a newer refresh is on its way
        self.refresh = refresh
        self.Information.notes.clear()
        if refresh.notes:
            text = "; ".join(refresh.notes)
            self.Information.notes(text[:1].upper() + text[1:] + ".")
        if self.view != ALL:
            self._set_rows()
        self.grid.refresh()
        self._update_status()
        self.commit.deferred()

    # --- the grid ---------------------------------------------------------------------
    def _view_changed(self) -> None:
        self._set_rows()
        refresh = self.refresh
        if self.view == CHECK and refresh is not None and refresh.issues \
                and refresh.scores is None:
            self._refit_timer.start()  # how well each label fits: one more check

    def _set_rows(self) -> None:
        """Show the rows of the current view, in its order."""
        if self.prepared is None:
            if self.grid.paths:
                self.grid = LabelGridModel([], parent=self.view_widget)
                self._install_grid()
            self._labels = []
            self._update_controls()
            return
        self.grid.set_order(self._order())
        self._update_status()

    def _install_grid(self) -> None:
        old, old_selection = self.view_widget.model(), self.view_widget.selectionModel()
        self.grid.describe = self._describe
        self.view_widget.setModel(self.grid)
        for obj in (old, old_selection):
            if obj is not None and obj is not self.grid:
                obj.deleteLater()
        self.view_widget.selectionModel().selectionChanged.connect(self._update_status)

    def _order(self) -> np.ndarray:
        # the last suggestions stay valid (as rows) while a newer refresh is computed
        labels, refresh = self._labels, self.refresh
        if self.view == ALL:
            return np.arange(len(self.prepared.table))
        if refresh is None or len(refresh.labels) != len(labels):
            return np.zeros(0, int)
        if self.view == NEXT:
            return np.array([r for r in refresh.suggestions if labels[r] is None], int)
        return np.array([r for r in refresh.issues if labels[r] is not None], int)

    def _describe(self, row: int) -> tuple:
        """(title, frame colour, whether the model disagrees with the label) of a row."""
        label = self._labels[row] if row < len(self._labels) else None
        refresh = self._current_refresh()
        predicted, confidence = None, np.nan
        if refresh is not None and refresh.probabilities is not None:
            probs = refresh.probabilities[row]
            if np.isfinite(probs).all():
                best = int(np.argmax(probs))
                predicted, confidence = refresh.classes[best], float(probs[best])
        color = None
        if label is not None and label in self.session.classes:
            color = self._colors[self.session.classes.index(label)]
        mismatch = label is not None and predicted is not None and predicted != label
        title = item_title(label, predicted, confidence)
        if self.view == CHECK and refresh is not None and refresh.scores is not None \
                and np.isfinite(refresh.scores[row]):
            title = f"{label}: fits {refresh.scores[row]:.0%}"
        return title, color, mismatch

    def _resize(self) -> None:
        self.view_widget.set_thumbnail_size(self.thumbnail_size)

    def _update_controls(self) -> None:
        counts = self.session.counts() if self.prepared is not None else \
            dict.fromkeys(self.session.classes, 0)
        self.class_buttons.set_classes(self.session.classes,
                                       [counts.get(c, 0) for c in self.session.classes],
                                       self._colors or class_colors(len(self.session.classes)))
        text = self.session.undo_text()
        self.undo_button.setEnabled(bool(text))
        self.undo_button.setToolTip(f"Undo: {text} (Ctrl+Z)" if text else "Nothing to undo")
        class_var = self.data.domain.class_var if self.data is not None else None
        self.seed_button.setVisible(class_var is not None and class_var.is_discrete
                                    and not self.session.records)
        if class_var is not None:
            self.seed_button.setText(f"Start from the column '{class_var.name}'")
        self.network_combo.setEnabled(self.data is None
                                      or not embedding_columns(self.data.domain))
        self._update_status()

    def _update_status(self) -> None:
        if self.prepared is None:
            self.status_label.setText("No data." if self.data is None else
                                      "Reading the images…")
            return
        counts = self.session.counts().values()
        labelled, classes = sum(counts), sum(1 for n in counts if n)
        lines = [status_text(labelled, classes, self._current_refresh()),
                 f"{len(self._labels):,} images, {len(self.selected_rows()):,} selected"]
        if self.view != ALL and not len(self.grid.order):
            lines.append("Nothing to show yet." if self._current_refresh() is None else
                         ("Nothing left to suggest." if self.view == NEXT else
                          "No label looks wrong."))
        self.status_label.setText("\n".join(lines))

    # --- class dialogs ---------------------------------------------------------------
    def _add_dialog(self) -> None:
        name = ask_new_class(self)
        if name is not None:
            self.add_class(name)

    def _rename_dialog(self) -> None:
        names = ask_rename(self, self.session.classes)
        if names is not None:
            self.rename_class(*names)

    def _merge_dialog(self) -> None:
        names = ask_merge(self, self.session.classes)
        if names is not None:
            self.merge_classes([names[0]], names[1])

    # --- output -----------------------------------------------------------------------
    @gui.deferred
    def commit(self) -> None:
        if self.prepared is None:
            for output in (self.Outputs.labelled, self.Outputs.images, self.Outputs.model):
                output.send(None)
            return
        table, classes = self.prepared.table, self.session.classes
        refresh = self._current_refresh()
        if refresh is not None and refresh.labels != tuple(self._labels):
            refresh = None
        self.Outputs.labelled.send(labelled_images(table, self._labels, classes))
        self.Outputs.images.send(annotated_images(table, self._labels, classes, refresh))
        self.Outputs.model.send(refresh.model if refresh is not None else None)

    def send_report(self) -> None:
        self.report_items((("Images", f"{len(self._labels):,}"),
                           ("Classes", ", ".join(self.session.classes) or "none"),
                           ("Status", self.status_label.text().split("\n")[0])))

    def onDeleteWidget(self) -> None:
        self._refit_timer.stop()
        self.shutdown()
        self.refitter.close(wait=False)
        self.loader.shutdown()
        super().onDeleteWidget()

