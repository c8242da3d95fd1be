"""Lesson 1 (tutorials/lesson1_clustering.*): Orange's scheme reader reads the workflow,
its widgets exist, its folder is relative to the tutorial, the loaded workflow runs on
the digits, and the scripted equivalent gives the same groups."""
import os

import numpy as np

from orangecontrib.deepimage.tutorials import lesson1_clustering as lesson
from orangecontrib.deepimage.tutorials.make_digits import write_digits

from workflow_helpers import (TUTORIALS, links_by_title, node_settings, opened_workflow,
                              parse, process_until, qapp)

WORKFLOW = TUTORIALS / "lesson1_clustering.ows"


def test_workflow_names_existing_widgets_and_channels():
    parsed = parse(WORKFLOW)
    assert [n.title for n in parsed.nodes] == [
        "Import Images", "Image Embedder", "Distances", "Hierarchical Clustering",
        "Image Viewer", "MDS", "Image Viewer (MDS)"]
    assert links_by_title(parsed) == [
        ("Import Images", "Data", "Image Embedder", "Images"),
        ("Image Embedder", "Embeddings", "Distances", "Data"),
        ("Distances", "Distances", "Hierarchical Clustering", "Distances"),
        ("Hierarchical Clustering", "Selected Data", "Image Viewer", "Data"),
        ("Distances", "Distances", "MDS", "Distances"),
        ("MDS", "Selected Data", "Image Viewer (MDS)", "Data")]
    settings = node_settings(parsed)
    assert settings["Distances"]["metric_id"] == 4  # Cosine in OWDistances' numbering
    assert settings["Hierarchical Clustering"]["linkage"] == 4  # Ward
    assert settings["Hierarchical Clustering"]["top_n"] == 10
    assert settings["MDS"]["__version__"] == 3  # no migration from version 0 at load


def test_image_folder_is_relative_to_the_tutorial():
    settings = node_settings(parse(WORKFLOW))
    (recent,) = settings["Import Images"]["recent_paths"]
    assert (recent.prefix, recent.relpath) == ("basedir", "digits")
    assert not os.path.isabs(recent.abspath)  # no path of the author's machine
    embedder = settings["Image Embedder"]
    assert embedder["model_key"] == "local:squeezenet" and "token" not in embedder


def test_loaded_workflow_runs_on_the_digits(tmp_path):
    """Copied with its digits to another folder, the workflow finds them and runs through."""
    write_digits(str(tmp_path / "digits"), per_class=3)
    with opened_workflow(WORKFLOW, tmp_path) as (app, _, widgets):
        viewer, embedder, mds = (widgets[t] for t in ("Image Viewer", "Image Embedder", "MDS"))
        process_until(app, lambda: viewer.data is not None, 120)
        assert widgets["Import Images"].current_folder() == str(tmp_path / "digits")
        assert not embedder.Error.active, [str(m) for m in embedder.Error.active]
        assert viewer.data is not None and len(viewer.data) == 30
        assert "Embedded 30 images" in embedder.summary_label.text()
        # Hierarchical Clustering cut ten clusters (top N = 10) and sent them on
        assert len(set(viewer.data.get_column("Cluster"))) == 10
        process_until(app, lambda: mds.embedding is not None, 60)
        assert mds.embedding.shape == (30, 2)
        # a selection in MDS reaches the second Image Viewer
        mds.graph.select_by_indices([0, 1, 2])
        mds_viewer = widgets["Image Viewer (MDS)"]
        process_until(app, lambda: mds_viewer.data is not None and len(mds_viewer.data) == 3,
                      30)
        assert len(mds_viewer.data) == 3


def test_script_groups_every_image_once(tmp_path, capsys):
    write_digits(str(tmp_path / "digits"), per_class=4)
    result = lesson.run(str(tmp_path / "digits"), per_class=3, clusters=5)
    assert len(result.data) == 30 and result.data.X.shape == (30, 512)
    assert len(result.clusters) == 5
    rows = sorted(row for group in result.clusters for row in group.rows)
    assert rows == list(range(30))  # every image in exactly one group
    for group in result.clusters:
        assert sum(count for _, count in group.counts) == len(group.rows)
        assert group.counts[0][1] == max(count for _, count in group.counts)
    assert result.mds.shape == (30, 2) and np.isfinite(result.mds).all()
    assert 0 <= result.neighbour_agreement <= 1
    # SqueezeNet's numbers put most digits next to the same digit (chance is 10 %)
    assert result.embedding_agreement > 0.3
    assert lesson.main(["--data", str(tmp_path / "digits"), "--per-class", "2",
                        "--clusters", "3"]) == 0
    out = capsys.readouterr().out
    assert "cut into 3 groups" in out and "Import Images: 20 images in 10 classes" in out


def test_script_matches_the_widgets_clustering(tmp_path):
    """The script's groups are the ones Orange's Hierarchical Clustering widget cuts."""
    from Orange.widgets.unsupervised.owhierarchicalclustering import OWHierarchicalClustering
    qapp()
    write_digits(str(tmp_path / "digits"), per_class=3)
    result = lesson.run(str(tmp_path / "digits"), clusters=10)
    widget = OWHierarchicalClustering()
    try:
        widget.linkage, widget.top_n = 4, 10
        widget.set_distances(result.distances)
        widget.handleNewSignals()
        widget.selection_method = 2  # Top N
        widget._selection_method_changed()
        groups = {tuple(sorted(leaf.value.index for leaf in lesson.leaves(node)))
                  for node in widget.dendrogram.selected_nodes()}
        assert groups == {group.rows for group in result.clusters}
    finally:
        widget.onDeleteWidget()
