"""Orange tables: our image tables and orange3-imageanalytics' are interchangeable."""
import numpy as np
import pytest

from orangecontrib.deepimage.core import Embedder, find_images
from orangecontrib.deepimage.data import embeddings_table, image_column, image_paths, image_table


def good_images(photo_dir):
    return [s for s in find_images(photo_dir) if s[-5].isdigit()]


def test_image_table_layout(photo_dir):
    table = image_table(good_images(photo_dir), str(photo_dir))
    domain = table.domain
    assert domain.attributes == ()
    assert domain.class_var.name == "category" and list(domain.class_var.values) == ["cats", "dogs"]
    assert [m.name for m in domain.metas] == ["image name", "image", "size", "width", "height"]
    image = image_column(table)
    assert image.attributes == {"type": "image", "origin": str(photo_dir)}
    assert list(table.get_column("image name")[:2]) == ["cats0", "cats1"]
    assert table.get_column(image)[3] == "dogs/dogs0.jpg"
    assert table.get_column("width")[0] == 64 and table.get_column("height")[0] == 48
    assert image_paths(table) == [str(p) for p in map(__import__("pathlib").Path,
                                                       good_images(photo_dir))]


def test_one_folder_has_no_class(photo_dir):
    table = image_table(find_images(photo_dir / "cats"))
    assert table.domain.class_var is None
    assert image_column(table).attributes["origin"] == str(photo_dir / "cats")


def test_embeddings_table_keeps_rows_and_lists_skipped(photo_dir):
    sources = find_images(photo_dir)
    table = image_table(sources, str(photo_dir))
    result = Embedder("squeezenet", backend="torch", cache=False).embed(image_paths(table))
    embedded, skipped = embeddings_table(table, result)
    assert len(embedded) == 6 and len(skipped) == 3
    assert [v.name for v in embedded.domain.attributes[:2]] == ["n0", "n1"]
    assert embedded.domain.attributes[0].attributes["hidden"] is True
    np.testing.assert_array_equal(embedded.X, result.embeddings)
    np.testing.assert_array_equal(embedded.ids, table.ids[result.indices])
    assert embedded.domain.metas == table.domain.metas
    assert "reason" in [m.name for m in skipped.domain.metas]
    reasons = dict(zip(skipped.get_column("image name"), skipped.get_column("reason")))
    assert "empty" in reasons["empty"] and "truncated" in reasons["truncated"]
    # embedding an embedded table adds a second set of features, it does not clash
    again, _ = embeddings_table(embedded, Embedder("squeezenet", backend="torch", cache=False)
                                .embed(image_paths(embedded)))
    assert len(again.domain.attributes) == 1024 and again.domain.attributes[512].name == "n0 (1)"


def test_tables_of_the_image_analytics_add_on_embed_with_ours(photo_dir):
    """A table made the anchor's way (its Import Images) is embedded by our pipeline,
    and ours has the same layout as its."""
    import_images = pytest.importorskip("orangecontrib.imageanalytics.import_images")
    from AnyQt.QtWidgets import QApplication
    app = QApplication.instance() or QApplication([])  # its scanner reads with Qt  # noqa
    theirs, _ = import_images.ImportImages()(str(photo_dir))
    ours = image_table(good_images(photo_dir), str(photo_dir))
    assert [m.name for m in theirs.domain.metas] == [m.name for m in ours.domain.metas]
    assert list(theirs.domain.class_var.values) == list(ours.domain.class_var.values)
    assert image_column(theirs).attributes == image_column(ours).attributes
    # its Qt scanner reads only headers, so it lists the truncated file too
    assert sorted(theirs.get_column("image")) == sorted(
        list(ours.get_column("image")) + ["dogs/truncated.jpg"])
    result = Embedder("squeezenet", backend="torch", cache=False).embed(image_paths(theirs))
    assert [s.source.rsplit("/", 1)[1] for s in result.skipped] == ["truncated.jpg"]
    assert result.embeddings.shape == (6, 512)
