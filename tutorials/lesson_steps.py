"""The first widgets of every lesson, without a screen: Import Images and Image Embedder.

The lessons' scripts share these steps; they call the same functions as the widgets
(``run_import``, ``run_embedding``), so a script and its workflow see the same table.
"""
from __future__ import annotations

import sys
from typing import Optional

import numpy as np
from Orange.data import Table

from orangecontrib.deepimage.data import image_column
from orangecontrib.deepimage.embedder_job import EmbedderChoice, EmbedderPool, \
    EmbeddingOutcome, make_embedder, run_embedding
from orangecontrib.deepimage.embedder_job import summary as embedding_summary
from orangecontrib.deepimage.imports import run_import
from orangecontrib.deepimage.imports import summary as import_summary
from orangecontrib.deepimage.tutorials.make_digits import ensure_digits


class PrintedState:
    """What the widgets' background work reports (status and progress), printed."""

    def __init__(self, step: str):
        self.step = step
        self.shown = -1

    def set_status(self, text: str) -> None:
        pass

    def set_progress_value(self, value: float) -> None:
        tenth = int(value // 10)
        if tenth > self.shown and sys.stdout.isatty():
            self.shown = tenth
            print(f"\r{self.step}: {value:3.0f}%", end="", flush=True)

    def is_interruption_requested(self) -> bool:
        return False

    def done(self, text: str) -> None:
        print(f"\r{self.step}: {text}", flush=True)


def import_images(folder: str, per_class: Optional[int] = None) -> Table:
    """Import Images: the folder's images as a table, class from the subfolders.

    The lessons' digits are written first when their folder is missing (any other
    missing folder is an error). With ``per_class``, only the first ``per_class``
    images of each class are kept.
    """
    ensure_digits(folder)
    state = PrintedState("Import Images")
    imported = run_import(folder, state)
    data = imported.data
    if data is None or data.domain.class_var is None:
        raise SystemExit(f"{folder} needs one subfolder of images per class, "
                         "at least two; the subfolder names become the classes.")
    if per_class is not None:
        classes = data.Y.astype(int)
        keep = [row for value in range(len(data.domain.class_var.values))
                for row in np.flatnonzero(classes == value)[:per_class]]
        data = data[sorted(keep)]
    state.done(f"{len(data)} images in {len(data.domain.class_var.values)} classes"
               + ("" if len(data) == len(imported.data)
                  else f" (of {import_summary(imported)})"))
    return data


def embed_images(data: Table, choice: Optional[EmbedderChoice] = None,
                 step: str = "Image Embedder") -> EmbeddingOutcome:
    """Image Embedder: add the network's numbers to every image (SqueezeNet on this
    computer unless ``choice`` says otherwise); unreadable images drop out.

    Returns the widget's outcome: ``embedded`` is its Embeddings output (None when no
    image could be embedded) and ``result`` the core result, whose ``seconds`` the
    widget's summary (printed here, after ``step``) shows.
    """
    state = PrintedState(step)
    loaded = []

    def load(*args):
        loaded.append(make_embedder(*args))
        return loaded[-1]
    try:
        outcome = run_embedding(data, image_column(data), choice or EmbedderChoice(),
                                EmbedderPool(load), state)
    finally:
        for embedder in loaded:  # a server's connections
            getattr(embedder, "close", lambda: None)()
    state.done(embedding_summary(outcome.result))
    return outcome
