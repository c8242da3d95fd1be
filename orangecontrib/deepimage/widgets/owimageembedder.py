"""Image Embedder: turn each image of a table into a feature vector with a deep network.

A thin widget over :mod:`orangecontrib.deepimage.embedder_job`: the network runs
on this computer by default (no image leaves it) or, when the user picks one,
on an embedding server; a fine-tuned model from Trainer can be connected
instead. The work runs off the GUI thread with progress and cancel.
"""
from __future__ import annotations

import contextlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Optional

from AnyQt.QtCore import Qt
from AnyQt.QtGui import QStandardItemModel
from AnyQt.QtWidgets import QComboBox, QFormLayout, QLineEdit, QPushButton, QStyle

from Orange.base import Model
from Orange.data import DiscreteVariable, StringVariable, Table
from Orange.widgets import gui
from Orange.widgets.settings import ContextSetting, DomainContextHandler, Setting
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin, FutureWatcher
from Orange.widgets.utils.itemmodels import DomainModel
from Orange.widgets.widget import Input, Msg, Output, OWWidget

from orangecontrib.deepimage.core.catalogue import find_spec, offered_specs
from orangecontrib.deepimage.core.pipeline import EmbeddingResult
from orangecontrib.deepimage.core.models import MODELS
from orangecontrib.deepimage.core.weights import weights_available
from orangecontrib.deepimage.data import image_column
from orangecontrib.deepimage.embedder_job import (
    CUSTOM, LOCAL, SERVER, EmbedderChoice, EmbedderPool, EmbeddingOutcome, NotAnImageModel,
    local_server_possible, run_embedding, server_host, start_local_server, summary)
from orangecontrib.deepimage.widgets.utils import fill_combo_items
from orangecontrib.deepimage.widgets.utils.devicecombo import DeviceCombo
from orangecontrib.deepimage.widgets.utils.servertoken import (list_server_models, load_token,
                                                               save_token)

log = logging.getLogger(__name__)


