"""Image Grid: images on a grid, similar ones side by side, from their embeddings.

The layout (a 2-D projection, then one cell per image by an optimal assignment) is
computed off the GUI thread by grid.run_grid_layout, with progress and cancel;
thumbnails load lazily in worker threads, only for the cells on screen.
"""
from __future__ import annotations

import html

from typing import List, Optional

import numpy as np
from AnyQt.QtCore import QItemSelection, QItemSelectionModel, QSize, Qt
from AnyQt.QtGui import QColor
from AnyQt.QtWidgets import QLabel
from Orange.data import ContinuousVariable, DiscreteVariable, Domain, StringVariable, Table
from Orange.data.util import get_unique_names
from Orange.widgets import gui
from Orange.widgets.settings import ContextSetting, DomainContextHandler, Setting
from Orange.widgets.utils.annotated_data import create_annotated_table
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin
from Orange.widgets.utils.itemmodels import DomainModel
from Orange.widgets.widget import Input, Msg, Output, OWWidget

from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.data import image_column, image_paths
from orangecontrib.deepimage.grid import PROJECTIONS, GridLayout, grid_shape, run_grid_layout
from orangecontrib.deepimage.widgets.utils.gridview import GridModel, GridView
from orangecontrib.deepimage.widgets.utils.thumbnails import ThumbnailLoader

MAX_SIDE = 200  # most rows or columns the spin boxes offer


def grid_table(data: Table, layout: Optional[GridLayout]) -> Table:
    """``data`` with metas "grid row" and "grid column" (1 = top row / left column;
    missing for rows that are not on the grid)."""
    names = get_unique_names(data.domain, ["grid row", "grid column"])
    new = [ContinuousVariable(name, number_of_decimals=0) for name in names]
    domain = Domain(data.domain.attributes, data.domain.class_vars, data.domain.metas + tuple(new))
    out = data.transform(domain)
    cells = np.full((len(data), 2), np.nan)
    if layout is not None:
        cells[layout.placed] = layout.cells + 1
    with out.unlocked(out.metas):
        out.metas[:, -2:] = cells
    return out


def legend_html(var: Optional[DiscreteVariable], most: int = 20) -> str:
    """A coloured square and the value for each of ``var``'s first ``most`` values."""
    if var is None:
        return ""
    items = [f'<span style="color: rgb({r}, {g}, {b})">&#9632;</span>&nbsp;{html.escape(value)}'
             for value, (r, g, b) in zip(var.values[:most], var.colors)]
    more = len(var.values) - most
    return " &nbsp; ".join(items) + (f" &nbsp; … and {more} more" if more > 0 else "")


