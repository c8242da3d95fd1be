#!/usr/bin/env python3
"""Screenshot of Orange Canvas' Help > Example Workflows with the lessons in it.

    xvfb-run -a .venv/bin/python tools/shots_examples.py

Opens the dialog as the menu does (``examples_dialog``), selects lesson 1, saves
doc/images/example-workflows.png and closes it. The lessons are there because setup.py
registers ``orangecontrib.deepimage.tutorials`` under ``orange.widgets.tutorials``.
"""
from __future__ import annotations

import os
import sys

from canvas_kit import ROOT, CanvasSession, run_canvas

from orangecontrib.deepimage.tutorials import DIGITS_DIR
from orangecontrib.deepimage.tutorials.make_digits import ensure_digits

PNG = "doc/images/example-workflows.png"
LESSONS = ("lesson1_clustering.ows", "lesson2_classification.ows", "lesson3_server.ows")


def drive(session: CanvasSession) -> None:
    from AnyQt.QtCore import QTimer
    from AnyQt.QtWidgets import QApplication
    from orangecanvas.preview.previewdialog import PreviewDialog
    shown = {}

    def shoot():
        (dialog,) = [w for w in QApplication.topLevelWidgets()
                     if isinstance(w, PreviewDialog) and w.isVisible()]
        model = dialog.model()
        paths = [model.item(i).path() for i in range(model.rowCount())]
        shown["lessons"] = [os.path.basename(p) for p in paths
                            if os.path.basename(p) in LESSONS]
        dialog.setCurrentIndex(paths.index(next(p for p in paths
                                                if p.endswith(LESSONS[0]))))
        dialog.resize(1000, 640)
        session.settle(2)  # previews are scanned in the background
        CanvasSession._save(dialog, PNG)
        dialog.reject()

    QTimer.singleShot(3000, shoot)
    session.window.examples_dialog()  # modal, as Help > Example Workflows opens it
    print("Lessons in the example browser:", shown.get("lessons"), flush=True)
    if shown.get("lessons") != list(LESSONS):
        raise RuntimeError("the lessons are not all in the example browser")


if __name__ == "__main__":
    ensure_digits(DIGITS_DIR)
    sys.exit(run_canvas(os.path.join(ROOT, "tutorials", "lesson1_clustering.ows"), drive))
