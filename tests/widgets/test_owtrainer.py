"""Trainer widget, offscreen: real SqueezeNet at 32 px, real Orange widgets around it."""
import logging
import shutil
import tempfile
import threading
import time
from unittest import mock

import numpy as np
from Orange.classification import LogisticRegressionLearner
from Orange.data import ContinuousVariable
from Orange.widgets.evaluate.owconfusionmatrix import OWConfusionMatrix
from Orange.widgets.evaluate.owtestandscore import OWTestAndScore
from Orange.widgets.tests.base import WidgetTest

from orangecontrib.deepimage.core.train import MIN_IMAGE_SIZE, preset
from orangecontrib.deepimage.data import image_paths
from orangecontrib.deepimage.learner import ImageClassifierLearner, ImageClassifierModel
from orangecontrib.deepimage.widgets import owtrainer
from orangecontrib.deepimage.widgets.owimageembedder import OWImageEmbedder
from orangecontrib.deepimage.widgets.owimageviewer import OWImageViewer
from orangecontrib.deepimage.widgets.owimportimages import OWImportImages
from orangecontrib.deepimage.widgets.owtrainer import OWTrainer
from trainer_images import colour_table, make_colour_folders

TIMEOUT = 120000  # ms; a few seconds each here, but the CI machine may be busy


def rename(widget, name: str) -> None:
    """Type a name into the Trainer's Name field and press Enter, as a user would."""
    widget.name_line_edit.setText(name)
    widget.name_line_edit.textEdited.emit(name)
    widget.name_line_edit.returnPressed.emit()


