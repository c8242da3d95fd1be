"""Lesson 3 (tutorials/lesson3_server.*): the workflow as stored, the workflow running
against a real `deepimage serve`, and the scripted lesson with its own server.

Tolerance for "remote == local": the client decodes and resizes each image here and
sends the pixels losslessly (PNG); the server runs the same network with the same
weights. Only the batching differs (16 images per network call here, up to 4 on a CPU
server), which can change the order of float32 additions, so the vectors must agree to
float32 rounding: cosine >= 0.9999 and no number off by more than 1e-4 of the largest.
(Measured on the 500 lesson digits: identical, largest difference 0, by the script and
in the workflow with both Image Embedders computing.)
"""
import importlib.util
import io
import os
import re
from pathlib import Path

import numpy as np
import pytest

from orangecanvas.scheme.readwrite import parse_ows_stream

from orangecontrib.deepimage.embedder_job import LOCAL, SERVER
from orangecontrib.deepimage.tutorials import lesson3_server as lesson
from orangecontrib.deepimage.tutorials.make_digits import write_digits

from live_server import LiveServer, free_port
from workflow_helpers import (TUTORIALS, links_by_title, node_settings, opened_workflow,
                              process_until)

WORKFLOW = TUTORIALS / "lesson3_server.ows"
STORED_URL = "http://127.0.0.1:8000"
TITLES = ["Import Images",
          "Image Embedder (this computer)", "Data Table (this computer)",
          "PCA (this computer)", "Scatter Plot (this computer)",
          "Image Embedder (server)", "Data Table (server)", "PCA (server)",
          "Scatter Plot (server)"]


def parse(text: "bytes | None" = None):
    return parse_ows_stream(io.BytesIO(text if text is not None else WORKFLOW.read_bytes()))


# --- the workflow file -----------------------------------------------------------------

def test_workflow_names_existing_widgets_and_channels():
    parsed = parse()
    assert [n.title for n in parsed.nodes] == TITLES
    assert {(source, sink) for source, _, sink, _ in links_by_title(parsed)} == {
        ("Import Images", "Image Embedder (this computer)"),
        ("Import Images", "Image Embedder (server)"),
        *((f"Image Embedder ({where})", f"Data Table ({where})")
          for where in ("this computer", "server")),
        *((f"Image Embedder ({where})", f"PCA ({where})") for where in ("this computer", "server")),
        *((f"PCA ({where})", f"Scatter Plot ({where})") for where in ("this computer", "server"))}


def test_embedders_here_and_on_the_default_server():
    from orangecontrib.deepimage.server.config import Settings
    props = node_settings(parse())
    here, remote = props["Image Embedder (this computer)"], props["Image Embedder (server)"]
    assert (here["model_key"], here["server_url"]) == ("local:squeezenet", "")
    assert (remote["model_key"], remote["server_url"]) == ("server:squeezenet", STORED_URL)
    # "Reuse embeddings computed before" unticked in both: both compute, the times compare
    assert here["use_cache"] is False and remote["use_cache"] is False
    # the address `deepimage serve` listens on when started without options
    defaults = Settings.model_fields
    assert STORED_URL == f"http://{defaults['host'].default}:{defaults['port'].default}"


def test_description_and_notes_say_start_the_server_first():
    with open(WORKFLOW, "rb") as f:
        parsed = parse_ows_stream(f)
    assert "deepimage serve" in parsed.description and "FIRST" in parsed.description
    notes = [a.params.text for a in parsed.annotations if a.type == "text"]
    assert any("deepimage serve" in note for note in notes)


# --- the workflow, running ---------------------------------------------------------------

