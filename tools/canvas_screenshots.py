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

Settings, caches and the embedding cache live in a temporary folder, so the user's
Orange settings are neither used nor changed and every run starts the same way (the
embedding runs from scratch). Waiting is polling with a deadline (--timeout); the
widgets' messages are printed. Look at the PNGs before committing them.
"""
from __future__ import annotations

import argparse
import atexit
import os
import shutil
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
                except Exception:  # pylint: disable=broad-except
                    traceback.print_exc()
                    code = 1
                QApplication.exit(code)
            QTimer.singleShot(0, run)

    os.makedirs(os.path.dirname(CANVAS_PNG), exist_ok=True)
    return ScreenshotMain().run([sys.argv[0], "--no-splash", "--no-welcome", WORKFLOW])


if __name__ == "__main__":
    sys.exit(main())
