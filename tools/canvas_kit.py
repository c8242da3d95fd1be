"""Drive a real Orange Canvas session under Xvfb and save screenshots of it.

    from canvas_kit import run_canvas

    def drive(session):
        session.wait_until("the embedding", lambda: ... and session.idle())
        session.save_canvas("doc/images/canvas.png")
        session.open_widget("Image Viewer", size=(900, 600))
        session.save_widget("Image Viewer", "doc/widgets/images/image-viewer.png")

    sys.exit(run_canvas("tutorials/lesson1_clustering.ows", drive))

Run the script with ``xvfb-run -a .venv/bin/python tools/SCRIPT.py``. ``run_canvas``
starts the same ``OMain`` as ``python -m Orange.canvas`` (without the splash and welcome
screens, update checks and notifications), with Orange's settings and caches (the
embedding cache too) in a fresh temporary folder, so the user's settings are neither
used nor changed and every run starts the same way. It opens the workflow, calls
``drive(session)`` and exits with 0, or 1 when ``drive`` raised (the traceback is
printed). Waiting is polling with a deadline; widgets' messages are printed by
``report``. Look at the PNGs before committing them.

Fonts: the status bars summarise Learner and Model outputs with Orange's symbols U+1F13B
and U+1F13C (squared L and M); where no installed font has them (DejaVu alone does not)
they are drawn as empty boxes, so install one first (Debian: fonts-symbola).
``run_canvas`` warns when fontconfig finds none.
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from typing import Callable, Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CANVAS_SIZE = (1180, 500)


_ISOLATED: Optional[str] = None  # the temporary folder of this process, once made


def isolate_settings() -> str:
    """Point Orange's (and the embedding cache's) folders into a fresh temporary folder.

    Once per process: a second call (run_canvas makes one) returns the same folder, so
    a server started after the first call shares the canvas' settings and cache.
    """
    global _ISOLATED
    if _ISOLATED is not None:
        return _ISOLATED
    home = tempfile.mkdtemp(prefix="deepimage-shots-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"),
                     ("XDG_CACHE_HOME", "cache")):
        os.environ[var] = os.path.join(home, sub)
        os.makedirs(os.environ[var])
    os.environ["DEEPIMAGE_CACHE_DIR"] = os.path.join(home, "deepimage-cache")
    _ISOLATED = home
    return home


def thumbnails_shown(viewer) -> bool:
    """Every thumbnail in an Image Viewer's visible area has been loaded."""
    from AnyQt.QtGui import QImage
    from orangecontrib.deepimage.widgets.utils.thumbnails import size_bucket
    view = viewer.view
    side = size_bucket(view.delegate.side)
    area = view.viewport().rect()
    shown = [viewer.paths[row] for row in range(len(viewer.paths))
             if view.visualRect(view.model().index(row)).intersects(area)]
    return bool(shown) and all(isinstance(viewer.loader.cached(p, side), QImage)
                               for p in shown)


def warn_about_fonts() -> None:
    if shutil.which("fc-list") and not subprocess.run(
            ["fc-list", ":charset=1f13b 1f13c"], capture_output=True, text=True).stdout:
        print("Warning: no font has the Learner/Model symbols U+1F13B, U+1F13C; status "
              "bars will show boxes (Debian: apt-get install fonts-symbola).", flush=True)


