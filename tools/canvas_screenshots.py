#!/usr/bin/env python3
"""Take the documentation screenshots from a real Orange Canvas session.

    xvfb-run -a .venv/bin/python tools/canvas_screenshots.py [--timeout 300]

Starts Orange Canvas (the same ``OMain`` as ``python -m Orange.canvas``, without the
splash and welcome screens, update checks and notifications), opens
tutorials/image-clustering.ows (Import Images -> Image Embedder -> Distances ->
Hierarchical Clustering -> Image Viewer; the digits are written first when
tutorials/digits is missing), waits until the embedding is done, clicks one of the ten
clusters in Hierarchical Clustering, selects three thumbnails in Image Viewer and saves

    doc/images/canvas-clustering.png          the canvas window
    doc/widgets/images/import-images.png      the widget windows, opened from
    doc/widgets/images/image-embedder.png     their nodes as a double-click
    doc/widgets/images/image-viewer.png       on the canvas opens them

Then it opens a second workflow window (File > New), builds Import Images (the same
digits) -> Trainer in it through the canvas' scheme API, with the Trainer set for a
quick CPU run (SqueezeNet, Fine-tune, images lowered to 64 px, TRAINER_EPOCHS epochs
after the last layer's own), waits until the training has finished and saves

    doc/widgets/images/trainer.png            the Trainer's window (980 x 600)

Settings, caches and the embedding cache live in a temporary folder, so the user's
Orange settings are neither used nor changed and every run starts the same way (the
embedding runs from scratch). Waiting is polling with a deadline (--timeout); the
widgets' messages are printed. Look at the PNGs before committing them.

Fonts: the status bars summarise Learner and Model outputs with Orange's symbols U+1F13B
and U+1F13C (squared L and M); where no installed font has them (DejaVu alone does not)
they are drawn as empty boxes, so install one first (Debian: fonts-symbola). The script
warns when fontconfig finds none.
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOW = os.path.join(ROOT, "tutorials", "image-clustering.ows")
CANVAS_PNG = os.path.join(ROOT, "doc", "images", "canvas-clustering.png")
WIDGET_PNGS = {  # node title -> (file, window size or None for the widget's own)
    "Import Images": ("doc/widgets/images/import-images.png", None),
    "Image Embedder": ("doc/widgets/images/image-embedder.png", None),
    "Image Viewer": ("doc/widgets/images/image-viewer.png", (900, 600)),
}
CANVAS_SIZE = (1180, 500)
TRAINER_PNG = "doc/widgets/images/trainer.png"
TRAINER_SIZE = (980, 600)
TRAINER_EPOCHS = 4  # whole-network epochs at most: seconds on two CPU cores at 64 px
# the Trainer's settings as a user would set them (batch size and learning rate stay at
# the SqueezeNet fine-tuning preset); no random flips: a mirrored digit is not a digit
TRAINER_SETTINGS = {"network": "squeezenet", "mode": "fine-tune", "epochs": TRAINER_EPOCHS,
                    "lower_size": True, "image_size": 64, "flip": False, "device": "cpu",
                    "auto_apply": True}


def isolate_settings() -> str:
    """Point Orange's (and the embedding cache's) folders into a fresh temporary folder."""
    home = tempfile.mkdtemp(prefix="deepimage-shots-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
                     ("XDG_CACHE_HOME", "cache")):
        os.environ[var] = os.path.join(home, sub)
        os.makedirs(os.environ[var])
    return home


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds to wait for each step (default 300)")
    args = parser.parse_args(argv)
    isolate_settings()
    if shutil.which("fc-list") and not subprocess.run(
            ["fc-list", ":charset=1f13b 1f13c"], capture_output=True, text=True).stdout:
        print("Warning: no font has the Learner/Model symbols U+1F13B, U+1F13C; the "
              "Trainer's status bar will show boxes (Debian: apt-get install "
              "fonts-symbola).", flush=True)
    if not os.path.isdir(os.path.join(ROOT, "tutorials", "digits")):
        sys.path.insert(0, os.path.join(ROOT, "tutorials"))
        from make_digits import write_digits
        write_digits(os.path.join(ROOT, "tutorials", "digits"))

    from AnyQt.QtCore import QCoreApplication, QEventLoop, QSettings, QTimer
    from AnyQt.QtGui import QImage
    from AnyQt.QtWidgets import QApplication
    from Orange.canvas.__main__ import OMain
    from orangecanvas.scheme.events import WorkflowEvent
    from orangecontrib.deepimage.widgets.utils.thumbnails import size_bucket

    def wait_until(what: str, condition) -> None:
        """Process events until condition() is true; fail after --timeout seconds."""
        deadline = time.monotonic() + args.timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.02)

    def settle(seconds: float = 0.5) -> None:
        """Let queued signals, layouts and repaints happen."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.02)

    def report(widget) -> None:
        shown = [f"{group.__class__.__name__}: {msg.formatted}"
                 for group in widget.message_groups for msg in group.active]
        print(f"  {widget.name}: {'; '.join(shown) or 'no messages'}", flush=True)

    def drive(window) -> None:
        window.resize(*CANVAS_SIZE)
        scheme = window.current_document().scheme()
        signals = scheme.signal_manager
        nodes = {node.title: node for node in scheme.nodes}
        wait_until("the widgets", lambda: all(scheme.widget_for_node(n) for n in nodes.values()))
        widgets = {title: scheme.widget_for_node(node) for title, node in nodes.items()}
        embedder, clustering, viewer = (widgets[t] for t in (
            "Image Embedder", "Hierarchical Clustering", "Image Viewer"))

        def idle() -> bool:
            return not signals.has_pending() and all(
                getattr(w, "task", None) is None for w in widgets.values())

        wait_until("the embedding", lambda: embedder.data is not None and idle()
                   and embedder.summary_label.text().startswith("Embedded"))
        wait_until("the dendrogram", lambda: clustering.root is not None
                   and viewer.data is not None and idle())

        # Click one of the ten clusters (top N), the one of about 50 images, as a user
        # would: the dendrogram's own selection call and its "edited by the user" signal.
        dendrogram = clustering.dendrogram
        clusters = dendrogram.selected_nodes()

        def n_images(node):
            return node.value.last - node.value.first
        cluster = min(clusters, key=lambda node: abs(n_images(node) - 50))
        dendrogram.set_selected_items([dendrogram.item(cluster)])
        dendrogram.selectionEdited.emit()
        size = n_images(cluster)
        wait_until("Image Viewer to get the cluster", lambda: idle()
                   and viewer.data is not None and len(viewer.data) == size)
        viewer._select_rows([1, 4, 6])  # as Ctrl-clicks would
        print(f"Selected a cluster of {size} images; Image Viewer selected 3.", flush=True)

        # The canvas as a user of the add-on sees it: its category open, no node selected.
        toolbox = window.widgets_tool_box
        for i in range(toolbox.count()):
            if toolbox.tabButton(i).text() == "Deep Image":
                toolbox.tabAction(i).setChecked(True)
                toolbox.ensureWidgetVisible(toolbox.widget(i))
        window.current_document().scene().clearSelection()
        settle()
        window.grab().save(CANVAS_PNG)
        print(f"Saved {os.path.relpath(CANVAS_PNG, ROOT)}")
        for title, (path, window_size) in WIDGET_PNGS.items():
            widget = widgets[title]
            QCoreApplication.sendEvent(nodes[title],
                                       WorkflowEvent(WorkflowEvent.NodeActivateRequest))
            if window_size is not None:
                widget.resize(*window_size)
            wait_until(f"{title} to show", widget.isVisible)
            settle()
            if widget is viewer:
                def thumbnails_shown() -> bool:
                    view = viewer.view
                    side = size_bucket(view.delegate.side)
                    area = view.viewport().rect()
                    shown = [viewer.paths[row] for row in range(len(viewer.paths))
                             if view.visualRect(view.model().index(row)).intersects(area)]
                    return bool(shown) and all(
                        isinstance(viewer.loader.cached(p, side), QImage) for p in shown)
                wait_until("the thumbnails", thumbnails_shown)
                settle()
            report(widget)
            widget.grab().save(os.path.join(ROOT, path))
            print(f"Saved {path}")
        report(clustering)

    def drive_trainer(window) -> None:
        """A new workflow window with Import Images (the digits) -> Trainer; train, save."""
        from orangecanvas import config
        from orangecanvas.scheme import SchemeLink, SchemeNode
        trainer_window = window.create_new_window()  # as File > New does
        trainer_window.show()
        scheme = config.workflow_constructor(parent=trainer_window)
        scheme.title = "Trainer screenshot"
        trainer_window.set_scheme(scheme)
        registry = trainer_window.widget_registry
        source = SchemeNode(registry.widget(
            "orangecontrib.deepimage.widgets.owimportimages.OWImportImages"),
            title="Import Images", position=(80, 160))
        sink = SchemeNode(registry.widget(
            "orangecontrib.deepimage.widgets.owtrainer.OWTrainer"),
            title="Trainer", position=(240, 160), properties=dict(TRAINER_SETTINGS))
        for node in (source, sink):
            scheme.add_node(node)
        scheme.add_link(SchemeLink(source, source.output_channel("Data"),
                                   sink, sink.input_channel("Data")))
        wait_until("the Trainer's widgets", lambda: all(
            scheme.widget_for_node(n) for n in (source, sink)))
        importer, trainer = scheme.widget_for_node(source), scheme.widget_for_node(sink)
        importer.set_folder(os.path.join(ROOT, "tutorials", "digits"))  # as Browse would
        started = time.monotonic()

        def trained() -> bool:
            if trainer.Error.active:
                report(trainer)
                raise RuntimeError("the Trainer failed")
            return (trainer.outcome is not None and trainer.task is None
                    and not scheme.signal_manager.has_pending())
        wait_until("the training", trained)
        print(f"Trained in {time.monotonic() - started:.0f} s: "
              f"{trainer.info_label.text()}", flush=True)
        trainer_window.current_document().scene().clearSelection()
        QCoreApplication.sendEvent(sink, WorkflowEvent(WorkflowEvent.NodeActivateRequest))
        trainer.resize(*TRAINER_SIZE)
        wait_until("the Trainer to show", trainer.isVisible)
        settle()
        report(importer)
        report(trainer)
        trainer.grab().save(os.path.join(ROOT, TRAINER_PNG))
        print(f"Saved {TRAINER_PNG}")

    class ScreenshotMain(OMain):
        def activate_default_config(self):
            super().activate_default_config()  # sets the application's QSettings names
            settings = QSettings()
            for key in ("startup/check-updates", "notifications/check-notifications",
                        "startup/show-welcome-screen", "startup/show-splash-screen",
                        "reporting/send-statistics"):
                settings.setValue(key, False)
            settings.sync()

        def open_files(self, paths):
            super().open_files(paths)

            def run():
                code = 0
                try:
                    drive(self.window)
                    drive_trainer(self.window)
                except Exception:  # pylint: disable=broad-except
                    traceback.print_exc()
                    code = 1
                QApplication.exit(code)
            QTimer.singleShot(0, run)

    os.makedirs(os.path.dirname(CANVAS_PNG), exist_ok=True)
    return ScreenshotMain().run([sys.argv[0], "--no-splash", "--no-welcome", WORKFLOW])


if __name__ == "__main__":
    sys.exit(main())
