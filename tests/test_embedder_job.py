"""run_embedding, the Image Embedder's work, tested without a GUI (real SqueezeNet)."""
import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.core import find_images
from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.core.local_embedder import Embedder
from orangecontrib.deepimage.core.pipeline import EmbeddingResult
from orangecontrib.deepimage.core.images import Skipped
from orangecontrib.deepimage.data import image_column, image_table
from orangecontrib.deepimage.embedder_job import (
    CUSTOM, LOCAL, SERVER, EmbedderChoice, EmbedderPool, NotAnImageModel, run_embedding,
    server_host, summary)


class State:
    """Stands in for Orange's TaskState; optionally asks to stop after ``stop_after`` steps."""

    def __init__(self, stop_after=None):
        self.progress, self.status, self.stop_after = [], [], stop_after

    def set_status(self, text):
        self.status.append(text)

    def set_progress_value(self, value):
        self.progress.append(value)

    def is_interruption_requested(self):
        return self.stop_after is not None and len(self.progress) >= self.stop_after


class FineTuned:
    """What the Trainer's model offers the embedder: ``.embedder(device=..., cache=...)``."""

    def __init__(self):
        from orangecontrib.deepimage.core.models import get_spec
        from orangecontrib.deepimage.core.networks import EmbeddingNet, build_backbone
        import torch
        torch.manual_seed(0)
        spec = get_spec("squeezenet")
        self.net = EmbeddingNet(spec, build_backbone(spec))
        self.calls = []

    def embedder(self, device="auto", cache=True):
        self.calls.append((device, cache))
        return Embedder(net=self.net, weights_id="fine-tuned-test", device=device,
                        backend="torch", cache=cache)


def test_outputs_keep_row_ids_and_give_reasons(photo_dir):
    table = image_table(find_images(photo_dir), str(photo_dir))
    state = State()
    outcome = run_embedding(table, image_column(table), EmbedderChoice(), EmbedderPool(), state)
    embedded, skipped = outcome.embedded, outcome.skipped
    assert embedded.X.shape == (6, 512) and len(skipped) == 3
    assert np.isfinite(embedded.X).all() and embedded.X.std() > 0
    names = list(table.get_column("image name"))
    good = [i for i, n in enumerate(names) if n[-1].isdigit()]
    np.testing.assert_array_equal(embedded.ids, table.ids[good])
    np.testing.assert_array_equal(embedded.Y, table.Y[good])
    reasons = dict(zip(skipped.get_column("image name"), skipped.get_column("reason")))
    assert set(reasons) == {"empty", "notes", "truncated"}
    assert all(reasons.values())
    assert state.progress[-1] == 100 and "Embedding 9 images" in state.status[-1]


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """An empty embedding cache (the session's may hold these very images already)."""
    monkeypatch.setenv("DEEPIMAGE_CACHE_DIR", str(tmp_path / "fresh-cache"))


def test_rerun_comes_from_the_cache_and_reuses_the_network(photo_dir, fresh_cache):
    table = image_table(find_images(photo_dir / "cats"))
    pool = EmbedderPool()
    first = run_embedding(table, image_column(table), EmbedderChoice(), pool, State())
    second = run_embedding(table, image_column(table), EmbedderChoice(), pool, State())
    assert pool.loads == 1
    assert first.result.cached == 0 and second.result.cached == 3
    np.testing.assert_allclose(first.embedded.X, second.embedded.X, rtol=1e-5, atol=1e-5)
    run_embedding(table, image_column(table), EmbedderChoice(device="cpu"), pool, State())
    assert pool.loads == 2  # another choice loads another network


def test_cancel_stops_between_batches_and_keeps_what_was_done(tmp_path, fresh_cache):
    rng = np.random.default_rng(1)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
            tmp_path / f"{i:02}.png")
    table = image_table(find_images(tmp_path))
    pool = EmbedderPool()
    state = State(stop_after=1)
    with pytest.raises(Cancelled):
        run_embedding(table, image_column(table), EmbedderChoice(), pool, state)
    assert len(state.progress) == 1 and 0 < state.progress[0] < 100
    again = run_embedding(table, image_column(table), EmbedderChoice(), pool, State())
    assert 0 < again.result.cached < 40 and again.embedded.X.shape == (40, 512)


def test_a_connected_fine_tuned_model_embeds(photo_dir):
    table = image_table(find_images(photo_dir / "dogs"))
    model = FineTuned()
    choice = EmbedderChoice(CUSTOM, "custom", "cpu", model_id=id(model))
    outcome = run_embedding(table, image_column(table), choice, EmbedderPool(), State(),
                            custom_model=model)
    assert model.calls == [("cpu", True)]
    pool = EmbedderPool()
    pool.get(choice, model)
    pool.get(choice, model)
    pool.get(choice, FineTuned())  # another model, even with an equal choice, is reloaded
    assert pool.loads == 2
    assert outcome.embedded.X.shape == (3, 512)
    # the vectors are those of the connected network, not of the pretrained SqueezeNet
    pretrained = run_embedding(table, image_column(table), EmbedderChoice(), EmbedderPool(),
                               State())
    assert not np.allclose(outcome.embedded.X, pretrained.embedded.X, atol=1e-3)


def test_any_other_model_is_a_clear_error(photo_dir):
    from Orange.classification import LogisticRegressionLearner
    from Orange.data import Table
    table = image_table(find_images(photo_dir / "cats"))
    logistic = LogisticRegressionLearner()(Table("iris"))
    with pytest.raises(NotAnImageModel, match="connect a model from Trainer"):
        run_embedding(table, image_column(table), EmbedderChoice(CUSTOM, "custom"),
                      EmbedderPool(), State(), custom_model=logistic)


def test_labels_say_where_the_network_runs():
    assert EmbedderChoice().label() == "SqueezeNet 1.1 (on this computer)"
    remote = EmbedderChoice(SERVER, "vgg16", server_url="https://gpu.lab.org:8443/embed")
    assert remote.label() == "VGG-16 (server: gpu.lab.org:8443)"
    assert server_host("localhost:8000") == "localhost:8000"
    assert "s3cret" not in repr(EmbedderChoice(SERVER, "vgg16", token="s3cret"))
    assert EmbedderChoice(LOCAL, "inception") .label() == "Inception v3 (on this computer)"


def test_summary_line():
    result = EmbeddingResult([f"{i}.png" for i in range(1203)], "squeezenet", 512,
                             np.arange(1200), np.zeros((1200, 512), np.float32),
                             [Skipped(1200 + i, "x", "bad") for i in range(3)], 1100, 4.2)
    assert summary(result) == ("Embedded 1,200 images (1,100 from cache), 3 skipped, "
                               "4.2 s, 286 images/s")
    one = EmbeddingResult(["a"], "squeezenet", 512, np.arange(1), np.zeros((1, 512)), [], 0, 0.5)
    assert summary(one) == "Embedded 1 image, 0.5 s, 2 images/s"


def test_a_table_made_the_anchors_way_is_embedded(photo_dir):
    import_images = pytest.importorskip("orangecontrib.imageanalytics.import_images")
    from AnyQt.QtWidgets import QApplication
    app = QApplication.instance() or QApplication([])  # noqa: F841  (its scanner uses Qt)
    theirs, _ = import_images.ImportImages()(str(photo_dir))
    outcome = run_embedding(theirs, image_column(theirs), EmbedderChoice(), EmbedderPool(),
                            State())
    assert outcome.embedded.X.shape == (6, 512)
    assert outcome.embedded.domain.metas == theirs.domain.metas
    assert [s.split("/")[-1] for s in outcome.skipped.get_column("image")] == ["truncated.jpg"]
