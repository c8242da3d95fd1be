#!/usr/bin/env python3
"""Screenshots of Label Images on the lessons' 500 digits, labelled as lesson 5 does.

    xvfb-run -a .venv/bin/python tools/shots_label.py

Embeds tutorials/digits with SqueezeNet (on this computer), opens Label Images and
labels 30 images the way a student following lesson 5 does: the first image of
"Next to label" each time, answered from its folder name. Writes

    doc/widgets/images/label-images.png        All images, with predictions
    doc/widgets/images/label-images-next.png   Next to label
    doc/widgets/images/label-images-check.png  Check my labels (60 labels, two made wrong)

(the first two also as lesson 5's tutorials/images/lesson5-next-to-label.png and
lesson5-all-images.png) and prints the status line after every fifth label.
"""
from __future__ import annotations

import os
import shutil
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

from canvas_kit import isolate_settings  # noqa: E402

isolate_settings()

from AnyQt.QtWidgets import QApplication  # noqa: E402

OUT = os.path.join(ROOT, "doc", "widgets", "images")


def settle(app, widget, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        app.processEvents()
        if widget.task is None and not widget._refit_timer.isActive():
            break
        time.sleep(0.02)
    end = time.monotonic() + 1.5  # thumbnails
    while time.monotonic() < end:
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    app = QApplication.instance() or QApplication(sys.argv)
    from orangecontrib.deepimage.tutorials import DIGITS_DIR
    from orangecontrib.deepimage.tutorials.lesson_steps import embed_images, import_images
    from orangecontrib.deepimage.widgets.owlabelimages import ALL, CHECK, NEXT, OWLabelImages

    data = embed_images(import_images(DIGITS_DIR)).embedded
    truth = [data.domain.class_var.values[int(v)] for v in data.Y]
    widget = OWLabelImages()
    widget.resize(1100, 720)
    widget.show()
    widget.set_data(data)
    settle(app, widget)
    widget.view = NEXT
    widget._view_changed()
    for n in range(1, 31):
        row = widget.grid.row_of(0)
        widget.label_rows([row], truth[row])
        settle(app, widget, 60)
        if n % 5 == 0:
            print(n, widget.status_label.text().splitlines()[0])
    widget._select_items([0, 1, 2])
    settle(app, widget)
    widget.grab().save(os.path.join(OUT, "label-images-next.png"))
    widget.view = ALL
    widget._view_changed()
    widget._select_items([])
    settle(app, widget)
    widget.grab().save(os.path.join(OUT, "label-images.png"))
    widget.view = NEXT  # a user goes on to about six labels a digit before checking
    widget._view_changed()
    for n in range(31, 61):
        row = widget.grid.row_of(0)
        widget.label_rows([row], truth[row])
        settle(app, widget, 60)
    labels = widget.session.row_labels()
    counts = widget.session.counts()
    labelled = [r for r, label in enumerate(labels)
                if label is not None and counts[label] >= 3]
    slips = [labelled[0], next(r for r in labelled if labels[r] != labels[labelled[0]])]
    for row in slips:  # two slips of the hand, into another class with three labels
        wrong = next(c for c in widget.session.classes
                     if c != truth[row] and counts[c] >= 3 and c not in
                     (labels[s] for s in slips))
        widget.label_rows([row], wrong)
    widget.view = CHECK
    widget._view_changed()
    settle(app, widget)
    widget.grab().save(os.path.join(OUT, "label-images-check.png"))
    print("check my labels:", [widget.grid.row_of(i) for i in range(widget.grid.rowCount())],
          "made wrong:", slips)
    print("messages:", [str(m) for group in (widget.Warning, widget.Information) for m in group.active])
    widget.onDeleteWidget()
    lesson = os.path.join(ROOT, "tutorials", "images")
    for shot, copy in (("label-images-next.png", "lesson5-next-to-label.png"),
                       ("label-images.png", "lesson5-all-images.png")):
        shutil.copyfile(os.path.join(OUT, shot), os.path.join(lesson, copy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
