"""Label Images: label with buttons and keys, views, undo, outputs, the model in Orange's
evaluation and Predictions, labels saved with the workflow and restored by image."""
import os
import shutil
import tempfile
import threading
import time

import numpy as np
from AnyQt.QtCore import Qt
from AnyQt.QtTest import QTest
from AnyQt.QtWidgets import QApplication
from Orange.evaluation import CA
from Orange.evaluation import TestOnTestData as OnTestData
from Orange.widgets.evaluate.owpredictions import OWPredictions
from Orange.widgets.tests.base import WidgetTest

from orangecontrib.deepimage.labelling_model import QuickImageLearner, QuickImageModel
from orangecontrib.deepimage.widgets.owlabelimages import ALL, CHECK, NEXT, OWLabelImages
from orangecontrib.deepimage.widgets.utils.labelgrid import RowRole

from labelling_data import digit_folder, embedded_table, true_classes

DIGITS = [str(d) for d in range(10)]


class TestOWLabelImages(WidgetTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.folder = digit_folder(os.path.join(cls.tmp, "digits"), per_class=5)
        cls.table = embedded_table(cls.folder)  # no class: the labels are the user's
        cls.truth = true_classes(cls.table)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        self.widget = self.create_widget(OWLabelImages)
        self.widget.resize(900, 600)
        self.widget.show()

    def settle(self, widget=None, timeout=60):
        """Until the input is prepared and the model refitted after the last change."""
        widget = widget or self.widget
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            QApplication.processEvents()
            if widget.task is None and not widget._refit_timer.isActive():
                return
            if widget.task is not None:
                self.wait_until_finished(widget=widget, timeout=int(timeout * 1000))
            time.sleep(0.02)
        self.fail("Label Images did not settle")

    def send(self, data, widget=None):
        widget = widget or self.widget
        self.send_signal(widget.Inputs.data, data, widget=widget)
        self.settle(widget)

    def select(self, rows, widget=None):
        """Select the thumbnails of these data rows."""
        widget = widget or self.widget
        grid = widget.grid
        items = [i for i in range(grid.rowCount()) if grid.row_of(i) in set(rows)]
        widget._select_items(items)
        return items

    def label_with_keys(self, rows_by_class):
        for class_name, rows in rows_by_class.items():
            self.select(rows)
            key = Qt.Key(int(Qt.Key.Key_0) + int(class_name))  # digits: a key is its class
            QTest.keyClick(self.widget.view_widget, key)

    def test_label_with_keys_and_buttons_and_see_predictions(self):
        widget = self.widget
        self.send(self.table)
        self.assertEqual(widget.grid.rowCount(), 50)
        self.assertIsNone(self.get_output(widget.Outputs.labelled))
        self.assertIsNotNone(self.get_output(widget.Outputs.images))
        by_class = {d: [r for r, t in enumerate(self.truth) if t == d][:3] for d in "0123"}
        # no classes yet: a digit key makes its class (as in lesson 5)
        self.label_with_keys({d: rows for d, rows in by_class.items() if d != "3"})
        self.assertEqual(widget.session.classes, ["0", "1", "2"])
        widget.add_class("3")
        self.select(by_class["3"])
        widget.class_buttons.buttons[3].click()  # the button does what key 3 does
        self.settle()
        labels = widget.session.row_labels()
        for digit, rows in by_class.items():
            self.assertEqual([labels[r] for r in rows], [digit] * 3)
        self.assertIn("12 labelled in 4 classes; estimated accuracy",
                      widget.status_label.text())
        self.assertEqual(widget.class_buttons.buttons[0].text(), "0 (3)")
        # every thumbnail shows a prediction; labelled ones their label
        grid = widget.grid
        first_unlabelled = next(r for r in range(50) if labels[r] is None)
        title = grid.data(grid.index(first_unlabelled))
        self.assertRegex(title, r"^[0-3]\? \d+%$")
        self.assertEqual(grid.data(grid.index(by_class["2"][0])).split(" ")[0], "2")
        # outputs
        labelled = self.get_output(widget.Outputs.labelled)
        self.assertEqual(len(labelled), 12)
        self.assertEqual(labelled.domain.class_var.name, "label")
        self.assertEqual(sorted(labelled.domain.class_var.str_val(v) for v in labelled.Y),
                         sorted("0123" * 3))
        images = self.get_output(widget.Outputs.images)
        self.assertEqual(len(images), 50)
        self.assertFalse(np.isnan(images.get_column("confidence")).any())
        model = self.get_output(widget.Outputs.model)
        self.assertIsInstance(model, QuickImageModel)
        predicted = model(self.table)
        self.assertEqual(predicted.shape, (50,))

    def test_refits_run_in_their_own_process_which_ends_with_the_widget(self):
        widget = self.widget
        self.send(self.table)
        self.assertTrue(widget.refitter.in_process, widget.refitter.fallback)
        self.assertEqual(len(widget.refresh.suggestions), 50)  # the process's answer
        process = widget.refitter._process
        self.assertTrue(process.is_alive())
        widget.onDeleteWidget()  # returns at once; a background thread reaps it
        for stopper in [t for t in threading.enumerate() if t.name == "refit-stop"]:
            stopper.join(30)
        self.assertEqual(process.exitcode, 0)

    def test_keys_zero_and_undo_and_class_changes(self):
        widget = self.widget
        self.send(self.table)
        widget.add_class("odd")
        widget.add_class("even")
        self.assertEqual(widget.class_buttons.buttons[1].text(), "2: even (0)")
        self.select([0, 1, 2])
        QTest.keyClick(widget.view_widget, Qt.Key.Key_1)
        self.select([1])
        QTest.keyClick(widget.view_widget, Qt.Key.Key_0)  # unlabel
        self.assertEqual(widget.session.row_labels()[:3], ["odd", None, "odd"])
        self.assertFalse(widget.add_class("odd"))
        self.assertTrue(widget.Warning.refused.is_shown())
        self.assertTrue(widget.rename_class("odd", "odd numbers"))
        self.assertTrue(widget.merge_classes(["even"], "odd numbers"))
        self.assertEqual(widget.session.classes, ["odd numbers"])
        QTest.keyClick(widget, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
        self.assertEqual(widget.session.classes, ["odd numbers", "even"])
        for _ in range(3):  # the rename, the unlabelling, the labelling
            widget.undo()
        self.assertEqual(widget.session.row_labels()[:3], [None] * 3)
        self.assertEqual(widget.session.classes, ["odd", "even"])
        self.assertTrue(widget.undo_button.isEnabled())
        widget.undo()
        widget.undo()
        self.assertEqual(widget.session.classes, [])
        self.assertFalse(widget.undo_button.isEnabled())
        self.assertFalse(widget.undo())

    def test_next_to_label_and_check_my_labels(self):
        widget = self.widget
        self.send(self.table)
        widget.view = NEXT
        widget._view_changed()
        self.settle()
        suggested = [widget.grid.row_of(i) for i in range(widget.grid.rowCount())]
        self.assertGreaterEqual(len(suggested), 10)
        # label the first ten suggestions as the oracle says (diverse picks: many digits)
        for _ in range(10):
            row = widget.grid.row_of(0)
            widget.label_rows([row], self.truth[row])
        self.settle()
        self.assertGreaterEqual(len(set(widget.session.classes)), 5)
        shown = [widget.grid.row_of(i) for i in range(widget.grid.rowCount())]
        labels = widget.session.row_labels()
        self.assertTrue(shown and all(labels[r] is None for r in shown))
        # a wrong label shows up under "Check my labels" (a 0 labelled as 1)
        for digit in DIGITS:
            widget.label_rows([r for r in range(50) if self.truth[r] == digit], digit)
        wrong = 0
        widget.label_rows([wrong], "1")
        widget.view = CHECK
        widget._view_changed()
        self.settle()
        issues = [widget.grid.row_of(i) for i in range(widget.grid.rowCount())]
        self.assertIn(wrong, issues)
        title = widget.grid.data(widget.grid.index(issues.index(wrong)))
        self.assertRegex(title, r"^1: fits \d+%$")  # its label, and how well it fits

    def test_model_in_predictions_and_test_on_test_data(self):
        widget = self.widget
        data = embedded_table(self.folder, drop_class=False)  # the folders' class too
        self.send(data)
        self.assertTrue(widget.seed_button.isVisible() or not widget.isVisible())
        rows = list(range(0, 50, 2))
        for row in rows:
            widget.label_rows([row], self.truth[row])
        self.settle()
        labelled = self.get_output(widget.Outputs.labelled)
        model = self.get_output(widget.Outputs.model)
        self.assertEqual(labelled.domain.class_var.name, "category")  # as the input's
        rest = data[1::2]
        results = OnTestData()(labelled, rest, [QuickImageLearner()])
        self.assertGreater(CA(results)[0], 0.5)
        predictions = self.create_widget(OWPredictions)
        self.send_signal(predictions.Inputs.data, rest, widget=predictions)
        self.send_signal(predictions.Inputs.predictors, model, widget=predictions)
        self.assertFalse(predictions.Error.active)
        results = self.get_output(predictions.Outputs.evaluation_results,
                                  widget=predictions)
        self.assertGreater(CA(results)[0], 0.5)  # scored against the folders' classes

    def test_start_from_class_column(self):
        widget = self.widget
        self.send(embedded_table(self.folder, drop_class=False))
        self.assertTrue(widget.start_from_class_column())
        self.settle()
        self.assertEqual(widget.session.row_labels(), self.truth)
        self.assertEqual(widget.session.classes, DIGITS)
        self.assertFalse(widget.start_from_class_column())  # once

    def test_settings_round_trip_restores_labels_by_image(self):
        widget = self.widget
        self.send(self.table)
        widget.label_rows([0, 11], "a")
        widget.label_rows([22], "b")
        self.settle()
        settings = self.widget.settingsHandler.pack_data(widget)
        restored = self.create_widget(OWLabelImages, stored_settings=settings)
        shuffled = self.table[::-1]  # other rows, same images
        self.send(shuffled, widget=restored)
        labels = restored.session.row_labels()
        self.assertEqual(labels[49], "a")
        self.assertEqual(labels[38], "a")
        self.assertEqual(labels[27], "b")
        self.assertEqual(sum(label is not None for label in labels), 3)
        # fewer images: the labels of the missing ones are kept, and said so
        self.send(self.table[1:], widget=restored)
        self.assertTrue(restored.Warning.orphans.is_shown())
        self.assertEqual(len(restored.labels["labels"]), 3)

    def test_bad_input(self):
        widget = self.widget
        self.send(self.table[:, self.table.domain.attributes])  # no image column
        self.assertTrue(widget.Error.no_images.is_shown())
        self.send(None)
        self.assertFalse(widget.Error.no_images.is_shown())
        broken = self.table.copy()
        with broken.unlocked(broken.X):
            broken.X[:5] = np.nan
        self.send(broken)
        widget.label_rows([0, 10], "a")
        widget.label_rows([20, 30], "b")
        self.settle()
        self.assertTrue(widget.Information.notes.is_shown())
        self.assertIn("NaN", str(widget.Information.notes))
        self.assertIsNotNone(self.get_output(widget.Outputs.model))
        # another network's embeddings for the same images
        other = self.table.copy()
        with other.unlocked(other.X):
            other.X = other.X * 3 + 1
        self.send(other)
        self.assertTrue(widget.Warning.network.is_shown())
        self.assertEqual(widget.session.row_labels()[10], "a")
        # a saved layout of a newer version is kept, not overwritten
        newer = self.create_widget(OWLabelImages, stored_settings={
            "labels": {"version": 99, "labels": [["x.png", "", "a"]]}})
        self.assertTrue(newer.Error.saved_labels.is_shown())
        self.send(self.table, widget=newer)
        self.assertFalse(newer.label_rows([0], "b"))
        self.assertEqual(newer.labels["version"], 99)
