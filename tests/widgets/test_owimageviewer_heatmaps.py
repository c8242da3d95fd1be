"""Image Viewer's Model input: heatmaps over the visible thumbnails and the preview."""
import os
import shutil
import tempfile

import numpy as np
from AnyQt.QtCore import QItemSelectionModel, Qt
from AnyQt.QtGui import QPixmap
from AnyQt.QtTest import QTest
from Orange.data import Table
from Orange.widgets.tests.base import WidgetTest
from PIL import Image
from trainer_images import colour_table, make_colour_folders

from orangecontrib.deepimage.core.explain import Explanation
from orangecontrib.deepimage.core.images import find_images
from orangecontrib.deepimage.data import image_table
from orangecontrib.deepimage.learner import ImageClassifierLearner
from orangecontrib.deepimage.widgets.owimageviewer import OWImageViewer
from orangecontrib.deepimage.widgets.utils.heatmaps import HeatmapCache, qimage_to_array
from orangecontrib.deepimage.widgets.utils.thumbnails import Failed, size_bucket
from orangecontrib.deepimage.widgets.utils.thumbnailview import PREVIEW_SIDE


class TestHeatmaps(WidgetTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        train = colour_table(os.path.join(cls.tmp, "train"), per_class=6, size=40)
        cls.model = ImageClassifierLearner("squeezenet", "last-layer", epochs=20,
                                           image_size=64, validation_fraction=0,
                                           device="cpu")(train)
        # 60 pictures, more than fit in the window; classes as the model's
        root = make_colour_folders(os.path.join(cls.tmp, "many"), per_class=30, size=48,
                                   seed=3)
        cls.images = image_table(find_images(root), root)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        self.widget = self.create_widget(OWImageViewer)
        self.widget.resize(900, 640)
        self.widget.show()

    def wait_heatmaps(self, rounds=8):
        """Until the thumbnails are loaded and nothing more is being explained."""
        for _ in range(rounds):
            self.process_events()
            self.assertTrue(self.widget.loader.wait_idle(10))
            QTest.qWait(150)  # the widget waits 100 ms for painting to settle
            self.wait_until_finished(timeout=60000)
        self.process_events()

    def known(self):
        return {path: self.widget.heatmaps.known(path) for path in self.widget.paths}

    def test_only_visible_thumbnails_are_explained_and_titled(self):
        widget = self.widget
        self.send_signal(widget.Inputs.data, self.images)
        self.send_signal(widget.Inputs.model, self.model)
        self.assertTrue(widget.heatmap_box.isEnabled())
        self.assertIn("SqueezeNet 1.1, 2 classes (blue, red), 64 px",
                      widget.model_label.text())
        self.wait_heatmaps(2)
        self.assertFalse(any(self.known().values()))  # off: nothing is computed
        widget.controls.show_heatmaps.click()
        self.wait_heatmaps()
        explained = [p for p, k in self.known().items() if isinstance(k, Explanation)]
        self.assertGreater(len(explained), 4)
        self.assertLess(len(explained), 50)  # about 6 x 4 fit in 900 x 640
        model = widget.view.model()
        row = widget.paths.index(explained[0])
        explanation = self.known()[explained[0]]
        title = model.data(model.index(row))
        self.assertTrue(title.startswith(f"{explanation.predicted} "
                                         f"{explanation.probability:.0%}"), title)
        truth = self.images.domain.class_var.str_val(self.images.Y[row])
        self.assertEqual("(true:" in title, truth != explanation.predicted)

        side = size_bucket(widget.image_size)
        plain = widget.loader.cached(explained[0], side)
        drawn = widget._overlay(explained[0], plain)
        self.assertEqual((drawn.width(), drawn.height()), (plain.width(), plain.height()))
        self.assertGreater(np.abs(qimage_to_array(drawn).astype(int)
                                  - qimage_to_array(plain)).max(), 20)

        widget.view.scrollToBottom()  # the rest are explained when they are shown
        self.wait_heatmaps()
        last = self.known()[widget.paths[-1]]
        self.assertIsInstance(last, Explanation)

        widget.controls.show_heatmaps.click()  # off: plain thumbnails and titles again
        self.assertIs(widget._overlay(explained[0], plain), plain)
        self.assertEqual(model.data(model.index(row)), truth)

    def test_preview_shows_the_heatmap_and_prediction(self):
        widget = self.widget
        widget.show_heatmaps = True
        self.send_signal(widget.Inputs.model, self.model)
        self.send_signal(widget.Inputs.data, self.images)
        view = widget.view
        view.selectionModel().setCurrentIndex(view.model().index(0),
                                              QItemSelectionModel.SelectionFlag.ClearAndSelect)
        QTest.keyClick(view, Qt.Key.Key_Space)
        self.wait_heatmaps()
        explanation = self.known()[widget.paths[0]]
        self.assertIsInstance(explanation, Explanation)
        self.assertIn(f"{explanation.predicted} {explanation.probability:.0%}",
                      view.preview.windowTitle())
        label = view.preview.label
        plain = widget.loader.cached(widget.paths[0], PREVIEW_SIDE)

        def as_shown(image):
            return qimage_to_array(QPixmap.fromImage(image).scaled(
                label.size(), Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation).toImage())
        shown = qimage_to_array(label.pixmap().toImage())
        np.testing.assert_array_equal(shown, as_shown(widget._overlay(widget.paths[0], plain)))
        self.assertGreater(np.abs(shown.astype(int) - as_shown(plain)).max(), 20)

    def test_a_model_that_is_not_ours(self):
        from Orange.classification import MajorityLearner
        widget = self.widget
        self.send_signal(widget.Inputs.data, self.images)
        self.send_signal(widget.Inputs.model, MajorityLearner()(Table("iris")))
        self.assertTrue(widget.Warning.not_our_model.is_shown())
        self.assertIn("is not one of Deep Image's networks",
                      str(widget.Warning.not_our_model))
        self.assertFalse(widget.heatmap_box.isEnabled())
        self.send_signal(widget.Inputs.model, None)
        self.assertFalse(widget.Warning.not_our_model.is_shown())
        self.assertIn("No model", widget.model_label.text())

    def test_unreadable_images_are_remembered_not_retried(self):
        widget = self.widget
        widget.show_heatmaps = True
        broken = os.path.join(self.tmp, "broken.png")
        with open(broken, "wb") as f:
            f.write(b"no")
        table = image_table([broken] + find_images(os.path.join(self.tmp, "train")),
                            self.tmp)
        self.send_signal(widget.Inputs.model, self.model)
        self.send_signal(widget.Inputs.data, table)
        self.wait_heatmaps()
        self.assertEqual(self.known()[broken], Failed("not an image Pillow can read"))
        self.assertFalse(widget.Error.explain_failed.is_shown())


def test_wanted_paths_newest_first_and_bounded():
    calls = []
    cache = HeatmapCache(on_wanted=lambda: calls.append(1))
    for path in ["a", "b", "c", "b"]:
        assert cache.get(path) is None
    assert cache.take_wanted(2) == ["b", "c"]
    assert cache.take_wanted(5) == ["a"]
    assert len(calls) == 4
