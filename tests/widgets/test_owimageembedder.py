"""Image Embedder widget: real SqueezeNet, real Orange widgets, offscreen Qt."""
import os
import shutil
import tempfile
import unittest
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from Orange.base import Model
from Orange.data import DiscreteVariable, Domain, StringVariable, Table
from Orange.widgets.tests.base import WidgetTest

from orangecontrib.deepimage.core import find_images
from orangecontrib.deepimage.core.local_embedder import Embedder
from orangecontrib.deepimage.data import image_table
from orangecontrib.deepimage.widgets import owimageembedder
from orangecontrib.deepimage.widgets.owimageembedder import OWImageEmbedder


def make_photos(folder, per_class=3, bad=True, seed=0):
    """Small distinct images in two class folders; with ``bad``, two broken files too."""
    rng = np.random.default_rng(seed)
    for label in ("cats", "dogs"):
        os.makedirs(os.path.join(folder, label), exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(folder, label, f"{label}{i}.png"))
    if bad:
        open(os.path.join(folder, "cats", "empty.jpg"), "wb").close()
        with open(os.path.join(folder, "dogs", "notes.png"), "w") as f:
            f.write("not an image")
    return folder


class MemoryKeyring:
    """The system keyring's interface, in memory: tests must not write the user's keyring."""

    def __init__(self):
        self.secrets = {}

    def set_password(self, service, key, value):
        self.secrets[(service, key)] = value

    def get_password(self, service, key):
        return self.secrets.get((service, key))

    def delete_password(self, service, key):
        self.secrets.pop((service, key), None)


class FineTuned(Model):
    """A stand-in for Trainer's model: an Orange Model with ``.embedder(device, cache)``."""

    def __init__(self):
        super().__init__(Domain([]))
        import torch
        from orangecontrib.deepimage.core.models import get_spec
        from orangecontrib.deepimage.core.networks import EmbeddingNet, build_backbone
        torch.manual_seed(1)
        spec = get_spec("squeezenet")
        self.net = EmbeddingNet(spec, build_backbone(spec))

    def embedder(self, device="auto", cache=True):
        return Embedder(net=self.net, weights_id="widget-test-net", device=device,
                        backend="torch", cache=cache)


