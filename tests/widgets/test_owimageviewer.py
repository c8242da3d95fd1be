"""Image Viewer: lazy thumbnails, placeholders for missing files, selection outputs."""
import os
import shutil
import tempfile
import unittest.mock

import numpy as np
import pytest
from AnyQt.QtCore import QItemSelectionModel, Qt
from AnyQt.QtGui import QImage
from AnyQt.QtTest import QTest
from image_folders import make_class_folders
from Orange.data import DiscreteVariable, Domain, StringVariable, Table
from Orange.widgets.tests.base import WidgetTest
from Orange.widgets.utils.annotated_data import ANNOTATED_DATA_FEATURE_NAME
from PIL import Image

from orangecontrib.deepimage.imports import run_import
from orangecontrib.deepimage.widgets.owimageviewer import OWImageViewer, prediction_columns
from orangecontrib.deepimage.widgets.utils.thumbnails import (Failed, size_bucket,
                                                              thumbnail_array)


class _State:
    def is_interruption_requested(self):
        return False

    def set_status(self, _):
        pass

    def set_progress_value(self, _):
        pass


def paths_table(names, origin, metas=(), class_var=None, y=None):
    """A table with an ``image`` column (type=image) of the given relative names."""
    image = StringVariable("image")
    image.attributes.update(type="image", origin=origin)
    domain = Domain([], class_var, [StringVariable("note"), image, *metas])
    values = np.array([["n"] * len(names), names], dtype=object).T
    extra = np.zeros((len(names), len(metas)))
    return Table.from_numpy(domain, np.empty((len(names), 0)), y,
                            metas=np.hstack([values, extra.astype(object)]))


def test_thumbnail_keeps_aspect_and_decodes_with_core(tmp_path):
    Image.new("RGBA", (200, 50), (255, 0, 0, 0)).save(tmp_path / "a.png")
    pixels = thumbnail_array(str(tmp_path / "a.png"), 64)
    assert pixels.shape == (16, 64, 3)
    assert tuple(pixels[0, 0]) == (255, 255, 255)  # transparent -> white, as core does
    assert size_bucket(100) == 128 and size_bucket(5000) == 1024


