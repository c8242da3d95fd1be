"""The Trainer's live plot: loss and accuracy per epoch, training and validation, with
marks where the whole network starts to learn and at the best epoch."""
from __future__ import annotations

import math

import pyqtgraph as pg
from AnyQt.QtCore import Qt
from AnyQt.QtGui import QColor
from Orange.widgets.visualize.utils.plotutils import PlotWidget

__all__ = ["TrainingCurves", "TRAIN_COLOUR", "VAL_COLOUR"]

TRAIN_COLOUR, VAL_COLOUR = QColor("#1f77b4"), QColor("#ff7f0e")


def _plot(title: str, layout) -> PlotWidget:
    plot = PlotWidget(enableMenu=False)
    plot.setMouseEnabled(False, False)
    plot.hideButtons()
    plot.showGrid(x=True, y=True, alpha=0.2)
    plot.setLabel("left", title)
    plot.setLabel("bottom", "Epoch")
    plot.setMinimumSize(420, 180)
    layout.addWidget(plot)
    return plot


class TrainingCurves:
    """Two plots (loss, accuracy) added to ``layout``, drawn in ``palette``'s text colour;
    ``curves[name, which]`` for name in loss/accuracy and which in train/val."""

    def __init__(self, layout, palette):
        self.colour = palette.text().color()
        self.loss_plot = _plot("Loss", layout)
        self.accuracy_plot = _plot("Accuracy", layout)
        self.accuracy_plot.setYRange(0, 1)
        self.curves = {}
        legend = self.loss_plot.addLegend(offset=(-10, 10))
        legend.setLabelTextColor(self.colour)
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

    def clear(self) -> None:
        """No curves, no marks."""
        for plot, item in self.marks:
            plot.removeItem(item)
        self.marks = []
        self.show([])

    def show(self, history) -> None:
        """Draw the epochs of ``history`` (core EpochRecords); NaN (no validation) is left
        out; a mark at the switch to the whole network."""
        epochs = [r.epoch for r in history]
        for name in ("loss", "accuracy"):
            for which in ("train", "val"):
                values = [getattr(r, f"{which}_{name}") for r in history]
                keep = [i for i, v in enumerate(values) if not math.isnan(v)]
                self.curves[name, which].setData([epochs[i] for i in keep],
                                                 [values[i] for i in keep])
        switch = next((r.epoch for r in history if r.phase == "network"), None)
        if switch is not None and switch > 1 and not self.marks:
            self._add_marks(switch - 0.5, "whole network", Qt.PenStyle.DotLine, 0.2, (0, 1))

    def mark_best(self, epoch: int) -> None:
        """A mark at the epoch whose weights the model has."""
        if epoch:
            self._add_marks(epoch, f"best: {epoch}", Qt.PenStyle.DashLine, 0.06, (1, 1))

    def _add_marks(self, x: float, label: str, style, position: float, anchor: tuple):
        for plot in (self.loss_plot, self.accuracy_plot):
            # labelled only in the accuracy plot, low down, clear of the loss plot's legend
            labelled = plot is self.accuracy_plot
            line = pg.InfiniteLine(
                x, angle=90, pen=pg.mkPen(self.colour, width=1, style=style),
                label=label if labelled else None,
                labelOpts=dict(position=position, color=self.colour,
                               anchors=[anchor, anchor]))
            plot.addItem(line)
            self.marks.append((plot, line))
