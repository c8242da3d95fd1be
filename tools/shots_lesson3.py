#!/usr/bin/env python3
"""Screenshots for lesson 3 (tutorials/lesson3_server.md) from a real Orange Canvas.

    xvfb-run -a .venv/bin/python tools/shots_lesson3.py [--timeout 300]

Two canvas sessions, each with fresh settings and an empty embedding cache
(tools/canvas_kit.py), on tutorials/lesson3_server.ows and the digits in
tutorials/digits (written first when missing):

1. As a student who forgot the server: nothing listens on 127.0.0.1:8000 when the
   workflow opens. Saves the server's Image Embedder with its messages open
   (lesson3-no-server.png); then starts `deepimage serve` on port 8000, presses List
   Server Models (which embeds again, as the last run failed) and then Reload in
   Import Images, stops the server and presses Reload once more, and prints what the
   Image Embedders say after each step.
2. As the lesson goes: `deepimage serve` is started on 127.0.0.1:8000 first, then the
   workflow is opened. Saves the canvas (lesson3-canvas.png), both Image Embedders
   (lesson3-embedder-local.png, lesson3-embedder-server.png), the two Data Tables side
   by side, scrolled to a column of numbers that are not 0 (lesson3-tables.png), and the two
   Scatter Plots side by side (lesson3-maps.png); stops the server.

Port 8000 must be free (it is the address stored in the workflow). The server is
stopped at the end whatever happened. Look at the PNGs before committing them.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from canvas_kit import ROOT, isolate_settings, run_canvas  # noqa: E402

from orangecontrib.deepimage.tutorials import DIGITS_DIR  # noqa: E402
from orangecontrib.deepimage.tutorials.lesson3_server import start_lesson_server  # noqa: E402
from orangecontrib.deepimage.tutorials.make_digits import ensure_digits  # noqa: E402

WORKFLOW = os.path.join(ROOT, "tutorials", "lesson3_server.ows")
IMAGES = "tutorials/images"
PORT = 8000  # the address the workflow stores, the default of `deepimage serve`
CANVAS_SIZE = (1280, 620)
HERE_TITLE, SERVER_TITLE = "this computer", "server"


def embedder(session, where):
    return session.widgets[f"Image Embedder ({where})"]


def embedded(session, where) -> bool:
    widget = embedder(session, where)
    return widget.task is None and widget.summary_label.text().startswith("Embedded")


def summaries(session) -> None:
    for where in (HERE_TITLE, SERVER_TITLE):
        print(f"  Image Embedder ({where}) info: "
              f"{embedder(session, where).summary_label.text()}", flush=True)
        session.report(f"Image Embedder ({where})")


def side_by_side(left, right, captions, path: str) -> None:
    """Two widgets' windows next to each other, each under a caption, in one PNG."""
    from AnyQt.QtCore import QRect, Qt
    from AnyQt.QtGui import QColor, QFont, QImage, QPainter
    shots = [left.grab(), right.grab()]
    gap, caption_height = 16, 34
    width = sum(s.width() for s in shots) + 3 * gap
    height = max(s.height() for s in shots) + caption_height + gap
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    font = QFont()
    font.setPointSize(13)
    font.setBold(True)
    painter.setFont(font)
    x = gap
    for shot, caption in zip(shots, captions):
        painter.drawText(QRect(x, 0, shot.width(), caption_height),
                         Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, caption)
        painter.drawPixmap(x, caption_height, shot)
        x += shot.width() + gap
    painter.end()
    full = os.path.join(ROOT, path)
    if not image.save(full):
        raise OSError(f"could not save {full}")
    print(f"Saved {path}", flush=True)