class OWImageGrid(OWWidget, ConcurrentWidgetMixin):
    name = "Image Grid"
    description = "Show images on a grid where similar images are neighbours."
    icon = "icons/ImageGrid.svg"
    priority = 40
    keywords = "image grid, image, grid, similarity, t-sne, embedding map, deep image"

    class Inputs:
        data = Input("Embeddings", Table, default=True)
        data_subset = Input("Data Subset", Table)

    class Outputs:
        selected_data = Output("Selected Images", Table, default=True)
        data = Output("Images", Table, doc="All images with their cell (grid row, grid "
                                           "column) and a 'Selected' column.")

    class Error(OWWidget.Error):
        no_image_column = Msg("The data has no image column (a text column with type=image): "
                              "connect Import Images → Image Embedder → Image Grid.")
        no_embeddings = Msg("The data has no numeric columns to arrange the images by: "
                            "connect Image Embedder's 'Embeddings' output.")
        layout_failed = Msg("The grid could not be laid out: {}")

    class Warning(OWWidget.Warning):
        missing_embeddings = Msg("{} rows have missing embedding values (images that could not "
                                 "be embedded); they are not on the grid.")
        incompatible_subset = Msg("No Data Subset rows are in the Embeddings data.")
        extras_in_subset = Msg("Some Data Subset rows are not in the Embeddings data.")

    settingsHandler = DomainContextHandler()
    settings_version = 1
    image_attr: Optional[StringVariable] = ContextSetting(None)
    label_attr = ContextSetting(None)
    color_attr: Optional[DiscreteVariable] = ContextSetting(None)
    projection: str = Setting(PROJECTIONS[0])
    auto_size: bool = Setting(True)
    columns: int = Setting(10)
    rows: int = Setting(10)
    image_size: int = Setting(100)
    #: selected data rows, restored when the saved workflow is opened with the same data
    selection: Optional[List[int]] = Setting(None, schema_only=True)
    auto_commit: bool = Setting(True)
    graph_name = "view"

    def __init__(self):
        OWWidget.__init__(self)
        ConcurrentWidgetMixin.__init__(self)
        self.data: Optional[Table] = None
        self.subset: Optional[Table] = None
        self.paths: List[str] = []
        self.layout_: Optional[GridLayout] = None
        self._points: Optional[np.ndarray] = None  # projection of this data, for new shapes
        self._pending_selection = self.selection

        self.image_model = DomainModel(valid_types=(StringVariable,))
        gui.comboBox(self.controlArea, self, "image_attr", box="Image Column",
                     model=self.image_model, callback=self._on_image_attr_changed,
                     contentsLength=14, tooltip="The column with image file names or URLs")
        box = gui.vBox(self.controlArea, "Layout")
        gui.comboBox(box, self, "projection", items=PROJECTIONS, sendSelectedValue=True,
                     label="Similarity by:", orientation=Qt.Orientation.Horizontal,
                     callback=self._relayout_projection,
                     tooltip="t-SNE keeps similar images together best; PCA is instant; "
                             "MDS keeps distances (slow beyond a few hundred images)")
        gui.checkBox(box, self, "auto_size", "Size the grid to the images",
                     callback=self._on_auto_size,
                     tooltip="A nearly square grid just large enough for all images")
        self.columns_spin = gui.spin(box, self, "columns", 1, MAX_SIDE, label="Columns:",
                                     callback=self._on_columns,
                                     keyboardTracking=False)
        self.rows_spin = gui.spin(box, self, "rows", 1, MAX_SIDE, label="Rows:",
                                  callback=self._on_rows,
                                  keyboardTracking=False)
        box = gui.vBox(self.controlArea, "Display")
        gui.hSlider(box, self, "image_size", minValue=32, maxValue=320, step=8,
                    label="Image size:", callback=self._update_cells, createLabel=False)
        self.label_model = DomainModel(placeholder="(none)")
        gui.comboBox(box, self, "label_attr", model=self.label_model, label="Label:",
                     orientation=Qt.Orientation.Horizontal, callback=self._update_decorations,
                     contentsLength=12, tooltip="Text under each image")
        self.color_model = DomainModel(placeholder="(none)", valid_types=(DiscreteVariable,))
        gui.comboBox(box, self, "color_attr", model=self.color_model, label="Frame colour:",
                     orientation=Qt.Orientation.Horizontal, callback=self._update_decorations,
                     contentsLength=12, tooltip="Frame each image in the colour of its value "
                                                "(the class by default)")
        self.legend_label = QLabel(wordWrap=True, textFormat=Qt.TextFormat.RichText)
        box.layout().addWidget(self.legend_label)
        self.info_label = QLabel("No data.", wordWrap=True)
        gui.vBox(self.controlArea, "Info").layout().addWidget(self.info_label)
        gui.rubber(self.controlArea)
        gui.auto_send(self.buttonsArea, self, "auto_commit")

        self.loader = ThumbnailLoader(self)
        self.view = GridView(self.loader)
        self.mainArea.layout().addWidget(self.view)
        self._set_model(GridModel(np.full((0, 0), -1), []))
        self._update_spins()

    def sizeHint(self) -> QSize:
        return QSize(1000, 700)

    # --- inputs -----------------------------------------------------------------------
    @Inputs.data
    def set_data(self, data: Optional[Table]) -> None:
        self.closeContext()
        self.Error.clear()
        self.Warning.missing_embeddings.clear()
        self.cancel()
        self.data, self.layout_, self._points, self.paths = data, None, None, []
        domain = data.domain if data is not None else None
        for model in (self.image_model, self.label_model, self.color_model):
            model.set_domain(domain)
        self.image_attr = self.label_attr = self.color_attr = None
        if data is not None:
            if not self.image_model:
                self.Error.no_image_column()
                self.data = None
            elif not any(v.is_continuous for v in data.domain.attributes):
                self.Error.no_embeddings()
                self.data = None
        if self.data is not None:
            self.image_attr = image_column(data) or self.image_model[0]
            self.color_attr = domain.class_var if domain.class_var in self.color_model else None
            self.openContext(data)
            self.paths = image_paths(data, self.image_attr)
        self.selection = None  # a new table: the old rows mean nothing

    @Inputs.data_subset
    def set_data_subset(self, subset: Optional[Table]) -> None:
        self.subset = subset

    def handleNewSignals(self) -> None:
        if self.data is not None and self.layout_ is None and self.task is None:
            self._start_layout()
        elif self.data is None:
            self._set_model(GridModel(np.full((0, 0), -1), []))
            self._update_info()
            self.commit.now()
        self._update_decorations()

    def _subset_mask(self) -> Optional[np.ndarray]:
        self.Warning.incompatible_subset.clear()
        self.Warning.extras_in_subset.clear()
        if self.data is None or self.subset is None:
            return None
        ids = set(self.subset.ids)
        mask = np.fromiter((i in ids for i in self.data.ids), bool, len(self.data))
        found = int(mask.sum())
        if found < len(self.subset):
            self.Warning.incompatible_subset(shown=found == 0)
            self.Warning.extras_in_subset(shown=found != 0)
        return mask

    # --- layout -----------------------------------------------------------------------
    def _embeddings(self) -> np.ndarray:
        columns = [v for v in self.data.domain.attributes if v.is_continuous]
        return self.data.get_column(columns[0])[:, None] if len(columns) == 1 else \
            self.data.transform(Domain(columns)).X

    def _start_layout(self) -> None:
        """Compute the layout in a worker; the projection is reused when only the shape changed."""
        if self.data is None:
            return
        x = self._embeddings()
        n = int((~np.isnan(x).any(axis=1)).sum())
        if self.auto_size:
            self.rows, self.columns = grid_shape(n)
        elif self.rows * self.columns < n:
            self.rows = grid_shape(n, columns=self.columns)[0]
        self._update_spins()
        self.Error.layout_failed.clear()
        self.info_label.setText(f"Laying out {n:,} images ({self.projection})…")
        self.start(run_grid_layout, x, self.projection, self.rows, self.columns,
                   points=self._points)

    def on_done(self, layout: GridLayout) -> None:
        self.layout_, self._points = layout, layout.points
        self.rows, self.columns = layout.rows, layout.columns
        self._update_spins()
        grid = np.full((layout.rows, layout.columns), -1)
        grid[layout.cells[:, 0], layout.cells[:, 1]] = layout.placed
        selection = self.selection or self._pending_selection
        self._pending_selection = None
        self._set_model(GridModel(grid, self.paths))
        self._update_decorations()
        missing = len(self.data) - len(layout.placed)
        self.Warning.missing_embeddings(f"{missing:,}", shown=bool(missing))
        if selection and max(selection) < len(self.data):
            self.select_rows(selection)
        self._update_info()
        self.commit.now()

    def on_exception(self, ex: Exception) -> None:
        if isinstance(ex, Cancelled):
            self.info_label.setText("Cancelled.")
            return
        self.Error.layout_failed(str(ex))
        self.info_label.setText("No layout.")

    def on_partial_result(self, _) -> None:
        pass

    def _relayout_projection(self) -> None:
        self._points = None
        self._start_layout()

    def _on_auto_size(self) -> None:
        self._update_spins()
        self._start_layout()

    def _on_columns(self) -> None:
        self.auto_size = False
        self._start_layout()

    def _on_rows(self) -> None:
        self.auto_size = False
        n = len(self._points) if self._points is not None else 0
        if self.rows * self.columns < n:
            self.columns = grid_shape(n, rows=self.rows)[1]
        self._start_layout()

    def _update_spins(self) -> None:
        for spin in (self.columns_spin, self.rows_spin):
            spin.setEnabled(not self.auto_size)

    def _on_image_attr_changed(self) -> None:
        self.paths = image_paths(self.data, self.image_attr) if self.data is not None else []
        if self.layout_ is not None:
            self.view.model().paths = self.paths
            self.view.viewport().update()

    # --- display ----------------------------------------------------------------------
    def _set_model(self, model: GridModel) -> None:
        old, old_selection = self.view.model(), self.view.selectionModel()
        model.setParent(self.view)
        self.view.setModel(model)
        for obj in (old, old_selection):
            if obj is not None:
                obj.deleteLater()
        self.view.selectionModel().selectionChanged.connect(self._on_selection_changed)
        self._update_cells()

    def _update_cells(self) -> None:
        self.view.set_cell_size(self.image_size, self.label_attr is not None)

    def _update_decorations(self) -> None:
        model: GridModel = self.view.model()
        if self.data is None:
            return
        title = lambda row: ""
        if self.label_attr is not None:
            labels, var = self.data.get_column(self.label_attr), self.label_attr
            title = lambda row: "" if var.str_val(labels[row]) == "?" else var.str_val(labels[row])
        color = lambda row: None
        if self.color_attr is not None:
            values, palette = self.data.get_column(self.color_attr), self.color_attr.colors
            color = lambda row: None if np.isnan(values[row]) else QColor(
                *map(int, palette[int(values[row])]))
        model.set_decorations(title, color, self._subset_mask())
        self.legend_label.setText(legend_html(self.color_attr))
        self._update_cells()

    # --- selection --------------------------------------------------------------------
    def selected_rows(self) -> List[int]:
        model: GridModel = self.view.model()
        return sorted(model.row_at(index) for index in self.view.selectionModel().selectedIndexes()
                      if model.row_at(index) >= 0)

    def select_rows(self, rows: List[int]) -> None:
        """Select the cells that show these data rows."""
        model: GridModel = self.view.model()
        selection = QItemSelection()
        for row in rows:
            index = model.index_of(row)
            if index.isValid():
                selection.select(index, index)
        self.view.selectionModel().select(selection,
                                          QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def _on_selection_changed(self) -> None:
        self.selection = self.selected_rows() or None
        self._update_info()
        self.commit.deferred()

    def _update_info(self) -> None:
        if self.layout_ is None:
            self.info_label.setText("No data." if self.data is None else "No layout.")
            return
        text = (f"{len(self.layout_.placed):,} images in {self.layout_.columns} columns × "
                f"{self.layout_.rows} rows ({self.layout_.projection})")
        if self.selection:
            text += f", {len(self.selection):,} selected"
        self.info_label.setText(text)

    @gui.deferred
    def commit(self) -> None:
        if self.data is None or self.layout_ is None:
            self.Outputs.selected_data.send(None)
            self.Outputs.data.send(None)
            return
        table = grid_table(self.data, self.layout_)
        rows = self.selected_rows()
        self.Outputs.selected_data.send(table[rows] if rows else None)
        self.Outputs.data.send(create_annotated_table(table, rows))

    def send_report(self) -> None:
        if self.layout_ is None:
            return
        self.report_items((("Images", len(self.layout_.placed)),
                           ("Grid", f"{self.layout_.columns} columns × {self.layout_.rows} rows"),
                           ("Similarity by", self.projection), ("Label", self.label_attr),
                           ("Frame colour", self.color_attr)))
        self.report_plot()

    def onDeleteWidget(self) -> None:
        self.shutdown()
        self.loader.shutdown()
        super().onDeleteWidget()


if __name__ == "__main__":  # pragma: no cover
    import sys

    from orangewidget.utils.widgetpreview import WidgetPreview

    WidgetPreview(OWImageGrid).run(Table(sys.argv[1]))