class TestOWImageViewer(WidgetTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.root = make_class_folders(os.path.join(cls.tmp, "pets"))
        cls.images = run_import(cls.root, _State()).data

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        self.widget = self.create_widget(OWImageViewer)
        self.widget.resize(900, 640)
        self.widget.show()

    def wait_thumbnails(self):
        loader = self.widget.loader
        for _ in range(5):  # loading the visible ones may queue more after a repaint
            self.process_events()
            self.assertTrue(loader.wait_idle(10))
            QTest.qWait(50)

    def test_shows_our_import_with_titles_from_the_class(self):
        self.send_signal(self.widget.Inputs.data, self.images)
        self.assertEqual(self.widget.image_attr.name, "image")
        self.assertIs(self.widget.title_attr, self.images.domain.class_var)
        model = self.widget.view.model()
        self.assertEqual(model.rowCount(), 6)
        self.assertEqual(model.data(model.index(4)), "dogs")
        self.wait_thumbnails()
        side = size_bucket(self.widget.image_size)
        images = [self.widget.loader.cached(p, side) for p in self.widget.paths]
        # small images are not enlarged when decoded (the delegate scales them)
        self.assertTrue(all(isinstance(i, QImage) and i.width() == 24 for i in images))
        self.assertFalse(self.widget.Warning.unreadable.is_shown())

    def test_missing_files_get_placeholders_not_exceptions(self):
        names = ["cats/cats0.jpg", "cats/gone.jpg", "nowhere/x.png", "cats/empty.jpg", ""]
        self.send_signal(self.widget.Inputs.data, paths_table(names, self.root))
        self.wait_thumbnails()
        side = size_bucket(self.widget.image_size)
        got = [self.widget.loader.cached(p, side) for p in self.widget.paths]
        self.assertIsInstance(got[0], QImage)
        self.assertEqual([type(g) for g in got[1:4]], [Failed] * 3)
        self.assertEqual(got[1], "file not found")
        self.assertIn("empty", got[3])
        self.assertTrue(self.widget.Warning.unreadable.is_shown())
        self.assertFalse(self.widget.view.grab().isNull())  # painting them raises nothing
        self.assertEqual(len(self.get_output(self.widget.Outputs.data)), 5)

    def test_selection_goes_to_both_outputs_and_is_saved(self):
        self.send_signal(self.widget.Inputs.data, self.images)
        self.assertIsNone(self.get_output(self.widget.Outputs.selected_data))
        self.widget._select_rows([1, 4])
        selected = self.get_output(self.widget.Outputs.selected_data)
        self.assertEqual(list(selected.ids), list(self.images.ids[[1, 4]]))
        annotated = self.get_output(self.widget.Outputs.data)
        self.assertEqual(len(annotated), 6)
        flags = annotated.get_column(ANNOTATED_DATA_FEATURE_NAME)
        self.assertEqual(list(np.flatnonzero(flags)), [1, 4])
        self.assertIn("2 selected", self.widget.info_label.text())

        settings = self.widget.settingsHandler.pack_data(self.widget)
        restored = self.create_widget(OWImageViewer, stored_settings=settings)
        self.send_signal(restored.Inputs.data, self.images, widget=restored)
        selected = self.get_output(restored.Outputs.selected_data, widget=restored)
        self.assertEqual(list(selected.ids), list(self.images.ids[[1, 4]]))

        self.send_signal(self.widget.Inputs.data, None)
        self.assertIsNone(self.get_output(self.widget.Outputs.selected_data))
        self.assertIsNone(self.get_output(self.widget.Outputs.data))

    def test_100000_rows_request_only_visible_thumbnails(self):
        names = [f"cats/photo{i}.jpg" for i in range(100_000)]
        self.send_signal(self.widget.Inputs.data, paths_table(names, self.root))
        self.assertEqual(self.widget.view.model().rowCount(), 100_000)
        self.wait_thumbnails()
        requested = self.widget.loader.requested
        self.assertGreater(requested, 0)
        self.assertLess(requested, 100)  # about 6 x 4 fit in 900 x 640
        self.widget.view.scrollToBottom()
        self.wait_thumbnails()
        self.assertLess(self.widget.loader.requested, 2 * requested + 20)
        self.widget._select_rows([99_999])
        self.assertEqual(list(self.get_output(self.widget.Outputs.selected_data).ids),
                         [self.widget.data.ids[-1]])

    def test_title_from_prediction_marks_wrong_ones(self):
        data = self.images
        predicted = DiscreteVariable("Logistic Regression", values=("cats", "dogs"))
        domain = Domain([], data.domain.class_var, data.domain.metas + (predicted,))
        table = data.transform(domain)
        with table.unlocked(table.metas):
            table.metas[:, -1] = [0, 0, 1, 1, 1, 1]  # row 2 is a cat called a dog
        self.assertEqual(prediction_columns(table.domain), [predicted])
        self.send_signal(self.widget.Inputs.data, table)
        self.assertIs(self.widget.title_attr, predicted)
        model = self.widget.view.model()
        from orangecontrib.deepimage.widgets.utils.thumbnailview import MismatchRole
        self.assertEqual(model.data(model.index(2)), "dogs (true: cats)")
        self.assertEqual([model.data(model.index(i), MismatchRole) for i in range(6)],
                         [False, False, True, False, False, False])
        self.widget.title_attr = table.domain["image name"]
        self.widget._update_titles()
        self.assertEqual(model.data(model.index(2)), "cats2")
        self.assertFalse(model.data(model.index(2), MismatchRole))

    def test_image_column_with_type_image_is_preselected(self):
        names = ["cats/cats0.jpg"]
        table = paths_table(names, self.root)  # "note" comes before "image"
        self.send_signal(self.widget.Inputs.data, table)
        self.assertEqual(self.widget.image_attr.name, "image")
        self.send_signal(self.widget.Inputs.data, Table("iris"))
        self.assertTrue(self.widget.Error.no_image_column.is_shown())
        self.assertIsNone(self.get_output(self.widget.Outputs.data))

    def test_space_opens_and_closes_a_large_preview(self):
        self.send_signal(self.widget.Inputs.data, self.images)
        view = self.widget.view
        view.selectionModel().setCurrentIndex(view.model().index(0),
                                              QItemSelectionModel.SelectionFlag.ClearAndSelect)
        QTest.keyClick(view, Qt.Key.Key_Space)
        self.assertTrue(view.preview.isVisible())
        self.wait_thumbnails()
        self.assertFalse(view.preview.label.pixmap().isNull())
        QTest.keyClick(view.preview, Qt.Key.Key_Right)  # browse from the preview
        self.assertEqual(view.currentIndex().row(), 1)
        self.assertEqual(view.preview.path, self.widget.paths[1])
        QTest.keyClick(view, Qt.Key.Key_Space)
        self.assertFalse(view.preview.isVisible())

    def test_shows_the_anchors_import(self):
        import_images = pytest.importorskip("orangecontrib.imageanalytics.import_images")
        theirs, _ = import_images.ImportImages()(self.root)
        self.send_signal(self.widget.Inputs.data, theirs)
        self.assertEqual(self.widget.image_attr.name, "image")
        self.wait_thumbnails()
        side = size_bucket(self.widget.image_size)
        shown = [self.widget.loader.cached(p, side) for p in self.widget.paths]
        self.assertEqual(sum(isinstance(s, QImage) for s in shown), 6)

    def test_selection_follows_the_images_when_a_reload_adds_files(self):
        """Selection is kept by image, not row: new files sorted in before the selected
        ones (a Reload of Import Images) must not shift it onto other images."""
        folder = os.path.join(tempfile.mkdtemp(dir=self.tmp), "pets")
        shutil.copytree(self.root, folder)
        before = run_import(folder, _State()).data
        self.send_signal(self.widget.Inputs.data, before)
        self.widget._select_rows([1, 4])
        chosen = sorted(self.get_output(self.widget.Outputs.selected_data)
                        .get_column("image"))
        self.assertEqual(chosen, ["cats/cats1.jpg", "dogs/dogs1.jpg"])
        settings = self.widget.settingsHandler.pack_data(self.widget)
        for name in ("cats/a.jpg", "dogs/a.jpg"):  # sort before everything in the folder
            Image.new("RGB", (8, 8)).save(os.path.join(folder, name))
        after = run_import(folder, _State()).data
        self.assertEqual(len(after), 8)
        self.send_signal(self.widget.Inputs.data, after)
        selected = self.get_output(self.widget.Outputs.selected_data)
        self.assertEqual(sorted(selected.get_column("image")), chosen)
        # and a workflow saved before the files were added opens with the same images
        restored = self.create_widget(OWImageViewer, stored_settings=settings)
        self.send_signal(restored.Inputs.data, after, widget=restored)
        selected = self.get_output(restored.Outputs.selected_data, widget=restored)
        self.assertEqual(sorted(selected.get_column("image")), chosen)

    def test_row_numbers_saved_by_version_1_are_dropped(self):
        settings = {"selection": [0, 1], "__version__": 1}
        restored = self.create_widget(OWImageViewer, stored_settings=settings)
        self.send_signal(restored.Inputs.data, self.images, widget=restored)
        self.assertIsNone(self.get_output(restored.Outputs.selected_data, widget=restored))

    def test_categorical_image_column_as_the_anchor_accepts(self):
        names = ("cats/cats0.jpg", "dogs/dogs2.jpg")
        image = DiscreteVariable("file", values=names)
        image.attributes.update(type="image", origin=self.root)
        table = Table.from_numpy(Domain([], metas=[image]), np.empty((3, 0)),
                                 metas=np.array([[1], [0], [np.nan]], dtype=float))
        self.send_signal(self.widget.Inputs.data, table)
        self.assertIs(self.widget.image_attr, image)
        self.assertEqual(self.widget.paths, [os.path.join(self.root, names[1]),
                                             os.path.join(self.root, names[0]), ""])
        self.wait_thumbnails()
        side = size_bucket(self.widget.image_size)
        self.assertIsInstance(self.widget.loader.cached(self.widget.paths[0], side), QImage)

    def test_large_thumbnails_the_hint_and_a_report_with_thumbnails(self):
        self.assertIn("Space or double-click", self.widget.hint_label.text())
        self.send_signal(self.widget.Inputs.data, self.images)
        self.widget.image_size = 1024
        self.widget._update_size()
        self.assertEqual(size_bucket(self.widget.image_size), 1024)
        slider = self.widget.controls.image_size
        self.assertEqual(slider.maximum(), 1024)
        self.widget._select_rows([4])
        with unittest.mock.patch.object(self.widget, "report_raw") as raw:
            self.widget.send_report()
        title, html = raw.call_args[0]
        self.assertEqual(title, "Selected images")
        self.assertEqual(html.count("<img src=\"data:image/png;base64,"), 1)
        self.assertIn("dogs", html)
