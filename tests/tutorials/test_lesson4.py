"""Lesson 4 (tutorials/lesson4_segmentation.*): the workflow's widgets and links exist,
its folder is relative to the tutorial, the loaded workflow counts the cells and
clusters them, and the scripted twin separates the two cultures."""
import os

import numpy as np
import pytest

from orangecontrib.deepimage.tutorials import lesson4_segmentation as lesson
from orangecontrib.deepimage.tutorials.make_cells import true_counts, write_cells

from workflow_helpers import (TUTORIALS, links_by_title, node_settings, opened_workflow,
                              parse, process_until)

WORKFLOW = TUTORIALS / "lesson4_segmentation.ows"


def test_workflow_names_existing_widgets_and_channels():
    parsed = parse(WORKFLOW)
    assert [n.title for n in parsed.nodes] == [
        "Import Images", "Segment Images", "Image Viewer (outlines)", "Data Table (cells)",
        "Image Embedder", "Distances", "Hierarchical Clustering", "Image Viewer (cells)"]
    assert links_by_title(parsed) == [
        ("Import Images", "Data", "Segment Images", "Images"),
        ("Segment Images", "Images", "Image Viewer (outlines)", "Data"),
        ("Segment Images", "Objects", "Data Table (cells)", "Data"),
        ("Segment Images", "Objects", "Image Embedder", "Images"),
        ("Image Embedder", "Embeddings", "Distances", "Data"),
        ("Distances", "Distances", "Hierarchical Clustering", "Distances"),
        ("Hierarchical Clustering", "Selected Data", "Image Viewer (cells)", "Data")]
    settings = node_settings(parsed)
    (recent,) = settings["Import Images"]["recent_paths"]
    assert (recent.prefix, recent.relpath) == ("basedir", "cells")
    segment = settings["Segment Images"]
    assert segment["method"] == 0 and segment["limit_diameter"]
    assert (segment["min_diameter"], segment["max_diameter"]) == (12, 26)
    assert settings["Hierarchical Clustering"]["top_n"] == 2


def test_committed_cells_are_what_make_cells_writes(tmp_path):
    write_cells(str(tmp_path))
    committed = sorted(os.listdir(TUTORIALS / "cells"))
    assert committed == sorted(os.listdir(tmp_path)) == sorted(true_counts())
    from PIL import Image
    for name in committed:
        a = np.asarray(Image.open(TUTORIALS / "cells" / name))
        b = np.asarray(Image.open(tmp_path / name))
        # 16-bit PNGs (Pillow before 10.1 reads them as int32 "I" images)
        assert a.dtype in (np.uint16, np.int32) and a.max() > 255, name
        # the same images: at most 1 count apart in a few pixels (rounding differs between
        # numpy/scipy versions; seen 1 count in 0.02% of pixels with the oldest we support)
        difference = np.abs(a.astype(np.int64) - b.astype(np.int64))
        assert difference.max() <= 1 and (difference > 0).mean() < 0.001, name


@pytest.mark.slow
def test_loaded_workflow_counts_and_clusters_the_cells(tmp_path):
    write_cells(str(tmp_path / "cells"))
    with opened_workflow(WORKFLOW, tmp_path) as (app, _, widgets):
        outlines = widgets["Image Viewer (outlines)"]
        cells = widgets["Image Viewer (cells)"]
        assert process_until(app, lambda: cells.data is not None, 180)
        segment = widgets["Segment Images"]
        assert not segment.Error.active, [str(m) for m in segment.Error.active]
        images = outlines.data
        assert len(images) == 6 and outlines.outline_box.isEnabled()
        truth = true_counts()
        for name, count in zip(images.get_column("image name"),
                               images.get_column("objects")):
            assert abs(count - truth[name + ".png"]) <= 3, (name, count)
        assert len(segment.result.objects) == sum(images.get_column("objects"))
        # Hierarchical Clustering cut two groups and sent them on
        assert len(set(cells.data.get_column("Cluster"))) == 2
        assert len(cells.data) == sum(images.get_column("objects"))


@pytest.mark.slow
def test_script_separates_the_cultures(tmp_path, capsys):
    write_cells(str(tmp_path / "cells"))
    result = lesson.run(str(tmp_path / "cells"), crops_dir=str(tmp_path / "crops"))
    truth = true_counts()
    counts = dict(zip(result.segmented.images.get_column("image name"),
                      result.segmented.images.get_column("objects")))
    assert all(abs(counts[name[:-4]] - n) <= 3 for name, n in truth.items()), counts
    assert result.embedded.X.shape[1] == 512 + len(result.segmented.objects.domain.attributes)
    assert len(result.groups) == 2
    assert result.agreement > 0.85  # the cultures look different; measured: 0.99
    assert lesson.main(["--data", str(tmp_path / "cells")]) == 0
    out = capsys.readouterr().out
    assert "cultureB-3" in out and "cut into 2 groups" in out
