"""The Trainer's two live plots (loss, accuracy per epoch), with the switch to the whole
network, the best epoch, and logistic regression's validation accuracy marked."""
from __future__ import annotations

import math

import pyqtgraph as pg
from AnyQt.QtCore import Qt
from AnyQt.QtGui import QColor

from Orange.widgets import gui
from Orange.widgets.visualize.utils.plotutils import PlotWidget

__all__ = ["TrainingPlots", "add_tta_and_budget_rows", "TRAIN_COLOUR", "VAL_COLOUR", "BASELINE_COLOUR"]

TRAIN_COLOUR, VAL_COLOUR = QColor("#1f77b4"), QColor("#ff7f0e")
BASELINE_COLOUR = QColor("#2ca02c")


def _plot(layout, title: str) -> PlotWidget:
    plot = PlotWidget(enableMenu=False)
    plot.setMouseEnabled(False, False)
    plot.hideButtons()
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setLabel("left", title)
    plot.setLabel("bottom", "Epoch")
    plot.setMinimumSize(420, 180)
    layout.addWidget(plot)
    return plot


class TrainingPlots:
    """Loss and accuracy curves (training solid, validation dashed) in ``layout``; the
    accuracy plot has a horizontal line at logistic regression's validation accuracy on
    the same images (EpochRecord.baseline_accuracy), so a user sees whether fine-tuning
    helped."""

    def __init__(self, layout, text_colour: QColor):
        self.text_colour = text_colour
        self.loss_plot = _plot(layout, "Loss")
        self.accuracy_plot = _plot(layout, "Accuracy")
        self.accuracy_plot.setYRange(0, 1)
        self.curves = {}
        legend = self.loss_plot.addLegend(offset=(-10, 10))
        legend.setLabelTextColor(text_colour)
        for name, plot in (("loss", self.loss_plot), ("accuracy", self.accuracy_plot)):
            for which, colour, style in (("train", TRAIN_COLOUR, Qt.PenStyle.SolidLine),
                                         ("val", VAL_COLOUR, Qt.PenStyle.DashLine)):
                pen = pg.mkPen(colour, width=2, style=style)
                self.curves[name, which] = plot.plot(
                    [], [], pen=pen, symbol="o", symbolSize=6, symbolBrush=colour,
                    symbolPen=colour,
                    name=None if name == "accuracy" else
                    "training" if which == "train" else "validation")
        self.marks: list = []
        self.baseline_line = pg.InfiniteLine(
            0, angle=0, pen=pg.mkPen(BASELINE_COLOUR, width=2, style=Qt.PenStyle.DashDotLine),
            label="", labelOpts=dict(position=0.02, color=BASELINE_COLOUR,
                                     anchors=[(0, 1), (0, 1)]))
        self.accuracy_plot.addItem(self.baseline_line)
        self.baseline_line.hide()
        self.baseline = math.nan

    def clear(self) -> None:
        for plot, item in self.marks:
            plot.removeItem(item)
        self.marks = []
        self.set_baseline(math.nan)
        self.update([])

    def set_baseline(self, accuracy: float) -> None:
        """Logistic regression's validation accuracy (NaN: none; the line is hidden)."""
        self.baseline = accuracy
        if accuracy is None or math.isnan(accuracy):
            self.baseline_line.hide()
            return
        self.baseline_line.setValue(accuracy)
        self.baseline_line.label.setFormat(f"logistic regression: {100 * accuracy:.1f}%")
        self.baseline_line.show()

    def update(self, history) -> None:
        """Redraw the curves from EpochRecords; mark the switch to the whole network."""
        epochs = [r.epoch for r in history]
        for name in ("loss", "accuracy"):
            for which in ("train", "val"):
                values = [getattr(r, f"{which}_{name}") for r in history]
                keep = [i for i, v in enumerate(values) if not math.isnan(v)]
                self.curves[name, which].setData([epochs[i] for i in keep],
                                                 [values[i] for i in keep])
        if history and not math.isnan(getattr(history[-1], "baseline_accuracy", math.nan)):
            self.set_baseline(history[-1].baseline_accuracy)
        switch = next((r.epoch for r in history if r.phase == "network"), None)
        if switch is not None and switch > 1 and not self.marks:
            self._add_marks(switch - 0.5, "whole network", Qt.PenStyle.DotLine, 0.2, (0, 1))

    def _add_marks(self, x: float, label: str, style, position: float, anchor: tuple):
        colour = self.text_colour
        for plot in (self.loss_plot, self.accuracy_plot):
            # labelled only in the accuracy plot, low down, clear of the loss plot's legend
            labelled = plot is self.accuracy_plot
            line = pg.InfiniteLine(
                x, angle=90, pen=pg.mkPen(colour, width=1, style=style),
                label=label if labelled else None,
                labelOpts=dict(position=position, color=colour, anchors=[anchor, anchor]))
            plot.addItem(line)
            self.marks.append((plot, line))

    def mark_best(self, epoch: int) -> None:
        if epoch:
            self._add_marks(epoch, f"best: {epoch}", Qt.PenStyle.DashLine, 0.06, (1, 1))


def add_tta_and_budget_rows(widget, form, changed, budget_changed) -> tuple:
    """The Trainer's "Predict:" (test-time augmentation) and "Time budget:" rows, on
    ``widget``'s settings ``tta``, ``use_time_budget`` and ``time_budget`` (minutes);
    (the check box, the budget's check box, its spin box)."""
    tta_check = gui.checkBox(
        None, widget, "tta", "Test-time augmentation (5 views)", callback=changed,
        tooltip="Predict each image as it is and shifted a little each way, and average "
                "the five answers (Test & Score, Predictions): more accurate, five times "
                "the prediction time.")
    form.addRow("Predict:", tta_check)
    budget_row = gui.hBox(None)
    budget_check = gui.checkBox(budget_row, widget, "use_time_budget", "At most",
                                callback=budget_changed)
    budget_spin = gui.spin(
        budget_row, widget, "time_budget", 1, 600, controlWidth=70, suffix=" min",
        callback=changed,
        tooltip="Train the whole network for the epochs that fit in this time and stop "
                "with the best model; if not even one fits, only the last layer trains "
                "(the Info box says so).")
    budget_spin.setEnabled(widget.use_time_budget)
    form.addRow("Time budget:", budget_row)
    return tta_check, budget_check, budget_spin
