"""Image Grid: layout in a worker, similar images together, outputs, selection, subset."""
import os
import shutil
import tempfile

import numpy as np
from AnyQt.QtCore import QItemSelectionModel, QPoint, Qt
from AnyQt.QtGui import QImage
from AnyQt.QtTest import QTest
from Orange.data import ContinuousVariable, Domain, Table
from Orange.widgets.tests.base import WidgetTest
from Orange.widgets.utils.annotated_data import ANNOTATED_DATA_FEATURE_NAME
from PIL import Image

from orangecontrib.deepimage.core.images import load_image
from orangecontrib.deepimage.data import image_paths
from orangecontrib.deepimage.imports import run_import
from orangecontrib.deepimage.widgets.owimagegrid import OWImageGrid
from orangecontrib.deepimage.widgets.utils.gridview import ColorRole, RowRole, SubsetRole
from orangecontrib.deepimage.widgets.utils.thumbnails import size_bucket

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


class _State:
    def is_interruption_requested(self):
        return False

    def set_status(self, _):
        pass

    def set_progress_value(self, _):
        pass


def colour_folders(root, per_class=6):
    """Noisy solid-colour JPEGs, one folder per colour."""
    rng = np.random.default_rng(0)
    for name, rgb in COLOURS.items():
        os.makedirs(os.path.join(root, name))
        for i in range(per_class):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 20, (20, 20, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(os.path.join(root, name, f"{i}.jpg"))
    return root


def mean_colour_embeddings(images: Table) -> Table:
    """The import table with each image's mean colour (decoded by core) as features."""
    x = np.array([load_image(p).reshape(-1, 3).mean(axis=0) for p in image_paths(images)])
    domain = Domain([ContinuousVariable(f"n{i}") for i in range(3)], images.domain.class_var,
                    images.domain.metas)
    return Table.from_numpy(domain, x, images.Y, images.metas, ids=images.ids)


class TestOWImageGrid(WidgetTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        root = colour_folders(os.path.join(cls.tmp, "colours"))
        cls.embeddings = mean_colour_embeddings(run_import(root, _State()).data)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        self.widget = self.create_widget(OWImageGrid)
        self.widget.resize(900, 640)
        self.widget.show()

    def show(self, data, widget=None):
        widget = widget or self.widget
        self.send_signal(widget.Inputs.data, data, widget=widget)
        self.wait_until_finished(widget=widget, timeout=60000)

    def grid(self):
        model = self.widget.view.model()
        return np.array([[model.data(model.index(r, c), RowRole)
                          for c in range(model.columnCount())] for r in range(model.rowCount())])

    def test_similar_images_share_a_region_and_outputs_carry_cells(self):
        self.widget.projection = "PCA"
        self.show(self.embeddings)
        self.assertEqual((self.widget.rows, self.widget.columns), (4, 5))  # 18 images
        images = self.get_output(self.widget.Outputs.data)
        self.assertEqual(len(images), 18)
        cells = np.column_stack([images.get_column("grid row"), images.get_column("grid column")])
        self.assertEqual(len({tuple(c) for c in cells}), 18)
        self.assertTrue(((cells >= 1) & (cells <= [4, 5])).all())  # 1-based
        grid = self.grid()
        np.testing.assert_array_equal(grid[cells[:, 0].astype(int) - 1,
                                           cells[:, 1].astype(int) - 1], np.arange(18))
        # each colour's images form one connected region of neighbouring cells
        labels = images.Y.astype(int)
        for colour in range(3):
            region = {tuple(c) for c in cells[labels == colour].astype(int)}
            seen, todo = set(), [next(iter(region))]
            while todo:
                r, c = todo.pop()
                if (r, c) in seen:
                    continue
                seen.add((r, c))
                todo += [n for n in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)) if n in region]
            self.assertEqual(seen, region)
        self.assertIsNone(self.get_output(self.widget.Outputs.selected_data))

    def test_tsne_by_default_frames_coloured_by_class_thumbnails_lazily(self):
        self.show(self.embeddings)
        self.assertEqual(self.widget.projection, "t-SNE")
        self.assertIs(self.widget.color_attr, self.embeddings.domain.class_var)
        model = self.widget.view.model()
        index = model.index_of(0)
        self.assertEqual(model.data(index, ColorRole).getRgb()[:3],
                         tuple(self.embeddings.domain.class_var.colors[0]))
        for _ in range(5):  # painting the visible cells queues their thumbnails
            self.process_events()
            self.assertTrue(self.widget.loader.wait_idle(10))
            QTest.qWait(50)
        side = size_bucket(self.widget.image_size)
        self.assertTrue(all(isinstance(self.widget.loader.cached(p, side), QImage)
                            for p in self.widget.paths))
        self.assertIn("18 images in 5 columns × 4 rows (t-SNE)", self.widget.info_label.text())
        legend = self.widget.legend_label.text()
        self.assertEqual([legend.index(name) < legend.index(after) for name, after in
                          (("blue", "green"), ("green", "red"))], [True, True])
        r, g, b = self.embeddings.domain.class_var.colors[0]
        self.assertIn(f"rgb({r}, {g}, {b})", legend)
        self.widget.controls.color_attr.setCurrentIndex(0)  # (none)
        self.widget.controls.color_attr.activated.emit(0)
        self.assertIsNone(model.data(index, ColorRole))
        self.assertEqual(self.widget.legend_label.text(), "")

    def test_click_and_rectangle_select_and_the_selection_is_saved(self):
        self.widget.projection = "PCA"
        self.show(self.embeddings)
        view, grid = self.widget.view, self.grid()
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton,
                         pos=view.visualRect(view.model().index(1, 1)).center())
        selected = self.get_output(self.widget.Outputs.selected_data)
        self.assertEqual(list(selected.ids), [self.embeddings.ids[grid[1, 1]]])
        # drag a rectangle from cell (0, 0) to (1, 2): six cells
        start = view.visualRect(view.model().index(0, 0)).center()
        end = view.visualRect(view.model().index(1, 2)).center()
        QTest.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
        QTest.mouseMove(view.viewport(), end)
        QTest.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
        expected = sorted(r for r in grid[:2, :3].ravel() if r >= 0)
        self.assertEqual(self.widget.selected_rows(), expected)
        images = self.get_output(self.widget.Outputs.data)
        flags = images.get_column(ANNOTATED_DATA_FEATURE_NAME)
        self.assertEqual(list(np.flatnonzero(flags)), expected)

        settings = self.widget.settingsHandler.pack_data(self.widget)
        restored = self.create_widget(OWImageGrid, stored_settings=settings)
        self.show(self.embeddings, widget=restored)
        self.assertEqual(restored.selected_rows(), expected)

    def test_new_shape_keeps_all_images_and_grows_when_too_small(self):
        self.widget.projection = "PCA"
        self.show(self.embeddings)
        self.widget.controls.columns.setValue(9)
        self.wait_until_finished()
        self.assertFalse(self.widget.auto_size)
        self.assertEqual((self.widget.rows, self.widget.columns), (4, 9))
        self.widget.controls.rows.setValue(1)  # too few: columns grow to hold all
        self.wait_until_finished()
        self.assertEqual((self.widget.rows, self.widget.columns), (1, 18))
        self.assertEqual(sorted(self.grid().ravel()), list(range(18)))

    def test_subset_fades_the_others_and_missing_embeddings_are_reported(self):
        data = self.embeddings.copy()
        with data.unlocked(data.X):
            data.X[2, 0] = np.nan
        self.widget.projection = "PCA"
        self.send_signal(self.widget.Inputs.data_subset, data[:4])
        self.show(data)
        self.assertTrue(self.widget.Warning.missing_embeddings.is_shown())
        model = self.widget.view.model()
        self.assertFalse(model.index_of(2).isValid())
        self.assertTrue(model.data(model.index_of(1), SubsetRole))
        self.assertFalse(model.data(model.index_of(10), SubsetRole))
        images = self.get_output(self.widget.Outputs.data)
        self.assertTrue(np.isnan(images.get_column("grid row")[2]))
        self.send_signal(self.widget.Inputs.data_subset, Table("iris")[:3])
        self.assertTrue(self.widget.Warning.incompatible_subset.is_shown())

    def test_bad_inputs_say_what_to_connect(self):
        no_features = self.embeddings.transform(Domain([], self.embeddings.domain.class_var,
                                                       self.embeddings.domain.metas))
        self.show(no_features)
        self.assertTrue(self.widget.Error.no_embeddings.is_shown())
        self.assertIsNone(self.get_output(self.widget.Outputs.data))
        self.show(Table("iris"))
        self.assertTrue(self.widget.Error.no_image_column.is_shown())
        self.show(None)
        self.assertFalse(self.widget.Error.no_image_column.is_shown())

    def test_space_opens_a_preview_and_arrows_move_through_the_grid(self):
        self.widget.projection = "PCA"
        self.show(self.embeddings)
        view, grid = self.widget.view, self.grid()
        r, c = next((r, c) for r in range(4) for c in range(4)
                    if grid[r, c] >= 0 and grid[r, c + 1] >= 0)
        view.selectionModel().setCurrentIndex(view.model().index(r, c),
                                              QItemSelectionModel.SelectionFlag.ClearAndSelect)
        QTest.keyClick(view, Qt.Key.Key_Space)
        self.assertTrue(view.preview.isVisible())
        self.assertEqual(view.preview.path, self.widget.paths[grid[r, c]])
        QTest.keyClick(view.preview, Qt.Key.Key_Right)
        self.assertEqual((view.currentIndex().row(), view.currentIndex().column()), (r, c + 1))
        self.assertEqual(view.preview.path, self.widget.paths[grid[r, c + 1]])
        QTest.keyClick(view.preview, Qt.Key.Key_Escape)
        self.assertFalse(view.preview.isVisible())

    def test_cancel_on_new_data_and_report(self):
        self.send_signal(self.widget.Inputs.data, self.embeddings)  # t-SNE starts
        self.widget.projection = "PCA"
        self.show(self.embeddings)
        self.assertEqual(self.widget.layout_.projection, "PCA")
        self.widget.send_report()
        self.assertEqual(len(self.get_output(self.widget.Outputs.data)), 18)
