"""PixelBudget: what decoders hold at once is bounded; the embedding pipeline uses it."""
import io
import threading
import time

import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.core import Embedder
from orangecontrib.deepimage.core.budget import BudgetTimeout, PixelBudget, shared_budget
from orangecontrib.deepimage.core.images import decode_image


class Recording(PixelBudget):
    """A PixelBudget that remembers what was reserved."""

    def __init__(self, capacity):
        super().__init__(capacity)
        self.asked = []

    def acquire(self, pixels, timeout=None):
        self.asked.append(pixels)
        super().acquire(pixels, timeout)


def png(width, height, mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height), 0).save(buf, "PNG")
    return buf.getvalue()


def test_reservations_within_capacity_do_not_wait():
    budget = PixelBudget(100)
    budget.acquire(60, timeout=0)
    budget.acquire(40, timeout=0)
    assert budget.in_use == 100
    with pytest.raises(BudgetTimeout, match="did not fit"):
        budget.acquire(1, timeout=0.01)
    budget.release(60)
    budget.release(40)
    assert budget.in_use == 0


def test_a_waiting_reservation_goes_ahead_when_pixels_are_given_back():
    budget = PixelBudget(100)
    budget.acquire(80)
    got = threading.Event()

    def waiter():
        budget.acquire(50)
        got.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    assert not got.wait(0.1)          # 80 + 50 > 100: it waits
    budget.release(80)
    assert got.wait(5)
    thread.join()
    assert budget.in_use == 50


def test_an_image_larger_than_the_budget_runs_alone():
    budget = PixelBudget(100)
    with budget.reserve(500, timeout=0):   # nothing else in use: let through
        assert budget.in_use == 500
        with pytest.raises(BudgetTimeout):
            budget.acquire(1, timeout=0.01)
    assert budget.in_use == 0


def test_reserve_gives_back_on_error():
    budget = PixelBudget(10)
    with pytest.raises(RuntimeError):
        with budget.reserve(7):
            raise RuntimeError("decoder bug")
    assert budget.in_use == 0
    with pytest.raises(ValueError):
        PixelBudget(0)


def test_decode_reserves_the_decoded_size_and_gives_it_back():
    budget = Recording(10_000_000)
    arr = decode_image(png(300, 200), (32, 32), budget=budget)
    assert arr.shape == (32, 32, 3)
    assert budget.asked == [300 * 200] and budget.in_use == 0
    # a JPEG is decoded at reduced scale: only those pixels are reserved
    buf = io.BytesIO()
    Image.new("RGB", (1600, 1200), (10, 20, 30)).save(buf, "JPEG")
    decode_image(buf.getvalue(), (100, 100), budget=budget)
    assert budget.asked[1] == 200 * 150   # 1/8 scale still covers 100 x 100


@pytest.mark.parametrize("kind", ["png8", "png16", "tiff16"])
def test_pixels_are_decoded_while_reserved(monkeypatch, kind):
    """The reservation covers the decoding itself (Pillow's load, tifffile's read)."""
    from PIL import ImageFile
    tifffile = pytest.importorskip("tifffile")
    budget = Recording(10_000_000)
    seen = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self: (seen.append(budget.in_use), real_load(self))[1])
    real_read = tifffile.TiffFile.asarray
    monkeypatch.setattr(tifffile.TiffFile, "asarray",
                        lambda self, *a, **k: (seen.append(budget.in_use),
                                               real_read(self, *a, **k))[1])
    buf = io.BytesIO()
    if kind == "tiff16":
        tifffile.imwrite(buf, np.zeros((2, 200, 300), np.uint16), imagej=True,
                         metadata={"axes": "CYX"})
    else:
        Image.new("I;16" if kind == "png16" else "RGB", (300, 200)).save(buf, "PNG")
    decode_image(buf.getvalue(), (32, 32), budget=budget)
    assert seen and all(in_use == 300 * 200 for in_use in seen), seen
    assert budget.in_use == 0


def test_decode_waits_for_room_and_times_out():
    budget = PixelBudget(100_000)
    budget.acquire(90_000)
    with pytest.raises(BudgetTimeout):
        decode_image(png(300, 200), (32, 32), budget=budget, budget_timeout=0.05)
    assert budget.in_use == 90_000
    timer = threading.Timer(0.2, budget.release, (90_000,))
    timer.start()
    start = time.monotonic()
    arr = decode_image(png(300, 200), (32, 32), budget=budget, budget_timeout=10)
    assert arr.shape == (32, 32, 3) and time.monotonic() - start >= 0.15
    timer.join()


def test_embedder_decodes_within_a_budget(tmp_path):
    for i, size in enumerate([(300, 200), (64, 48)]):
        Image.new("RGB", size, (i * 50, 0, 0)).save(tmp_path / f"{i}.png")
    budget = Recording(1_000_000)
    embedder = Embedder("squeezenet", backend="torch", cache=False, random_weights=True,
                        decode_budget=budget)
    result = embedder.embed([str(tmp_path / "0.png"), str(tmp_path / "1.png")])
    assert list(result.indices) == [0, 1]
    assert sorted(budget.asked) == [64 * 48, 300 * 200] and budget.in_use == 0
    default = Embedder("squeezenet", backend="torch", cache=False, random_weights=True)
    assert default.decode_budget is shared_budget()
    assert np.isfinite(result.embeddings).all()
