#!/usr/bin/env python3
"""Take the documentation and lesson 1 screenshots from a real Orange Canvas session.

    xvfb-run -a .venv/bin/python tools/canvas_screenshots.py [--timeout 300]

Opens tutorials/lesson1_clustering.ows in Orange Canvas (through canvas_kit: settings
and caches in a temporary folder, so the embedding runs from scratch; the digits are
written first when tutorials/digits is missing): Import Images -> Image Embedder ->
Distances -> Hierarchical Clustering -> Image Viewer, and Distances -> MDS. It waits
until the embedding is done, clicks one of the ten clusters in Hierarchical Clustering,
selects three thumbnails in Image Viewer and saves the canvas window
(doc/images/canvas-clustering.png) and the widget windows listed in WIDGET_PNGS,
opened from their nodes as a double-click on the canvas opens them.

Then it opens a second workflow window (File > New), builds Import Images (the same
digits) -> Trainer in it through the canvas' scheme API, with the Trainer set for a
CPU run (SqueezeNet, Fine-tune at the preset's epochs, images lowered to 64 px), waits until the training has finished and saves the
Trainer's window (doc/widgets/images/trainer.png). Look at the PNGs before committing.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from functools import partial

from canvas_kit import ROOT, CanvasSession, run_canvas, thumbnails_shown

from orangecontrib.deepimage.tutorials import DIGITS_DIR
from orangecontrib.deepimage.tutorials.make_digits import ensure_digits

WORKFLOW = os.path.join(ROOT, "tutorials", "lesson1_clustering.ows")
CANVAS_PNG = "doc/images/canvas-clustering.png"
WIDGET_PNGS = {  # node title -> (file, window size or None for the widget's own)
    "Import Images": ("doc/widgets/images/import-images.png", None),
    "Image Embedder": ("doc/widgets/images/image-embedder.png", None),
    "MDS": ("tutorials/images/lesson1-mds.png", (900, 640)),
    "Image Viewer": ("doc/widgets/images/image-viewer.png", (900, 600)),
    "Image Viewer (MDS)": ("tutorials/images/lesson1-mds-images.png", (900, 420)),
}
DENDROGRAM_PNG = "tutorials/images/lesson1-dendrogram.png"
TRAINER_PNG = "doc/widgets/images/trainer.png"
TRAINER_SIZE = (980, 600)
# the Trainer's settings as a user would set them (epochs, batch size and learning rate
# stay at the fine-tuning preset, no flips, 5-view prediction); 64 px: about a minute
# on two quiet CPU cores
TRAINER_SETTINGS = {"network": "squeezenet", "mode": "fine-tune", "lower_size": True,
                    "image_size": 64, "flip": False, "device": "cpu", "auto_apply": True,
                    "__version__": 3}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds to wait for each step (default 300)")
    parser.add_argument("--no-trainer", action="store_true",
                        help="skip the Trainer's screenshot (it trains for a minute or more)")
    parser.add_argument("--only-trainer", action="store_true",
                        help="only the Trainer's screenshot (lesson 1's are left as they are)")
    args = parser.parse_args(argv)
    ensure_digits(DIGITS_DIR)

    def drive(session) -> None:
        if args.only_trainer:
            drive_trainer(session)
            return
        widgets = session.widgets
        embedder, clustering, viewer, mds = (widgets[t] for t in (
            "Image Embedder", "Hierarchical Clustering", "Image Viewer", "MDS"))
        session.wait_until("the embedding", lambda: embedder.data is not None
                           and session.idle()
                           and embedder.summary_label.text().startswith("Embedded"))
        session.wait_until("the dendrogram", lambda: clustering.root is not None
                           and viewer.data is not None and session.idle())

        # The dendrogram with the ten clusters that Top N cuts, before a user's click
        session.open_widget("Hierarchical Clustering", (900, 860))
        session.save_widget("Hierarchical Clustering", DENDROGRAM_PNG)
        clustering.hide()

        # Click the cluster of zeros (one of the ten that Top N cut) as a user would: the
        # dendrogram's own selection call and its "edited by the user" signal.
        from Orange.clustering.hierarchical import leaves
        dendrogram = clustering.dendrogram
        digits = embedder.data.get_column("category")

        def zeros(node) -> int:
            return sum(digits[leaf.value.index] == 0 for leaf in leaves(node))
        cluster = max(dendrogram.selected_nodes(), key=zeros)

        def n_images(node):
            return node.value.last - node.value.first
        dendrogram.set_selected_items([dendrogram.item(cluster)])
        dendrogram.selectionEdited.emit()
        size = n_images(cluster)
        session.wait_until("Image Viewer to get the cluster", lambda: session.idle()
                           and viewer.data is not None and len(viewer.data) == size)
        viewer._select_rows([1, 4, 6])  # as Ctrl-clicks would
        print(f"Selected a cluster of {size} images; Image Viewer selected 3.", flush=True)
        session.wait_until("the MDS layout", lambda: mds.embedding is not None
                           and session.idle())
        # In MDS, select the zeros (they lie apart from the rest), as a drag would
        mds_viewer = widgets["Image Viewer (MDS)"]
        zeros = [i for i, value in enumerate(mds.data.get_column("category")) if value == 0]
        mds.graph.select_by_indices(zeros)
        session.wait_until("Image Viewer (MDS) to get the selection", lambda: session.idle()
                           and mds_viewer.data is not None
                           and len(mds_viewer.data) == len(zeros))
        print(f"Selected the {len(zeros)} zeros in MDS.", flush=True)

        session.save_canvas(CANVAS_PNG)
        for title, (path, window_size) in WIDGET_PNGS.items():
            session.open_widget(title, window_size)
            if title.startswith("Image Viewer"):
                session.wait_until("the thumbnails", partial(thumbnails_shown, widgets[title]))
                session.settle()
            elif title == "MDS":
                # let the optimisation finish (it animates) before the picture
                session.wait_until("MDS to converge", lambda: mds.task is None
                                   if hasattr(mds, "task") else True)
                session.settle(2)
            session.save_widget(title, path)
        if not args.no_trainer:
            drive_trainer(session)

    def drive_trainer(session) -> None:
        """A new workflow window with Import Images (the digits) -> Trainer; train, save."""
        from orangecanvas import config
        from orangecanvas.scheme import SchemeLink, SchemeNode
        window = session.window
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
        trainer_session = CanvasSession(trainer_window, session.timeout)
        importer, trainer = (trainer_session.widgets[t] for t in ("Import Images", "Trainer"))
        importer.set_folder(os.path.join(ROOT, "tutorials", "digits"))  # as Browse would
        started = time.monotonic()

        def trained() -> bool:
            if trainer.Error.active:
                trainer_session.report("Trainer")
                raise RuntimeError("the Trainer failed")
            return (trainer.outcome is not None and trainer.task is None
                    and not scheme.signal_manager.has_pending())
        trainer_session.wait_until("the training", trained)
        print(f"Trained in {time.monotonic() - started:.0f} s: "
              f"{trainer.info_label.text()}", flush=True)
        trainer_window.current_document().scene().clearSelection()
        trainer_session.open_widget("Trainer", TRAINER_SIZE)
        trainer_session.report("Import Images")
        trainer_session.save_widget("Trainer", TRAINER_PNG)

    return run_canvas(WORKFLOW, drive, timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
