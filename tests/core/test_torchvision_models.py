"""Any torchvision classification network by name: its spec from torchvision's weights
enum, the embedding at the input of its last layer, weights from a file (nothing
downloads here: random weights saved in torchvision's layout), and every door: embed,
fine-tune, explain, serve, export to ONNX."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torchvision.models import get_model

from orangecontrib.deepimage.core.local_embedder import Embedder
from orangecontrib.deepimage.core.explain import Explainer, default_layer
from orangecontrib.deepimage.core.images import find_images
from orangecontrib.deepimage.core.models import MODELS, get_spec
from orangecontrib.deepimage.core.networks import EmbeddingNet, build_backbone
from orangecontrib.deepimage.core.weights import WeightsUnavailable, locate_weights

from trainer_images import make_colour_folders

NETWORK = "mobilenet_v3_small"  # 2.5 M parameters: the smallest with a Linear head


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory):
    """$DEEPIMAGE_WEIGHTS_DIR with random mobilenet_v3_small weights under torchvision's
    file name, as a user would put the downloaded file there."""
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(1)
    torch.save(get_model(NETWORK, weights=None).state_dict(),
               folder / get_spec(NETWORK).weights_file)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DEEPIMAGE_WEIGHTS_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def colours(tmp_path_factory):
    return make_colour_folders(tmp_path_factory.mktemp("colours"), per_class=6, size=40)


def test_spec_comes_from_torchvision_weights_enum():
    spec = get_spec("ResNet18")
    assert (spec.name, spec.input_size, spec.colour_order, spec.embedding_dim) == \
        ("resnet18", 224, "RGB", 512)
    assert spec.weights_file == "resnet18-f37072fd.pth" and spec.weights_sha256 == "f37072fd"
    assert spec.weights_url.endswith("/" + spec.weights_file)
    assert spec.weights_enum == "ResNet18_Weights.IMAGENET1K_V1"
    assert spec.mean == pytest.approx((0.485 * 255, 0.456 * 255, 0.406 * 255))
    assert spec.gradcam_layer == "net.layer4" and "resnet18" not in MODELS
    assert sum(p.numel() for p in build_backbone(spec).parameters()) == spec.parameters


@pytest.mark.parametrize("name,size", [("resnet18", 64), ("efficientnet_b0", 64),
                                       ("squeezenet1_0", 64)])
def test_embedding_is_the_input_of_the_last_layer(name, size):
    """Against torchvision's own network with the same weights: the embedding is what
    its last layer receives (SqueezeNet's 1x1-conv classifier: the pooled features)."""
    torch.manual_seed(0)
    original = get_model(name, weights=None).eval()
    backbone = build_backbone(name)
    backbone.load_state_dict_file(original.state_dict())
    net = EmbeddingNet(get_spec(name), backbone).eval()
    images = torch.randint(0, 255, (2, size, size, 3), dtype=torch.uint8)
    seen = {}
    last = original.get_submodule(backbone.head_path)
    last.register_forward_hook(lambda m, i, o: seen.update(x=i[0]))
    with torch.no_grad():
        original(net.preprocess(images))
        embedding = net(images)
    expected = seen["x"].mean(dim=(2, 3)) if seen["x"].dim() == 4 else seen["x"]
    assert embedding.shape == (2, get_spec(name).embedding_dim)
    torch.testing.assert_close(embedding, expected)


def test_vision_transformers_say_grad_cam_is_not_offered():
    spec = get_spec("vit_b_16")
    assert spec.gradcam_layer is None and spec.min_input_size == 224
    with pytest.raises(ValueError, match="vision transformer"):
        default_layer(spec)


def test_missing_weights_say_where_to_put_the_file():
    with pytest.raises(WeightsUnavailable, match="resnet18-f37072fd.pth"):
        locate_weights("resnet18")


def test_cli_models_all_lists_torchvision_with_where_the_weights_are(weights_dir, capsys):
    from orangecontrib.deepimage.cli import main
    assert main(["models", "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    mobilenet = next(line for line in lines if line.startswith(NETWORK + " "))
    resnet = next(line for line in lines if line.startswith("resnet18 "))
    assert f"present: {weights_dir / get_spec(NETWORK).weights_file}" in mobilenet
    assert "missing: put the file at" in resnet and resnet.endswith("resnet18-f37072fd.pth")


def test_embeds_with_torch_and_onnx_alike(weights_dir, colours):
    sources = find_images(colours)[:4]
    torch_run = Embedder(NETWORK, device="cpu", backend="torch", cache=False).embed(sources)
    onnx_run = Embedder(NETWORK, device="cpu", backend="onnx", cache=False).embed(sources)
    assert torch_run.embeddings.shape == (4, 1024)
    np.testing.assert_allclose(onnx_run.embeddings, torch_run.embeddings, rtol=1e-3,
                               atol=1e-3)


def test_cli_embed_with_a_weights_file(weights_dir, colours, tmp_path):
    from orangecontrib.deepimage.cli import main
    out = tmp_path / "vectors.npy"
    path = weights_dir / get_spec(NETWORK).weights_file
    assert main(["embed", colours, "-m", NETWORK, "--weights", str(path), "-o", str(out),
                 "--backend", "torch", "--no-cache", "-q"]) == 0
    assert np.load(out).shape == (12, 1024)


@pytest.mark.slow
def test_fine_tunes_explains_serves_and_exports(weights_dir, colours, tmp_path):
    from fastapi.testclient import TestClient

    from orangecontrib.deepimage.core.onnx import OnnxRunner, export_classifier_onnx
    from orangecontrib.deepimage.core.train import TrainConfig, train_classifier
    from orangecontrib.deepimage.server.app import create_app
    from orangecontrib.deepimage.server.config import Settings

    sources = find_images(colours)
    labels = [0 if "blue" in s else 1 for s in sources]
    config = TrainConfig(model=NETWORK, mode="fine-tune", epochs=1, head_epochs=1,
                         image_size=64, batch_size=4, device="cpu")
    result = train_classifier(sources, labels, 2, config)
    assert [r.phase for r in result.history] == ["head", "network"]

    explained = Explainer(result.net, ["blue", "red"], 64, device="cpu").explain(sources[:2])
    assert explained.explanations[0].cam.shape == (2, 2)  # features: 64 px / 32

    path = export_classifier_onnx(result.net, tmp_path / "mine.onnx", image_size=64,
                                  classes=["blue", "red"])
    images = np.random.default_rng(0).integers(0, 255, (2, 64, 64, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = result.net(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(OnnxRunner(path, "cpu")(images), expected, rtol=1e-3,
                               atol=1e-3)

    own = tmp_path / "my-weights.pth"  # serve --weights NAME=FILE, from anywhere
    own.write_bytes((weights_dir / get_spec(NETWORK).weights_file).read_bytes())
    settings = Settings(models=[NETWORK], weights=[f"{path.stem}={path}", f"{NETWORK}={own}"])
    with TestClient(create_app(settings), base_url="http://127.0.0.1") as client:
        for _ in range(1200):
            ready = client.get("/readyz")
            if ready.status_code == 200 or "failed" in ready.json().get("detail", ""):
                break
            time.sleep(0.1)
        served = {m["name"]: m for m in client.get("/v1/models").json()["models"]}
    assert served[NETWORK]["dim"] == 1024 and served[NETWORK]["input_size"] == 224
    assert served[NETWORK]["weights_id"] == locate_weights(NETWORK, own).identity
    assert served["mine"]["fine_tuned"] and served["mine"]["input_size"] == 64
