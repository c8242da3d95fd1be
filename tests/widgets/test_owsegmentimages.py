"""Segment Images in a real (offscreen) widget: threshold outputs, painting through the
editor, the live preview, training, the segmenter output and input, labels saved with
the workflow, cancel."""
import os
import shutil
import tempfile

import numpy as np
from Orange.widgets.tests.base import WidgetTest
from PIL import Image

from orangecontrib.deepimage.core.segment.classifier import PixelClassifier
from orangecontrib.deepimage.core.segment.synthetic import make_cells
from orangecontrib.deepimage.data import image_paths, image_table
from orangecontrib.deepimage.widgets.owsegmentimages import CLASSIFIER, OWSegmentImages


class TestOWSegmentImages(WidgetTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.truths = []
        for i in range(3):
            cell = make_cells((96, 96), count=8, gradient=0.0, touching=0.0, seed=10 + i)
            Image.fromarray(cell.image).save(os.path.join(cls.tmp, f"c{i}.png"))
            cls.truths.append(cell.labels)
        cls.data = image_table([os.path.join(cls.tmp, f"c{i}.png") for i in range(3)],
                               cls.tmp)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        self.widget = self.create_widget(OWSegmentImages)

    def wait_preview(self, timeout=30000):
        preview = self.widget.preview
        preview.run_now()
        self.process_events(lambda: preview.task is None, timeout=timeout)

    def paint_truth(self, image: int, step: int = 6):
        """Scribbles from the truth, painted as strokes through the editor: a stroke
        along each row of background and of cells, every ``step`` rows."""
        editor, truth = self.widget.editor, self.truths[image] > 0
        editor.show_image(f"c{image}.png")
        editor.canvas.brush_size = 1
        for value, where in ((1, ~truth), (2, truth)):
            editor.select_class(value)
            for y in range(0, 96, step):
                for x in np.flatnonzero(where[y]):
                    editor.canvas.stamp([(x, y)])
        editor.canvas.labels_changed.emit()  # one stroke's end

    def test_threshold_outputs(self):
        self.send_signal(self.widget.Inputs.data, self.data)
        objects = self.get_output(self.widget.Outputs.objects, wait=20000)
        images = self.get_output(self.widget.Outputs.images)
        expected = sum(t.max() for t in self.truths)
        self.assertLessEqual(abs(len(objects) - expected), 2)
        self.assertEqual(images.get_column("objects").sum(), len(objects))
        self.assertTrue(all(os.path.isfile(p) for p in image_paths(objects)))
        self.assertIsNone(self.get_output(self.widget.Outputs.segmenter))
        self.assertIn(f"{len(objects)} objects", self.widget.summary_label.text())
        # the editor previews the threshold on the image on screen, not paintable
        self.wait_preview()
        shown = self.widget.editor.canvas.prediction
        self.assertGreater(((shown == 2) == (self.truths[0] > 0)).mean(), 0.9)
        self.assertFalse(self.widget.editor.canvas.editable)
        # an option changes the output
        self.widget.controls.limit_diameter.setChecked(True)
        self.widget.min_diameter, self.widget.max_diameter = 40, 80
        self.widget.commit.now()
        fewer = self.get_output(self.widget.Outputs.objects, wait=20000)
        # the cells are 14 to 24 px across: only a few clumps are left, if any
        self.assertLess(0 if fewer is None else len(fewer), len(objects) / 2)

    def test_paint_train_preview_and_outputs(self):
        widget = self.widget
        self.send_signal(widget.Inputs.data, self.data)
        widget.controls.method.buttons[CLASSIFIER].click()
        self.assertTrue(widget.editor.canvas.editable)
        self.assertTrue(widget.Information.paint.is_shown())
        self.paint_truth(0)
        packed = widget.settingsHandler.pack_data(widget)
        self.assertIn("c0.png", packed["labels"])  # stored with the workflow
        self.assertFalse(widget.Information.paint.is_shown())
        self.wait_preview()
        prediction = widget.editor.canvas.prediction
        self.assertGreater(((prediction == 2) == (self.truths[0] > 0)).mean(), 0.95)
        fits = widget.preview_models.fits
        self.assertEqual(fits, 1)
        widget.editor.show_image("c1.png")  # another image: predicted, not trained again
        self.wait_preview()
        self.assertEqual(widget.preview_models.fits, fits)
        prediction = widget.editor.canvas.prediction
        self.assertGreater(((prediction == 2) == (self.truths[1] > 0)).mean(), 0.9)
        widget.commit.now()
        objects = self.get_output(widget.Outputs.objects, wait=30000)
        segmenter = self.get_output(widget.Outputs.segmenter)
        self.assertIsInstance(segmenter, PixelClassifier)
        self.assertEqual(widget.trained.trainings, 1)  # the full forest, once
        expected = sum(t.max() for t in self.truths)
        self.assertLessEqual(abs(len(objects) - expected), 3)

        # the labels are saved with the workflow and come back
        settings = self.widget.settingsHandler.pack_data(widget)
        again = self.create_widget(OWSegmentImages, stored_settings=settings)
        self.send_signal(again.Inputs.data, self.data, widget=again)
        self.assertEqual(again.method, CLASSIFIER)
        self.assertEqual(list(again.editor.labels), ["c0.png"])
        self.assertTrue(np.array_equal(again.editor.labels["c0.png"],
                                       widget.editor.labels["c0.png"]))
        self.assertIsNotNone(self.get_output(again.Outputs.objects, widget=again,
                                             wait=30000))

        # the trained segmenter applied by another widget, which cannot paint
        other = self.create_widget(OWSegmentImages)
        self.send_signal(other.Inputs.segmenter, segmenter, widget=other)
        self.send_signal(other.Inputs.data, self.data, widget=other)
        self.assertEqual(other.method, CLASSIFIER)
        self.assertTrue(other.Information.input_segmenter.is_shown())
        self.assertFalse(other.editor.canvas.editable)
        applied = self.get_output(other.Outputs.objects, widget=other, wait=30000)
        self.assertEqual(len(applied), len(objects))

    def test_no_labels_no_output_and_cancel(self):
        widget = self.widget
        widget.method = CLASSIFIER
        self.send_signal(widget.Inputs.data, self.data)
        self.assertIsNone(self.get_output(widget.Outputs.objects))
        self.assertIn("Paint labels", widget.summary_label.text())
        widget.method = 0
        widget.commit.now()
        self.assertIsNotNone(widget.task)
        widget.cancel()
        self.assertIsNone(widget.task)
        self.assertEqual(widget.summary_label.text(), "Cancelled.")
        self.send_signal(widget.Inputs.data, None)
        self.assertIsNone(self.get_output(widget.Outputs.objects))

    def test_data_without_images(self):
        from Orange.data import Table
        self.send_signal(self.widget.Inputs.data, Table("iris"))
        self.assertTrue(self.widget.Error.no_image_column.is_shown())
        self.assertIsNone(self.get_output(self.widget.Outputs.objects))

    def test_load_masks_from_a_folder_trains_the_classifier(self):
        widget = self.widget
        self.send_signal(widget.Inputs.data, self.data)
        folder = tempfile.mkdtemp()
        try:
            Image.fromarray(self.truths[1].astype(np.uint16)).save(
                os.path.join(folder, "c1.png"))
            Image.fromarray(np.ones((10, 10), np.uint8)).save(os.path.join(folder, "c2.png"))
            widget.load_labels(folder, "masks")
        finally:
            shutil.rmtree(folder)
        self.assertEqual(widget.method, CLASSIFIER)
        self.assertEqual(list(widget.editor.labels), ["c1.png"])
        self.assertIn("c2.png: 10x10 pixels", str(widget.Warning.label_files))
        self.assertTrue(widget.Warning.label_files.is_shown())
        widget.commit.now()
        objects = self.get_output(widget.Outputs.objects, wait=30000)
        self.assertLessEqual(abs(len(objects) - sum(t.max() for t in self.truths)), 3)

    def test_without_crops(self):
        self.widget.controls.write_crops.setChecked(False)
        self.send_signal(self.widget.Inputs.data, self.data)
        objects = self.get_output(self.widget.Outputs.objects, wait=20000)
        self.assertNotIn("image", objects.domain)
