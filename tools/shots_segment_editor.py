#!/usr/bin/env python3
"""Screenshots of Segment Images' label editor with the live preview, in a real window.

    xvfb-run -a .venv/bin/python tools/shots_segment_editor.py [OUT_DIR]

Two generated 1024 x 1024 fields of cells (uneven illumination); strokes painted
through the editor as a user paints them; writes to OUT_DIR (default doc/images):
    segment-live-preview.png         the whole image, strokes and the prediction
    segment-live-preview-zoomed.png  zoomed in, one more stroke: the view predicted
                                     first (the rest of the image follows)
and prints how long each preview took, as the widget got it (wall clock).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np
from AnyQt.QtCore import QEventLoop
from AnyQt.QtWidgets import QApplication
from PIL import Image
from scipy import ndimage as ndi

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def wait(app, condition, timeout=60.0) -> float:
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            raise TimeoutError("the preview did not come")
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.01)
    return time.perf_counter() - start


def save(widget, path: str) -> None:
    """The window as a small PNG (256 colours)."""
    shot = os.path.join(tempfile.mkdtemp(), "shot.png")
    widget.grab().save(shot)
    Image.open(shot).convert("RGB").quantize(256).save(path, optimize=True)


def scribbles(editor, truth: np.ndarray) -> None:
    """Short strokes across some cells, long ones over the background between them."""
    editor.canvas.brush_size = 7
    editor.select_class(2)
    centres = ndi.center_of_mass(truth > 0, truth, range(1, truth.max() + 1))
    for y, x in centres[::6]:
        editor.canvas.paint_stroke([(x - 4, y - 2), (x + 4, y + 2)])
    editor.select_class(1)
    background = ndi.binary_erosion(truth == 0, iterations=8)
    for y in range(40, truth.shape[0], 110):
        xs = np.flatnonzero(background[y])
        for run in np.split(xs, np.flatnonzero(np.diff(xs) > 1) + 1):
            if len(run) > 40:
                editor.canvas.paint_stroke([(run[0], y), (run[-1], y + 3)])


def main() -> int:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "doc", "images")
    app = QApplication(sys.argv)
    from orangecontrib.deepimage.core.segment.synthetic import make_cells
    from orangecontrib.deepimage.data import image_table
    from orangecontrib.deepimage.seglive import PreviewMap
    from orangecontrib.deepimage.widgets.owsegmentimages import CLASSIFIER, OWSegmentImages

    folder = tempfile.mkdtemp()
    cells = [make_cells((1024, 1024), count=170, seed=seed) for seed in (4, 5)]
    paths = [os.path.join(folder, f"field-{i + 1}.png") for i in range(2)]
    for path, cell in zip(paths, cells):
        Image.fromarray(cell.image).save(path)
    widget = OWSegmentImages()
    widget.resize(1100, 720)
    widget.show()
    widget.set_data(image_table(paths, folder))
    widget.handleNewSignals()
    widget.controls.method.buttons[CLASSIFIER].click()
    # the user looks at the image before painting: its features are computed meanwhile
    wait(app, lambda: widget.preview.task is None and not widget.preview._timer.isActive())
    got = []
    widget.preview.ready.connect(lambda key, result: got.append((time.perf_counter(), result))
                                 if isinstance(result, PreviewMap) else None)
    scribbles(widget.editor, cells[0].labels)
    start = time.perf_counter()
    wait(app, lambda: got and got[-1][1].final and widget.preview.task is None)
    print(f"after the strokes: the view in {got[0][0] - start:.2f} s, the whole image in "
          f"{got[-1][0] - start:.2f} s")
    wait(app, lambda: widget.result is not None and widget.result.segmenter is not None
         and widget.task is None)  # Apply Automatically: all images, the full classifier
    save(widget, os.path.join(out_dir, "segment-live-preview.png"))

    canvas = widget.editor.canvas
    canvas.zoom(3)
    canvas.centerOn(300, 300)
    app.processEvents()
    got.clear()
    widget.editor.select_class(1)
    start = time.perf_counter()
    canvas.paint_stroke([(250, 150), (330, 160)])
    wait(app, lambda: bool(got))
    print(f"zoomed in, a stroke: the view in {got[0][0] - start:.2f} s "
          f"(the request waits 0.15 s for more strokes first)")
    app.processEvents()
    save(widget, os.path.join(out_dir, "segment-live-preview-zoomed.png"))
    wait(app, lambda: got[-1][1].final and widget.preview.task is None)
    print(f"zoomed in: the whole image in {got[-1][0] - start:.2f} s")
    widget.onDeleteWidget()
    return 0


if __name__ == "__main__":
    sys.exit(main())
