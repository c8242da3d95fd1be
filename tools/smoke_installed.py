#!/usr/bin/env python3
"""Smoke test of an installed Orange3-DeepImage (a wheel in a clean environment), as
Orange's Add-ons dialog leaves it. Run it with that environment's python, from outside
the checkout (tools/smoke_wheel.sh does both):

1. the add-on is imported from site-packages, never from a checkout;
2. Orange's widget discovery (the canvas' registry) finds every widget of the package;
3. Orange Canvas' help manager resolves each widget's F1 help to a local page that
   was installed with the add-on;
4. Help > Example Workflows lists the lessons, and each lesson's Import Images, set up
   from the workflow as the canvas opens it, imports its images (500 digits; lesson 4:
   the cells) with no command;
5. lesson 3 can start its embedding server: the server's packages are requirements, not
   an extra the Add-ons dialog would leave out.

Prints one line per check; exits non-zero on the first failure.
"""
from __future__ import annotations

import asyncio
import os
import sys
import sysconfig
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("DEEPIMAGE_OFFLINE", "1")


def check(condition: bool, message: str) -> None:
    if not condition:
        sys.exit(f"FAILED: {message}")
    print(f"ok  {message}")


def installed_package() -> str:
    import orangecontrib.deepimage as package
    folder = os.path.dirname(os.path.realpath(package.__file__))
    site = os.path.realpath(sysconfig.get_path("purelib"))
    check(folder.startswith(site + os.sep),
          f"orangecontrib.deepimage is imported from {folder}, inside {site}")
    check(not os.path.exists(os.path.join(folder, "..", "..", "setup.py")),
          "no checkout around the imported package")
    return folder


def discover():
    from Orange.canvas.config import Config
    from orangecanvas.registry import WidgetRegistry
    registry = WidgetRegistry()
    discovery = Config.widget_discovery(registry)
    discovery.run(Config.widgets_entry_points())
    return registry


def our_widget_modules(package: str) -> "list[str]":
    folder = os.path.join(package, "widgets")
    return sorted(f"orangecontrib.deepimage.widgets.{name[:-3]}" for name in os.listdir(folder)
                  if name.startswith("ow") and name.endswith(".py"))


def check_registry(registry, package: str) -> list:
    ours = [d for d in registry.widgets() if d.project_name == "Orange3-DeepImage"]
    modules = sorted({d.qualified_name.rsplit(".", 1)[0] for d in ours})
    check(modules == our_widget_modules(package),
          f"Orange's registry finds {len(ours)} widgets: {', '.join(d.name for d in ours)}")
    category = registry.category("Deep Image")
    check(category is not None and category.project_name == "Orange3-DeepImage",
          "category 'Deep Image' is registered")
    return ours


def check_help(registry, widgets: list, package: str) -> None:
    from AnyQt.QtCore import QCoreApplication
    from orangecanvas.help import HelpManager
    manager = HelpManager()
    manager.set_registry(registry)
    help_root = os.path.join(package, "help")
    loop = asyncio.new_event_loop()

    async def resolve(desc):
        # the provider loads its index through Qt's network manager: keep Qt's loop going
        task = asyncio.ensure_future(manager.search_async({"id": desc.qualified_name},
                                                          timeout=10))
        deadline = time.monotonic() + 15
        while not task.done() and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            await asyncio.sleep(0.01)
        return task.result()

    for desc in widgets:
        url = loop.run_until_complete(resolve(desc))
        path = url.toLocalFile()
        check(url.isLocalFile() and os.path.isfile(path)
              and os.path.realpath(path).startswith(os.path.realpath(help_root) + os.sep),
              f"F1 on {desc.name} opens {url.toString()}")
        with open(path, encoding="utf-8") as f:
            check(f"<h1>{desc.name}<" in f.read(),
                  f"the page is titled {desc.name}")
    loop.close()


