"""Segment Images' label editor: painting, erasing, switching images, the stored labels."""
import numpy as np
from AnyQt.QtCore import QEvent, QPointF, Qt
from AnyQt.QtGui import QMouseEvent
from AnyQt.QtWidgets import QApplication
from AnyQt.QtTest import QTest
from Orange.widgets.tests.base import GuiTest

from orangecontrib.deepimage.seglabels import decode_labels, encode_labels, masks_to_labels
from orangecontrib.deepimage.widgets.utils.labeleditor import ERASER, LabelEditor


def test_labels_round_trip_compactly():
    labels = np.zeros((512, 512), np.uint8)
    labels[100:110, 50:300] = 1
    labels[200:205, 10:400] = 3
    text = encode_labels(labels)
    assert len(text) < 1000  # scribbles on a 512 x 512 image: well under a kilobyte
    assert np.array_equal(decode_labels(text), labels)
    assert masks_to_labels(np.array([[0, 4], [7, 0]])).tolist() == [[1, 2], [2, 1]]


class TestLabelEditor(GuiTest):
    def setUp(self):
        self.images = {"a": np.full((40, 60, 3), 90, np.uint8),
                       "b": np.full((30, 30, 3), 200, np.uint8)}
        self.editor = LabelEditor(lambda key: self.images[key])
        self.editor.resize(600, 400)
        self.changed = []
        self.editor.labels_changed.connect(self.changed.append)
        self.editor.set_images(["a", "b"], ["a.png", "b.png"])

    def tearDown(self):
        self.editor.deleteLater()

    def test_paints_a_stroke_with_the_chosen_class_and_erases(self):
        editor = self.editor
        self.assertEqual(editor.current_key, "a")
        editor.select_class(2)
        editor.canvas.brush_size = 3
        editor.canvas.paint_stroke([(5, 5), (25, 5)])
        labels = editor.labels["a"]
        self.assertEqual(labels.shape, (40, 60))
        self.assertTrue((labels[5, 5:26] == 2).all())  # the whole segment, not only its ends
        self.assertEqual(labels[20, 40], 0)
        self.assertEqual(self.changed, ["a"])
        editor.select_class(ERASER)
        editor.canvas.paint_stroke([(5, 5), (25, 5)])
        self.assertNotIn("a", editor.labels)  # nothing left: not a labelled image

    def test_switching_images_keeps_each_ones_labels(self):
        editor = self.editor
        editor.select_class(1)
        editor.canvas.paint_stroke([(10, 10)])
        editor.show_image("b")
        self.assertEqual(editor.current_key, "b")
        self.assertEqual(editor.canvas.labels.shape, (30, 30))
        self.assertFalse(editor.canvas.labels.any())
        editor.show_image("a")
        self.assertEqual(editor.canvas.labels[10, 10], 1)
        self.assertTrue(editor.image_list.item(0).font().bold())
        self.assertFalse(editor.image_list.item(1).font().bold())

    def test_mouse_paints_in_image_pixels(self):
        editor = self.editor
        editor.show()
        editor.select_class(2)
        canvas = editor.canvas
        start = canvas.mapFromScene(10, 20)
        end = canvas.mapFromScene(30, 20)
        QTest.mousePress(canvas.viewport(), Qt.MouseButton.LeftButton, pos=start)
        # a move with the button held (QTest.mouseMove sends no buttons under Qt 5)
        left = Qt.MouseButton.LeftButton
        move = QMouseEvent(QEvent.Type.MouseMove, QPointF(end), left, left,
                           Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(canvas.viewport(), move)
        QTest.mouseRelease(canvas.viewport(), Qt.MouseButton.LeftButton, pos=end)
        self.assertEqual(editor.labels["a"][20, 20], 2)
        self.assertEqual(self.changed, ["a"])

    def test_prediction_is_shown_only_for_its_image(self):
        editor = self.editor
        prediction = np.ones((40, 60), np.uint8)
        prediction[:10] = 2
        editor.set_prediction("b", prediction)
        self.assertFalse(editor.canvas.has_prediction())
        editor.set_prediction("a", prediction)
        self.assertTrue(editor.canvas.has_prediction())
        editor.preview_box.setChecked(False)
        self.assertFalse(editor.canvas.has_prediction())

    def test_classes_and_not_editable(self):
        editor = self.editor
        editor.add_class()
        self.assertEqual(editor.class_names, ["Background", "Object", "Kind 2"])
        self.assertIsNotNone(editor.class_buttons.button(3))
        # one button per class and the eraser, none left over from before
        from AnyQt.QtWidgets import QToolButton
        self.assertEqual(len(editor.class_box.findChildren(QToolButton)), 4)
        editor.set_editable(False)
        editor.canvas.editable = False
        QTest.mouseClick(editor.canvas.viewport(), Qt.MouseButton.LeftButton,
                         pos=editor.canvas.mapFromScene(5, 5))
        self.assertNotIn("a", editor.labels)
