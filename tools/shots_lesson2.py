#!/usr/bin/env python3
"""Take lesson 2's screenshots from a real Orange Canvas session.

    xvfb-run -a .venv/bin/python tools/shots_lesson2.py [--timeout 600]

Opens tutorials/lesson2_classification.ows (Import Images -> Image Embedder -> Test and
Score with Logistic Regression and the Trainer -> Confusion Matrix -> Image Viewer; the
digits are written first when tutorials/digits is missing), waits until Test and Score
has cross-validated both learners and Image Viewer shows the misclassified images that
the workflow's Confusion Matrix selects, prints how long that took, and saves

    tutorials/images/lesson2-canvas.png              the canvas window
    tutorials/images/lesson2-test-and-score.png      the widget windows, opened from
    tutorials/images/lesson2-confusion-matrix.png    their nodes as a double-click
    tutorials/images/lesson2-image-viewer.png        on the canvas opens them
                                                     (Image Viewer with its heatmaps)
    tutorials/images/lesson2-heatmap-preview.png     Image Viewer's preview of a mistake
    doc/images/explain-viewer.png, explain-preview.png   the same two for doc/explain.md

Orange's settings and the embedding cache live in a temporary folder (tools/canvas_kit),
so the embedding runs from scratch and the time is what a student sees the first time.
Look at the PNGs before committing them.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from canvas_kit import ROOT, run_canvas, thumbnails_shown  # noqa: E402

from orangecontrib.deepimage.tutorials import DIGITS_DIR  # noqa: E402
from orangecontrib.deepimage.tutorials.make_digits import ensure_digits  # noqa: E402

WORKFLOW = os.path.join(ROOT, "tutorials", "lesson2_classification.ows")
IMAGES = "tutorials/images"
CANVAS_SIZE = (1360, 640)  # the toolbox and the whole workflow with its notes
WIDGET_PNGS = {  # node title -> (file, window size or None for the widget's own)
    "Test and Score": ("lesson2-test-and-score.png", (980, 420)),
    "Confusion Matrix": ("lesson2-confusion-matrix.png", (1080, 580)),
    "Image Viewer": ("lesson2-image-viewer.png", (900, 560)),
}


def dismiss_advice(widget) -> None:
    """Click "Ok, got it" on a widget's first-time advice (Confusion Matrix has one)."""
    from orangewidget.utils.overlay import MessageOverlayWidget
    for overlay in widget.findChildren(MessageOverlayWidget):
        if overlay.isVisible():
            overlay.button(MessageOverlayWidget.Ok).click()


def heatmaps_shown(viewer) -> bool:
    """Image Viewer has explained every thumbnail in its visible area."""
    view = viewer.view
    area = view.viewport().rect()
    shown = [viewer.paths[row] for row in range(len(viewer.paths))
             if view.visualRect(view.model().index(row)).intersects(area)]
    return (bool(shown) and viewer.task is None
            and all(viewer.heatmaps.known(p) is not None for p in shown))


def save_preview(session, viewer, row: int) -> None:
    """Open the preview of the image in ``row`` (as Space does) and save it."""
    from AnyQt.QtGui import QImage
    from orangecontrib.deepimage.widgets.utils.thumbnailview import PREVIEW_SIDE
    view = viewer.view
    view.setCurrentIndex(view.model().index(row))
    view.open_preview(view.currentIndex())
    view.preview.resize(520, 520)
    path = viewer.paths[row]
    session.wait_until("the preview", lambda: isinstance(
        viewer.loader.cached(path, PREVIEW_SIDE), QImage) and heatmaps_shown(viewer))
    session.settle()
    view.preview._update()
    session.settle()
    target = os.path.join(IMAGES, "lesson2-heatmap-preview.png")
    session._save(view.preview, target)
    shutil.copy(os.path.join(ROOT, target), os.path.join(ROOT, "doc", "images", "explain-preview.png"))
    view.preview.close()


def drive(session, started: float, only_canvas: bool = False) -> None:
    widgets = session.widgets
    scores, matrix, viewer = (widgets[t] for t in
                              ("Test and Score", "Confusion Matrix", "Image Viewer"))
    opened = time.monotonic()
    session.wait_until("Test and Score's results", lambda: session.idle()
                       and matrix.results is not None and viewer.data is not None)
    done = time.monotonic()
    print(f"The workflow ran in {done - opened:.0f} s after it was opened "
          f"({done - started:.0f} s after Orange started).", flush=True)
    results, learner = matrix.results, matrix.selected_learner[0]
    wrong = int((results.actual != results.predicted[learner]).sum())
    print(f"Confusion Matrix: {matrix.learners[learner]}, {len(matrix.selection)} cells "
          f"selected; Image Viewer shows {len(viewer.data)} images, {wrong} misclassified.",
          flush=True)
    model = scores.score_table.model
    for row in range(model.rowCount()):
        cells = [model.index(row, col).data() for col in range(model.columnCount())]
        print("  " + "  ".join(f"{c:.3f}" if isinstance(c, float) else str(c)
                               for c in cells), flush=True)
    if len(viewer.data) != wrong:
        raise AssertionError("Image Viewer does not show the misclassified images")

    session.save_canvas(os.path.join(IMAGES, "lesson2-canvas.png"), size=CANVAS_SIZE)
    if only_canvas:
        return
    for title, (name, size) in WIDGET_PNGS.items():
        widget = session.open_widget(title, size=size)
        dismiss_advice(widget)
        if widget is viewer:
            session.wait_until("the thumbnails", lambda: thumbnails_shown(viewer))
            session.wait_until("the heatmaps", lambda: heatmaps_shown(viewer))
            session.settle()
        session.save_widget(title, os.path.join(IMAGES, name))
        if widget is viewer:
            shutil.copy(os.path.join(ROOT, IMAGES, name), os.path.join(ROOT, "doc", "images",
                                                                 "explain-viewer.png"))
            save_preview(session, viewer, 0)
        widget.hide()
    for title in ("Import Images", "Image Embedder", "Logistic Regression", "Trainer",
                  "Image Viewer"):
        session.report(title)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds to wait for each step (default 600)")
    parser.add_argument("--only-canvas", action="store_true",
                        help="save only lesson2-canvas.png (after the workflow has run)")
    args = parser.parse_args(argv)
    ensure_digits(DIGITS_DIR)
    started = time.monotonic()
    return run_canvas(WORKFLOW, lambda session: drive(session, started, args.only_canvas),
                      timeout=args.timeout)


if __name__ == "__main__":
    sys.exit(main())
