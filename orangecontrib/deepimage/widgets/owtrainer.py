"""Trainer: fine-tune (or train) a deep network on a table of images.

Outputs a Learner (for Test & Score, beside Logistic Regression) and a Model trained
on all the input rows (for Predictions, Save Model, and Image Embedder's Model input).
Works on Import Images' output directly: the learner reads the image column and the
class, so no features are needed (which is why this is not an OWBaseLearner, whose
check_data refuses tables without features). The training runs off the GUI thread
(``trainer_job.run_training``); each epoch's losses and accuracies appear in a live plot.
"""
from __future__ import annotations

import logging
import threading
from typing import List, Optional

from AnyQt.QtCore import QSize, Qt
from AnyQt.QtGui import QStandardItemModel
from AnyQt.QtWidgets import (QAbstractSpinBox, QButtonGroup, QComboBox, QFormLayout,
                             QPushButton, QRadioButton, QStyle)

from Orange.base import Learner, Model
from Orange.data import Table
from Orange.widgets import gui
from Orange.widgets.settings import Setting
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin
from Orange.widgets.widget import Input, Msg, Output, OWWidget

from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.core.catalogue import find_spec, offered_specs
from orangecontrib.deepimage.core.models import get_spec
from orangecontrib.deepimage.core.presets import AUTO_SIZE_FLOOR, MODES, floor_epochs
from orangecontrib.deepimage.core.train import EpochRecord, preset
from orangecontrib.deepimage.core.weights import weights_available
from orangecontrib.deepimage.learner import ImageClassifierLearner, count_of
from orangecontrib.deepimage.trainer_job import (MODE_LABELS, MODE_TIPS, TrainingOutcome,
                                              check_data, preset_values, run_training, summary)
from orangecontrib.deepimage.widgets.utils import fill_combo_items
from orangecontrib.deepimage.widgets.utils.devicecombo import DeviceCombo
from orangecontrib.deepimage.widgets.utils.trainingplot import (TrainingPlots,
                                                                add_tta_and_budget_rows)

log = logging.getLogger(__name__)

_DEFAULT_EPOCHS, _DEFAULT_BATCH, _DEFAULT_RATE = preset_values("squeezenet", "fine-tune")


