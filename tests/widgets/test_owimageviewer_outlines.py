"""Image Viewer draws the outlines of the objects when the data has a mask column
(Segment Images' Images output), and leaves other thumbnails alone."""
import numpy as np
from AnyQt.QtGui import QImage
from AnyQt.QtTest import QTest
from Orange.data import Domain, StringVariable, Table
from Orange.widgets.tests.base import WidgetTest
from PIL import Image

from orangecontrib.deepimage.widgets.owimageviewer import OWImageViewer
from orangecontrib.deepimage.widgets.utils.heatmaps import qimage_to_array
from orangecontrib.deepimage.widgets.utils.outlines import OUTLINE_COLOUR, outline
from orangecontrib.deepimage.widgets.utils.thumbnails import size_bucket


def test_outline_is_the_border_of_each_object():
    labels = np.zeros((7, 9), int)
    labels[1:6, 1:4] = 1
    labels[1:6, 4:8] = 2  # touching its neighbour: the shared border is outlined on both
    edge = outline(labels)
    assert edge[1, 1] and edge[3, 1] and edge[3, 3] and edge[3, 4]
    assert not edge[3, 2] and not edge[3, 6] and not edge[0, 0]


def table_with_masks(tmp_path, with_mask=True):
    for name in ("a", "b"):
        Image.fromarray(np.full((48, 64, 3), 40, np.uint8)).save(tmp_path / f"{name}.png")
    mask = np.zeros((48, 64), np.uint16)
    mask[10:30, 10:30] = 1
    mask[20:40, 40:60] = 300  # uint16 ids
    (tmp_path / "masks").mkdir()
    Image.fromarray(mask).save(tmp_path / "masks" / "a.png")
    image = StringVariable("image")
    image.attributes.update(type="image", origin=str(tmp_path))
    metas = [image]
    values = [["a.png"], ["b.png"]]
    if with_mask:
        mask_var = StringVariable("mask")
        mask_var.attributes.update(type="mask", origin=str(tmp_path / "masks"))
        metas.append(mask_var)
        values = [["a.png", "a.png"], ["b.png", ""]]  # b: no mask (skipped)
    return Table.from_numpy(Domain([], None, metas), np.empty((2, 0)),
                            metas=np.array(values, dtype=object))


class TestOutlines(WidgetTest):
    def setUp(self):
        self.widget = self.create_widget(OWImageViewer)
        self.widget.resize(700, 500)
        self.widget.show()

    def overlaid(self):
        loader = self.widget.loader
        side = size_bucket(self.widget.image_size)
        for path in self.widget.paths:
            loader.get(path, side)
        for _ in range(5):
            self.process_events()
            self.assertTrue(loader.wait_idle(10))
            QTest.qWait(30)
        images = [loader.cached(p, side) for p in self.widget.paths]
        self.assertTrue(all(isinstance(i, QImage) for i in images))
        return [qimage_to_array(self.widget._overlay(p, i))
                for p, i in zip(self.widget.paths, images)]

    def test_outlines_drawn_from_the_mask_column(self, ):
        import pathlib
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            self.send_signal(self.widget.Inputs.data, table_with_masks(pathlib.Path(tmp)))
            self.assertTrue(self.widget.outline_box.isEnabled())
            a, b = self.overlaid()
            yellow = (a == OUTLINE_COLOUR).all(axis=2)
            self.assertTrue(yellow[10, 10:30].all())  # the top edge of the first object
            self.assertFalse(yellow[20, 20])  # its inside is the image
            self.assertTrue(yellow[20:40, 59].all())  # the second object's right edge
            self.assertFalse((b == OUTLINE_COLOUR).all(axis=2).any())  # no mask: plain
            self.widget.controls.show_outlines.setChecked(False)
            a, _ = self.overlaid()
            self.assertFalse((a == OUTLINE_COLOUR).all(axis=2).any())

    def test_no_mask_column_no_outlines(self):
        import pathlib
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            self.send_signal(self.widget.Inputs.data,
                             table_with_masks(pathlib.Path(tmp), with_mask=False))
            self.assertFalse(self.widget.outline_box.isEnabled())
            a, _ = self.overlaid()
            self.assertFalse((a == OUTLINE_COLOUR).all(axis=2).any())