def save_with_messages(session, widget, path: str) -> None:
    """The widget's window with its messages open below it, as a click on the status
    bar's "2 errors" shows them (the two windows where the screen has them)."""
    from AnyQt.QtCore import QPoint, Qt
    from AnyQt.QtGui import QColor, QImage, QPainter
    from AnyQt.QtTest import QTest
    from AnyQt.QtWidgets import QApplication
    widget.move(20, 40)  # the messages open where the click is, to the right of it
    session.settle()
    bar = widget.message_bar
    QTest.mouseClick(bar, Qt.MouseButton.LeftButton, pos=QPoint(10, bar.height() // 2))
    session.wait_until("the messages", lambda: QApplication.activePopupWidget() is not None)
    session.settle()
    popup = QApplication.activePopupWidget()
    parts = [(widget.grab(), widget.geometry()), (popup.grab(), popup.geometry())]
    area = parts[0][1].united(parts[1][1]).adjusted(-8, -8, 8, 8)
    image = QImage(area.size(), QImage.Format.Format_RGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    for pixmap, where in parts:
        painter.drawPixmap(where.topLeft() - area.topLeft(), pixmap)
    painter.end()
    popup.close()
    full = os.path.join(ROOT, path)
    if not image.save(full):
        raise OSError(f"could not save {full}")
    print(f"Saved {path}", flush=True)


def press_reload(session) -> None:
    """Reload in Import Images: the images are read again and both embedders run."""
    session.open_widget("Import Images")
    session.widgets["Import Images"].reload_button.click()
    session.widgets["Import Images"].close()


def drive_without_server(session) -> None:
    server_embedder = embedder(session, SERVER_TITLE)
    session.wait_until("the server's Image Embedder to fail", lambda: (
        server_embedder.Error.failed.is_shown() and embedded(session, HERE_TITLE)
        and session.idle()))
    summaries(session)
    session.open_widget(f"Image Embedder ({SERVER_TITLE})")
    save_with_messages(session, server_embedder, f"{IMAGES}/lesson3-no-server.png")
    server_embedder.close()
    print(f"Starting deepimage serve on port {PORT} ...", flush=True)
    server = start_lesson_server(port=PORT)
    try:
        server_embedder.list_button.click()  # as the lesson says: the list is fetched...
        session.wait_until("the embedding after List Server Models", lambda: (
            not server_embedder.Error.failed.is_shown() and embedded(session, SERVER_TITLE)
            and session.idle()))
        print("  after List Server Models:", flush=True)
        summaries(session)  # ...and, as the last run failed, the images embedded again
        press_reload(session)
        session.settle(1)
        session.wait_until("the embedding after Reload", lambda: (
            embedded(session, SERVER_TITLE) and embedded(session, HERE_TITLE)
            and session.idle()))
        print("  after Reload in Import Images:", flush=True)
        summaries(session)
    finally:
        server.stop()
        print("Stopped the server.", flush=True)
    press_reload(session)  # the server has stopped after it has worked once
    session.settle(1)
    session.wait_until("the embedding after Reload without the server", lambda: (
        embedded(session, HERE_TITLE) and server_embedder.task is None and session.idle()))
    print("  after Reload in Import Images, server stopped:", flush=True)
    summaries(session)


def drive_with_server(session) -> None:
    from AnyQt.QtCore import Qt

    def done() -> bool:
        return (all(embedded(session, where) for where in (HERE_TITLE, SERVER_TITLE))
                and all(session.widgets[f"Scatter Plot ({where})"].data is not None
                        for where in (HERE_TITLE, SERVER_TITLE))
                and session.idle())
    session.wait_until("both embeddings", done)
    summaries(session)
    session.settle(1)
    session.save_canvas(f"{IMAGES}/lesson3-canvas.png", size=CANVAS_SIZE)
    for where, name in ((HERE_TITLE, "local"), (SERVER_TITLE, "server")):
        title = f"Image Embedder ({where})"
        session.open_widget(title)
        session.save_widget(title, f"{IMAGES}/lesson3-embedder-{name}.png")
        session.widgets[title].close()

    # SqueezeNet's features are mostly 0: show from the first one that is not 0 in any of
    # the rows in view, so that there are numbers to compare
    data = session.widgets[f"Data Table ({HERE_TITLE})"].input.table
    names = [var.name for var in data.domain.attributes]
    shown = next(name for name, column in zip(names, data.X[:20].T) if (column != 0).all())
    print(f"  the tables are scrolled to column {shown}", flush=True)
    tables = []
    for where in (HERE_TITLE, SERVER_TITLE):
        table = session.open_widget(f"Data Table ({where})", size=(700, 420))
        data = table.input.table
        view = table.view
        model = view.model()
        headers = [model.headerData(i, Qt.Orientation.Horizontal, Qt.ItemDataRole.DisplayRole)
                   for i in range(model.columnCount())]
        first = headers.index(shown)
        view.scrollTo(view.model().index(0, first))
        view.horizontalScrollBar().setValue(view.columnViewportPosition(first)
                                            + view.horizontalScrollBar().value())
        session.settle()
        session.report(f"Data Table ({where})")
        print(f"  Data Table ({where}): {len(data)} rows", flush=True)
        tables.append(table)
    side_by_side(*tables, ["Data Table (this computer)", "Data Table (server)"],
                 f"{IMAGES}/lesson3-tables.png")
    for table in tables:
        table.close()

    plots = [session.open_widget(f"Scatter Plot ({where})", size=(620, 480))
             for where in (HERE_TITLE, SERVER_TITLE)]
    session.settle(1)
    side_by_side(*plots, ["Scatter Plot (this computer)", "Scatter Plot (server)"],
                 f"{IMAGES}/lesson3-maps.png")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds to wait for each step (default 300)")
    parser.add_argument("--session", choices=("without-server", "with-server"),
                        help=argparse.SUPPRESS)  # one session in this process
    args = parser.parse_args(argv)
    ensure_digits(DIGITS_DIR)
    if args.session == "without-server":
        return run_canvas(WORKFLOW, drive_without_server, timeout=args.timeout)
    if args.session == "with-server":
        isolate_settings()  # before the server starts: it too gets the fresh cache folder
        server = start_lesson_server(port=PORT)
        try:
            return run_canvas(WORKFLOW, drive_with_server, timeout=args.timeout)
        finally:
            server.stop()
            print("Stopped the server.", flush=True)
    # a canvas session per process: Orange's application starts once
    for session in ("without-server", "with-server"):
        print(f"--- session {session}", flush=True)
        code = subprocess.call([sys.executable, os.path.abspath(__file__), "--session",
                                session, "--timeout", str(args.timeout)])
        if code:
            return code
    return 0


if __name__ == "__main__":
    sys.exit(main())
