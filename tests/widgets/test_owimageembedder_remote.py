"""Image Embedder against a real `deepimage serve` on 127.0.0.1 (uvicorn, real SqueezeNet)."""
import os
import shutil
import tempfile
import threading
from unittest import mock

import numpy as np
from Orange.widgets.tests.base import WidgetTest

from orangecontrib.deepimage.core import find_images
from orangecontrib.deepimage.core.local_embedder import Embedder
from orangecontrib.deepimage.data import image_paths, image_table
from orangecontrib.deepimage.server.launch import ServerProcess
from orangecontrib.deepimage.widgets.owimageembedder import OWImageEmbedder

from live_server import LiveServer, free_port
from test_owimageembedder import MemoryKeyring, make_photos

TOKEN = "widget-test-token-0123456789abcdef"
TIMEOUT = 60000


class TestRemoteEmbedding(WidgetTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="embedder-remote-")
        token_file = os.path.join(cls.tmp, "tokens")
        with open(token_file, "w") as f:
            f.write(TOKEN + "\n")
        cls.server = LiveServer(
            cls.tmp, "--models", "squeezenet", "--token-file", token_file,
            "--max-delay-ms", "2",
            env=cls.server_env()).wait_ready()
        cls.url = cls.server.url
        cls.folder = make_photos(os.path.join(cls.tmp, "photos"), seed=3)
        cls.table = image_table(find_images(cls.folder), cls.folder)

    @classmethod
    def server_env(cls):
        return {"DEEPIMAGE_CACHE_DIR": os.path.join(cls.tmp, "server-cache")}

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def setUp(self):
        keyring = MemoryKeyring()
        # a fresh client cache: vectors must come from the server, not from local runs
        patches = [mock.patch("keyring.set_password", keyring.set_password),
                   mock.patch("keyring.get_password", keyring.get_password),
                   mock.patch("keyring.delete_password", keyring.delete_password),
                   mock.patch.dict(os.environ, {"DEEPIMAGE_CACHE_DIR": tempfile.mkdtemp(
                       prefix="client-cache-", dir=self.tmp)})]
        for patch in patches:
            patch.start()
            self.addCleanup(patch.stop)
        self.widget = self.create_widget(OWImageEmbedder)

    def connect(self, token):
        w = self.widget
        w.url_edit.setText(self.url)
        w.url_edit.editingFinished.emit()
        w.token_edit.setText(token)
        w.token_edit.editingFinished.emit()
        future = w._listing_future
        self.process_events(lambda: future.done() and w._listing_future is future,
                            timeout=TIMEOUT)
        self.process_events()

    def server_index(self, name):
        items = self.widget.model_items
        keys = [items.item(i).data(0x0100) for i in range(items.rowCount())]  # UserRole
        return keys.index(f"server:{name}")

    def test_embeds_on_the_server(self):
        self.connect(TOKEN)
        w = self.widget
        self.assertFalse(w.Error.server.is_shown(), str(w.Error.server))
        self.assertEqual(w.server_models, [("squeezenet", w.server_models[0][1])])
        index = self.server_index("squeezenet")
        host = self.url.split("//")[1]
        self.assertEqual(w.model_items.item(index).text(), f"SqueezeNet 1.1 (server: {host})")
        # nothing is sent before the user picks the server's model
        self.assertEqual(w.current_choice().where, "local")

        w.model_combo.setCurrentIndex(index)
        w.model_combo.activated.emit(index)
        self.send_signal(w.Inputs.images, self.table)
        self.wait_until_finished(timeout=TIMEOUT)
        self.assertFalse(w.Error.failed.is_shown(), str(w.Error.failed))
        embedded = self.get_output(w.Outputs.embeddings)
        skipped = self.get_output(w.Outputs.skipped_images)
        self.assertEqual(embedded.X.shape, (6, 512))
        self.assertEqual(len(skipped), 2)  # bad files are skipped here, never sent
        self.assertNotIn("from cache", w.summary_label.text())
        local = Embedder("squeezenet", backend="torch", cache=False).embed(
            image_paths(self.table))
        np.testing.assert_allclose(embedded.X, local.embeddings, rtol=1e-3, atol=1e-3)
        self.assertEqual(w.settingsHandler.pack_data(w)["model_key"], "server:squeezenet")

    def test_wrong_token_is_reported(self):
        self.connect("not-the-right-token-000000")
        self.assertTrue(self.widget.Error.server.is_shown())
        self.assertIn("token", str(self.widget.Error.server).lower())

    def test_list_server_models_retries_a_failed_embedding(self):
        """The server was not running when the workflow embedded; once it runs, a
        successful List Server Models embeds again (Apply is disabled while Apply
        Automatically is on) and the errors go."""
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        w = self.create_widget(OWImageEmbedder, stored_settings={
            "server_url": url, "model_key": "server:squeezenet"})
        self.assertTrue(w.auto_commit)
        self.process_events(lambda: w._listing_future.done(), timeout=TIMEOUT)
        self.send_signal(w.Inputs.images, self.table, widget=w)
        self.wait_until_finished(w, timeout=TIMEOUT)
        self.process_events()
        self.assertTrue(w.Error.failed.is_shown())
        self.assertIn(f"There is no embedding server at {url}", str(w.Error.failed))
        self.assertTrue(w.Error.server.is_shown())
        self.assertIsNone(self.get_output(w.Outputs.embeddings, widget=w))

        with ServerProcess("--models", "squeezenet", "--max-delay-ms", "2", port=port,
                           env=self.server_env(),
                           log_file=os.path.join(self.tmp, f"serve-{port}.log")) as server:
            server.wait_ready()
            w.list_button.click()
            future = w._listing_future
            self.process_events(lambda: future.done(), timeout=TIMEOUT)
            self.process_events()
            self.wait_until_finished(w, timeout=TIMEOUT)
        self.assertFalse(w.Error.server.is_shown(), str(w.Error.server))
        self.assertFalse(w.Error.failed.is_shown(), str(w.Error.failed))
        self.assertEqual(self.get_output(w.Outputs.embeddings, widget=w).X.shape, (6, 512))
        self.assertIn("Embedded 6 images", w.summary_label.text())

    def test_list_server_models_does_not_embed_again_after_success(self):
        self.connect(TOKEN)
        w = self.widget
        index = self.server_index("squeezenet")
        w.model_combo.setCurrentIndex(index)
        w.model_combo.activated.emit(index)
        self.send_signal(w.Inputs.images, self.table)
        self.wait_until_finished(timeout=TIMEOUT)
        self.assertIsNotNone(self.get_output(w.Outputs.embeddings))
        with mock.patch.object(w, "start") as start:
            w.list_button.click()
            future = w._listing_future
            self.process_events(lambda: future.done(), timeout=TIMEOUT)
            self.process_events()
        start.assert_not_called()


