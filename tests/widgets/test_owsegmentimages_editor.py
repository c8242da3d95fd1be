"""Segment Images, painted with real mouse and key events (QTest): strokes undone and
redone (Ctrl+Z, Ctrl+Shift+Z, the buttons), one stroke a step, per image; the live
preview drawn for the part in view first; a classifier saved and loaded in another
widget, bad files refused."""
import os
import shutil
import tempfile
import unittest

import numpy as np
from AnyQt.QtCore import Qt
from AnyQt.QtGui import QImage
from AnyQt.QtTest import QTest
from AnyQt.QtWidgets import QApplication
from Orange.widgets.tests.base import WidgetTest
from PIL import Image

from orangecontrib.deepimage.core.segment.classifier import PixelClassifier
from orangecontrib.deepimage.core.segment.classifier_file import write_classifier_file
from orangecontrib.deepimage.core.segment.synthetic import make_cells, sparse_labels
from orangecontrib.deepimage.data import image_table
from orangecontrib.deepimage.widgets.owsegmentimages import CLASSIFIER, OWSegmentImages
from orangecontrib.deepimage.widgets.utils.labeleditor import MAX_CLASSES
from orangecontrib.deepimage.widgets.utils.labelhistory import History


class TestHistory(unittest.TestCase):
    def test_changes_kept_as_rectangles(self):
        labels, history = np.zeros((50, 40), np.uint8), History()
        before = labels.copy()
        labels[10:12, 5:9] = 2
        self.assertTrue(history.record(before, labels))
        self.assertEqual(history.done[0].before.shape, (2, 4))
        self.assertFalse(history.record(labels.copy(), labels))  # nothing changed
        self.assertTrue(history.undo(labels))
        self.assertFalse(labels.any())
        self.assertTrue(history.redo(labels))
        self.assertEqual(labels.sum(), 16)
        self.assertFalse(history.redo(labels))
        # the image changed size since: its old strokes are not painted on it
        self.assertFalse(history.undo(np.zeros((8, 8), np.uint8)))