class TestOWImageEmbedder(WidgetTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.folder = make_photos(tempfile.mkdtemp(prefix="embedder-widget-"))
        cls.table = image_table(find_images(cls.folder), cls.folder)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        self.keyring = MemoryKeyring()
        patcher = mock.patch("keyring.set_password", self.keyring.set_password), \
            mock.patch("keyring.get_password", self.keyring.get_password), \
            mock.patch("keyring.delete_password", self.keyring.delete_password)
        for p in patcher:
            p.start()
            self.addCleanup(p.stop)
        self.widget = self.create_widget(OWImageEmbedder)

    def embed(self, data, widget=None):
        widget = widget or self.widget
        self.send_signal(widget.Inputs.images, data, widget=widget)
        self.wait_until_finished(widget, timeout=60000)
        return (self.get_output(widget.Outputs.embeddings, widget=widget),
                self.get_output(widget.Outputs.skipped_images, widget=widget))

    def labels(self):
        items = self.widget.model_items
        return [items.item(i) for i in range(items.rowCount())]

    def test_default_is_squeezenet_on_this_computer(self):
        self.assertEqual(self.widget.model_combo.currentText(), "SqueezeNet 1.1 (on this computer)")
        self.assertEqual(self.widget.current_choice().where, "local")
        vgg = next(i for i in self.labels() if i.text().startswith("VGG-16"))
        # no VGG weights here (tests run offline with an empty torch home)
        self.assertFalse(vgg.isEnabled())
        self.assertIn("vgg16-397923af.pth", vgg.toolTip())
        self.assertTrue(all(i.text().endswith("(on this computer)") for i in self.labels()))

    def test_embeds_keeps_row_ids_and_reports_skipped(self):
        embedded, skipped = self.embed(self.table)
        self.assertEqual(embedded.X.shape, (6, 512))
        self.assertEqual(len(skipped), 2)
        good = [i for i, n in enumerate(self.table.get_column("image name")) if n[-1].isdigit()]
        np.testing.assert_array_equal(embedded.ids, self.table.ids[good])
        self.assertEqual(embedded.domain.metas, self.table.domain.metas)
        self.assertIn("reason", [m.name for m in skipped.domain.metas])
        self.assertTrue(all(skipped.get_column("reason")))
        self.assertTrue(self.widget.Warning.images_skipped.is_shown())
        done = self.widget.summary_label.text()
        self.assertIn("Embedded 6 images", done)
        self.assertIn("2 skipped", done)
        self.assertIn("images/s", done)

    def test_table_of_the_image_analytics_add_on(self):
        import_images = pytest.importorskip("orangecontrib.imageanalytics.import_images")
        theirs, _ = import_images.ImportImages()(self.folder)
        embedded, skipped = self.embed(theirs)
        self.assertEqual(embedded.X.shape, (6, 512))
        self.assertEqual(embedded.domain.metas, theirs.domain.metas)
        self.assertEqual(self.widget.image_attr.name, "image")
        self.assertEqual(len(theirs), 6)  # its scanner leaves out the broken files itself
        self.assertIsNone(skipped)

    def test_image_column_is_preselected(self):
        # "image name" is a text column too and comes first: the type=image one is chosen
        self.embed(self.table)
        self.assertEqual(self.widget.image_attr.name, "image")

    def test_no_image_column_is_an_error(self):
        table = Table.from_numpy(Domain([], metas=[]), np.empty((2, 0)))
        embedded, _ = self.embed(table)
        self.assertIsNone(embedded)
        self.assertTrue(self.widget.Error.no_image_column.is_shown())
        self.embed(None)
        self.assertFalse(self.widget.Error.no_image_column.is_shown())

    def test_plain_text_column_of_paths_works(self):
        paths = [p for p in find_images(self.folder) if p.endswith(("0.png", "1.png"))]
        domain = Domain([], metas=[StringVariable("file")])
        table = Table.from_list(domain, [[p] for p in paths])
        embedded, skipped = self.embed(table)
        self.assertEqual(embedded.X.shape, (4, 512))
        self.assertIsNone(skipped)

    def test_network_is_loaded_once_while_settings_are_unchanged(self):
        self.embed(self.table)
        self.embed(self.table[:3])
        self.assertEqual(self.widget.pool.loads, 1)
        self.assertIn("from cache", self.widget.summary_label.text())
        self.widget.device_combo.setCurrentIndex(1)  # CPU
        self.widget.device_combo.activated.emit(1)
        self.wait_until_finished(timeout=60000)
        self.assertEqual(self.widget.device, "cpu")
        self.assertEqual(self.widget.pool.loads, 2)

    def test_reuse_of_cached_embeddings_can_be_turned_off(self):
        first, _ = self.embed(self.table)
        self.embed(self.table)
        self.assertIn("(6 from cache)", self.widget.summary_label.text())
        self.widget.controls.use_cache.click()  # untick "Reuse embeddings computed before"
        self.wait_until_finished(timeout=60000)
        self.assertFalse(self.widget.use_cache)
        self.assertFalse(self.widget.current_choice().use_cache)
        again = self.get_output(self.widget.Outputs.embeddings)
        self.assertIn("Embedded 6 images", self.widget.summary_label.text())
        self.assertNotIn("from cache", self.widget.summary_label.text())
        np.testing.assert_allclose(again.X, first.X, rtol=1e-5, atol=1e-5)

    def test_cancel(self):
        folder = tempfile.mkdtemp(prefix="embedder-cancel-")
        self.addCleanup(shutil.rmtree, folder, True)
        make_photos(folder, per_class=30, bad=False, seed=7)
        self.send_signal(self.widget.Inputs.images, image_table(find_images(folder), folder))
        self.assertTrue(self.widget.cancel_button.isEnabled())
        self.widget.cancel_button.click()
        self.assertFalse(self.widget.cancel_button.isEnabled())
        self.assertIsNone(self.widget.task)
        self.assertIn("Cancelled", self.widget.summary_label.text())
        self.assertIsNone(self.get_output(self.widget.Outputs.embeddings))
        self.assertFalse(self.widget.Error.failed.is_shown())
        self.widget.commit.now()  # and a new run still works afterwards
        self.wait_until_finished(timeout=60000)
        self.assertEqual(len(self.get_output(self.widget.Outputs.embeddings)), 60)

    def test_fine_tuned_model_input(self):
        plain, _ = self.embed(self.table)
        self.send_signal(self.widget.Inputs.model, FineTuned())
        self.wait_until_finished(timeout=60000)
        tuned = self.get_output(self.widget.Outputs.embeddings)
        self.assertTrue(self.widget.Information.custom_model.is_shown())
        self.assertFalse(self.widget.model_combo.isEnabled())
        self.assertEqual(tuned.X.shape, (6, 512))
        self.assertFalse(np.allclose(tuned.X, plain.X, atol=1e-3))
        self.send_signal(self.widget.Inputs.model, None)
        self.wait_until_finished(timeout=60000)
        np.testing.assert_allclose(self.get_output(self.widget.Outputs.embeddings).X, plain.X,
                                   rtol=1e-4, atol=1e-4)
        self.assertTrue(self.widget.model_combo.isEnabled())

    def test_model_from_the_real_learner(self):
        """A model the learner trained (one short epoch) embeds with its own network."""
        from orangecontrib.deepimage.learner import ImageClassifierLearner
        good = self.table[[i for i, n in enumerate(self.table.get_column("image name"))
                           if n[-1].isdigit()]]
        model = ImageClassifierLearner(epochs=1, image_size=64, device="cpu",
                                       batch_size=8)(good)
        self.send_signal(self.widget.Inputs.model, model)
        embedded, _ = self.embed(self.table)
        self.assertFalse(self.widget.Error.active)
        expected = model.embedder(device="cpu", cache=False).embed(
            [p for p in find_images(self.folder) if p[-5].isdigit()])
        np.testing.assert_allclose(embedded.X, expected.embeddings, rtol=1e-4, atol=1e-4)

    def test_other_models_are_a_clear_error(self):
        from Orange.classification import MajorityLearner
        self.embed(self.table)
        self.send_signal(self.widget.Inputs.model, MajorityLearner()(Table("iris")))
        self.wait_until_finished(timeout=60000)
        self.assertTrue(self.widget.Error.not_image_model.is_shown())
        self.assertIn("Trainer", str(self.widget.Error.not_image_model))
        self.assertIsNone(self.get_output(self.widget.Outputs.embeddings))

    def test_token_is_kept_out_of_the_workflow(self):
        w = self.widget
        w.url_edit.setText("http://127.0.0.1:9")
        w.url_edit.editingFinished.emit()
        w.token_edit.setText("s3cret-token")
        w.token_edit.editingFinished.emit()
        packed = w.settingsHandler.pack_data(w)
        self.assertNotIn("s3cret-token", repr(packed))
        self.assertEqual(packed["server_url"], "http://127.0.0.1:9")
        self.assertIn("s3cret-token", self.keyring.secrets.values())
        # a new widget for the same server finds the token in the keyring
        again = self.create_widget(OWImageEmbedder, stored_settings=packed)
        self.assertEqual(again.token, "s3cret-token")
        self.assertEqual(again.token_edit.echoMode(), again.token_edit.EchoMode.Password)

    def test_settings_migrate_drops_a_token(self):
        settings = {"token": "leaked", "server_url": "http://x"}
        OWImageEmbedder.migrate_settings(settings, 0)
        self.assertNotIn("token", settings)

    def test_report(self):
        self.widget.send_report()

    def test_categorical_image_column_as_the_anchor_accepts(self):
        """A path column read as categorical (as File may read it) is an image column."""
        paths = sorted(p for p in find_images(self.folder) if p.endswith(("0.png", "1.png")))
        var = DiscreteVariable("file", values=tuple(os.path.basename(p) for p in paths))
        var.attributes.update(type="image", origin=os.path.dirname(paths[0]))
        folder = os.path.dirname(paths[0])
        local = [p for p in paths if os.path.dirname(p) == folder]
        table = Table.from_numpy(Domain([], metas=[var]), np.empty((len(local), 0)),
                                 metas=np.arange(len(local), dtype=float)[:, None])
        embedded, skipped = self.embed(table)
        self.assertIs(self.widget.image_attr, var)
        self.assertEqual(embedded.X.shape, (len(local), 512))
        self.assertIsNone(skipped)

    def test_outputs_are_named_as_the_anchor_names_them_and_the_report_counts(self):
        embedded, skipped = self.embed(self.table)
        self.assertEqual((embedded.name, skipped.name), ("Embedded images", "Skipped images"))
        with mock.patch.object(self.widget, "report_items") as report:
            self.widget.send_report()
        items = dict(report.call_args[0][0])
        self.assertEqual((items["Images"], items["Embedded"].split()[0], items["Skipped"]),
                         ("8", "6", "2"))


if __name__ == "__main__":
    unittest.main()
