"""Label Images with 20,000 images: is the window responsive (no stall over 200 ms)?

    QT_QPA_PLATFORM=offscreen python benchmarks/label_ui_speed.py [--images 20000]
        [--modes thread process] [--load 2]

Writes N distinct small PNGs (scikit-learn's digits, shifted and noised), builds Import
Images' table with 512 embedding columns (a fixed random projection of the pixels: a
network on this CPU would take many minutes for 20,000 images), and drives the widget
as a user does: new data, label a selection with a key, Next to label, Check my labels,
scroll, undo. Reports the time of each GUI-thread step (the slot itself) and, from a
5 ms QTimer probe, the longest gap the event loop had while everything ran (the worker
threads' reading of hashes and refits included), its 99th percentile, and the worker
jobs' own times; once with the refit in a thread of the GUI process (as before) and
once in its own process (core.labelling.worker), side by side, with `--load` busy
processes spinning beside (the machine is shared).
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
    """Gaps between ticks of a 5 ms timer: how long the GUI was stuck (each gap is
    noted with the phase it ended in)."""

    def __init__(self):
        from AnyQt.QtCore import QTimer
        self.last = time.perf_counter()
        self.gaps: list = []
        self.phase = ""
        self.timer = QTimer(interval=5, timeout=self.tick)
        self.timer.start()

    def tick(self):
        now = time.perf_counter()
        self.gaps.append((now - self.last, self.phase))
        self.last = now

    def reset(self):
        self.last, self.gaps = time.perf_counter(), []

    def summary(self, skip: str = "") -> tuple:
        """(longest gap, its phase, 99th percentile) in seconds, leaving out the
        phases that start with ``skip``."""
        gaps = [(g, p) for g, p in self.gaps if not (skip and p.startswith(skip))
                and not p.startswith("setup")]
        worst = max(gaps)
        return worst[0], worst[1], float(np.percentile([g for g, _ in gaps], 99))


def busy_load(n: int) -> list:
    """n processes that spin on a core (the shared machine's other work, made sure)."""
    import subprocess
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--modes", nargs="+", default=["thread", "process"],
                        choices=["thread", "process"],
                        help="where the refit runs: a thread (before) or its process")
    parser.add_argument("--load", type=int, default=2,
                        help="busy processes spinning beside the run (default 2)")
    args = parser.parse_args(argv)
    from AnyQt.QtWidgets import QApplication
    app = QApplication.instance() or QApplication(sys.argv)
    folder = tempfile.mkdtemp(prefix="label-ui-bench-")
    start = time.perf_counter()
    paths = write_images(folder, args.images)
    data = embedded(paths, folder)
    print(f"{len(data):,} images written and embedded (stand-in) in "
          f"{time.perf_counter() - start:.1f} s; {args.load} busy processes beside; "
          f"1-min load average {os.getloadavg()[0]:.1f}")
    spinners = busy_load(args.load)
    try:
        results = {mode: run_widget(app, data, paths, mode) for mode in args.modes}
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    print(f"1-min load average at the end {os.getloadavg()[0]:.1f}\n")
    print("| step (GUI thread unless marked) | " +
          " | ".join(f"s, refit in a {mode}" for mode in args.modes) + " |")
    print("|---|" + "---:|" * len(args.modes))
    names = [name for name, _ in results[args.modes[0]][0]]
    for i, name in enumerate(names):
        print(f"| {name} | " + " | ".join(f"{results[m][0][i][1]:.3f}" for m in args.modes)
              + " |")
    for label, index in (("longest event-loop stall", 0), ("99th percentile of the gaps", 2)):
        for scope, key in (("whole run", 1), ("labelling (after the first refit)", 3)):
            print(f"| {label}, {scope} | " + " | ".join(
                f"{results[m][key][index]:.3f}" for m in args.modes) + " |")
    for mode in args.modes:
        _, whole, _, labelling = results[mode]
        print(f"\n{mode}: longest stall {whole[0] * 1000:.0f} ms during: {whole[1]}; "
              f"in labelling {labelling[0] * 1000:.0f} ms during: {labelling[1]}")
    return 0


def run_widget(app, data, paths, mode: str) -> tuple:
    """Drive a fresh widget; (steps, whole-run probe summary, refit mode, labelling
    summary)."""
    from AnyQt.QtCore import Qt
    from AnyQt.QtTest import QTest
    from orangecontrib.deepimage.widgets.owlabelimages import ALL, CHECK, NEXT, OWLabelImages
    OWLabelImages.refit_in_process = mode == "process"
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
    step("add a class (Add..., slowest of 10)", lambda i: widget.add_class(str(i)),
         repeat=10)
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(paths), 200, replace=False)
    step("label one image (label_rows)",
         lambda i: widget.label_rows([int(chosen[i])], truth[int(chosen[i])]), repeat=10)
    probe.phase = "setup (not a user step): 190 labels put in the session directly"
    for r in chosen[10:]:  # no events meanwhile: this gap is the script's, not counted
        widget.session.assign([int(r)], truth[int(r)])
    probe.last = time.perf_counter()
    step("labels changed (190 at once)", widget._labels_changed)
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
    probe.timer.stop()
    widget.onDeleteWidget()
    fallback = widget.refitter.fallback
    if mode == "process" and fallback != "closed":
        print(f"process mode fell back: {fallback}")
    return (rows, probe.summary(), mode,
            probe.summary(skip="waiting for the worker: content hashes"))


if __name__ == "__main__":
    sys.exit(main())
