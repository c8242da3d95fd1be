"""The local embedder (core/local_embedder.py) over the batched pipeline: order, skipped inputs,
progress, cancel, cache, backends."""
import shutil

import numpy as np
import pytest

from orangecontrib.deepimage.core import Cancelled, Embedder, EmbeddingCache, find_images
from orangecontrib.deepimage.core.images import load_image


@pytest.fixture(scope="module")
def cache_file(tmp_path_factory):
    return tmp_path_factory.mktemp("cache") / "embeddings.sqlite"


@pytest.fixture
def embedder(tmp_path):
    return Embedder("squeezenet", backend="torch", batch_size=2,
                    cache=EmbeddingCache(tmp_path / "cache.sqlite"))


def cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_embeds_good_images_in_order_and_skips_bad_ones_with_reasons(photo_dir, embedder):
    sources = find_images(photo_dir)
    assert len(sources) == 9
    result = embedder.embed(sources)
    good = [i for i, s in enumerate(sources) if s.endswith(("0.jpg", "1.jpg", "2.jpg"))]
    assert list(result.indices) == good
    assert result.embeddings.shape == (6, 512) and result.embeddings.dtype == np.float32
    reasons = {s.source.rsplit("/", 1)[1]: s.reason for s in result.skipped}
    assert set(reasons) == {"empty.jpg", "notes.png", "truncated.jpg"}
    assert "empty" in reasons["empty.jpg"] and "truncated" in reasons["truncated.jpg"]
    # the same vectors as decoding and embedding each image by hand
    by_hand = embedder.embed_arrays(np.stack([load_image(sources[i], (227, 227)) for i in good]))
    assert cosine(result.embeddings, by_hand).min() > 0.99999
    full = result.full()
    assert full.shape == (9, 512) and np.isnan(full[result.skipped[0].index]).all()


def test_progress_reaches_the_total(photo_dir, embedder):
    calls = []
    embedder.embed(find_images(photo_dir), progress=lambda done, total: calls.append((done, total)))
    assert calls[-1] == (9, 9)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def test_cancel_keeps_what_was_embedded_in_the_cache(photo_dir, embedder):
    sources = [s for s in find_images(photo_dir) if s[-5].isdigit()]  # the 6 good ones
    batches = []
    with pytest.raises(Cancelled):
        embedder.embed(sources, progress=lambda done, total: batches.append(done),
                       should_stop=lambda: len(batches) >= 1)
    assert batches == [2]
    again = embedder.embed(sources)
    assert again.cached == 2 and len(again.indices) == 6


def test_cache_is_keyed_by_content_and_model(photo_dir, tmp_path):
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    first = Embedder("squeezenet", backend="torch", cache=cache)
    sources = [s for s in find_images(photo_dir) if s[-5].isdigit()]
    fresh = first.embed(sources)
    assert fresh.cached == 0 and len(cache) == 6
    copy = tmp_path / "renamed.jpg"
    shutil.copy(sources[0], copy)
    again = first.embed(sources + [str(copy)])
    assert again.cached == 7  # a renamed copy is the same content
    np.testing.assert_array_equal(again.embeddings[:6], fresh.embeddings)
    untrained = Embedder("squeezenet", backend="torch", cache=cache, random_weights=True)
    assert untrained.cache is None  # random weights have no identity: never cached
    assert untrained.embed(sources).cached == 0


def test_onnx_backend_gives_the_torch_embeddings(photo_dir, tmp_path):
    sources = [s for s in find_images(photo_dir) if s[-5].isdigit()]
    torch_result = Embedder("squeezenet", backend="torch", cache=False).embed(sources)
    onnx_embedder = Embedder("squeezenet", backend="onnx", cache=False)
    assert onnx_embedder.backend == "onnx"
    onnx_result = onnx_embedder.embed(sources)
    assert cosine(torch_result.embeddings, onnx_result.embeddings).min() > 0.9999


def test_auto_backend_and_device_on_a_cpu_machine():
    embedder = Embedder("squeezenet", cache=False)
    assert (embedder.device, embedder.backend, embedder.batch_size) == ("cpu", "onnx", 16)


def test_asking_for_a_missing_gpu_is_a_clear_error():
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="No CUDA GPU"):
        Embedder("squeezenet", device="cuda")


def test_work_in_flight_is_bounded(tmp_path, monkeypatch):
    """Decoding runs a bounded window ahead of the network, however many inputs."""
    from PIL import Image
    for i in range(60):
        Image.new("RGB", (32, 32), (i * 4, 0, 0)).save(tmp_path / f"{i:03d}.png")
    embedder = Embedder("squeezenet", backend="torch", batch_size=4, workers=2, cache=False)
    started, ahead = [], []
    prepare = embedder._prepare
    monkeypatch.setattr(embedder, "_prepare", lambda s: started.append(s) or prepare(s))
    embedder.embed(find_images(tmp_path), progress=lambda done, total: ahead.append(
        len(started) - done))
    window = max(2 * embedder.batch_size, 4 * embedder.workers)
    assert len(started) == 60 and max(ahead) <= window