class TestOWTrainer(WidgetTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.folder = tempfile.mkdtemp(prefix="trainer-widget-")
        cls.table = colour_table(cls.folder, per_class=6)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        # Apply Automatically on, so that a changed setting goes out at once (it is off
        # for new widgets: test_apply_automatically_is_off_for_new_widgets)
        self.widget = self.create_widget(OWTrainer, stored_settings={"auto_apply": True,
                                                                     "__version__": 2})

    def small(self, widget=None, epochs=2, mode="scratch"):
        """A quick configuration: SqueezeNet at 32 px, a few epochs."""
        widget = widget or self.widget
        widget.set_network("squeezenet", mode)
        widget.lower_size, widget.image_size = True, 32
        widget.size_spin.setEnabled(True)
        widget.controls.epochs.setValue(epochs)
        widget.controls.batch_size.setValue(8)
        widget.commit.now()

    def test_learner_is_output_without_data(self):
        learner = self.get_output(self.widget.Outputs.learner)
        self.assertIsInstance(learner, ImageClassifierLearner)
        self.assertIsNone(self.get_output(self.widget.Outputs.model))
        config = learner.config()
        expected = preset("squeezenet", "fine-tune")
        self.assertEqual((config.model, config.mode, config.epochs, config.batch_size,
                          config.learning_rate, config.image_size),
                         ("squeezenet", "fine-tune", expected.epochs, expected.batch_size,
                          expected.learning_rate, None))
        self.assertEqual(self.widget.info_label.text(), "No data.")

    def test_settings_change_the_learner(self):
        w = self.widget
        w.controls.epochs.setValue(7)
        w.controls.batch_size.setValue(5)
        w.controls.learning_rate.setValue(0.0123)
        w.controls.lower_size.setChecked(True)
        w.controls.image_size.setValue(40)
        self.assertTrue(self.get_output(w.Outputs.learner).config().flip)
        w.controls.flip.setChecked(False)
        w.device_combo.setCurrentIndex(1)
        w.device_combo.activated.emit(1)
        config = self.get_output(w.Outputs.learner).config()
        self.assertEqual((config.epochs, config.batch_size, config.learning_rate,
                          config.image_size, config.device, config.flip),
                         (7, 5, 0.0123, 40, "cpu", False))
        # the image size cannot go below what the network accepts
        w.controls.image_size.setValue(1)
        self.assertEqual(self.get_output(w.Outputs.learner).config().image_size,
                         MIN_IMAGE_SIZE["squeezenet"])
        w.controls.lower_size.setChecked(False)
        self.assertIsNone(self.get_output(w.Outputs.learner).config().image_size)

    def test_mode_and_network_reset_to_the_preset(self):
        w = self.widget
        w.controls.learning_rate.setValue(0.5)
        w.mode_buttons[2].click()  # from scratch
        config = self.get_output(w.Outputs.learner).config()
        scratch = preset("squeezenet", "scratch")
        self.assertEqual((config.mode, config.learning_rate, config.epochs),
                         ("scratch", scratch.learning_rate, scratch.epochs))
        w.controls.learning_rate.setValue(0.5)
        w.reset_button.click()
        self.assertEqual(w.learning_rate, scratch.learning_rate)
        # "last layer only" trains the last layer alone: the rate is the head's
        w.mode_buttons[0].click()
        config = self.get_output(w.Outputs.learner).config()
        self.assertEqual(config.mode, "last-layer")
        self.assertEqual(w.learning_rate, preset("squeezenet", "last-layer").head_learning_rate)
        w.controls.learning_rate.setValue(0.002)
        self.assertEqual(self.get_output(w.Outputs.learner).config().head_learning_rate, 0.002)

    def test_networks_without_weights_only_from_scratch(self):
        """VGG and Inception weights are not here (tests run offline)."""
        w = self.widget
        items = {w.network_items.item(i).data(256): w.network_items.item(i)
                 for i in range(w.network_items.rowCount())}
        self.assertTrue(items["squeezenet"].isEnabled())
        self.assertFalse(items["vgg16"].isEnabled())
        self.assertIn("vgg16-397923af.pth", items["vgg16"].toolTip())
        w.mode_buttons[2].click()
        items = {w.network_items.item(i).data(256): w.network_items.item(i)
                 for i in range(w.network_items.rowCount())}
        self.assertTrue(items["vgg16"].isEnabled())
        w.set_network("vgg16")
        config = self.get_output(w.Outputs.learner).config()
        self.assertEqual((config.model, config.learning_rate),
                         ("vgg16", preset("vgg16", "scratch").learning_rate))
        self.assertEqual(w.size_spin.maximum(), 224)
        # back to fine-tuning: VGG cannot start from pretrained weights, and says why
        w.mode_buttons[1].click()
        self.assertTrue(w.Error.weights.is_shown())
        self.assertIsNone(self.get_output(w.Outputs.learner))

    def test_the_recipes_options_and_logistic_regression_beside_the_curves(self):
        w = self.create_widget(OWTrainer, stored_settings={"auto_apply": True,
                                                           "__version__": 3})
        config = self.get_output(w.Outputs.learner, widget=w).config()
        self.assertEqual((config.flip, config.tta, config.time_budget), (False, 5, None))
        w.controls.use_time_budget.setChecked(True)
        w.controls.time_budget.setValue(3)
        self.assertEqual(self.get_output(w.Outputs.learner, widget=w).config().time_budget,
                         180.0)
        w.controls.tta.setChecked(False)
        self.assertEqual(self.get_output(w.Outputs.learner, widget=w).config().tta, 1)
        w.controls.use_time_budget.setChecked(False)
        self.small(w, epochs=1, mode="fine-tune")
        self.send_signal(w.Inputs.data, self.table, widget=w)
        model = self.get_output(w.Outputs.model, widget=w, wait=TIMEOUT)
        self.assertEqual(model.tta, 1)
        self.assertTrue(0 <= model.baseline_accuracy <= 1)
        line = w.plots.baseline_line
        self.assertTrue(line.isVisible())
        self.assertAlmostEqual(line.value(), model.baseline_accuracy)
        self.assertIn("logistic regression", line.label.toPlainText())
        self.assertIn("Logistic regression on the pretrained network's embeddings",
                      w.info_label.text())
        w.send_report()
        self.send_signal(w.Inputs.data, None, widget=w)
        self.assertFalse(line.isVisible())

    def test_old_workflows_keep_flips_and_leave_the_old_sgd_rate(self):
        settings = {"mode": "fine-tune", "learning_rate": 0.004, "epochs": 10,
                    "__version__": 2}
        w = self.create_widget(OWTrainer, stored_settings=settings)
        self.assertEqual((w.flip, w.tta), (True, False))
        self.assertEqual((w.learning_rate, w.epochs), (preset().learning_rate,
                                                       preset().epochs))

    def test_model_after_training_on_an_import_images_table(self):
        w = self.widget
        self.small(epochs=3)
        self.assertEqual(self.table.X.shape[1], 0)  # no features at all
        self.send_signal(w.Inputs.data, self.table)
        model = self.get_output(w.Outputs.model, wait=TIMEOUT)
        self.assertIsInstance(model, ImageClassifierModel)
        self.assertEqual(len(model.history), 3)
        self.assertEqual(model.image_size, 32)
        self.assertFalse(w.Error.active or w.Warning.active)
        # the live plot shows every epoch, and the summary the best one
        xs, _ = w.curves["loss", "train"].getData()
        self.assertEqual(list(xs), [1, 2, 3])
        _, accuracy = w.curves["accuracy", "val"].getData()
        np.testing.assert_allclose(accuracy, [r.val_accuracy for r in model.history])
        self.assertIn(f"Best epoch {model.best_epoch} of 3", w.info_label.text())
        self.assertIn("12 images at 32 px", w.info_label.text())
        probs = model(self.table, model.Probs)
        self.assertEqual(probs.shape, (12, 2))
        # removing the data removes the model, not the learner
        self.send_signal(w.Inputs.data, None)
        self.assertIsNone(self.get_output(w.Outputs.model))
        self.assertIsNotNone(self.get_output(w.Outputs.learner))

    def test_cancel_keeps_the_best_model_so_far(self):
        w = self.widget
        first_epoch = threading.Event()
        real_run_training = owtrainer.run_training

        def run_until_cancelled(data, learner, state, stop=None):
            """The real run_training; after epoch 1 the worker waits for Cancel."""
            class Pausing:
                def __getattr__(self, name):
                    return getattr(state, name)

                def set_partial_result(self, record):
                    state.set_partial_result(record)
                    first_epoch.set()
                    stop.wait(60)

            return real_run_training(data, learner, Pausing(), stop=stop)

        self.small(epochs=30)
        with mock.patch.object(owtrainer, "run_training", run_until_cancelled):
            self.send_signal(w.Inputs.data, self.table)
        self.process_events(until=first_epoch.is_set, timeout=TIMEOUT)
        self.assertTrue(first_epoch.is_set())
        self.assertTrue(w.cancel_button.isEnabled())
        w.cancel_button.click()
        model = self.get_output(w.Outputs.model, wait=TIMEOUT)
        self.assertIsInstance(model, ImageClassifierModel)
        self.assertTrue(model.cancelled)
        self.assertEqual((len(model.history), model.best_epoch), (1, 1))
        self.assertTrue(w.Warning.cancelled.is_shown())
        self.assertIn("best model so far", str(w.Warning.cancelled))
        self.assertIn("cancelled after 1 epoch:", str(w.Warning.cancelled))
        self.assertIn("Cancelled after", w.info_label.text())
        self.assertFalse(w.cancel_button.isEnabled())

    def test_one_unreadable_image_is_reported_in_the_singular(self):
        folder = tempfile.mkdtemp(prefix="trainer-broken-")
        self.addCleanup(shutil.rmtree, folder, True)
        table = colour_table(folder, per_class=6, broken=True)
        w = self.widget
        self.small(epochs=2)
        self.send_signal(w.Inputs.data, table)
        model = self.get_output(w.Outputs.model, wait=TIMEOUT)
        self.assertEqual([s.source.endswith("broken.png") for s in model.skipped], [True])
        self.assertEqual(str(w.Warning.skipped),
                         "1 image could not be read and was left out of training.")
        self.assertIn("1 image could not be read and was left out.", w.info_label.text())

    def test_unusable_data_shows_why(self):
        self.send_signal(self.widget.Inputs.data, self.table[:4])  # one class only
        self.assertTrue(self.widget.Error.data.is_shown())
        self.assertIsNone(self.get_output(self.widget.Outputs.model))
        self.assertIsNotNone(self.get_output(self.widget.Outputs.learner))
        self.send_signal(self.widget.Inputs.data, self.table)
        self.assertFalse(self.widget.Error.data.is_shown())

    def test_apply_automatically_is_off_for_new_widgets(self):
        """A training takes minutes: a click on a spin box must not start one. Saved
        workflows keep their choice (on was the default before settings version 2)."""
        w = self.create_widget(OWTrainer)
        self.assertFalse(w.auto_apply)
        before = self.get_output(w.Outputs.learner, widget=w)
        w.controls.epochs.setValue(7)
        self.assertIs(self.get_output(w.Outputs.learner, widget=w), before)
        self.assertTrue(w.Warning.outdated.is_shown())
        w.commit.now()  # Apply
        self.assertEqual(self.get_output(w.Outputs.learner, widget=w).config().epochs, 7)
        self.assertFalse(w.Warning.outdated.is_shown())
        # new data trains at once, as in Orange's learner widgets, without an Apply
        self.send_signal(w.Inputs.data, self.table, widget=w)
        self.assertIsNotNone(w.task)
        w._discard_task()
        for stored, expected in (({}, True), ({"auto_apply": False}, False),
                                 ({"auto_apply": True}, True)):
            old = self.create_widget(OWTrainer, stored_settings={**stored, "__version__": 1})
            self.assertEqual(old.auto_apply, expected, stored)
            # and the name it had, which Test & Score's prediction columns carry
            self.assertEqual(self.get_output(old.Outputs.learner, widget=old).name,
                             "Image classifier (SqueezeNet 1.1)")

    def test_name_identifies_the_learner_and_the_model(self):
        w = self.widget
        self.assertEqual(self.get_output(w.Outputs.learner).name, "Trainer")
        self.assertEqual(w.name_line_edit.placeholderText(), "Trainer")
        self.small(epochs=1)
        self.send_signal(w.Inputs.data, self.table)
        model = self.get_output(w.Outputs.model, wait=TIMEOUT)
        self.assertEqual(model.name, "Trainer")
        rename(w, "SqueezeNet, fine-tuned")
        self.assertEqual(self.get_output(w.Outputs.learner).name, "SqueezeNet, fine-tuned")
        # renaming does not train again: the same model goes out under its new name
        self.assertIsNone(w.task)
        self.assertIs(self.get_output(w.Outputs.model), model)
        self.assertEqual(model.name, "SqueezeNet, fine-tuned")
        self.assertEqual(w.settingsHandler.pack_data(w).get("learner_name"),
                         "SqueezeNet, fine-tuned")
        # an empty name is the widget's title on the canvas again, and follows it
        rename(w, "")
        w.setCaption("Trainer (VGG)")
        self.assertEqual(self.get_output(w.Outputs.learner).name, "Trainer (VGG)")

    def test_keywords_find_it_as_a_classifier(self):
        words = ", ".join(OWTrainer.keywords).lower()  # Orange splits the string
        for word in ("classifier", "cnn", "neural network", "transfer learning", "fine-tune"):
            self.assertIn(word, words)

    def test_settings_are_kept(self):
        w = self.widget
        w.set_network("squeezenet", "last-layer")
        w.controls.epochs.setValue(12)
        settings = w.settingsHandler.pack_data(w)
        again = self.create_widget(OWTrainer, stored_settings=settings)
        self.assertEqual((again.mode, again.epochs), ("last-layer", 12))
        self.assertTrue(again.mode_buttons[0].isChecked())
        self.assertEqual(self.get_output(again.Outputs.learner, widget=again).config().mode,
                         "last-layer")


def with_a_feature(table):
    """The table with one numeric feature: Test & Score refuses tables without any."""
    return table.add_column(ContinuousVariable("brightness"), np.arange(len(table), dtype=float))


class TestInTestAndScore(WidgetTest):
    """Our learner in Orange's real Test & Score widget."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.folder = tempfile.mkdtemp(prefix="trainer-scores-")
        cls.table = with_a_feature(colour_table(cls.folder, per_class=6))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder, ignore_errors=True)
        super().tearDownClass()

    def scores(self):
        scores = self.create_widget(OWTestAndScore)
        scores.n_folds = 0  # 2 folds
        scores.resampling = OWTestAndScore.KFold
        return scores

    def test_two_trainers_are_told_apart_by_name(self):
        names = []
        scores = self.scores()
        for i, name in enumerate(("", "SqueezeNet, last layer")):
            trainer = self.create_widget(OWTrainer)
            trainer.set_network("squeezenet", "last-layer")
            rename(trainer, name)
            trainer.controls.epochs.setValue(3)
            trainer.commit.now()
            learner = self.get_output(trainer.Outputs.learner, widget=trainer)
            names.append(learner.name)
            self.send_signal(scores.Inputs.learner, learner, i, widget=scores)
        self.assertEqual(names, ["Trainer", "SqueezeNet, last layer"])
        self.send_signal(scores.Inputs.train_data, self.table, widget=scores)
        results = self.get_output(scores.Outputs.evaluations_results, widget=scores,
                                  wait=TIMEOUT)
        self.assertEqual(results.learner_names, names)  # what Confusion Matrix lists
        model = scores.score_table.model
        self.assertEqual([model.index(row, 0).data() for row in range(model.rowCount())],
                         names)

    def test_cancel_stops_the_learner_within_a_batch(self):
        """Test & Score cancels (here: its data is removed) by raising a flag it reads
        only between folds; our learner reads it per batch and stops at once."""
        batches, started = [], threading.Event()
        learner = ImageClassifierLearner("squeezenet", "scratch", epochs=500, patience=500,
                                         image_size=32, batch_size=2)
        # deepcopy in Test & Score shares these callbacks (learner._Callbacks)
        learner.progress_callback = lambda done, total: batches.append(time.monotonic())
        learner.epoch_callback = lambda record: started.set()
        scores = self.scores()
        self.send_signal(scores.Inputs.learner, learner, 0, widget=scores)
        self.send_signal(scores.Inputs.train_data, self.table, widget=scores)
        self.process_events(until=started.is_set, timeout=TIMEOUT)
        self.assertTrue(started.is_set())
        self.send_signal(scores.Inputs.train_data, None, widget=scores)  # cancels
        cancelled_at = time.monotonic()
        time.sleep(3)  # 500 epochs would go on for minutes
        after = [t for t in batches if t > cancelled_at]
        # one batch may have been under way; one progress step for it, one for validation
        self.assertLessEqual(len(after), 2, f"{len(after)} more batches after Cancel")
        self.assertTrue(all(t < cancelled_at + 1.5 for t in after))


class TestConfusionMatrixToImageViewer(WidgetTest):
    """Import Images -> Image Embedder -> Test & Score (ours + logistic regression)
    -> Confusion Matrix -> misclassified -> Image Viewer, all real widgets."""

    def setUp(self):
        self.folder = tempfile.mkdtemp(prefix="trainer-path-")
        make_colour_folders(self.folder, per_class=10, noise=60, seed=1, swapped=2)

    def tearDown(self):
        shutil.rmtree(self.folder, ignore_errors=True)
        super().tearDown()

    def test_misclassified_images_reach_the_viewer(self):
        # Test & Score trains our learner in two threads at once here (the evaluation
        # started for the first learner is cancelled, not stopped, when the second
        # arrives); both export SqueezeNet to ONNX for the embeddings, and torch's
        # exporter cannot run twice at once: no export may fail and fall back to torch
        failures = []
        handler = logging.Handler()
        handler.emit = lambda record: failures.append(record.getMessage()) \
            if "ONNX export failed" in record.getMessage() else None
        embed_log = logging.getLogger("orangecontrib.deepimage.core.local_embedder")
        embed_log.addHandler(handler)
        self.addCleanup(embed_log.removeHandler, handler)
        importer = self.create_widget(OWImportImages)
        importer.set_folder(self.folder)
        self.wait_until_finished(importer, timeout=TIMEOUT)
        images = self.get_output(importer.Outputs.data, widget=importer)
        self.assertEqual((len(images), images.X.shape[1]), (20, 0))

        embedder = self.create_widget(OWImageEmbedder)
        self.send_signal(embedder.Inputs.images, images, widget=embedder)
        self.wait_until_finished(embedder, timeout=TIMEOUT)
        embedded = self.get_output(embedder.Outputs.embeddings, widget=embedder)
        self.assertEqual(len(embedded), 20)

        trainer = self.create_widget(OWTrainer)
        trainer.set_network("squeezenet", "last-layer")
        trainer.lower_size, trainer.image_size = True, 32
        trainer.controls.epochs.setValue(5)
        trainer.commit.now()  # Apply
        ours = self.get_output(trainer.Outputs.learner, widget=trainer)

        scores = self.create_widget(OWTestAndScore)
        scores.n_folds = 0  # 2 folds
        scores.resampling = OWTestAndScore.KFold
        self.send_signal(scores.Inputs.train_data, embedded, widget=scores)
        self.send_signal(scores.Inputs.learner, ours, 0, widget=scores)
        self.send_signal(scores.Inputs.learner, LogisticRegressionLearner(), 1, widget=scores)
        results = self.get_output(scores.Outputs.evaluations_results, widget=scores,
                                  wait=TIMEOUT)
        self.assertIsNotNone(results)
        self.assertFalse(scores.Error.active)
        self.assertEqual(len(results.predicted), 2)

        matrix = self.create_widget(OWConfusionMatrix)
        self.send_signal(matrix.Inputs.evaluation_results, results, widget=matrix)
        viewer = self.create_widget(OWImageViewer)
        for learner_index in (0, 1):  # ours, then logistic regression
            matrix.selected_learner[:] = [learner_index]
            matrix._learner_changed()
            matrix.select_wrong()
            wrong = results.actual != results.predicted[learner_index]
            expected_rows = results.row_indices[wrong]
            selected = self.get_output(matrix.Outputs.selected_data, widget=matrix)
            if not len(expected_rows):
                self.assertIsNone(selected)
                continue
            self.send_signal(viewer.Inputs.data, selected, widget=viewer)
            shown = viewer.data
            self.assertEqual(sorted(shown.ids), sorted(embedded.ids[expected_rows]))
            self.assertEqual(sorted(image_paths(shown)),
                             sorted(np.array(image_paths(embedded))[expected_rows]))
            self.assertEqual(len(viewer.paths), len(expected_rows))
        # the mislabelled images are misclassified by both, so the selections are not empty
        for predicted in results.predicted:
            self.assertGreaterEqual(np.sum(results.actual != predicted), 1)
        self.assertEqual(failures, [])