def check_lessons(registry) -> None:
    from AnyQt.QtWidgets import QApplication
    from Orange.canvas.config import Config
    from orangecanvas.application.examples import workflows
    from orangecanvas.scheme.readwrite import loads, parse_ows_stream
    from orangewidget.tests.base import DummySignalManager

    app = QApplication.instance()
    lessons = [w for w in workflows(Config()) if w.package is not None
               and w.package.__name__ == "orangecontrib.deepimage.tutorials"]
    check(len(lessons) == 5, "Help > Example Workflows lists "
          + ", ".join(w.resource for w in lessons))
    for lesson in lessons:
        path = lesson.abspath()
        with open(path, "rb") as f:
            parsed = parse_ows_stream(f)
        (node,) = [n for n in parsed.nodes if n.title == "Import Images"]
        desc = registry.widget(node.qualified_name)
        module, name = desc.qualified_name.rsplit(".", 1)
        cls = getattr(__import__(module, fromlist=[name]), name)
        settings = loads(node.data.data, node.data.format)
        # what the canvas does when a workflow is opened from the example browser
        widget = cls.__new__(cls, signal_manager=DummySignalManager(),
                             stored_settings=settings,
                             env={"basedir": os.path.dirname(os.path.abspath(path))})
        widget.__init__()
        deadline = time.monotonic() + 60
        while widget.task is not None and time.monotonic() < deadline:
            app.processEvents()
            time.sleep(0.01)
        errors = [m.formatted for m in widget.Error.active]
        data = widget.result.data if widget.result is not None else None
        if os.path.basename(widget.current_folder()) == "cells":  # lesson 4's cell images
            wanted = len([n for n in os.listdir(widget.current_folder())
                          if n.endswith(".png")])
            good = wanted > 0 and data is not None and len(data) == wanted
        else:
            good = (data is not None and len(data) == 500
                    and len(data.domain.class_var.values) == 10)
        check(not errors and good,
              f"{lesson.resource}: Import Images reads {0 if data is None else len(data)} "
              f"images from {widget.current_folder()} {errors or ''}")
        widget.onDeleteWidget()
        widget.deleteLater()


def check_server_packages() -> None:
    """Lesson 3's "Start a Server on This Computer" needs the server's packages, and
    Orange's Add-ons dialog installs no extras: the wheel itself must require them."""
    import re
    from importlib.metadata import distribution

    from orangecontrib.deepimage.embedder_job import local_server_possible
    required = {re.match(r"[A-Za-z0-9._-]+", r).group(0).lower()
                for r in distribution("Orange3-DeepImage").requires if "extra ==" not in r}
    missing = sorted({"fastapi", "uvicorn", "pydantic-settings", "python-multipart"}
                     - required)
    check(not missing and local_server_possible("http://127.0.0.1:8000"),
          "lesson 3 can start its server: the wheel requires the server's packages "
          f"without an extra{f' (not: {missing})' if missing else ''}")


def check_labelling_cli() -> None:
    """`deepimage label-next` runs from the installed package (a .npy of 30 rows)."""
    import subprocess
    import tempfile

    import numpy as np
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "embeddings.npy")
        np.save(path, np.random.default_rng(0).normal(size=(30, 8)))
        proc = subprocess.run([sys.executable, "-m", "orangecontrib.deepimage.cli",
                               "label-next", path, "-n", "3"], capture_output=True,
                              text=True, timeout=120)
    ok = proc.returncode == 0 and len(proc.stdout.split()) == 3
    check(ok, "deepimage label-next suggests 3 rows to label"
          + ("" if ok else f": {proc.stderr.strip()[-300:]}"))


def check_segment_cli() -> None:
    """`deepimage segment` counts lesson 4's cells from the installed package."""
    import csv
    import subprocess
    import tempfile

    from orangecontrib.deepimage.tutorials import TUTORIALS_DIR
    cells = os.path.join(TUTORIALS_DIR, "cells")
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "objects.csv")
        proc = subprocess.run([sys.executable, "-m", "orangecontrib.deepimage.cli",
                               "segment", cells, "-o", out, "-q"], capture_output=True,
                              text=True, timeout=300)
        rows = 0
        if proc.returncode == 0 and os.path.exists(out):
            with open(out, newline="", encoding="utf-8") as f:
                rows = sum(1 for _ in csv.DictReader(f))
    ok = proc.returncode == 0 and rows > 0
    check(ok, f"deepimage segment finds {rows} objects in lesson 4's cells"
          + ("" if ok else f": {proc.stderr.strip()[-300:]}"))


def main() -> int:
    from AnyQt.QtWidgets import QApplication
    app = QApplication(sys.argv[:1])  # noqa: F841 (kept alive)
    package = installed_package()
    registry = discover()
    widgets = check_registry(registry, package)
    check_help(registry, widgets, package)
    check_lessons(registry)
    check_server_packages()
    check_labelling_cli()
    check_segment_cli()
    print("The installed add-on passed its smoke test.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