def test_a_given_network_embeds_instead_of_the_registry(photo_dir):
    from orangecontrib.deepimage.core.models import get_spec
    from orangecontrib.deepimage.core.networks import EmbeddingNet, build_backbone
    spec = get_spec("squeezenet")
    net = EmbeddingNet(spec, build_backbone(spec))
    embedder = Embedder(spec, backend="torch", net=net, weights_id="finetuned-1")
    assert embedder.dim == 512 and embedder.cache_key.startswith("squeezenet|finetuned-1|")
    result = embedder.embed([s for s in find_images(photo_dir) if s[-5].isdigit()])
    assert result.embeddings.shape == (6, 512)


def test_random_weight_vgg_embeds_in_batches_of_two(tmp_path):
    from PIL import Image
    paths = []
    for i in range(3):
        Image.new("RGB", (50, 40), (0, 80 * i, 0)).save(tmp_path / f"{i}.png")
        paths.append(str(tmp_path / f"{i}.png"))
    result = Embedder("vgg16", backend="torch", random_weights=True, batch_size=2).embed(paths)
    assert result.embeddings.shape == (3, 4096) and np.isfinite(result.embeddings).all()


def test_urls_are_embedded_and_bad_urls_skipped(photo_dir):
    """Orange tables may hold http(s) URLs; served here from 127.0.0.1."""
    import functools
    import http.server
    import threading
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(photo_dir))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        urls = [f"{base}/cats/cats0.jpg", f"{base}/cats/missing.jpg"]
        result = Embedder("squeezenet", backend="torch", cache=False).embed(urls)
    finally:
        server.shutdown()
    local = Embedder("squeezenet", backend="torch", cache=False).embed(
        [str(photo_dir / "cats" / "cats0.jpg")])
    np.testing.assert_allclose(result.embeddings, local.embeddings, rtol=1e-5)
    assert len(result.skipped) == 1 and "404" in result.skipped[0].reason


def test_a_damaged_onnx_export_in_the_cache_is_redone(photo_dir, tmp_path, monkeypatch):
    import hashlib
    from orangecontrib.deepimage.core.cache import default_cache_dir
    monkeypatch.setenv("DEEPIMAGE_CACHE_DIR", str(tmp_path))
    first = Embedder("squeezenet", backend="onnx", cache=False)
    digest = hashlib.blake2b(first.cache_key.encode(), digest_size=8).hexdigest()
    exported = default_cache_dir() / "onnx" / f"squeezenet-{digest}.onnx"
    assert exported.is_file()
    exported.write_bytes(b"half an onnx file")
    image = [str(photo_dir / "cats" / "cats0.jpg")]
    again = Embedder("squeezenet", backend="onnx", cache=False)
    np.testing.assert_allclose(again.embed(image).embeddings, first.embed(image).embeddings,
                               rtol=1e-5)
    assert exported.stat().st_size > 1_000_000


def test_nothing_to_embed(embedder):
    result = embedder.embed([])
    assert result.embeddings.shape == (0, 512) and result.skipped == [] and result.full().shape == (0, 512)


def test_cpu_embedding_with_an_earlier_onnx_export_does_not_import_torch(photo_dir):
    """Start-up matters for the CLI: torch takes seconds to import and is not needed."""
    from fresh_python import run_python
    Embedder("squeezenet", backend="onnx", cache=False)  # exports, if not done yet
    code = ("import sys\nfrom orangecontrib.deepimage.core import Embedder\n"
            f"r = Embedder('squeezenet', cache=False).embed([{str(photo_dir / 'cats' / 'cats0.jpg')!r}])\n"
            "print(r.embeddings.shape, 'torch' in sys.modules)")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["(1,", "512)", "False"]


def test_crop_keeps_the_centre_and_is_cached_apart(tmp_path):
    """By default the whole image is resized; with crop only the centre is seen."""
    from PIL import Image
    pixels = np.zeros((100, 300, 3), np.uint8)
    pixels[:, :100] = (255, 0, 0)   # red left third
    pixels[:, 200:] = (0, 0, 255)   # blue right third
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    whole = load_image(tmp_path / "wide.png", (30, 30))
    cropped = load_image(tmp_path / "wide.png", (30, 30), crop=True)
    assert whole[15, 0, 0] > 200 and whole[15, -1, 2] > 200  # both edges kept
    assert cropped.max() < 10  # the black centre only
    cache = EmbeddingCache(tmp_path / "c.sqlite")
    path = [str(tmp_path / "wide.png")]
    plain = Embedder("squeezenet", backend="torch", cache=cache).embed(path)
    crop = Embedder("squeezenet", backend="torch", cache=cache, crop=True).embed(path)
    assert crop.cached == 0 and len(cache) == 2
    assert not np.allclose(plain.embeddings, crop.embeddings)
