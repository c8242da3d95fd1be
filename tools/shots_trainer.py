#!/usr/bin/env python3
"""A screenshot of the Trainer after fine-tuning, with both accuracies shown.

    xvfb-run -a .venv/bin/python tools/shots_trainer.py [OUT_DIR]

Fine-tunes SqueezeNet with the widget's defaults (the fine-tuning recipe; only the
epochs fewer, so that it takes a minute or two here) on the lesson digits that ship
with the add-on, and writes OUT_DIR/trainer.png (default doc/widgets/images): the
loss and accuracy plots, the dashed line of logistic regression on the same network's
embeddings (the same validation split), and the summary that states both accuracies.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

from AnyQt.QtCore import QEventLoop
from AnyQt.QtWidgets import QApplication
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main() -> int:
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "doc", "widgets", "images")
    app = QApplication(sys.argv)
    from orangecontrib.deepimage.imports import run_import
    from orangecontrib.deepimage.widgets.owtrainer import OWTrainer

    digits = os.path.join(ROOT, "tutorials", "digits")
    state = type("State", (), {"set_status": lambda self, s: None,
                               "set_progress_value": lambda self, v: None,
                               "is_interruption_requested": lambda self: False})()
    table = run_import(digits, state).data
    widget = OWTrainer()
    widget.resize(1000, 640)
    widget.show()
    widget.controls.epochs.setValue(6)
    widget.set_data(table)
    widget.handleNewSignals()
    widget.commit.now()
    start = time.perf_counter()
    while getattr(widget, "outcome", None) is None or widget.task is not None:
        if time.perf_counter() - start > 1800:
            raise TimeoutError("training did not finish")
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 100)
        time.sleep(0.05)
    app.processEvents()
    print(f"trained in {time.perf_counter() - start:.0f} s")
    print(widget.info_label.text())
    shot = os.path.join(tempfile.mkdtemp(), "shot.png")
    widget.grab().save(shot)
    target = os.path.join(out_dir, "trainer.png")
    Image.open(shot).convert("RGB").quantize(256).save(target, optimize=True)
    print(f"wrote {target}")
    widget.onDeleteWidget()
    return 0


if __name__ == "__main__":
    sys.exit(main())
