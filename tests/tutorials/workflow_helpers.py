"""What the lesson tests share: reading a lesson's .ows, checking its links, and
running it as Orange Canvas would, in a temporary folder with its own digits."""
from __future__ import annotations

import contextlib
import importlib
import shutil
import time
from pathlib import Path

from orangecanvas.registry import CategoryDescription, WidgetRegistry
from orangecanvas.scheme.readwrite import loads, parse_ows_stream, scheme_load
from orangewidget.workflow.discovery import widget_desc_from_module

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"


_APP = None


def qapp():
    """The QApplication, created once and kept (a collected one takes Qt down with it)."""
    global _APP
    from AnyQt.QtWidgets import QApplication
    _APP = QApplication.instance() or _APP or QApplication([])
    return _APP


def parse(path: "str | Path"):
    with open(path, "rb") as f:
        return parse_ows_stream(f)


def node_settings(parsed) -> dict:
    """{node title: its stored settings}."""
    return {n.title: loads(n.data.data, n.data.format) for n in parsed.nodes if n.data}


def widget_class(qualified_name: str):
    module, name = qualified_name.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def links_by_title(parsed) -> list:
    """(source title, output, sink title, input) per link, each checked against the
    widgets' real signals."""
    from orangewidget.widget import OWBaseWidget
    classes = {n.id: widget_class(n.qualified_name) for n in parsed.nodes}
    assert all(issubclass(c, OWBaseWidget) for c in classes.values())
    titles = {n.id: n.title for n in parsed.nodes}
    links = []
    for link in parsed.links:
        outputs = [o.name for o in classes[link.source_node_id].get_signals("outputs")]
        inputs = [i.name for i in classes[link.sink_node_id].get_signals("inputs")]
        assert link.source_channel in outputs and link.sink_channel in inputs, link
        links.append((titles[link.source_node_id], link.source_channel,
                      titles[link.sink_node_id], link.sink_channel))
    return links


def registry_for(parsed) -> WidgetRegistry:
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


@contextlib.contextmanager
def opened_workflow(workflow: "str | Path", folder: Path, text: "bytes | None" = None):
    """The workflow copied into ``folder`` (which holds its digits) and loaded there as
    the canvas loads a file; yields (app, scheme, {title: widget}) and tears it down."""
    from AnyQt.QtCore import QCoreApplication, QEvent
    from orangewidget.workflow.widgetsscheme import WidgetsScheme
    app = qapp()
    copy = Path(folder) / Path(workflow).name
    if text is None:
        shutil.copy(workflow, copy)
    else:
        copy.write_bytes(text)
    scheme = WidgetsScheme()
    scheme.set_runtime_env("basedir", str(folder))
    with open(copy, "rb") as f:
        scheme_load(scheme, f, registry=registry_for(parse(copy)))
    widgets = {n.title: scheme.widget_manager.widget_for_node(n) for n in scheme.nodes}
    try:
        yield app, scheme, widgets
    finally:
        scheme.clear()
        scheme.deleteLater()
        app.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def process_until(app, condition, timeout: float) -> bool:
    """Process Qt events until condition() is true or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        app.processEvents()
        time.sleep(0.02)
    return True
