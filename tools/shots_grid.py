#!/usr/bin/env python3
"""Screenshots of Image Grid and Save Images in a real Orange Canvas session.

    xvfb-run -a .venv/bin/python tools/shots_grid.py [--timeout 600]

Writes a workflow Import Images -> Image Embedder -> Image Grid -> Save Images (Selected
Images) into a temporary folder, opens it, points Import Images at the lessons' digits
(written first when tutorials/digits is missing), waits until the grid is laid out and
its thumbnails are shown, selects a block of cells, saves the selection into a temporary
folder in class subfolders, and saves

    doc/images/canvas-image-grid.png        the canvas window
    doc/widgets/images/image-grid.png       Image Grid, a block of cells selected
    doc/widgets/images/save-images.png      Save Images after saving that selection

Look at the PNGs before committing them.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from canvas_kit import run_canvas  # noqa: E402

from orangecontrib.deepimage.tutorials import DIGITS_DIR  # noqa: E402
from orangecontrib.deepimage.tutorials.make_digits import ensure_digits  # noqa: E402

P = "orangecontrib.deepimage.widgets."
WORKFLOW = f"""<?xml version='1.0' encoding='utf-8'?>
<scheme version="2.0" title="Image Grid and Save Images" description="Digits laid out by similarity; a block of the grid saved into class folders.">
	<nodes>
		<node id="0" name="Import Images" qualified_name="{P}owimportimages.OWImportImages" project_name="Orange3-DeepImage" version="" title="Import Images" position="(80, 150)" />
		<node id="1" name="Image Embedder" qualified_name="{P}owimageembedder.OWImageEmbedder" project_name="Orange3-DeepImage" version="" title="Image Embedder" position="(250, 150)" />
		<node id="2" name="Image Grid" qualified_name="{P}owimagegrid.OWImageGrid" project_name="Orange3-DeepImage" version="" title="Image Grid" position="(420, 150)" />
		<node id="3" name="Save Images" qualified_name="{P}owsaveimages.OWSaveImages" project_name="Orange3-DeepImage" version="" title="Save Images" position="(590, 150)" />
	</nodes>
	<links>
		<link id="0" source_node_id="0" sink_node_id="1" source_channel="Data" sink_channel="Images" enabled="true" source_channel_id="data" sink_channel_id="images" />
		<link id="1" source_node_id="1" sink_node_id="2" source_channel="Embeddings" sink_channel="Embeddings" enabled="true" source_channel_id="embeddings" sink_channel_id="data" />
		<link id="2" source_node_id="2" sink_node_id="3" source_channel="Selected Images" sink_channel="Data" enabled="true" source_channel_id="selected_data" sink_channel_id="data" />
	</links>
	<annotations>
		<text id="0" type="text/plain" rect="(330, 20, 240, 70)">Image Grid places similar digits side by side; drag over a block of cells to select it.</text>
		<text id="1" type="text/plain" rect="(520, 220, 200, 70)">Save Images writes the selection into a folder, one subfolder per class.</text>
	</annotations>
	<node_properties>
		<properties node_id="1" format="literal">{{'model_key': 'local:squeezenet', 'device': 'auto', 'server_url': '', 'auto_commit': True, 'context_settings': [], '__version__': 1, 'controlAreaVisible': True, 'savedWidgetGeometry': None}}</properties>
		<properties node_id="2" format="literal">{{'image_size': 32, 'auto_commit': True, 'context_settings': [], '__version__': 1, 'controlAreaVisible': True, 'savedWidgetGeometry': None}}</properties>
	</node_properties>
</scheme>
"""


def grid_thumbnails_shown(grid) -> bool:
    from AnyQt.QtGui import QImage

    from orangecontrib.deepimage.widgets.utils.gridview import PathRole
    from orangecontrib.deepimage.widgets.utils.thumbnails import size_bucket
    view, model = grid.view, grid.view.model()
    area = view.viewport().rect()
    side = size_bucket(view.delegate.side)
    shown = [model.data(model.index(r, c), PathRole) for r in range(model.rowCount())
             for c in range(model.columnCount())
             if view.visualRect(model.index(r, c)).intersects(area)]
    shown = [p for p in shown if p]
    return bool(shown) and all(isinstance(grid.loader.cached(p, side), QImage) for p in shown)


def drive(session, out_dir: str) -> None:
    importer, grid, saver = (session.widgets[t] for t in
                             ("Import Images", "Image Embedder", "Image Grid", "Save Images")
                             if t != "Image Embedder")
    saver.dirname = out_dir
    importer.set_folder(ensure_digits(DIGITS_DIR))
    session.wait_until("the grid", lambda: session.idle() and grid.layout_ is not None)
    session.open_widget("Image Grid", size=(1180, 900))
    session.wait_until("the thumbnails", lambda: grid_thumbnails_shown(grid))
    model = grid.view.model()
    block = model.grid[4:9, 6:12]
    grid.select_rows([int(r) for r in block.ravel() if r >= 0])
    session.settle(1)
    session.save_widget("Image Grid", "doc/widgets/images/image-grid.png")
    session.wait_until("the selection in Save Images",
                       lambda: session.idle() and saver.data is not None)
    saver.save()
    session.wait_until("the images saved", lambda: saver.task is None and saver.report_)
    session.save_canvas("doc/images/canvas-image-grid.png", size=(1000, 420))
    session.open_widget("Save Images")
    session.settle(1)
    session.save_widget("Save Images", "doc/widgets/images/save-images.png")
    print(saver.info_label.text(), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shots-grid-") as tmp:
        path = os.path.join(tmp, "image-grid.ows")
        with open(path, "w", encoding="utf-8") as f:
            f.write(WORKFLOW)
        out_dir = os.path.join(tmp, "selected-digits")
        return run_canvas(path, lambda session: drive(session, out_dir), timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