class OWImageEmbedder(OWWidget, ConcurrentWidgetMixin):
    name = "Image Embedder"
    description = "Embed images with deep networks, on this computer or a server."
    icon = "icons/ImageEmbedder.svg"
    priority = 20
    keywords = ("deep image, image embedder, embedding, image, deep, network, squeezenet, vgg, "
                "inception, pytorch")
    want_main_area = False
    resizing_enabled = False

    class Inputs:
        images = Input("Images", Table)
        model = Input("Model", Model)

    class Outputs:
        embeddings = Output("Embeddings", Table, default=True)
        skipped_images = Output("Skipped Images", Table)

    class Error(OWWidget.Error):
        no_image_column = Msg("The data has no text or categorical column with image paths: "
                              "connect Import Images, or a table with an image column.")
        not_image_model = Msg("{}")
        failed = Msg("Embedding failed: {}")
        nothing_embedded = Msg("No image could be embedded: see the reasons in "
                               "Skipped Images.")
        server = Msg("Server {}: {}")

    class Warning(OWWidget.Warning):
        images_skipped = Msg("{} skipped: see the reasons in Skipped Images.")
        device_missing = Msg("{}")

    class Information(OWWidget.Information):
        custom_model = Msg("Embedding with the connected fine-tuned model.")
        no_keyring = Msg("The access token is not saved (no keyring on this computer).")
        local_server = Msg("A server runs on this computer at {}, until this widget is "
                           "removed or Orange is closed.")

    settingsHandler = DomainContextHandler()
    settings_version = 1
    image_attr: Optional[StringVariable] = ContextSetting(None)
    model_key: str = Setting(f"{LOCAL}:squeezenet")
    device: str = Setting("auto")
    server_url: str = Setting("")
    use_cache: bool = Setting(True)
    auto_commit: bool = Setting(True)

    def __init__(self):
        OWWidget.__init__(self)
        ConcurrentWidgetMixin.__init__(self)
        self.data: Optional[Table] = None
        self.custom_model: Any = None
        self.last_result: Optional[EmbeddingResult] = None  # of the last run, for the report
        self.token = ""
        # (name, title) the server offers; None: not asked, or no answer yet
        self.server_models: Optional[list[tuple[str, str]]] = None
        self.pool = EmbedderPool()
        self._listing = ThreadPoolExecutor(1, thread_name_prefix="deepimage-list-models")
        self._listing_watcher: Optional[FutureWatcher] = None
        self._listing_future: Optional[Future] = None
        # `deepimage serve` started by the button, for a server address on this computer
        self._local_server = None
        self._starting: Optional[Future] = None
        self._starting_watcher: Optional[FutureWatcher] = None
        self._setup_gui()
        self._load_token()
        self._refresh_models()
        if self.server_url:
            self.list_server_models()

    # --- GUI ---------------------------------------------------------------------------

    def _setup_gui(self):
        box = gui.vBox(self.controlArea, "Images")
        # text or categorical metas, as orange3-imageanalytics offers them
        self.image_model = DomainModel(order=DomainModel.METAS,
                                       valid_types=(StringVariable, DiscreteVariable))
        gui.comboBox(box, self, "image_attr", label="Image column:", model=self.image_model,
                     orientation=Qt.Horizontal, callback=self._settings_changed)

        box = gui.vBox(self.controlArea, "Embedder")
        self.model_combo = QComboBox(minimumContentsLength=30)
        self.model_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_items = QStandardItemModel(self.model_combo)
        self.model_combo.setModel(self.model_items)
        self.model_combo.activated.connect(self._model_activated)
        box.layout().addWidget(self.model_combo)
        self.description = gui.widgetLabel(box, "")
        self.description.setWordWrap(True)
        self.device_combo = DeviceCombo(
            self.device, "Where a network on this computer runs; 'Automatic' uses an "
                         "NVIDIA GPU when there is one.")
        self.Warning.device_missing(self.device_combo.warning, shown=bool(
            self.device_combo.warning))
        self.device_combo.activated.connect(self._device_changed)
        row = gui.hBox(box)
        gui.widgetLabel(row, "Device:")
        row.layout().addWidget(self.device_combo, 1)

        gui.checkBox(box, self, "use_cache", "Reuse embeddings computed before",
                     callback=self._settings_changed,
                     tooltip="Embeddings are kept on this computer, by image content and "
                             "network, so a re-run is instant. Untick to embed every image "
                             "again, e.g. to time the network or a server.")

        box = gui.vBox(self.controlArea, "Info")
        self.summary_label = gui.widgetLabel(box, "No data.")
        self.summary_label.setWordWrap(True)

        self.server_box = gui.vBox(self.controlArea, "Embedding server")
        form = QFormLayout()
        self.server_box.layout().addLayout(form)
        self.url_edit = QLineEdit(self.server_url, placeholderText="http://gpu.my-lab.org:8000")
        self.url_edit.editingFinished.connect(self._url_edited)
        self.token_edit = QLineEdit(placeholderText="if the server needs one")
        self.token_edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.token_edit.editingFinished.connect(self._token_edited)
        form.addRow("URL:", self.url_edit)
        form.addRow("Token:", self.token_edit)
        self.list_button = gui.button(self.server_box, self, "List Server Models",
                                      callback=self.list_server_models, autoDefault=False)
        self.start_button = gui.button(
            self.server_box, self, "Start a Server on This Computer",
            callback=self.start_local_server, autoDefault=False,
            tooltip="Run the embedding server here, at the address above, for as long as "
                    "this widget is in the workflow (no terminal needed).")
        self._update_start_button()

        gui.auto_apply(self.buttonsArea, self, "auto_commit")
        self.cancel_button = QPushButton(
            "Cancel", icon=self.style().standardIcon(QStyle.StandardPixmap.SP_DialogCancelButton))
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        self.buttonsArea.layout().addWidget(self.cancel_button)

    def _model_entries(self) -> list[tuple[str, str, bool, str]]:
        """(key, label, enabled, tooltip) for each model the combo offers."""
        entries = []
        for spec in offered_specs():
            ok, why = weights_available(spec)
            choice = EmbedderChoice(LOCAL, spec.name)
            entries.append((choice.key, choice.label(), ok,
                            spec.description if ok else why))
        if self.server_url:
            host = server_host(self.server_url)
            offered = (self.server_models if self.server_models is not None
                       else [(spec.name, spec.display_name) for spec in MODELS.values()])
            for name, title in offered:
                entries.append((EmbedderChoice(SERVER, name).key, f"{title} (server: {host})", True,
                                f"Images are sent to {self.server_url} to be embedded."))
        return entries

    def _refresh_models(self):
        """Rebuild the model list; keep the chosen model, else fall back to SqueezeNet."""
        entries = self._model_entries()
        fill_combo_items(self.model_items, entries)
        keys = [(key, enabled) for key, _, enabled, _ in entries]
        usable = [k for k, enabled in keys if enabled]
        if self.model_key not in usable:
            self.model_key = EmbedderChoice(LOCAL, "squeezenet").key
        self.model_combo.setCurrentIndex([k for k, _ in keys].index(self.model_key))
        self._update_description()

    def _update_description(self):
        chosen = EmbedderChoice.from_key(self.model_key)
        where = chosen.where
        if self.custom_model is not None:
            text = "The connected fine-tuned model embeds the images on this computer."
        elif where == SERVER:
            text = (f"Images are sent to {server_host(self.server_url)} to be embedded; "
                    "they do not leave this computer otherwise.")
        else:
            spec = find_spec(chosen.model)
            text = (f"{spec.description} {spec.embedding_dim} features."
                    if spec else "")
        self.description.setText(text)
        self.model_combo.setEnabled(self.custom_model is None)
        self.device_combo.setEnabled(where != SERVER or self.custom_model is not None)

    # --- user actions ------------------------------------------------------------------

    def _model_activated(self, index: int):
        key = self.model_items.item(index).data(Qt.ItemDataRole.UserRole)
        if key != self.model_key:
            self.model_key = key
            self._update_description()
            self._settings_changed()

    def _device_changed(self):
        self.device = self.device_combo.device()
        self.device_combo.warning = ""
        self.Warning.device_missing.clear()
        self._settings_changed()

    def _url_edited(self):
        url = self.url_edit.text().strip()
        if url == self.server_url:
            return
        self.server_url = url
        self.server_models = None
        self._update_start_button()
        self._load_token()
        self._refresh_models()
        if url:
            self.list_server_models()
        self._settings_changed()

    def _token_edited(self):
        token = self.token_edit.text()
        if token == self.token:
            return
        self.token = token
        self._save_token()
        if self.server_url:
            self.list_server_models()
        if EmbedderChoice.from_key(self.model_key).where == SERVER:
            self._settings_changed()

    def _settings_changed(self):
        self.cancel()
        self.commit.deferred()

    # --- the token: in the keyring, never in the workflow ------------------------------

    def _load_token(self):
        self.Information.no_keyring.clear()
        self.token = load_token(self.server_url)
        self.token_edit.setText(self.token)

    def _save_token(self):
        if self.server_url and not save_token(self.server_url, self.token):
            self.Information.no_keyring()

    # --- the server's models, fetched off the GUI thread -------------------------------

    def list_server_models(self) -> Optional[Future]:
        """Ask the server which models it serves; the list updates when it answers, and
        an embedding on the server that failed last time runs again."""
        if not self.server_url:
            return None
        self.Error.server.clear()
        future = self._listing.submit(list_server_models, self.server_url, self.token)
        self._listing_future = future
        self._listing_watcher = FutureWatcher(future)
        self._listing_watcher.done.connect(self._server_models_listed)
        return future

    def _server_models_listed(self, future: Future):
        if future is not self._listing_future:
            return  # an older request
        try:
            models = future.result()
        except Exception as exc:  # unreachable, refused token, bad answer: say so
            self.Error.server(server_host(self.server_url), exc)
            return
        self.server_models = list(models)
        previous = self.model_key
        self._refresh_models()
        if self.model_key != previous:
            self._settings_changed()
        elif self.Error.failed.is_shown() and self.current_choice().where == SERVER:
            # the last run could not reach the server, which answers now: embed again
            # (Apply is disabled while it applies automatically, so this is the way)
            self.commit.deferred()

    # --- a server on this computer, started here (lesson 3 needs no terminal) -----------

    def _update_start_button(self):
        running = self._local_server is not None and self._local_server.running
        self.start_button.setVisible(
            bool(self.server_url) and not running and local_server_possible(self.server_url))
        self.start_button.setEnabled(self._starting is None)

    def start_local_server(self) -> Optional[Future]:
        """Start `deepimage serve` at the server address (on this computer) in the
        background; once it is ready its models are listed and a failed embedding runs."""
        if self._starting is not None or not local_server_possible(self.server_url):
            return None
        self.Error.server.clear()
        self.start_button.setText("Starting the server…")
        executor = ThreadPoolExecutor(1, thread_name_prefix="deepimage-start-server")
        self._starting = executor.submit(start_local_server, self.server_url)
        executor.shutdown(wait=False)
        self._starting_watcher = FutureWatcher(self._starting)
        self._starting_watcher.done.connect(self._local_server_started)
        self._update_start_button()
        return self._starting

    def _local_server_started(self, future: Future):
        self._starting = None
        self.start_button.setText("Start a Server on This Computer")
        try:
            self._local_server = future.result()
        except Exception as exc:  # the port is taken, a network's weights are missing, ...
            self.Error.server(server_host(self.server_url), exc)
        else:  # it stops with this widget, at exit, and by itself if Orange is killed
            self.Information.local_server(self._local_server.url)
            self.list_server_models()
        self._update_start_button()

    def _stop_local_server(self):
        if self._starting is not None:  # stop it once it has started
            self._starting.add_done_callback(
                lambda f: f.exception() is None and f.result().stop())
        if self._local_server is not None:
            self._local_server.stop()
            self._local_server = None

    # --- inputs ------------------------------------------------------------------------

    @Inputs.images
    def set_data(self, data: Optional[Table]):
        self.closeContext()
        self.cancel()
        self.Error.no_image_column.clear()
        self.data = None
        self.image_model.set_domain(None)
        self.image_attr = None
        if data is not None:
            self.image_model.set_domain(data.domain)
            if not self.image_model:
                self.Error.no_image_column()
            else:
                self.data = data
                self.image_attr = image_column(data) or self.image_model[0]
                self.openContext(data.domain)

    @Inputs.model
    def set_model(self, model: Optional[Model]):
        self.cancel()
        self.Error.not_image_model.clear()
        self.custom_model = model
        self.Information.custom_model(shown=model is not None)
        self._update_description()

    def handleNewSignals(self):
        self.commit.now()

    # --- running -----------------------------------------------------------------------

    def current_choice(self) -> EmbedderChoice:
        """What the controls say to embed with."""
        if self.custom_model is not None:
            return EmbedderChoice(CUSTOM, "custom", self.device_combo.device(),
                                  model_id=id(self.custom_model),
                                  use_cache=self.use_cache)
        if EmbedderChoice.from_key(self.model_key).where == SERVER:
            server = self._local_server  # started here: its URL says 127.0.0.1, not localhost
            url = server.url if server is not None and server.running else self.server_url
            return EmbedderChoice.from_key(self.model_key, server_url=url, token=self.token,
                                           use_cache=self.use_cache)
        return EmbedderChoice.from_key(self.model_key, device=self.device_combo.device(),
                                       use_cache=self.use_cache)

    @gui.deferred
    def commit(self):
        self.cancel()
        self.clear_messages_of_run()
        if self.data is None or self.image_attr is None:
            self.summary_label.setText("No data.")
            self._send(None)
            return
        self.cancel_button.setEnabled(True)
        self.summary_label.setText(f"Embedding {len(self.data):,} images with "
                                   f"{self.current_choice().label()}...")
        self.start(run_embedding, self.data, self.image_attr, self.current_choice(),
                   self.pool, custom_model=self.custom_model)

    def clear_messages_of_run(self):
        for msg in (self.Error.failed, self.Error.nothing_embedded, self.Error.not_image_model,
                    self.Warning.images_skipped):
            msg.clear()

    def on_done(self, outcome: EmbeddingOutcome):
        self.cancel_button.setEnabled(False)
        result = outcome.result
        if outcome.embedded is None:
            self.Error.nothing_embedded()
        if result.skipped:
            n = len(result.skipped)
            self.Warning.images_skipped(f"{n:,} image{'s' if n != 1 else ''}")
        self.summary_label.setText(summary(result) + ".")
        self.last_result = result
        self._send(outcome)

    def on_exception(self, ex: Exception):
        self.cancel_button.setEnabled(False)
        if isinstance(ex, NotAnImageModel):
            self.Error.not_image_model(str(ex))
        else:
            log.debug("embedding failed", exc_info=ex)
            self.Error.failed(str(ex) or type(ex).__name__)
        self.summary_label.setText("Nothing embedded.")
        self.pool.clear()
        self._send(None)

    def on_partial_result(self, result: Any):
        pass

    def cancel(self):
        if self.task is not None:
            self.summary_label.setText("Cancelled; images embedded so far are cached."
                                       if self.use_cache else "Cancelled.")
        self.cancel_button.setEnabled(False)
        super().cancel()

    def _send(self, outcome: Optional[EmbeddingOutcome]):
        if outcome is None:
            self.last_result = None
        embedded = outcome.embedded if outcome is not None else None
        skipped = outcome.skipped if outcome is not None else None
        self.Outputs.embeddings.send(embedded)
        self.Outputs.skipped_images.send(skipped)
        if outcome is None:
            self.info.set_output_summary(self.info.NoOutput)
        else:
            self.info.set_output_summary(
                str(len(embedded) if embedded is not None else 0), summary(outcome.result))

    def onDeleteWidget(self):
        # an answer from the server, or a server that starts, after this: nothing to show
        for watcher in filter(None, (self._listing_watcher, self._starting_watcher)):
            with contextlib.suppress(TypeError):  # TypeError: disconnected already
                watcher.done.disconnect()
        self._stop_local_server()
        self.shutdown()
        self._listing.shutdown(wait=False)
        self.pool.clear()
        super().onDeleteWidget()

    @classmethod
    def migrate_settings(cls, settings, version):
        if version is None or version < 1:  # nothing older exists; keep the hook honest
            settings.pop("token", None)  # a token must never come from a workflow file

    def send_report(self):
        items = [("Model", self.current_choice().label()),
                 ("Device", self.device_combo.label())]
        if self.data is not None:
            items += [("Images", f"{len(self.data):,}"), ("Image column", self.image_attr)]
        result = self.last_result
        if result is not None:
            items += [("Embedded", f"{len(result.indices):,}"
                       + (f" ({result.cached:,} from the cache)" if result.cached else "")),
                      ("Skipped", f"{len(result.skipped):,}"),
                      ("Time", f"{result.seconds:.1f} s")]
        self.report_items(items)


if __name__ == "__main__":  # pragma: no cover
    import sys
    from orangewidget.utils.widgetpreview import WidgetPreview
    from orangecontrib.deepimage.core.images import find_images
    from orangecontrib.deepimage.data import image_table
    WidgetPreview(OWImageEmbedder).run(image_table(find_images(sys.argv[1])))
