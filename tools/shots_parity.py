#!/usr/bin/env python3
"""Screenshots of what issue 12's parity work changed, in a real Orange Canvas:

- doc/images/widget-search.png: the canvas' widget search for "image" with both
  Orange3-DeepImage and orange3-imageanalytics installed (ours: dark blue icons on the
  light blue of the Deep Image category; theirs on yellow), and
  doc/images/widget-search-deep-image.png: the search "deep image", ours only;
- doc/images/import-images-by-content.png: Import Images on a folder with a photo
  without an extension and one saved as .jfif (imported) and a text file (skipped);
- doc/images/image-viewer-selection.png: Image Viewer after a Reload that added files,
  with the same two images still selected, and the Space/double-click hint;
- doc/images/image-embedder-start-server.png and image-embedder-server-started.png:
  Image Embedder with a server address on this computer, before and after its
  Start a Server on This Computer button.

    xvfb-run -a .venv/bin/python tools/shots_parity.py
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from canvas_kit import ROOT, isolate_settings, run_canvas, thumbnails_shown  # noqa: E402

EMPTY_WORKFLOW = ('<?xml version="1.0" encoding="utf-8"?>\n<scheme version="2.0" '
                  'title="Parity" description=""><nodes /><links /><annotations />'
                  '<thumbnail /><node_properties /></scheme>\n')


def make_folder(root: str) -> str:
    """Digits of three classes, two photos named oddly, and a note."""
    from PIL import Image
    digits = os.path.join(ROOT, "tutorials", "digits")
    folder = os.path.join(root, "mixed")
    for digit in ("1", "4", "7"):
        os.makedirs(os.path.join(folder, digit))
        for name in sorted(os.listdir(os.path.join(digits, digit)))[1:7]:
            shutil.copy(os.path.join(digits, digit, name), os.path.join(folder, digit))
    os.makedirs(os.path.join(folder, "photos"))
    photos = os.path.join(ROOT, "tutorials", "sample-photos")
    with Image.open(os.path.join(photos, "kittens-4020199_640.jpg")) as image:
        image.save(os.path.join(folder, "photos", "kittens"), "JPEG")  # no extension
    with Image.open(os.path.join(photos, "landscape-2130524_640.jpg")) as image:
        image.save(os.path.join(folder, "photos", "landscape.jfif"), "JPEG")
    with open(os.path.join(folder, "photos", "notes.txt"), "w") as f:
        f.write("where the photos are from")
    return folder


def add_more_files(folder: str) -> None:
    """What a Reload finds: a new digit sorted before the others in each folder."""
    digits = os.path.join(ROOT, "tutorials", "digits")
    for digit in ("1", "4", "7"):
        first = sorted(os.listdir(os.path.join(digits, digit)))[0]
        shutil.copy(os.path.join(digits, digit, first), os.path.join(folder, digit))


def main() -> int:
    home = isolate_settings()
    folder = make_folder(home)
    workflow = os.path.join(home, "parity.ows")
    with open(workflow, "w", encoding="utf-8") as f:
        f.write(EMPTY_WORKFLOW)

    def drive(session) -> None:
        from AnyQt.QtCore import QPoint
        window = session.window
        document = window.current_document()
        registry = window.widget_registry
        scheme = document.scheme()

        # 1. the widget search with both add-ons
        theirs = [d for d in registry.widgets()
                  if d.project_name == "Orange3-ImageAnalytics"]
        print(f"orange3-imageanalytics widgets: {len(theirs)}", flush=True)
        window.resize(1180, 640)
        window.show()
        session.settle()
        menu = document.quickMenu()
        view = document.view()
        menu.popup(view.mapToGlobal(QPoint(80, 40)), searchText="image")
        session.settle(1)
        session._save(menu, "doc/images/widget-search.png")
        menu.hide()
        menu.popup(view.mapToGlobal(QPoint(80, 40)), searchText="deep image")
        session.settle(1)
        session._save(menu, "doc/images/widget-search-deep-image.png")
        menu.hide()

        # 2. Import Images -> Image Viewer
        imports = document.createNewNode(registry.widget(
            "orangecontrib.deepimage.widgets.owimportimages.OWImportImages"),
            position=(150, 150))
        viewer_node = document.createNewNode(registry.widget(
            "orangecontrib.deepimage.widgets.owimageviewer.OWImageViewer"),
            position=(400, 150))
        source = next(o for o in imports.output_channels() if o.name == "Data")
        sink = next(i for i in viewer_node.input_channels() if i.name == "Data")
        document.addLink(_link(imports, source, viewer_node, sink))
        importer = scheme.widget_for_node(imports)
        viewer = scheme.widget_for_node(viewer_node)
        importer.set_folder(folder)
        session.wait_until("the import", lambda: importer.task is None
                           and viewer.data is not None)
        importer.show()
        importer.raise_()
        session.settle(1)
        session._save(importer, "doc/images/import-images-by-content.png")
        importer.hide()

        # 3. select two digits, Reload with more files: the same two stay selected
        values = list(viewer.data.get_column("image"))
        chosen = [values.index(v) for v in ("7/digit-0017.png", "photos/kittens")]
        viewer._select_rows(chosen)
        before = sorted(viewer.selection)
        add_more_files(folder)
        importer.reload()
        session.wait_until("the reload", lambda: importer.task is None
                           and len(viewer.data) == len(values) + 3)
        assert sorted(viewer.selection) == before, (viewer.selection, before)
        print(f"After the Reload: {len(viewer.data)} images, selected {before}", flush=True)
        viewer.resize(980, 620)
        viewer.show()
        viewer.raise_()
        viewer.image_size = 112
        viewer._update_size()
        viewer.view.scrollToBottom()
        session.wait_until("the thumbnails", lambda: thumbnails_shown(viewer))
        session.settle(1)
        session._save(viewer, "doc/images/image-viewer-selection.png")
        viewer.hide()

        # 4. an Image Embedder for a server on this computer that is not running yet
        from orangecontrib.deepimage.server.launch import free_port
        embedder_node = document.createNewNode(registry.widget(
            "orangecontrib.deepimage.widgets.owimageembedder.OWImageEmbedder"),
            position=(400, 300))
        sink = next(i for i in embedder_node.input_channels() if i.name == "Images")
        embedder = scheme.widget_for_node(embedder_node)
        embedder.url_edit.setText(f"http://127.0.0.1:{free_port()}")
        embedder.url_edit.editingFinished.emit()
        session.wait_until("the failed listing", lambda: embedder._listing_future.done())
        document.addLink(_link(imports, source, embedder_node, sink))
        session.wait_until("the local embedding", lambda: embedder.task is None
                           and session.idle() and embedder.last_result is not None)
        embedder.show()
        embedder.raise_()
        session.settle(1)
        session._save(embedder, "doc/images/image-embedder-start-server.png")
        embedder.start_button.click()
        session.wait_until("the server", lambda: embedder._starting is None)
        session.wait_until("the server's models", lambda: embedder._listing_future.done())
        index = next(i for i in range(embedder.model_items.rowCount())
                     if embedder.model_items.item(i).data(0x0100) == "server:squeezenet")
        local_result = embedder.last_result
        embedder.model_combo.setCurrentIndex(index)
        embedder.model_combo.activated.emit(index)
        session.wait_until("the embedding on the server", lambda: embedder.task is None
                           and embedder.last_result is not local_result
                           or embedder.Error.failed.is_shown())
        session.settle(1)
        session._save(embedder, "doc/images/image-embedder-server-started.png")
        embedder.onDeleteWidget()

    return run_canvas(workflow, drive, timeout=120)


def _link(source_node, source, sink_node, sink):
    from orangecanvas.scheme import SchemeLink
    return SchemeLink(source_node, source, sink_node, sink)


if __name__ == "__main__":
    sys.exit(main())
