"""tutorials/image-clustering.ows: Orange's scheme reader reads it, its widgets exist,
its folder is relative to the tutorial, and the loaded workflow runs on the digits."""
import importlib.util
import os
import shutil
import time
from pathlib import Path

import pytest

from orangecanvas.registry import CategoryDescription, WidgetRegistry
from orangecanvas.scheme.readwrite import loads, parse_ows_stream, scheme_load
from orangewidget.workflow.discovery import widget_desc_from_module

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
WORKFLOW = TUTORIALS / "image-clustering.ows"


def load_make_digits():
    spec = importlib.util.spec_from_file_location("make_digits", TUTORIALS / "make_digits.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def widget_class(qualified_name):
    module, name = qualified_name.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def registry_for(parsed):
    """A registry holding just the workflow's widgets (full discovery takes seconds)."""
    registry = WidgetRegistry()
    for node in parsed.nodes:
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
        "Image Viewer"]
    classes = {n.id: widget_class(n.qualified_name) for n in parsed.nodes}
    assert all(issubclass(c, OWBaseWidget) for c in classes.values()), names
    for link in parsed.links:
        outputs = [o.name for o in classes[link.source_node_id].get_signals("outputs")]
        inputs = [i.name for i in classes[link.sink_node_id].get_signals("inputs")]
        assert link.source_channel in outputs and link.sink_channel in inputs
    assert len(parsed.links) == 4


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
    finally:
        from AnyQt.QtCore import QCoreApplication, QEvent
        scheme.clear()
        scheme.deleteLater()
        app.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
