"""Lesson 1 (tutorials/lesson1_clustering.*): Orange's scheme reader reads the workflow,
its widgets exist, its folder is relative to the tutorial, the loaded workflow runs on
the digits, and the scripted equivalent gives the same groups."""
import importlib
import os
import shutil
import time
from pathlib import Path

import numpy as np

from orangecanvas.registry import CategoryDescription, WidgetRegistry
from orangecanvas.scheme.readwrite import loads, parse_ows_stream, scheme_load
from orangewidget.workflow.discovery import widget_desc_from_module

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"
WORKFLOW = TUTORIALS / "lesson1_clustering.ows"


def load_make_digits():
    from orangecontrib.deepimage.tutorials import make_digits
    return make_digits


def widget_class(qualified_name):
    module, name = qualified_name.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def registry_for(parsed):
    """A registry holding just the workflow's widgets (full discovery takes seconds)."""
    registry = WidgetRegistry()
    for node in parsed.nodes:
        if registry.has_widget(node.qualified_name):
            continue
        desc = widget_desc_from_module(node.qualified_name.rsplit(".", 1)[0])
        if not registry.has_category(desc.category):
            registry.register_category(CategoryDescription(name=desc.category))
        registry.register_widget(desc)
    return registry


def parse():
    with open(WORKFLOW, "rb") as f:
        return parse_ows_stream(f)


def test_workflow_names_existing_widgets_and_channels():
    from orangewidget.widget import OWBaseWidget
    parsed = parse()
    names = [n.qualified_name for n in parsed.nodes]
    assert [n.title for n in parsed.nodes] == [
        "Import Images", "Image Embedder", "Distances", "Hierarchical Clustering",
        "Image Viewer", "MDS", "Image Viewer (MDS)"]
    classes = {n.id: widget_class(n.qualified_name) for n in parsed.nodes}
    assert all(issubclass(c, OWBaseWidget) for c in classes.values()), names
    for link in parsed.links:
        outputs = [o.name for o in classes[link.source_node_id].get_signals("outputs")]
        inputs = [i.name for i in classes[link.sink_node_id].get_signals("inputs")]
        assert link.source_channel in outputs and link.sink_channel in inputs
    assert len(parsed.links) == 6
    settings = {n.title: loads(n.data.data, n.data.format) for n in parsed.nodes[1:]}
    assert settings["Distances"]["metric_id"] == 4  # Cosine in OWDistances' numbering
    assert settings["Hierarchical Clustering"]["linkage"] == 4  # Ward
    assert settings["Hierarchical Clustering"]["top_n"] == 10
    assert settings["MDS"]["__version__"] == 3  # no migration from version 0 at load


def test_image_folder_is_relative_to_the_tutorial():
    node = parse().nodes[0]
    props = loads(node.data.data, node.data.format)
    (recent,) = props["recent_paths"]
    assert (recent.prefix, recent.relpath) == ("basedir", "digits")
    assert not os.path.isabs(recent.abspath)  # no path of the author's machine
    embedder = loads(parse().nodes[1].data.data, parse().nodes[1].data.format)
    assert embedder["model_key"] == "local:squeezenet" and "token" not in embedder


def test_make_digits_writes_class_folders(tmp_path):
    written = load_make_digits().write_digits(str(tmp_path), per_class=2)
    assert written == 20
    assert sorted(os.listdir(tmp_path)) == [str(d) for d in range(10)]
    from PIL import Image
    with Image.open(next((tmp_path / "7").iterdir())) as image:
        assert image.size == (64, 64) and image.mode == "L"


def test_loaded_workflow_runs_on_the_digits(tmp_path):
    """Copied with its digits to another folder, the workflow finds them and runs through."""
    from AnyQt.QtWidgets import QApplication
    from orangewidget.workflow.widgetsscheme import WidgetsScheme
    app = QApplication.instance() or QApplication([])
    shutil.copy(WORKFLOW, tmp_path / WORKFLOW.name)
    load_make_digits().write_digits(str(tmp_path / "digits"), per_class=3)
    parsed = parse()
    scheme = WidgetsScheme()
    scheme.set_runtime_env("basedir", str(tmp_path))
    with open(tmp_path / WORKFLOW.name, "rb") as f:
        scheme_load(scheme, f, registry=registry_for(parsed))
    widgets = {n.title: scheme.widget_manager.widget_for_node(n) for n in scheme.nodes}
    try:
        viewer = widgets["Image Viewer"]
        deadline = time.monotonic() + 120
        while viewer.data is None and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        assert widgets["Import Images"].current_folder() == str(tmp_path / "digits")
        embedder = widgets["Image Embedder"]
        assert not embedder.Error.active, [str(m) for m in embedder.Error.active]
        assert viewer.data is not None and len(viewer.data) == 30
        assert "Embedded 30 images" in embedder.summary_label.text()
        # Hierarchical Clustering cut ten clusters (top N = 10) and sent them on
        assert len(set(viewer.data.get_column("Cluster"))) == 10
        mds = widgets["MDS"]
        deadline = time.monotonic() + 60
        while mds.embedding is None and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        assert mds.embedding.shape == (30, 2)
        # a selection in MDS reaches the second Image Viewer
        mds.graph.select_by_indices([0, 1, 2])
        mds_viewer = widgets["Image Viewer (MDS)"]
        deadline = time.monotonic() + 30
        while (mds_viewer.data is None or len(mds_viewer.data) != 3) \
                and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.02)
        assert len(mds_viewer.data) == 3
    finally:
        from AnyQt.QtCore import QCoreApplication, QEvent
        scheme.clear()
        scheme.deleteLater()
        app.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def test_script_groups_every_image_once(tmp_path, capsys):
    from orangecontrib.deepimage.tutorials import lesson1_clustering as lesson
    load_make_digits().write_digits(str(tmp_path / "digits"), per_class=4)
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
    from AnyQt.QtWidgets import QApplication
    assert QApplication.instance() or QApplication([])
    from Orange.widgets.unsupervised.owhierarchicalclustering import OWHierarchicalClustering
    from orangecontrib.deepimage.tutorials import lesson1_clustering as lesson
    load_make_digits().write_digits(str(tmp_path / "digits"), per_class=3)
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