class CanvasSession:
    """One open workflow window of the running canvas, and ways to wait for it and shoot it."""

    def __init__(self, window, timeout: float):
        self.window = window
        self.timeout = timeout
        self.scheme = window.current_document().scheme()
        self.nodes = {node.title: node for node in self.scheme.nodes}
        self.wait_until("the widgets", lambda: all(
            self.scheme.widget_for_node(n) for n in self.nodes.values()))
        self.widgets = {title: self.scheme.widget_for_node(node)
                        for title, node in self.nodes.items()}

    def wait_until(self, what: str, condition: Callable[[], bool]) -> None:
        """Process events until condition() is true; fail after the session's timeout."""
        from AnyQt.QtCore import QEventLoop
        from AnyQt.QtWidgets import QApplication
        deadline = time.monotonic() + self.timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.02)

    @staticmethod
    def settle(seconds: float = 0.5) -> None:
        """Let queued signals, layouts and repaints happen."""
        from AnyQt.QtCore import QEventLoop
        from AnyQt.QtWidgets import QApplication
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
            time.sleep(0.02)

    def idle(self) -> bool:
        """No signal waits to be delivered and no widget runs a task (ours or Orange's)."""
        if self.scheme.signal_manager.has_pending():
            return False
        for widget in self.widgets.values():
            if getattr(widget, "task", None) is not None:
                return False
            if getattr(widget, "_ConcurrentWidgetMixin__task", None) is not None:
                return False
        return True

    def report(self, title: str) -> None:
        widget = self.widgets[title]
        shown = [f"{group.__class__.__name__}: {msg.formatted}"
                 for group in widget.message_groups for msg in group.active]
        print(f"  {title}: {'; '.join(shown) or 'no messages'}", flush=True)

    def open_widget(self, title: str, size: Optional[Tuple[int, int]] = None):
        """Open the node's window as a double-click on the canvas does; return the widget."""
        from AnyQt.QtCore import QCoreApplication
        from orangecanvas.scheme.events import WorkflowEvent
        widget = self.widgets[title]
        QCoreApplication.sendEvent(self.nodes[title],
                                   WorkflowEvent(WorkflowEvent.NodeActivateRequest))
        if size is not None:
            widget.resize(*size)
        self.wait_until(f"{title} to show", widget.isVisible)
        self.settle()
        return widget

    def save_canvas(self, path: str, size: Optional[Tuple[int, int]] = None,
                    category: str = "Deep Image") -> None:
        """The canvas window as a user sees it: ``category`` open, no node selected."""
        self.window.resize(*(size or CANVAS_SIZE))
        toolbox = self.window.widgets_tool_box
        for i in range(toolbox.count()):  # only ``category`` open, as a user leaves it
            toolbox.tabAction(i).setChecked(toolbox.tabButton(i).text() == category)
        for i in range(toolbox.count()):
            if toolbox.tabButton(i).text() == category:
                toolbox.ensureWidgetVisible(toolbox.widget(i))
        self.window.current_document().scene().clearSelection()
        self.settle()
        self._save(self.window, path)

    def save_widget(self, title: str, path: str) -> None:
        """The widget's window (open it first with open_widget)."""
        self.report(title)
        self._save(self.widgets[title], path)

    @staticmethod
    def _save(widget, path: str) -> None:
        path = os.path.join(ROOT, path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        if not widget.grab().save(path):
            raise OSError(f"could not save {path}")
        print(f"Saved {os.path.relpath(path, ROOT)}", flush=True)


def run_canvas(workflow_path: str, drive: Callable[[CanvasSession], None], *,
               timeout: float = 300) -> int:
    """Start Orange Canvas on the workflow, call drive(session) once it is open, exit."""
    isolate_settings()
    warn_about_fonts()
    from AnyQt.QtCore import QSettings, QTimer
    from AnyQt.QtWidgets import QApplication
    from Orange.canvas.__main__ import OMain

    class ScreenshotMain(OMain):
        def activate_default_config(self):
            super().activate_default_config()  # sets the application's QSettings names
            settings = QSettings()
            for key in ("startup/check-updates", "notifications/check-notifications",
                        "startup/show-welcome-screen", "startup/show-splash-screen",
                        "reporting/send-statistics"):
                settings.setValue(key, False)
            settings.sync()

        def open_files(self, paths):
            super().open_files(paths)

            def run():
                try:
                    drive(CanvasSession(self.window, timeout))
                except Exception:  # pylint: disable=broad-except
                    traceback.print_exc()
                    result["code"] = 1
                QApplication.exit(result["code"])
            QTimer.singleShot(0, run)

    result = {"code": 0}  # Orange's OMain.run returns None, whatever the exit code
    ScreenshotMain().run([sys.argv[0], "--no-splash", "--no-welcome",
                          os.path.abspath(workflow_path)])
    return result["code"]
