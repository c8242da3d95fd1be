#!/usr/bin/env python3
"""Lesson 3: embed the digits on this computer and on an embedding server, and compare.

    python tutorials/lesson3_server.py                    # starts `deepimage serve` itself
    python tutorials/lesson3_server.py --per-class 10     # 10 images of each digit
    python tutorials/lesson3_server.py --server http://127.0.0.1:8000   # a running server
    python -m orangecontrib.deepimage.tutorials.lesson3_server

The same steps as the workflow lesson3_server.ows, without a screen:

1. Import Images reads the digits (written to tutorials/digits first if they are not
   there yet), ``--per-class`` of each;
2. start `deepimage serve` on a free port of this computer (unless --server names one)
   and wait until it has loaded SqueezeNet;
3. embed the images with SqueezeNet on this computer, then on the server, with the
   same code the Image Embedder widget runs, and print the time each took;
4. check that the two sets of vectors are the same numbers;
5. do it once more with the client of Orange's own image-analytics add-on, which
   finds the server through the ORANGE_EMBEDDING_API_URL environment variable;
6. stop the server (also when something failed, or Ctrl-C was pressed).

No embedding cache is used, so every vector is computed and the times are honest.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional
from urllib.parse import urlsplit

import numpy as np
from Orange.data import Table

from orangecontrib.deepimage.core.loopback import is_loopback
from orangecontrib.deepimage.data import image_paths
from orangecontrib.deepimage.embedder_job import LOCAL, SERVER, EmbedderChoice
from orangecontrib.deepimage.server.launch import ServerProcess, start_server
from orangecontrib.deepimage.tutorials import DIGITS_DIR
from orangecontrib.deepimage.tutorials.lesson_steps import embed_images, import_images

MODEL = "squeezenet"
# vectors computed from the same pixels by the same network agree to rounding; the
# network runs images in batches of different sizes here and on the server, which
# changes the order of the additions, so the last digits may differ (float32)
SAME_COSINE = 0.9999


# --- the server ------------------------------------------------------------------------

def start_lesson_server(port: Optional[int] = None) -> ServerProcess:
    """`deepimage serve --models squeezenet` in the background on 127.0.0.1 (a free
    port unless one is given; no token needed there), once it has loaded SqueezeNet."""
    return start_server("--models", MODEL, port=port)


# --- embedding and comparing -----------------------------------------------------------

@dataclass
class Run:
    """How one way of embedding went: its vectors and the time it took."""

    name: str
    seconds: float
    vectors: np.ndarray  # one row per image, NaN where it was skipped
    skipped: list[str] = field(default_factory=list)  # reasons

    @property
    def images_per_second(self) -> float:
        return len(self.vectors) / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class Agreement:
    """How close two sets of vectors are, over the images both embedded."""

    images: int
    max_abs_difference: float
    min_cosine: float

    @property
    def same(self) -> bool:
        return self.images > 0 and self.min_cosine >= SAME_COSINE


@dataclass
class LessonResult:
    images: int
    server: str
    local: Run
    remote: Run
    remote_vs_local: Agreement
    imageanalytics: Optional[Run] = None  # None: the add-on is not installed
    imageanalytics_vs_local: Optional[Agreement] = None
    imageanalytics_note: str = ""


def timed(name: str, embed: Callable[[], tuple[np.ndarray, list[str]]]) -> Run:
    start = time.perf_counter()
    vectors, skipped = embed()
    return Run(name, time.perf_counter() - start, vectors, skipped)


def embedded_by_widget(name: str, step: str, data: Table, choice: EmbedderChoice) -> Run:
    """Embed with the Image Embedder widget's code (lesson_steps.embed_images); the time
    is the one its summary shows: the embedding, not loading the network."""
    result = embed_images(data, choice, step).result
    return Run(name, result.seconds, result.full(), [s.reason for s in result.skipped])


def embed_here(data: Table) -> Run:
    """SqueezeNet on this computer: the workflow's Image Embedder (this computer)."""
    return embedded_by_widget("on this computer", "Image Embedder (this computer)", data,
                              EmbedderChoice(LOCAL, MODEL, use_cache=False))