@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`deepimage serve` (SqueezeNet, no token: it listens on 127.0.0.1) for this module."""
    live = LiveServer(tmp_path_factory.mktemp("lesson3-server"), "--models", "squeezenet")
    try:
        yield live.wait_ready()
    finally:
        live.stop()


def run_workflow(folder: Path, url: str, until, check, timeout: float = 180):
    """Open the workflow from ``folder`` with its server embedder pointed at ``url``,
    process events until ``until(widgets)``, then ``check(widgets)`` (widgets by title)
    before the workflow is closed."""
    text = WORKFLOW.read_bytes().replace(STORED_URL.encode(), url.encode())
    with opened_workflow(WORKFLOW, folder, text) as (app, _, widgets):
        assert process_until(app, lambda: until(widgets), timeout), \
            "the workflow did not finish in time"
        check(widgets)


def embedding_columns(table):
    return table.X[:, [i for i, v in enumerate(table.domain.attributes)
                       if re.fullmatch(r"n\d+", v.name)]]


def images_embedded_by(server) -> float:
    """The server's own count of the images it has embedded (its /metrics)."""
    import httpx
    for line in httpx.get(f"{server.url}/metrics", timeout=10).text.splitlines():
        if line.startswith('deepimage_images_embedded_total{model="squeezenet"}'):
            return float(line.split()[-1])
    return 0.0


def test_in_orange_both_embedders_really_embed(server, tmp_path, monkeypatch):
    """What lesson section 3 compares: with "Reuse embeddings computed before" unticked
    (as the workflow stores it), both Image Embedders compute every vector, the server's
    on the server, even when the cache already holds them all; and they agree."""
    from orangecontrib.deepimage.core import Embedder, find_images
    monkeypatch.setenv("MAX_ACTIVE_NODES", "1")  # Orange's default, whatever QSettings say
    write_digits(str(tmp_path / "digits"), per_class=3)
    # what lesson 1 (or an earlier run) leaves behind: every vector already in the cache,
    # under the weights this computer and the server share
    assert len(Embedder("squeezenet").embed(find_images(str(tmp_path / "digits"))).indices) \
        == 30
    before = images_embedded_by(server)
    where = ("this computer", "server")

    def done(widgets):
        return all(widgets[f"Scatter Plot ({w})"].data is not None
                   and widgets[f"Image Embedder ({w})"].task is None for w in where)

    def check(widgets):
        for w in where:
            embedder = widgets[f"Image Embedder ({w})"]
            assert embedder.use_cache is False and not embedder.current_choice().use_cache
            assert not embedder.Error.active, [str(m) for m in embedder.Error.active]
            text = embedder.summary_label.text()
            assert text.startswith("Embedded 30 images, ") and "from cache" not in text, text
        assert images_embedded_by(server) - before == 30  # all 30 were sent and embedded
        here, remote = (widgets[f"Data Table ({w})"].input.table for w in where)
        assert list(here.ids) == list(remote.ids)
        local_vectors, remote_vectors = embedding_columns(here), embedding_columns(remote)
        assert local_vectors.shape == remote_vectors.shape == (30, 512)
        np.testing.assert_allclose(remote_vectors, local_vectors, rtol=0,
                                   atol=1e-4 * np.abs(local_vectors).max())
        assert len(widgets["Scatter Plot (server)"].data) == 30
    run_workflow(tmp_path, server.url, done, check)


def test_workflow_without_a_server_says_so(tmp_path):
    write_digits(str(tmp_path / "digits"), per_class=1)
    nobody = f"http://127.0.0.1:{free_port()}"

    def failed(widgets):
        return (widgets["Image Embedder (server)"].Error.failed.is_shown()
                and widgets["Scatter Plot (this computer)"].data is not None)

    def check(widgets):
        embedder = widgets["Image Embedder (server)"]
        message = str(embedder.Error.failed)
        print(f"The server's Image Embedder says: {message}")
        assert f"There is no embedding server at {nobody}" in message
        assert "check the address and that the server is running" in message
        assert embedder.summary_label.text() == "Nothing embedded."
        assert widgets["Scatter Plot (server)"].data is None
        assert not widgets["Image Embedder (this computer)"].Error.active
    run_workflow(tmp_path, nobody, failed, check, timeout=120)


# --- the script --------------------------------------------------------------------------

def assert_same(agree, images):
    assert agree.images == images and agree.same
    assert agree.min_cosine >= lesson.SAME_COSINE


