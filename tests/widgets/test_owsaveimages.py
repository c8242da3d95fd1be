"""Save Images: subfolders by class, formats, never overwriting silently, skipped reasons."""
import os
import shutil
import tempfile

from image_folders import make_class_folders
from Orange.data import Table
from Orange.widgets.tests.base import WidgetTest
from PIL import Image

from orangecontrib.deepimage.imports import run_import
from orangecontrib.deepimage.widgets.owsaveimages import OWSaveImages
from tests_state import State


class TestOWSaveImages(WidgetTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.root = make_class_folders(os.path.join(cls.tmp, "pets"))
        result = run_import(cls.root, State())
        cls.images = result.data
        # the import's good rows plus its skipped files (README.txt, empty.jpg, notes.png)
        cls.with_bad = Table.concatenate([cls.images, result.skipped.transform(cls.images.domain)])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        self.widget = self.create_widget(OWSaveImages)
        self.out = tempfile.mkdtemp(dir=self.tmp)

    def save(self, data=None):
        if data is not None:
            self.send_signal(self.widget.Inputs.data, data)
        self.widget.dirname = self.out
        self.widget.save()
        self.wait_until_finished(timeout=30000)
        return self.widget.report_

    def listing(self):
        return sorted(os.path.relpath(os.path.join(d, f), self.out)
                      for d, _, files in os.walk(self.out) for f in files)

    def test_saves_in_class_subfolders_and_reimports_the_same(self):
        self.send_signal(self.widget.Inputs.data, self.images)
        self.assertIs(self.widget.subfolder_attr, self.images.domain.class_var)
        report = self.save()
        self.assertEqual(len(report.written), 6)
        self.assertEqual(self.listing(), [os.path.join(c, f"{c}{i}.png")
                                          for c in ("cats", "dogs") for i in range(3)])
        self.assertIn("Wrote 6 of 6 images", self.widget.info_label.text())
        self.assertIn("in 2 subfolders", self.widget.info_label.text())
        again = run_import(self.out, State()).data
        self.assertEqual(list(again.domain.class_var.values), ["cats", "dogs"])
        self.assertEqual(len(again), 6)

    def test_no_subfolders_jpg_and_resize(self):
        self.send_signal(self.widget.Inputs.data, self.images)
        self.widget.subfolder_attr = None
        self.widget.file_format = "jpg"
        self.widget.resize, self.widget.max_side = True, 12
        self.save()
        self.assertEqual(len(self.listing()), 6)
        with Image.open(os.path.join(self.out, "cats0.jpg")) as image:
            self.assertEqual((image.format, image.size), ("JPEG", (12, 8)))

    def test_existing_files_are_kept_and_said_so_then_renamed_when_asked(self):
        self.save(self.images)
        before = {f: os.path.getmtime(os.path.join(self.out, f)) for f in self.listing()}
        report = self.save()
        self.assertEqual(len(report.written), 0)
        self.assertTrue(self.widget.Information.kept.is_shown())
        self.assertFalse(self.widget.Warning.skipped.is_shown())
        self.assertEqual(before, {f: os.path.getmtime(os.path.join(self.out, f))
                                  for f in self.listing()})
        self.widget.existing = 1  # save under a new name
        report = self.save()
        self.assertEqual(report.renamed, 6)
        self.assertIn(os.path.join("cats", "cats0-2.png"), self.listing())
        self.assertIn("6 under new names", self.widget.info_label.text())

    def test_unreadable_rows_are_listed_with_reasons(self):
        report = self.save(self.with_bad)
        self.assertEqual(len(report.written), 6)
        self.assertTrue(self.widget.Warning.skipped.is_shown())
        text = self.widget.skipped_view.toPlainText()
        self.assertIn("empty.jpg", text)
        self.assertIn("notes.png", text)
        self.assertIn("README.txt", text)
        self.assertEqual(len(text.splitlines()), 3)

    def test_auto_save_on_new_data_needs_a_folder(self):
        self.widget.auto_save = True
        self.widget._auto_save_changed()
        self.assertTrue(self.widget.Error.no_folder.is_shown())
        self.widget.dirname = self.out
        self.send_signal(self.widget.Inputs.data, self.images[:2])
        self.wait_until_finished(timeout=30000)
        self.assertFalse(self.widget.Error.no_folder.is_shown())
        self.assertEqual(len(self.listing()), 2)

    def test_stop_while_saving_keeps_what_was_written(self):
        many = Table.concatenate([self.images] * 40)  # 240 rows, names repeat: -2, -3...
        self.send_signal(self.widget.Inputs.data, many)
        self.widget.dirname = self.out
        self.widget.save()
        self.assertEqual(self.widget.save_button.text(), "Stop")
        self.widget.save()  # Stop
        self.assertEqual(self.widget.save_button.text(), "Stopping…")
        self.wait_until_finished(timeout=30000)
        report = self.widget.report_
        self.assertTrue(report.cancelled)
        written = len(self.listing())
        self.assertEqual(len(report.written), written)
        self.assertLess(written, 240)
        self.assertIn(f"Cancelled. Wrote {written} of 240 images", self.widget.info_label.text())
        self.assertTrue(self.widget.save_button.text().startswith("Save"))

    def test_no_image_column_and_settings_restore(self):
        self.send_signal(self.widget.Inputs.data, Table("iris"))
        self.assertTrue(self.widget.Error.no_image_column.is_shown())
        self.send_signal(self.widget.Inputs.data, self.images)
        self.assertFalse(self.widget.Error.no_image_column.is_shown())
        self.widget.dirname, self.widget.file_format = self.out, "webp"
        settings = self.widget.settingsHandler.pack_data(self.widget)
        restored = self.create_widget(OWSaveImages, stored_settings=settings)
        self.assertEqual((restored.dirname, restored.file_format), (self.out, "webp"))
        self.widget.send_report()
