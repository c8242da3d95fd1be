"""Image Grid on 2,000 images: layout time per projection, GUI stalls, thumbnails, the anchor.

    QT_QPA_PLATFORM=offscreen python benchmarks/grid_speed.py [--images 2000] [--anchor-timeout 180]

Makes N small JPEGs in 20 colour classes and a 512-value embedding per image (20
clusters, the size of SqueezeNet's), then measures, in this order:
- grid.run_grid_layout alone for t-SNE, PCA and MDS (projection + assignment), and
  the assignment alone (linear_sum_assignment on N x cells);
- the Image Grid widget: from the input to the grid on screen (default t-SNE), the
  longest GUI stall meanwhile (gaps between 10 ms timer ticks), a new grid shape (the
  projection reused), and how many thumbnails were decoded for the first screen;
- orange3-imageanalytics' ImageGrid (MDS, then its assignment), in a subprocess with
  a time limit; its widget runs the same in the GUI thread, so that is its stall.
Markdown to stdout.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
from PIL import Image


def make_images(root: str, n: int, classes: int = 20, seed: int = 0):
    """N 32x32 JPEGs, colour by class, and a clustered 512-d embedding for each."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    hues = rng.integers(30, 225, (classes, 3))
    for c in range(classes):
        os.makedirs(os.path.join(root, f"class{c:02d}"), exist_ok=True)
    for i, label in enumerate(labels):
        pixels = np.clip(hues[label] + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(root, f"class{label:02d}", f"img{i:05d}.jpg"))
    centres = rng.normal(size=(classes, 512)) * 3
    return labels, np.abs(centres[labels] + rng.normal(size=(n, 512)))


def embeddings_table(root: str, embeddings_by_file: dict):
    from Orange.data import ContinuousVariable, Domain, Table

    from orangecontrib.deepimage.imports import run_import

    class State:
        def is_interruption_requested(self):
            return False

        def set_status(self, _):
            pass

        def set_progress_value(self, _):
            pass

    images = run_import(root, State()).data
    names = images.get_column("image")
    x = np.array([embeddings_by_file[os.path.basename(str(name))] for name in names])
    domain = Domain([ContinuousVariable(f"n{i}") for i in range(x.shape[1])],
                    images.domain.class_var, images.domain.metas)
    return Table.from_numpy(domain, x, images.Y, images.metas)


class Stalls:
    def __init__(self):
        from AnyQt.QtCore import QTimer
        self.gaps, self.last = [], time.perf_counter()
        self.timer = QTimer(interval=10, timeout=self.tick)
        self.timer.start()

    def tick(self):
        now = time.perf_counter()
        self.gaps.append(now - self.last)
        self.last = now

    def longest_ms(self) -> float:
        return max(self.gaps, default=0) * 1000


def anchor_layout(table_path: str, timeout: float) -> str:
    code = textwrap.dedent(f"""
        import time
        from Orange.data import Table
        from orangecontrib.imageanalytics.image_grid import ImageGrid
        data = Table({table_path!r})
        t = time.perf_counter()
        grid = ImageGrid(data)
        grid.process()
        print(f"{{time.perf_counter() - t:.1f}}")
    """)
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"> {timeout:.0f} (stopped)"
    if out.returncode:
        return "failed: " + out.stderr.strip().splitlines()[-1]
    return out.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--anchor-timeout", type=float, default=180)
    args = parser.parse_args()
    from AnyQt.QtWidgets import QApplication

    from orangecontrib.deepimage.grid import assign_cells, grid_shape, run_grid_layout

    app = QApplication([])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "images")
        labels, x = make_images(root, args.images)
        table = embeddings_table(root, {f"img{i:05d}.jpg": x[i] for i in range(len(x))})
        n = len(table)
        r, c = grid_shape(n)

        class State:
            def is_interruption_requested(self):
                return False

            def set_status(self, _):
                pass

            def set_progress_value(self, _):
                pass

        for method in ("t-SNE", "PCA", "MDS"):
            start = time.perf_counter()
            layout = run_grid_layout(table.X, method, r, c, State())
            rows.append((f"`run_grid_layout`, {method} + assignment, {n:,} x 512 "
                         f"-> {r} x {c}", time.perf_counter() - start))
        start = time.perf_counter()
        assign_cells(layout.points, r, c)
        rows.append((f"assignment alone (linear_sum_assignment, {n:,} x {r * c:,})",
                     time.perf_counter() - start))

        from orangecontrib.deepimage.widgets.owimagegrid import OWImageGrid
        widget = OWImageGrid()
        widget.resize(1000, 700)
        widget.show()
        app.processEvents()
        stalls = Stalls()
        start = time.perf_counter()
        widget.set_data(table)
        widget.handleNewSignals()
        while widget.task is not None:
            app.processEvents()
            time.sleep(0.002)
        rows.append((f"Image Grid widget: input to grid on screen (t-SNE, {n:,})",
                     time.perf_counter() - start))
        rows.append(("  longest GUI stall meanwhile (ms)", stalls.longest_ms()))
        for _ in range(20):
            app.processEvents()
            widget.loader.wait_idle(10)
        rows.append(("  thumbnails decoded for the first screen", widget.loader.requested))
        stalls = Stalls()
        start = time.perf_counter()
        widget.controls.columns.setValue(60)
        while widget.task is not None:
            app.processEvents()
            time.sleep(0.002)
        rows.append((f"  new shape {widget.rows} x {widget.columns} (projection reused)",
                     time.perf_counter() - start))
        rows.append(("  longest GUI stall meanwhile (ms)", stalls.longest_ms()))
        widget.onDeleteWidget()

        path = os.path.join(tmp, "embeddings.pkl")
        table.save(path)
        anchor = anchor_layout(path, args.anchor_timeout) if args.anchor_timeout else "skipped"
    load = os.getloadavg()[0]
    print(f"{n:,} images, 512-value embeddings in 20 clusters; {os.cpu_count()} cores, "
          f"1-min load average {load:.1f} after.\n")
    print("| step | seconds (or as named) |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value:,.2f} |" if isinstance(value, float) else
              f"| {name} | {value:,} |")
    print(f"| orange3-imageanalytics ImageGrid (MDS + assignment; in its widget this runs "
          f"in the GUI thread) | {anchor} |")


if __name__ == "__main__":
    main()