def test_script_against_a_running_server(server, tmp_path, monkeypatch):
    lines, outcomes = [], []
    embed_images = lesson.embed_images

    def recorded(data, choice, step):
        outcomes.append((choice, embed_images(data, choice, step)))
        return outcomes[-1][1]
    monkeypatch.setattr(lesson, "embed_images", recorded)
    write_digits(str(tmp_path / "digits"), per_class=3)
    result = lesson.run(str(tmp_path / "digits"), per_class=2, server=server.url,
                        log=lines.append)
    assert result.images == 20 and len(os.listdir(tmp_path / "digits")) == 10
    # the Image Embedder widget's code, choices and times (those its summary shows)
    assert [(c.where, c.model, c.server_url, c.use_cache) for c, _ in outcomes] == [
        (LOCAL, "squeezenet", "", False), (SERVER, "squeezenet", server.url, False)]
    for run_, (_, outcome) in zip((result.local, result.remote), outcomes):
        assert run_.seconds == outcome.result.seconds
        np.testing.assert_array_equal(run_.vectors, outcome.result.full())
        assert run_.seconds > 0 and run_.images_per_second > 0 and not run_.skipped
        assert run_.vectors.shape == (20, 512)
    assert_same(result.remote_vs_local, 20)
    assert result.remote_vs_local.max_abs_difference <= 1e-4 * np.abs(
        result.local.vectors).max()
    if importlib.util.find_spec("orangecontrib.imageanalytics") is None:
        assert result.imageanalytics is None and "not installed" in result.imageanalytics_note
        pytest.skip("orange3-imageanalytics is not installed: its client was not compared")
    assert result.imageanalytics.vectors.shape == (20, 512)
    assert not result.imageanalytics.skipped and result.imageanalytics.seconds > 0
    # its client resizes with another filter and sends JPEG: close, not equal
    # (measured on the 500 lesson digits: smallest cosine 0.9898)
    assert result.imageanalytics_vs_local.min_cosine > 0.98
    assert os.environ.get("ORANGE_EMBEDDING_API_URL") is None  # put back as it was


def test_script_starts_and_always_stops_its_own_server(tmp_path, monkeypatch, capsys):
    started = []

    start = lesson.start_lesson_server

    def recorded(*args, **kwargs):
        started.append(start(*args, **kwargs))
        return started[-1]
    monkeypatch.setattr(lesson, "start_lesson_server", recorded)
    monkeypatch.setattr(lesson, "embed_with_imageanalytics",
                        lambda *args: "image-analytics left out of this test")
    data = str(tmp_path / "digits")
    write_digits(data, per_class=1)
    assert lesson.main(["--data", data, "--per-class", "1"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"on this computer +\d+\.\d\ds +\d+", out)
    assert re.search(r"on the server +\d+\.\d\ds +\d+", out)
    for where in ("this computer", "server"):
        assert f"Image Embedder ({where}): Embedded 10 images, " in out
    assert "Server vs this computer" in out and "-> the same vectors" in out
    assert "image-analytics left out of this test" in out
    (first,) = started
    assert first.process.poll() is not None  # stopped

    def broken(*args):
        raise KeyboardInterrupt  # as Ctrl-C while embedding
    monkeypatch.setattr(lesson, "embed_on_server", broken)
    assert lesson.main(["--data", data, "--per-class", "1"]) == 130
    assert len(started) == 2 and started[1].process.poll() is not None


def test_script_says_when_image_analytics_is_missing(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "orangecontrib.imageanalytics.image_embedder", None)
    note = lesson.embed_with_imageanalytics(["digit.png"], "http://127.0.0.1:9")
    assert isinstance(note, str) and "image-analytics add-on is not installed" in note


def test_image_analytics_client_skips_a_lab_proxy_for_this_computer(server, tmp_path,
                                                                   monkeypatch):
    """Orange copies the system's proxy into http_proxy/https_proxy (no no_proxy), and
    its client sends every request there: for our server on 127.0.0.1 it must not."""
    if importlib.util.find_spec("orangecontrib.imageanalytics") is None:
        pytest.skip("orange3-imageanalytics is not installed")
    dead = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("http_proxy", dead)
    monkeypatch.setenv("https_proxy", dead)
    write_digits(str(tmp_path / "digits"), per_class=1)
    paths = sorted(str(p) for p in (tmp_path / "digits").rglob("*.png"))[:3]
    run_ = lesson.embed_with_imageanalytics(paths, server.url)
    assert run_.vectors.shape == (3, 512) and not run_.skipped
    assert os.environ["http_proxy"] == os.environ["https_proxy"] == dead  # put back