def embed_on_server(data: Table, url: str, token: Optional[str] = None) -> Run:
    """SqueezeNet on the server: the workflow's Image Embedder (server)."""
    return embedded_by_widget("on the server", "Image Embedder (server)", data,
                              EmbedderChoice(SERVER, MODEL, server_url=url, token=token or "",
                                             use_cache=False))


class _NoCache:
    """Stands in for image-analytics' cache, a file it shares with its local SqueezeNet:
    the lesson neither reads old vectors from it nor writes the server's into it."""

    md5_hash = staticmethod(lambda data: "")

    def get_cached_result_or_none(self, key):
        return None

    def add(self, key, value):
        pass

    def persist_cache(self):
        pass

    def clear_cache(self):
        pass


@contextlib.contextmanager
def _no_proxy_to_this_computer(url: str) -> Iterator[None]:
    """Orange's client sends every request through http_proxy/https_proxy (it ignores
    no_proxy): for a server on this computer they are unset while it runs."""
    saved = {}
    if is_loopback(urlsplit(url).hostname or ""):
        saved = {name: os.environ.pop(name) for name in ("http_proxy", "https_proxy")
                 if name in os.environ}
    try:
        yield
    finally:
        os.environ.update(saved)


def embed_with_imageanalytics(paths: list[str], url: str,
                              token: Optional[str] = None) -> "Run | str":
    """Orange's own image-analytics client sends the images to our server.

    It reads the server's address from ORANGE_EMBEDDING_API_URL (as when Orange is
    started with that variable set) and cannot send a token header, so a token goes
    into the address: http://HOST:8000/t/<token>/. Returns why not, as text, when
    the add-on is not installed.
    """
    try:
        from orangecontrib.imageanalytics.image_embedder import MODELS as IMAGEANALYTICS
        from orangecontrib.imageanalytics.server_embedder import ServerEmbedder
    except ImportError as exc:
        return (f"Orange's image-analytics add-on is not installed ({exc}); install "
                f"Orange3-ImageAnalytics (Options > Add-ons in Orange) to try its client.")
    address = url.rstrip("/") + (f"/t/{token}/" if token else "/")
    settings = IMAGEANALYTICS[MODEL]  # the add-on's own sizes for SqueezeNet: 227 x 227
    previous = os.environ.get("ORANGE_EMBEDDING_API_URL")
    os.environ["ORANGE_EMBEDDING_API_URL"] = address
    try:
        embedder = ServerEmbedder(MODEL, settings["batch_size"], "https://api.garaza.io/",
                                  "image", settings["target_image_size"])
    finally:
        if previous is None:
            del os.environ["ORANGE_EMBEDDING_API_URL"]
        else:
            os.environ["ORANGE_EMBEDDING_API_URL"] = previous
    if embedder.server_url != address:  # the variable should win over the built-in one
        raise RuntimeError(
            "Orange's image-analytics client did not take the server's address from "
            f"ORANGE_EMBEDDING_API_URL (it would send the images to "
            f"{embedder.server_url}); this version of the add-on cannot be pointed at "
            "another server.")
    embedder._cache = _NoCache()

    def embed():
        with _no_proxy_to_this_computer(url):
            answers = embedder.embedd_data(paths)
        dim = next((len(a) for a in answers if a is not None), 0)
        vectors = np.array([a if a is not None else [np.nan] * dim for a in answers],
                           dtype=np.float32).reshape(len(paths), dim)
        return vectors, ["not embedded" for a in answers if a is None]
    return timed("image-analytics client", embed)


def agreement(a: np.ndarray, b: np.ndarray) -> Agreement:
    """Largest difference of any number, and the smallest cosine similarity of a pair."""
    both = ~np.isnan(a).any(axis=1) & ~np.isnan(b).any(axis=1)
    a, b = a[both].astype(np.float64), b[both].astype(np.float64)
    if not len(a):
        return Agreement(0, float("nan"), float("nan"))
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    cosines = (a * b).sum(axis=1) / np.where(norms > 0, norms, 1)
    return Agreement(len(a), float(np.abs(a - b).max()), float(cosines.min()))


