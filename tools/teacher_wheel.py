"""A teacher's path through the installed wheel, in a real Orange Canvas under Xvfb.

Help > Example Workflows (the dialog itself), each lesson of the add-on opened from it,
every add-on widget's window opened and F1 pressed (its help action triggered); the URL
Orange opens is caught through QDesktopServices' own handler and must be a page inside
the installed package. Each widget's messages are printed; the dialog, the widgets and
the canvases are saved as PNGs into OUT (look at them).

    xvfb-run -a ENV/bin/python tools/teacher_wheel.py OUT

ENV: an environment with the wheel installed and no checkout on its path (make one as
tools/smoke_wheel.sh does). Run it from outside the checkout. The refit process of
Label Images imports this script again (spawn), so its first line prints twice.
"""
import os
import re
import sys
import time
from urllib.parse import unquote, urlparse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # canvas_kit alone
from canvas_kit import CanvasSession, run_canvas  # noqa: E402
import orangecontrib.deepimage as addon  # noqa: E402

OUT = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else "teacher-wheel"
INSTALLED = os.path.dirname(addon.__file__)
print("add-on imported from", INSTALLED, flush=True)
assert "site-packages" in INSTALLED, "run it with the wheel's environment, not a checkout"

opened = []


class Recorder:
    def __init__(self):
        from AnyQt.QtCore import QObject, pyqtSlot

        class R(QObject):
            @pyqtSlot("QUrl")
            def handle(self, url):
                opened.append(url.toString())
        self.obj = R()


def example_paths():
    from orangecanvas.application import examples
    from Orange.canvas import config
    return [t.abspath() for t in examples.workflows(config.Config())]


def open_from_dialog(window, path):
    """Help > Example Workflows, pick ``path``, Open: as a user does."""
    from AnyQt.QtCore import QTimer
    from AnyQt.QtWidgets import QApplication, QDialog
    from orangecanvas.preview.previewdialog import PreviewDialog
    seen = {}

    def pick():
        dialogs = [w for w in QApplication.topLevelWidgets()
                   if isinstance(w, PreviewDialog) and w.isVisible()]
        if not dialogs:
            QTimer.singleShot(100, pick)
            return
        dialog = dialogs[0]
        model = dialog.model()
        paths = [model.item(i).path() for i in range(model.rowCount())]
        seen["paths"] = paths
        dialog.setCurrentIndex(paths.index(path))
        CanvasSession.settle(1.0)
        seen["shot"] = dialog.grab()
        dialog.accept()
    QTimer.singleShot(100, pick)
    assert window.examples_dialog() == QDialog.Accepted
    return seen


def newest_window(before):
    from AnyQt.QtWidgets import QApplication
    from orangecanvas.application.canvasmain import CanvasMainWindow
    windows = [w for w in QApplication.topLevelWidgets()
               if isinstance(w, CanvasMainWindow) and w.isVisible()]
    fresh = [w for w in windows if w not in before]
    return (fresh or windows)[-1], windows


def help_title(url):
    path = unquote(urlparse(url).path)
    if not os.path.isfile(path):
        return path, None
    m = re.search(r"<title>(.*?)</title>", open(path, encoding="utf-8").read(), re.S)
    return path, m.group(1).strip() if m else ""


def press_f1(session, title, prefix):
    """Open the widget's window, press F1 (its help action), check the page it opens."""
    from AnyQt.QtWidgets import QAction
    widget = session.open_widget(title)
    before = len(opened)
    action = widget.findChild(QAction, "action-help")
    assert action is not None and action.isEnabled(), title
    action.trigger()
    session.wait_until(f"{title}'s help", lambda: len(opened) > before)
    url = opened[-1]
    file, page = help_title(url)
    inside = file.startswith(os.path.join(INSTALLED, "help"))
    print(f"  F1 in {title} ({type(widget).__name__}): {page!r}, "
          f"{'inside the installed package' if inside else url}", flush=True)
    assert inside, f"F1 in {title} opened {url}, not a page of the installed add-on"
    session.report(title)
    widget.grab().save(os.path.join(OUT, f"{prefix}-{type(widget).__name__}.png"))
    widget.hide()
    return type(widget).__name__


def ours(widget) -> bool:
    return type(widget).__module__.startswith("orangecontrib.deepimage")


def drive(first):
    from AnyQt.QtGui import QDesktopServices
    rec = Recorder()
    for scheme in ("file", "http", "https"):
        QDesktopServices.setUrlHandler(scheme, rec.obj, "handle")
    lessons = [p for p in example_paths() if p.startswith(INSTALLED)]
    assert lessons, "Help > Example Workflows lists no lesson of the add-on"
    print(f"Example Workflows lists {len(example_paths())} workflows; ours:", flush=True)
    for p in lessons:
        print("  ", p, flush=True)
    window, pressed = first.window, set()
    for n, path in enumerate(lessons, 1):
        _, known = newest_window([])
        seen = open_from_dialog(window, path)
        if n == 1:
            seen["shot"].save(os.path.join(OUT, "examples-dialog.png"))
        window, _ = newest_window(known)
        session = CanvasSession(window, timeout=120)
        print(f"\nLesson {n}: {os.path.basename(path)}; title "
              f"{window.current_document().scheme().title!r}", flush=True)
        session.settle(3)
        titles = [t for t, w in session.widgets.items() if ours(w)]
        assert titles, f"no add-on widget in {path}"
        pressed.update(press_f1(session, t, f"lesson{n}") for t in titles)
        session.save_canvas(os.path.join(OUT, f"lesson{n}-canvas.png"))
        window.current_document().setModified(False)
    others(window, pressed)


def others(window, pressed):
    """The add-on's widgets in no lesson, put on a new canvas from the toolbox's list."""
    _, known = newest_window([])
    window.new_workflow_window()
    window, _ = newest_window(known)
    document = window.current_document()
    descriptions = [d for d in window.widget_registry.widgets()
                    if d.qualified_name.startswith("orangecontrib.deepimage")]
    print(f"\nThe toolbox's add-on widgets: {len(descriptions)}; in no lesson:", flush=True)
    for d in descriptions:
        if d.qualified_name.rsplit(".", 1)[1] not in pressed:
            document.createNewNode(d)
    session = CanvasSession(window, timeout=120)
    session.settle(2)
    for title in session.widgets:
        press_f1(session, title, "no-lesson")
    document.setModified(False)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    blank = os.path.join(OUT, "blank.ows")
    with open(blank, "w") as f:
        f.write('<?xml version="1.0" ?>\n<scheme version="2.0" title="" description="">'
                '<nodes /><links /></scheme>\n')
    started = time.monotonic()
    code = run_canvas(blank, drive, timeout=600)
    print(f"done in {time.monotonic() - started:.0f} s", flush=True)
    sys.exit(code)
