"""Label Images with 20,000 images: is the window responsive (no stall over 200 ms)?

    QT_QPA_PLATFORM=offscreen python benchmarks/label_ui_speed.py [--images 20000]

Writes N distinct small PNGs (scikit-learn's digits, shifted and noised), builds Import
Images' table with 512 embedding columns (a fixed random projection of the pixels: a
network on this CPU would take many minutes for 20,000 images), and drives the widget
as a user does: new data, label a selection with a key, Next to label, Check my labels,
scroll, undo. Reports the time of each GUI-thread step (the slot itself) and, from a
5 ms QTimer probe, the longest gap the event loop had while everything ran (the worker
threads' reading of hashes and refits included), and the worker jobs' own times.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def write_images(folder: str, n: int) -> list:
    from PIL import Image
    from sklearn.datasets import load_digits
    digits = load_digits()
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        k = i % len(digits.images)
        grey = 255 - digits.images[k] * 16
        grey = np.roll(grey, (i // len(digits.images)) % 3 - 1, axis=1)
        grey = np.clip(grey + rng.normal(0, 6, grey.shape), 0, 255).astype(np.uint8)
        sub = os.path.join(folder, str(digits.target[k]))
        os.makedirs(sub, exist_ok=True)
        path = os.path.join(sub, f"d{i:05}.png")
        Image.fromarray(grey, "L").resize((32, 32)).save(path)
        paths.append(path)
    return paths


def embedded(paths, folder):
    from Orange.data import ContinuousVariable, Domain
    from PIL import Image
    from orangecontrib.deepimage.data import image_table
    info = [{"size": os.path.getsize(p), "width": 32, "height": 32} for p in paths]
    table = image_table(paths, folder, info)
    pixels = np.array([np.asarray(Image.open(p).resize((8, 8)), float).ravel()
                       for p in paths]) / 255
    X = np.maximum(pixels @ np.random.default_rng(1).normal(size=(64, 512)), 0)
    domain = Domain([ContinuousVariable(f"n{i}") for i in range(512)], None,
                    table.domain.metas)
    out = table.transform(domain)
    with out.unlocked(out.X):
        out.X = X
    return out


class LagProbe:
    """The longest gap between ticks of a 5 ms timer: how long the GUI was stuck."""

    def __init__(self):
        from AnyQt.QtCore import QTimer
        self.last = time.perf_counter()
        self.worst = 0.0
        self.phase = self.worst_phase = ""
        self.timer = QTimer(interval=5, timeout=self.tick)
        self.timer.start()

    def tick(self):
        now = time.perf_counter()
        if now - self.last > self.worst:
            self.worst, self.worst_phase = now - self.last, self.phase
        self.last = now

    def reset(self):
        self.last, self.worst = time.perf_counter(), 0.0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=20000)
    args = parser.parse_args(argv)
    from AnyQt.QtCore import Qt
    from AnyQt.QtTest import QTest
    from AnyQt.QtWidgets import QApplication
    app = QApplication.instance() or QApplication(sys.argv)
    from orangecontrib.deepimage.widgets.owlabelimages import ALL, CHECK, NEXT, OWLabelImages

    folder = tempfile.mkdtemp(prefix="label-ui-bench-")
    start = time.perf_counter()
    paths = write_images(folder, args.images)
    data = embedded(paths, folder)
    print(f"{len(data):,} images written and embedded (stand-in) in "
          f"{time.perf_counter() - start:.1f} s")
    widget = OWLabelImages()
    widget.resize(1100, 720)
    widget.show()
    probe = LagProbe()
    rows = []

    def step(name, action, repeat=1):
        """The slowest of ``repeat`` calls, each its own event (events run between)."""
        probe.phase = name
        worst = 0.0
        for i in range(repeat):
            start = time.perf_counter()
            action(i) if repeat > 1 else action()
            worst = max(worst, time.perf_counter() - start)
            app.processEvents()
        rows.append((name + (f" (slowest of {repeat})" if repeat > 1 else ""), worst))

    def settle(name):
        probe.phase = f"waiting for the worker: {name}"
        start = time.perf_counter()
        while widget.task is not None or widget._refit_timer.isActive():
            app.processEvents()
            time.sleep(0.002)
        for _ in range(20):
            app.processEvents()
            time.sleep(0.005)
        rows.append((f"  worker: {name} (wall, GUI free meanwhile)",
                     time.perf_counter() - start))

    probe.reset()
    step("set_data (slot)", lambda: widget.set_data(data))
    settle("content hashes of all images, then the first refit")
    truth = [os.path.basename(os.path.dirname(p)) for p in paths]
    for digit in "0123456789":
        widget.add_class(digit)
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(paths), 200, replace=False)
    step("label one image (label_rows)",
         lambda i: widget.label_rows([int(chosen[i])], truth[int(chosen[i])]), repeat=10)
    for r in chosen[10:]:
        widget.session.assign([int(r)], truth[int(r)])
    widget._labels_changed()
    settle("refit with 200 labels")
    widget._select_items([5, 6, 7])
    step("one key press (label 3 selected)",
         lambda: QTest.keyClick(widget.view_widget, Qt.Key.Key_4))
    settle("refit after the key")
    step("commit (three outputs)", lambda: widget.commit.now())
    widget.view = NEXT
    step("view: Next to label", widget._view_changed)
    widget.view = CHECK
    step("view: Check my labels", widget._view_changed)
    widget.view = ALL
    step("view: All images", widget._view_changed)
    bar = widget.view_widget.verticalScrollBar()

    def scroll(i):
        bar.setValue(int(bar.maximum() * i / 19))
        widget.view_widget.viewport().repaint()
    step("scroll one screen and paint it", scroll, repeat=20)
    step("undo (Ctrl+Z)", lambda: QTest.keyClick(widget, Qt.Key.Key_Z,
                                                 Qt.KeyboardModifier.ControlModifier))
    settle("refit after undo")
    worst = probe.worst
    print(f"\n{'step':<58} {'seconds':>8}")
    for name, seconds in rows:
        print(f"{name:<58} {seconds:>8.3f}")
    print(f"\nlongest event-loop stall over the whole run: {worst * 1000:.0f} ms "
          f"(QTimer probe, 5 ms interval), during: {probe.worst_phase}")
    widget.onDeleteWidget()
    return 0


if __name__ == "__main__":
    sys.exit(main())