def run(data: str = DIGITS_DIR, per_class: int = 50, server: Optional[str] = None,
        token: Optional[str] = None, log: Callable[[str], None] = print) -> LessonResult:
    """The whole lesson; starts (and always stops) a server when ``server`` is None."""
    images = import_images(data, per_class)
    paths = image_paths(images)
    started = None
    if server is None:
        log("Starting deepimage serve on this computer ...")
        started = start_lesson_server()
        server = started.url
        log(f"The server is ready at {server}")
    try:
        local = embed_here(images)
        remote = embed_on_server(images, server, token)
        result = LessonResult(len(paths), server, local, remote,
                              agreement(remote.vectors, local.vectors))
        outcome = embed_with_imageanalytics(paths, server, token)
        if isinstance(outcome, str):
            result.imageanalytics_note = outcome
        else:
            log(f"Embedded with image-analytics' client in {outcome.seconds:.1f} s")
            result.imageanalytics = outcome
            result.imageanalytics_vs_local = agreement(outcome.vectors, local.vectors)
            result.imageanalytics_note = (
                "image-analytics resizes each image itself (another method) and sends "
                "it as a JPEG, which changes the pixels a little: its vectors are close "
                "to the others, not equal.")
        return result
    finally:
        if started is not None:
            started.stop()
            log("Stopped the server.")


# --- printing --------------------------------------------------------------------------

def report(result: LessonResult) -> Iterator[str]:
    """The lesson's results as lines of text."""
    yield ""
    yield f"{'SqueezeNet, ' + str(result.images) + ' images':36} {'time':>8} {'images/s':>9}"
    runs = [result.local, result.remote] + [r for r in [result.imageanalytics] if r]
    for run_ in runs:
        skipped = f"   ({len(run_.skipped)} skipped)" if run_.skipped else ""
        yield (f"{run_.name:36} {run_.seconds:7.2f}s {run_.images_per_second:9.0f}"
               f"{skipped}")
    yield ""

    def compared(what: str, agree: Agreement) -> str:
        verdict = "the same vectors" if agree.same else "NOT the same vectors"
        return (f"{what}: largest difference {agree.max_abs_difference:.2g}, "
                f"smallest cosine {agree.min_cosine:.6f} over {agree.images} images "
                f"-> {verdict}")
    yield compared("Server vs this computer", result.remote_vs_local)
    if result.imageanalytics_vs_local is not None:
        agree = result.imageanalytics_vs_local
        yield (f"image-analytics vs this computer: largest difference "
               f"{agree.max_abs_difference:.2g}, smallest cosine {agree.min_cosine:.4f} "
               f"over {agree.images} images")
    if result.imageanalytics_note:
        yield result.imageanalytics_note


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", metavar="DIR", default=DIGITS_DIR,
                        help="folder with the digits (default: tutorials/digits)")
    parser.add_argument("--per-class", metavar="N", type=int, default=50,
                        help="images of each digit to embed (default 50)")
    parser.add_argument("--server", metavar="URL", default=None,
                        help="a running embedding server (default: start one here)")
    parser.add_argument("--token-file", metavar="FILE", default=None,
                        help="the server's access token, if it needs one "
                             "(or DEEPIMAGE_SERVER_TOKEN)")
    args = parser.parse_args(argv)
    if args.per_class < 1:
        parser.error("--per-class must be at least 1")
    try:
        from orangecontrib.deepimage.client import read_token
        result = run(args.data, args.per_class, args.server, read_token(args.token_file))
    except KeyboardInterrupt:
        print("Stopped.", file=sys.stderr)
        return 130
    except Exception as exc:  # the server did not start, or could not be reached
        print(f"lesson3: {exc}", file=sys.stderr)
        return 1
    for line in report(result):
        print(line)
    return 0 if result.remote_vs_local.same else 1


if __name__ == "__main__":
    sys.exit(main())
