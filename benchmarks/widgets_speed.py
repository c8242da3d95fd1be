"""Import Images and Image Viewer on 100,000 files: time, GUI stalls, thumbnails requested.

    QT_QPA_PLATFORM=offscreen python benchmarks/widgets_speed.py /tmp/big-folder

Makes the folder (20 classes x 5,000 small JPEGs) when it does not exist.
"""
import io
import os
import sys
import time

from AnyQt.QtCore import QTimer
from AnyQt.QtWidgets import QApplication
from PIL import Image


def make_folder(root: str, classes: int = 20, per_class: int = 5000) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 100, 50)).save(buffer, "JPEG")
    for c in range(classes):
        folder = os.path.join(root, f"class{c:02d}")
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            with open(os.path.join(folder, f"img{i:05d}.jpg"), "wb") as f:
                f.write(buffer.getvalue())


class Stalls:
    """The longest gaps between 10 ms timer ticks: how long the GUI did not respond."""

    def __init__(self):
        self.gaps, self.last = [], time.perf_counter()
        self.timer = QTimer(interval=10, timeout=self.tick)
        self.timer.start()

    def tick(self):
        now = time.perf_counter()
        self.gaps.append(now - self.last)
        self.last = now

    def __str__(self):
        gaps = sorted(self.gaps)
        return (f"longest GUI stall {gaps[-1] * 1000:.0f} ms, "
                f"99th percentile {gaps[int(len(gaps) * .99)] * 1000:.0f} ms")


def main(root: str) -> None:
    if not os.path.isdir(root):
        make_folder(root)
    app = QApplication([])
    from orangecontrib.deepimage.widgets.owimageviewer import OWImageViewer
    from orangecontrib.deepimage.widgets.owimportimages import OWImportImages

    importer = OWImportImages()
    importer.show()
    stalls = Stalls()
    start = time.perf_counter()
    importer.set_folder(root)
    while importer.task is not None:
        app.processEvents()
        time.sleep(0.001)
    print(f"Import Images: {importer.info_label.text()} in {time.perf_counter() - start:.1f} s; "
          f"{stalls}")

    viewer = OWImageViewer()
    viewer.resize(900, 640)
    viewer.show()
    stalls = Stalls()
    start = time.perf_counter()
    viewer.set_data(importer.result.data)
    app.processEvents()
    print(f"Image Viewer: set {len(viewer.paths):,} rows in {time.perf_counter() - start:.2f} s")
    bar = viewer.view.verticalScrollBar()
    start = time.perf_counter()
    for step in range(100):
        bar.setValue(bar.maximum() * step // 100)
        app.processEvents()
    print(f"Image Viewer: 100 scroll jumps across all rows in {time.perf_counter() - start:.2f} s; "
          f"{viewer.loader.requested:,} thumbnails requested; {stalls}")
    viewer.loader.shutdown()
    importer.shutdown()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/deepimage-100k")