class OWTrainer(OWWidget, ConcurrentWidgetMixin):
    name = "Trainer"
    description = "Fine-tune a deep network on images; a learner for Test & Score."
    icon = "icons/Trainer.svg"
    priority = 40
    keywords = ("deep image, trainer, classifier, CNN, neural network, deep learning, "
                "transfer learning, fine-tune, train, learner, squeezenet, vgg, inception, "
                "pytorch")

    class Inputs:
        data = Input("Data", Table)

    class Outputs:
        learner = Output("Learner", Learner, dynamic=False)
        model = Output("Model", Model, dynamic=False)

    class Error(OWWidget.Error):
        data = Msg("{}")
        weights = Msg("{}")
        failed = Msg("Training failed: {}")

    class Warning(OWWidget.Warning):
        outdated = Msg("Press Apply to train with the changed settings.")
        cancelled = Msg("Training was cancelled after {}: the Model output is the best "
                        "model so far (epoch {}).")
        skipped = Msg("{} could not be read and {} left out of training.")
        device_missing = Msg("{}")

    class Information(OWWidget.Information):
        nothing_trained = Msg("Training was cancelled before the first epoch finished; "
                              "no model.")

    settings_version = 3
    learner_name: str = Setting("", schema_only=True)
    network: str = Setting("squeezenet")
    mode: str = Setting("fine-tune")
    epochs: int = Setting(_DEFAULT_EPOCHS)
    lower_size: bool = Setting(False)
    image_size: int = Setting(64)
    batch_size: int = Setting(_DEFAULT_BATCH)
    learning_rate: float = Setting(_DEFAULT_RATE)
    flip: bool = Setting(False)
    tta: bool = Setting(True)
    use_time_budget: bool = Setting(False)
    time_budget: int = Setting(2)  # minutes
    device: str = Setting("auto")
    # off: a training takes minutes, and every click on a spin box would restart it
    auto_apply: bool = Setting(False)
    graph_name = "loss_plot.plotItem"

    def __init__(self):
        OWWidget.__init__(self)
        ConcurrentWidgetMixin.__init__(self)
        self.data: Optional[Table] = None
        self.outcome: Optional[TrainingOutcome] = None
        self.learner: Optional[ImageClassifierLearner] = None
        self.history: List[EpochRecord] = []
        self._stop: Optional[threading.Event] = None
        self._setup_control_area()
        self._setup_plots()
        self._refresh_networks()
        self._update_size_range()
        self.commit.now()  # the Learner goes out even without data

    # --- GUI -----------------------------------------------------------------------------

    def _setup_control_area(self):
        # as in Orange's learner widgets (OWBaseLearner): the name Test & Score, Confusion
        # Matrix and Predictions show; empty means the widget's title on the canvas
        self.name_line_edit = gui.lineEdit(
            self.controlArea, self, "learner_name", box="Name",
            placeholderText=self.captionTitle, orientation=Qt.Orientation.Horizontal,
            tooltip="The name will identify this model in other widgets",
            callback=self._name_changed)
        box = gui.vBox(self.controlArea, "Network")
        self.network_combo = QComboBox()
        self.network_items = QStandardItemModel(self.network_combo)
        self.network_combo.setModel(self.network_items)
        self.network_combo.activated.connect(self._network_activated)
        box.layout().addWidget(self.network_combo)
        self.mode_group = QButtonGroup(box)  # the setting is a name, not gui's index
        self.mode_buttons = []
        for i, key in enumerate(MODES):
            button = QRadioButton(MODE_LABELS[key], toolTip=MODE_TIPS[key])
            self.mode_group.addButton(button, i)
            box.layout().addWidget(button)
            self.mode_buttons.append(button)
        self.mode_group.idClicked.connect(self._mode_clicked)
        self._sync_mode_buttons()

        box = gui.vBox(self.controlArea, "Training")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        box.layout().addLayout(form)
        self.epochs_spin = gui.spin(
            None, self, "epochs", 1, 1000, callback=self._settings_changed,
            controlWidth=80, tooltip="At most this many epochs; training stops earlier "
                                     "when the validation loss stops improving. Fine-tuning "
                                     "first trains the last layer alone for up to "
                                     f"{preset().head_epochs} more.")
        form.addRow("Epochs:", self.epochs_spin)
        size_row = gui.hBox(None)
        # unchecked: the size comes from the images (core.presets.size_for_images)
        self.size_check = gui.checkBox(size_row, self, "lower_size", "Fixed:",
                                       callback=self._size_changed)
        self.size_spin = gui.spin(size_row, self, "image_size", 29, 1024, controlWidth=70,
                                  callback=self._settings_changed, suffix=" px")
        form.addRow("Image size:", size_row)
        self.batch_spin = gui.spin(None, self, "batch_size", 1, 1024, controlWidth=80,
                                   callback=self._settings_changed)
        form.addRow("Batch size:", self.batch_spin)
        rate_row = gui.hBox(None)
        self.rate_spin = gui.doubleSpin(
            rate_row, self, "learning_rate", 1e-6, 10.0, step=1e-4, decimals=6,
            controlWidth=90, callback=self._settings_changed)
        # a click changes the rate's leading digit (0.0001 -> 0.00011), whatever its scale
        self.rate_spin.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)
        self.reset_button = gui.button(
            rate_row, self, "Reset to Preset", callback=self.reset_to_preset,
            autoDefault=False, tooltip="Epochs, batch size and learning rate as the "
                                       "network's preset for this mode")
        form.addRow("Learning rate:", rate_row)
        self.flip_check = gui.checkBox(
            None, self, "flip", "Random horizontal flips", callback=self._settings_changed,
            tooltip="Show the network mirrored copies while it trains. Turn this off when "
                    "mirroring changes what an image is: digits, letters, text, maps.")
        form.addRow("Augment:", self.flip_check)
        self.tta_check, self.budget_check, self.budget_spin = add_tta_and_budget_rows(
            self, form, self._settings_changed, self._budget_changed)
        self.device_combo = DeviceCombo(
            self.device, "'Automatic' trains on an NVIDIA GPU when there is one.")
        self._show_device_warning()
        self.device_combo.activated.connect(self._device_changed)
        form.addRow("Device:", self.device_combo)

        box = gui.vBox(self.controlArea, "Info")
        self.info_label = gui.widgetLabel(box, "No data.")
        self.info_label.setWordWrap(True)
        self.info_label.setMinimumWidth(260)
        self.info_label.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.info_label.setMinimumHeight(6 * self.info_label.fontMetrics().lineSpacing())
        gui.rubber(self.controlArea)

        gui.auto_apply(self.buttonsArea, self, "auto_apply")
        self.cancel_button = QPushButton(
            "Cancel", icon=self.style().standardIcon(QStyle.StandardPixmap.SP_DialogCancelButton),
            toolTip="Stop after the current batch and keep the best model so far")
        self.cancel_button.clicked.connect(self.stop_training)
        self.cancel_button.setEnabled(False)
        self.buttonsArea.layout().addWidget(self.cancel_button)

    def _setup_plots(self):
        self.plots = TrainingPlots(self.mainArea.layout(), self.palette().text().color())
        self.loss_plot, self.accuracy_plot = self.plots.loss_plot, self.plots.accuracy_plot
        self.curves = self.plots.curves

    def sizeHint(self) -> QSize:
        return QSize(900, 560)

    def _network_entries(self) -> "list[tuple[str, str, bool, str]]":
        """(name, label, enabled, tooltip); networks without weights only from scratch."""
        entries = []
        for spec in offered_specs():
            ok, why = weights_available(spec)
            enabled = ok or self.mode == "scratch"
            entries.append((spec.name, spec.display_name, enabled,
                            spec.description if ok else why))
        return entries

    def _refresh_networks(self):
        entries = self._network_entries()
        fill_combo_items(self.network_items, entries)
        names = [name for name, *_ in entries]
        if self.network not in names:
            self.network = "squeezenet"
        self.network_combo.setCurrentIndex(names.index(self.network))

    def _sync_mode_buttons(self):
        keys = list(MODES)
        index = keys.index(self.mode) if self.mode in keys else 1
        self.mode_buttons[index].setChecked(True)

    def _update_size_range(self):
        spec = get_spec(self.network)
        self.size_spin.setRange(spec.min_input_size, spec.input_size)
        self.image_size = max(spec.min_input_size, min(self.image_size, spec.input_size))
        self.size_spin.setEnabled(self.lower_size)
        tuned = preset(self.network, "fine-tune").epochs  # core.presets' numbers
        small = floor_epochs(tuned)
        tip = (f"Unchecked, the size comes from the images: 1.5 x their median side, "
               f"at least {AUTO_SIZE_FLOOR} px, at most {spec.display_name}'s own "
               f"{spec.input_size} px (small images train much faster small; the Info box "
               f"says which size was used). Images enlarged to {AUTO_SIZE_FLOOR} px "
               f"fine-tune for {small} of {tuned} epochs. 'Last layer only' trains on the "
               f"embeddings at {spec.input_size} px.")
        self.size_check.setToolTip(tip)
        self.size_spin.setToolTip(tip)

    # --- user actions ----------------------------------------------------------------------

    def _network_activated(self, index: int):
        name = self.network_items.item(index).data(Qt.ItemDataRole.UserRole)
        if name != self.network:
            self.network = name
            self._update_size_range()
            self.reset_to_preset()

    def _mode_clicked(self, index: int):
        mode = MODES[index]
        if mode != self.mode:
            self.mode = mode
            self._refresh_networks()
            self.reset_to_preset()

    def _size_changed(self):
        self.size_spin.setEnabled(self.lower_size)
        self._settings_changed()

    def _budget_changed(self):
        self.budget_spin.setEnabled(self.use_time_budget)
        self._settings_changed()

    def _device_changed(self, index: int):
        self.device = self.device_combo.device()
        self.device_combo.warning = ""
        self._show_device_warning()
        self._settings_changed()

    def _show_device_warning(self):
        """A saved device this computer lacks (the run falls back to Automatic)."""
        warning = self.device_combo.warning
        self.Warning.device_missing(warning, shown=bool(warning))

    def set_network(self, network: str, mode: "str | None" = None):
        """Choose a network (and mode) as a user would; resets to the preset."""
        if mode is not None and mode != self.mode:
            self._mode_clicked(MODES.index(mode))
            self._sync_mode_buttons()
        names = [self.network_items.item(i).data(Qt.ItemDataRole.UserRole)
                 for i in range(self.network_items.rowCount())]
        index = names.index(get_spec(network).name)
        self.network_combo.setCurrentIndex(index)
        self._network_activated(index)

    def reset_to_preset(self):
        """Epochs, batch size and learning rate from core.train.preset(network, mode)."""
        self.epochs, self.batch_size, self.learning_rate = preset_values(self.network,
                                                                         self.mode)
        self._settings_changed()

    def _settings_changed(self):
        self.Warning.outdated(shown=not self.auto_apply)
        self.commit.deferred()

    def effective_learner_name(self) -> str:
        """The name given, or the widget's title on the canvas (Orange's learners do so)."""
        return self.learner_name or self.captionTitle

    def _name_changed(self):
        """A new name needs no new training: rename the learner and the model, send both."""
        name = self.effective_learner_name()
        self.name_line_edit.setPlaceholderText(self.captionTitle)
        if self.learner is not None:
            self.learner.name = name
            self.Outputs.learner.send(self.learner)
        if self.outcome is not None:
            self.outcome.model.name = name
            self.Outputs.model.send(self.outcome.model)

    def setCaption(self, caption: str):
        super().setCaption(caption)
        if hasattr(self, "name_line_edit") and not self.learner_name:
            self._name_changed()  # the default name follows the title on the canvas

    # --- input -----------------------------------------------------------------------------

    @Inputs.data
    def set_data(self, data: Optional[Table]):
        self.Error.data.clear()
        self.data = None
        if data is not None:
            reason = check_data(data)
            if reason:
                self.Error.data(reason)
            else:
                self.data = data
        self.commit.now()

    # --- training --------------------------------------------------------------------------

    def weights_problem(self) -> Optional[str]:
        """Why the chosen network cannot start from pretrained weights, or None."""
        if self.mode == "scratch":
            return None
        ok, why = weights_available(self.network)
        return None if ok else why

    def create_learner(self) -> ImageClassifierLearner:
        """An ImageClassifierLearner with this widget's settings (no callbacks)."""
        learner = ImageClassifierLearner(
            self.network, self.mode, epochs=int(self.epochs),
            image_size=int(self.image_size) if self.lower_size else None,
            batch_size=int(self.batch_size), learning_rate=float(self.learning_rate),
            flip=bool(self.flip), tta=5 if self.tta else 1, device=self.device_combo.device(),
            time_budget=60.0 * self.time_budget if self.use_time_budget else None)
        learner.name = self.effective_learner_name()
        return learner

    @gui.deferred
    def commit(self):
        self._discard_task()
        self.Error.weights.clear()
        self.Error.failed.clear()
        self.Warning.clear()
        self._show_device_warning()
        self.Information.clear()
        self.outcome = None
        self.learner = None
        self._clear_plot()
        problem = self.weights_problem()
        if problem:
            self.Error.weights(problem)
            learner = None
        else:
            try:
                learner = self.create_learner()
            except ValueError as exc:
                self.Error.failed(str(exc))
                learner = None
        self.learner = learner
        self.Outputs.learner.send(learner)
        self.Outputs.model.send(None)
        if learner is None or self.data is None:
            self.info_label.setText("No data." if self.data is None else "Nothing to train.")
            return
        self.info_label.setText(f"Training {get_spec(self.network).display_name} on "
                                f"{count_of(len(self.data), 'image')}...")
        self._stop = threading.Event()
        self.cancel_button.setEnabled(True)
        self.start(run_training, self.data, learner, stop=self._stop)

    def stop_training(self):
        """Cancel: stop after the current batch; the best model so far is output."""
        if self.task is not None and self._stop is not None:
            self._stop.set()
            self.cancel_button.setEnabled(False)
            self.info_label.setText("Stopping after the current batch...")

    def _discard_task(self):
        if self._stop is not None:
            self._stop.set()
        self.cancel()  # ConcurrentWidgetMixin: the result of a running task is dropped
        self.cancel_button.setEnabled(False)

    def on_partial_result(self, record: EpochRecord):
        self.history.append(record)
        self._update_plot()

    def on_done(self, outcome: TrainingOutcome):
        self.cancel_button.setEnabled(False)
        self.outcome = outcome
        model = outcome.model
        model.name = self.effective_learner_name()  # renamed while it trained
        if outcome.cancelled:
            self.Warning.cancelled(count_of(outcome.epochs, "epoch"), model.best_epoch)
        if outcome.skipped:
            self.Warning.skipped(count_of(outcome.skipped, "image"),
                                 "was" if outcome.skipped == 1 else "were")
        self.history = list(model.history)
        self._update_plot()
        self.plots.mark_best(model.best_epoch)
        self.info_label.setText(summary(outcome))
        self.Outputs.model.send(model)

    def on_exception(self, ex: Exception):
        self.cancel_button.setEnabled(False)
        if isinstance(ex, Cancelled):
            self.Information.nothing_trained()
            self.info_label.setText("Cancelled; no model.")
        else:
            log.debug("training failed", exc_info=ex)
            self.Error.failed(str(ex) or type(ex).__name__)
            self.info_label.setText("No model.")
        self.Outputs.model.send(None)

    # --- the plot ----------------------------------------------------------------------------

    def _clear_plot(self):
        self.history = []
        self.plots.clear()

    def _update_plot(self):
        self.plots.update(self.history)

    # --- housekeeping --------------------------------------------------------------------------

    def onDeleteWidget(self):
        if self._stop is not None:
            self._stop.set()
        self.shutdown()
        super().onDeleteWidget()

    def send_report(self):
        items = [("Name", self.effective_learner_name()),
                 ("Network", get_spec(self.network).display_name),
                 ("Mode", MODE_LABELS[self.mode]),
                 ("Epochs", self.epochs),
                 ("Image size", f"{self.image_size} px" if self.lower_size
                  else "automatic (from the images)"),
                 ("Batch size", self.batch_size),
                 ("Learning rate", self.learning_rate),
                 ("Random flips", "yes" if self.flip else "no"),
                 ("Test-time augmentation", "5 views" if self.tta else "no"),
                 ("Time budget", f"{self.time_budget} min" if self.use_time_budget
                  else "none"),
                 ("Device", self.device_combo.label())]
        self.report_items("Settings", items)
        if self.outcome is not None:
            self.report_paragraph("Training", summary(self.outcome))
            self.report_plot("Loss", self.loss_plot)
            self.report_plot("Accuracy", self.accuracy_plot)

    @classmethod
    def migrate_settings(cls, settings, version):
        if version is None or version < 1:  # nothing older exists; keep the hook honest
            if settings.get("mode") not in MODES:
                settings.pop("mode", None)
        if version is not None and version < 2:
            # Apply Automatically is off for new widgets from version 2 on; a workflow
            # saved before keeps what it had (on, unless its user turned it off)
            settings.setdefault("auto_apply", True)
            # the learner was named after its network; Test & Score's prediction columns
            # and the contexts saved with them (Image Viewer's title) keep that name
            spec = find_spec(settings.get("network", "squeezenet"))
            if spec is not None:
                settings.setdefault("learner_name", f"Image classifier ({spec.display_name})")
        if version is not None and version < 3:
            # version 3's fine-tuning recipe: flips off, 5-view prediction, and the rate is
            # AdamW's (an old SGD rate would be forty times too high), so a saved workflow
            # keeps its flips, predicts as it did, and fine-tunes at the new preset's rate
            settings.setdefault("flip", True)
            settings.setdefault("tta", False)
            if settings.get("mode", "fine-tune") == "fine-tune":
                settings.pop("learning_rate", None)
                settings.pop("epochs", None)


if __name__ == "__main__":  # pragma: no cover
    import sys
    from orangewidget.utils.widgetpreview import WidgetPreview
    from orangecontrib.deepimage.core.images import find_images
    from orangecontrib.deepimage.data import image_table
    WidgetPreview(OWTrainer).run(image_table(find_images(sys.argv[1]), sys.argv[1]))
