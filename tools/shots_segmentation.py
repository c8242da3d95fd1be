#!/usr/bin/env python3
"""Screenshots of lesson 4 (Segment Images) in a real Orange Canvas session.

    xvfb-run -a .venv/bin/python tools/shots_segmentation.py

Opens tutorials/lesson4_segmentation.ows and writes:
    tutorials/images/lesson4-canvas.png         the workflow
    tutorials/images/lesson4-threshold.png      Segment Images, threshold, with its preview
    tutorials/images/lesson4-outlines.png       Image Viewer with the cells outlined
    tutorials/images/lesson4-dendrogram.png     Hierarchical Clustering of the cells
    tutorials/images/lesson4-clusters.png       Image Viewer: the cells titled by cluster
    doc/widgets/images/segment-images.png       Segment Images, labels painted, live preview
"""
from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from canvas_kit import ROOT, run_canvas, thumbnails_shown  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tutorials"))
from make_cells import cell_fields  # noqa: E402


def paint_scribbles(editor, truth: np.ndarray) -> None:
    """Strokes as a user paints them: short ones across a few cells, long ones over the
    background between them."""
    from scipy import ndimage as ndi
    editor.canvas.brush_size = 5
    editor.select_class(2)
    centres = ndi.center_of_mass(truth > 0, truth, range(1, truth.max() + 1))
    for y, x in centres[::3]:
        editor.canvas.paint_stroke([(x - 3, y - 2), (x + 3, y + 2)])
    editor.select_class(1)
    background = ndi.binary_erosion(truth == 0, iterations=6)
    for y in range(20, truth.shape[0], 45):
        xs = np.flatnonzero(background[y])
        runs = np.split(xs, np.flatnonzero(np.diff(xs) > 1) + 1)
        for run in runs:
            if len(run) > 25:
                editor.canvas.paint_stroke([(run[0], y), (run[-1], y + 4)])


def drive(session) -> None:
    segment = session.widgets["Segment Images"]
    cells, outlines = (session.widgets[t] for t in
                       ("Image Viewer (cells)", "Image Viewer (outlines)"))
    session.wait_until("the clustered cells",
                       lambda: session.idle() and cells.data is not None)
    session.save_canvas("tutorials/images/lesson4-canvas.png", size=(1180, 520))
    session.open_widget("Segment Images", size=(1180, 760))
    session.wait_until("the preview", lambda: segment.preview.task is None
                       and segment.editor.canvas.prediction is not None)
    session.settle(1)
    session.save_widget("Segment Images", "tutorials/images/lesson4-threshold.png")
    session.open_widget("Image Viewer (outlines)", size=(1000, 640))
    session.wait_until("the thumbnails", lambda: thumbnails_shown(outlines))
    session.settle(1)
    session.save_widget("Image Viewer (outlines)", "tutorials/images/lesson4-outlines.png")
    session.open_widget("Hierarchical Clustering", size=(900, 640))
    session.settle(1)
    session.save_widget("Hierarchical Clustering", "tutorials/images/lesson4-dendrogram.png")
    viewer = session.open_widget("Image Viewer (cells)", size=(1000, 640))
    viewer.title_attr = viewer.data.domain["Cluster"]
    viewer._update_titles()
    session.wait_until("the cells' thumbnails", lambda: thumbnails_shown(viewer))
    session.settle(1)
    session.save_widget("Image Viewer (cells)", "tutorials/images/lesson4-clusters.png")

    # the classifier: scribbles on the first field, the prediction appears
    segment.controls.method.buttons[1].click()
    truth = dict(cell_fields())["cultureA-1.png"].labels
    segment.editor.show_image(segment.keys[0])
    paint_scribbles(segment.editor, truth)
    segment.editor.show_image(segment.keys[4])  # another image, predicted live
    session.wait_until("the classifier's preview", lambda: segment.preview.task is None
                       and segment.editor.canvas.prediction is not None
                       and session.idle())
    segment.editor.show_image(segment.keys[0])
    session.wait_until("the classifier's preview and run", lambda: segment.preview.task is None
                       and not segment._commit_timer.isActive() and session.idle()
                       and segment.result is not None and segment.result.segmenter)
    session.settle(2)
    session.save_widget("Segment Images", "doc/widgets/images/segment-images.png")
    print(segment.summary_label.text(), flush=True)


if __name__ == "__main__":
    sys.exit(run_canvas(os.path.join(ROOT, "tutorials", "lesson4_segmentation.ows"), drive,
                        timeout=300))