class TestLocalServerButton(WidgetTest):
    """Lesson 3 with no terminal: the server's Image Embedder starts `deepimage serve`
    on this computer itself, embeds once it is ready, and stops it when removed."""

    def test_starts_a_server_here_embeds_and_stops_it_with_the_widget(self):
        tmp = tempfile.mkdtemp(prefix="embedder-start-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        folder = make_photos(os.path.join(tmp, "photos"), bad=False, seed=5)
        table = image_table(find_images(folder), folder)
        with mock.patch.dict(os.environ, {"DEEPIMAGE_CACHE_DIR": os.path.join(tmp, "c")}):
            url = f"http://127.0.0.1:{free_port()}"
            w = self.create_widget(OWImageEmbedder, stored_settings={
                "server_url": url, "model_key": "server:squeezenet"})
            self.process_events(lambda: w._listing_future.done(), timeout=TIMEOUT)
            self.send_signal(w.Inputs.images, table, widget=w)
            self.wait_until_finished(w, timeout=TIMEOUT)
            self.process_events()
            self.assertTrue(w.Error.failed.is_shown())  # no server yet
            self.assertTrue(w.start_button.isVisibleTo(w))

            w.start_button.click()
            self.assertFalse(w.start_button.isEnabled())
            self.process_events(lambda: w._starting is None, timeout=TIMEOUT)
            self.assertFalse(w.Error.server.is_shown(), str(w.Error.server))
            self.assertTrue(w.Information.local_server.is_shown())
            self.assertFalse(w.start_button.isVisibleTo(w))
            future = w._listing_future
            self.process_events(lambda: future.done(), timeout=TIMEOUT)
            self.process_events()
            self.wait_until_finished(w, timeout=TIMEOUT)
            self.assertFalse(w.Error.failed.is_shown(), str(w.Error.failed))
            self.assertEqual(self.get_output(w.Outputs.embeddings, widget=w).X.shape, (6, 512))
            process = w._local_server.process
            self.assertIsNone(process.poll())
            w.onDeleteWidget()
            self.assertIsNotNone(process.poll())  # stopped with the widget

    def test_no_button_for_a_server_elsewhere(self):
        w = self.create_widget(OWImageEmbedder, stored_settings={
            "server_url": "http://gpu.my-lab.org:8000"})
        self.assertFalse(w.start_button.isVisibleTo(w))
        w.url_edit.setText("http://localhost:8123")
        w.url_edit.editingFinished.emit()
        self.assertTrue(w.start_button.isVisibleTo(w))
        w.url_edit.setText("https://127.0.0.1:8123")  # we start plain http only
        w.url_edit.editingFinished.emit()
        self.assertFalse(w.start_button.isVisibleTo(w))


class TestLateAnswers(WidgetTest):
    def test_a_server_answer_after_the_widget_is_removed_is_ignored(self):
        """The server answers List Server Models only after the widget was removed from
        the canvas: nothing is called on the deleted widget (it would take Orange down)."""
        answer = threading.Event()

        def slow_listing(url, token):
            answer.wait(10)
            raise ConnectionError("no server")

        with mock.patch(f"{OWImageEmbedder.__module__}.list_server_models", slow_listing), \
                mock.patch.object(OWImageEmbedder, "_server_models_listed") as listed:
            w = self.create_widget(OWImageEmbedder, stored_settings={
                "server_url": f"http://127.0.0.1:{free_port()}"})
            future = w._listing_future
            w.onDeleteWidget()
            w.deleteLater()
            self.process_events()
            answer.set()
            self.process_events(lambda: future.done(), timeout=TIMEOUT)
            self.process_events()
        listed.assert_not_called()
