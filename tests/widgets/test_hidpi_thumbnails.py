"""Thumbnails on HiDPI screens (issue 21, item 5): Image Viewer and Image Grid decode at
the device pixel ratio, so a 128 px cell on a Retina screen (ratio 2) gets a 256 px
image, not a blurry 128 px one. A screen of ratio 2 is made with QT_SCALE_FACTOR=2 in a
fresh Python (Qt reads it at start)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
from PIL import Image

from orangecontrib.deepimage.widgets.utils.thumbnails import decode_side, size_bucket

SCRIPT = textwrap.dedent("""
    import sys
    from AnyQt.QtCore import QSize
    from AnyQt.QtGui import QImage
    from AnyQt.QtWidgets import QApplication
    from orangecontrib.deepimage.widgets.utils.thumbnails import ThumbnailLoader
    from orangecontrib.deepimage.widgets.utils.thumbnailview import (ThumbnailModel,
                                                                      ThumbnailView)
    from orangecontrib.deepimage.widgets.utils.gridview import GridView

    app = QApplication([])
    path = sys.argv[1]
    for kind in ("viewer", "grid"):
        loader = ThumbnailLoader()
        if kind == "viewer":
            view = ThumbnailView(loader)
            view.setModel(ThumbnailModel([path], lambda i: "photo"))
            view.delegate.side = 128
        else:
            from AnyQt.QtGui import QStandardItemModel, QStandardItem
            from orangecontrib.deepimage.widgets.utils.gridview import RowRole, SubsetRole
            from orangecontrib.deepimage.widgets.utils.thumbnailview import PathRole
            model = QStandardItemModel(1, 1)
            item = QStandardItem()
            item.setData(path, PathRole)
            item.setData(0, RowRole)
            item.setData(True, SubsetRole)
            model.setItem(0, 0, item)
            view = GridView(loader)
            view.setModel(model)
            view.delegate.side = 128
            view.horizontalHeader().setDefaultSectionSize(140)
            view.verticalHeader().setDefaultSectionSize(140)
        view.resize(400, 400)
        view.show()
        view.viewport().grab()  # paints: the delegate asks for the thumbnail
        loader.wait_idle()
        app.processEvents()
        sides = sorted(side for (_, side) in loader._cache)
        image = loader.cached(path, sides[0]) if sides else None
        print(kind, view.viewport().devicePixelRatioF(), sides,
              image.width() if isinstance(image, QImage) else None)
        loader.shutdown()
""")


def test_decode_side_follows_the_device_pixel_ratio():
    assert decode_side(128) == size_bucket(128) == 128
    assert decode_side(128, 2.0) == 256
    assert decode_side(100, 1.25) == 128 and decode_side(110, 1.25) == 256
    assert decode_side(128, 0) == 128  # a ratio a device does not know: as 1
    assert decode_side(800, 2.0) == 1024  # the largest bucket


def run_at_scale(path, scale):
    env = dict(os.environ, QT_SCALE_FACTOR=str(scale), QT_QPA_PLATFORM="offscreen")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    return {line.split()[0]: line.split(None, 1)[1] for line in proc.stdout.splitlines()}


def test_viewer_and_grid_decode_at_the_device_pixel_ratio(tmp_path):
    path = tmp_path / "photo.png"
    pixels = np.random.default_rng(0).integers(0, 255, (300, 400, 3), np.uint8)
    Image.fromarray(pixels).save(path)
    retina = run_at_scale(path, 2)
    assert retina == {"viewer": "2.0 [256] 256", "grid": "2.0 [256] 256"}, retina
    plain = run_at_scale(path, 1)
    assert plain == {"viewer": "1.0 [128] 128", "grid": "1.0 [128] 128"}, plain