class TestEditorEvents(WidgetTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.cells = [make_cells((120, 120), count=12, gradient=0.0, touching=0.0, seed=20 + i)
                     for i in range(2)]
        cls.paths = []
        for i, cell in enumerate(cls.cells):
            cls.paths.append(os.path.join(cls.tmp, f"e{i}.png"))
            Image.fromarray(cell.image).save(cls.paths[-1])
        cls.data = image_table(cls.paths, cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        self.widget = self.create_widget(OWSegmentImages)
        self.send_signal(self.widget.Inputs.data, self.data)
        self.widget.controls.method.buttons[CLASSIFIER].click()
        self.widget.show()
        self.widget.activateWindow()
        QApplication.setActiveWindow(self.widget)
        self.process_events()
        self.canvas = self.widget.editor.canvas

    def tearDown(self):
        self.widget.hide()
        super().tearDown()

    def test_many_kinds_of_object_keep_the_widget_narrow(self):
        """The class buttons scroll sideways instead of widening the widget."""
        editor = self.widget.editor
        while editor.add_button.isEnabled():
            editor.add_button.click()
        self.assertEqual(len(editor.class_buttons.buttons()), MAX_CLASSES + 1)  # + eraser
        self.process_events()
        self.check_minimum_size(self.widget)
        strip = editor.class_strip
        self.assertGreaterEqual(strip.height(), editor.class_box.sizeHint().height())

    def drag(self, points, button=Qt.MouseButton.LeftButton):
        """A stroke with the mouse through image pixels ``points`` (x, y)."""
        port = self.canvas.viewport()
        at = [self.canvas.mapFromScene(x + 0.5, y + 0.5) for x, y in points]
        QTest.mousePress(port, button, Qt.KeyboardModifier.NoModifier, at[0])
        for point in at[1:]:
            QTest.mouseMove(port, point)
        QTest.mouseRelease(port, button, Qt.KeyboardModifier.NoModifier, at[-1])

    def assert_overlay_shows_labels(self):
        image = self.canvas._labels_item.pixmap().toImage().convertToFormat(
            QImage.Format.Format_RGBA8888)
        height, width = self.canvas.labels.shape
        shown = np.frombuffer(image.constBits().asstring(height * width * 4)
                              if hasattr(image.constBits(), "asstring")
                              else image.constBits(), np.uint8, height * width * 4)
        expected = self.canvas._label_colours[self.canvas.labels]
        self.assertTrue(np.array_equal(shown.reshape(height, width, 4), expected))

    def key(self, keys):
        QTest.keyClick(self.canvas.viewport(), Qt.Key.Key_Z, keys)

    def test_undo_redo_strokes_with_keys_and_buttons(self):
        editor, canvas = self.widget.editor, self.canvas
        self.assertFalse(editor.undo_button.isEnabled())
        editor.select_class(2)
        self.drag([(20, 20), (60, 20)])
        first = canvas.labels.copy()
        self.assertTrue((first == 2).any())
        self.assert_overlay_shows_labels()  # drawn a dab at a time, as a whole
        editor.select_class(1)
        self.drag([(20, 80), (90, 90)])
        both = canvas.labels.copy()
        self.assertTrue((both == 1).any())
        self.assertTrue(editor.undo_button.isEnabled())
        ctrl, shift = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier
        self.key(ctrl)  # Ctrl+Z: the second stroke goes, the first stays
        self.assertTrue(np.array_equal(canvas.labels, first))
        self.assertTrue(np.array_equal(editor.labels["e0.png"], first))  # what trains
        self.assertTrue(editor.redo_button.isEnabled())
        self.key(ctrl | shift)  # Ctrl+Shift+Z: back
        self.assertTrue(np.array_equal(canvas.labels, both))
        editor.undo_button.click()
        editor.undo_button.click()
        self.assertFalse(canvas.labels.any())
        self.assertNotIn("e0.png", editor.labels)
        packed = self.widget.settingsHandler.pack_data(self.widget)
        self.assertNotIn("e0.png", packed["labels"])  # the stored settings follow
        editor.redo_button.click()
        self.assertTrue(np.array_equal(canvas.labels, first))
        # another image has its own history; coming back, this one's is there
        editor.show_image("e1.png")
        self.assertFalse(editor.undo_button.isEnabled())
        editor.select_class(2)
        self.drag([(5, 5), (30, 5)])
        editor.show_image("e0.png")
        self.key(ctrl)
        self.assertFalse(canvas.labels.any())
        self.assertIn("e1.png", editor.labels)  # the other image's stroke is kept
        # clearing is a step too, undone even after leaving the image and coming back
        editor.show_image("e1.png")
        self.widget.clear_current()
        self.assertNotIn("e1.png", editor.labels)
        editor.show_image("e0.png")
        editor.show_image("e1.png")
        self.key(ctrl)
        self.assertIn("e1.png", editor.labels)
        self.assertTrue((canvas.labels == 2).any())

    def test_view_predicted_first(self):
        widget, canvas, editor = self.widget, self.canvas, self.widget.editor
        editor.set_labels({"e0.png": sparse_labels(self.cells[0].labels, 0.03)})
        canvas.zoom(4)
        canvas.centerOn(30, 30)
        widget._request_preview()  # as a stroke asks, with the view now on screen
        top, left, bottom, right, step = canvas.visible_region()
        shown = []
        widget.preview.ready.connect(lambda key, result: shown.append(result))
        widget.preview.run_now()
        self.process_events(lambda: widget.preview.task is None, timeout=30000)
        self.assertLess((bottom - top) * (right - left), 120 * 120)
        self.assertEqual(step, 1)
        self.assertEqual([(r.top, r.left, r.final) for r in shown],
                         [(top, left, False), (0, 0, True)])
        self.assertEqual(shown[0].class_map.shape, (bottom - top, right - left))
        truth = self.cells[0].labels > 0
        self.assertGreater(((canvas.prediction == 2) == truth).mean(), 0.95)

    def test_save_load_classifier(self):
        widget = self.widget
        self.assertFalse(widget.file_box.save_button.isEnabled())
        widget.editor.set_labels({"e0.png": sparse_labels(self.cells[0].labels, 0.03)})
        widget._on_labels_changed("e0.png")
        widget.commit.now()
        objects = self.get_output(widget.Outputs.objects, wait=30000)
        self.assertTrue(widget.file_box.save_button.isEnabled())
        path = os.path.join(self.tmp, "saved.skops")
        self.assertTrue(widget.file_box.save(path))

        other = self.create_widget(OWSegmentImages)
        self.send_signal(other.Inputs.data, self.data, widget=other)
        self.assertTrue(other.file_box.load(path))
        self.assertEqual(other.method, CLASSIFIER)
        self.assertFalse(other.editor.canvas.editable)
        self.assertTrue(other.Information.loaded_segmenter.is_shown())
        applied = self.get_output(other.Outputs.objects, widget=other, wait=30000)
        self.assertEqual(len(applied), len(objects))
        # stored with the workflow: a new widget loads the file again
        settings = other.settingsHandler.pack_data(other)
        again = self.create_widget(OWSegmentImages, stored_settings=settings)
        self.assertIsInstance(again.file_box.classifier, PixelClassifier)
        other.file_box.forget()
        self.assertTrue(other.editor.canvas.editable)
        self.assertEqual(other.classifier_file, "")

    def test_files_not_ours_refused(self):
        widget = self.widget
        text = os.path.join(self.tmp, "notes.skops")
        with open(text, "w") as f:
            f.write("not a classifier")
        self.assertFalse(widget.file_box.load(text))
        self.assertIn("not a pixel classifier file", str(widget.Error.classifier_file))
        self.assertIsNone(widget.file_box.classifier)
        self.assertTrue(widget.editor.canvas.editable)
        trained = PixelClassifier(n_estimators=2).fit(
            [self.cells[0].image], [sparse_labels(self.cells[0].labels, 0.03)])
        newer = os.path.join(self.tmp, "newer.skops")
        write_classifier_file({"version": 99, "features": "filters", "channels": 1,
                               "classes": [1, 2], "class_names": ["b", "o"],
                               "forest": trained.forest, "projection": None}, newer)
        self.assertFalse(widget.file_box.load(newer))
        self.assertIn("version 99", str(widget.Error.classifier_file))
        self.assertEqual(widget.classifier_file, "")

    def test_painted_labels_survive_new_data(self):
        """Strokes not yet saved with the workflow stay when the input is sent again."""
        widget, editor = self.widget, self.widget.editor
        editor.select_class(2)
        self.drag([(20, 20), (60, 20)])
        painted = editor.labels["e0.png"].copy()
        self.assertTrue((painted == 2).any())
        self.send_signal(widget.Inputs.data, self.data)  # the same data again
        self.assertTrue(np.array_equal(editor.labels["e0.png"], painted))
        self.assertTrue(np.array_equal(self.canvas.labels, painted))
        self.assertFalse(widget._unsaved)
        editor.select_class(1)
        self.drag([(20, 80), (90, 90)])  # painted on top, then other data comes
        both = editor.labels["e0.png"].copy()
        self.send_signal(widget.Inputs.data, self.data[1:])
        self.assertNotIn("e0.png", editor.labels)
        self.send_signal(widget.Inputs.data, self.data)  # the first data: labels back
        self.assertTrue(np.array_equal(editor.labels["e0.png"], both))
        self.assertTrue((both == 1).any())
        self.assertFalse(widget._unsaved)
