"""Only formats Pillow decodes itself are read; the rest are refused by name, before any
decoding, and no external program (Ghostscript for EPS) is ever started."""
import io
import subprocess

import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.core import Embedder
from orangecontrib.deepimage.core.images import (SAFE_FORMATS, ImageError, UnsupportedFormat,
                                                 decode_image, load_image)


def encoded(fmt, image=None, **kwargs) -> bytes:
    image = image if image is not None else Image.new("RGB", (16, 12), (200, 30, 30))
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def refuse_programs(monkeypatch) -> list:
    """From now on, starting any program fails the test (and is listed)."""
    started = []

    class Refused:
        def __init__(self, args, *a, **k):
            started.append(args)
            raise AssertionError(f"an external program was started: {args}")

    monkeypatch.setattr(subprocess, "Popen", Refused)
    monkeypatch.setattr("os.system", lambda *a: started.append(a) or 1)
    return started


@pytest.fixture
def no_programs(monkeypatch):
    started = refuse_programs(monkeypatch)
    yield started
    assert started == []


@pytest.mark.parametrize("fmt", ["ICO", "TGA", "JPEG2000", "PPM", "DIB", "AVIF"])
def test_more_safe_formats_decode(fmt, no_programs):
    from PIL import features
    if fmt == "JPEG2000" and not features.check("jpg_2000"):
        pytest.skip("Pillow without OpenJPEG")
    if fmt == "AVIF" and not features.check("avif"):
        pytest.skip("Pillow without libavif")
    assert fmt in SAFE_FORMATS
    arr = decode_image(encoded(fmt), (8, 6))
    assert arr.shape == (6, 8, 3) and np.all(np.abs(arr[3, 4].astype(int) - (200, 30, 30)) < 40)


def test_greyscale_pgm(no_programs):
    arr = decode_image(encoded("PPM", Image.new("L", (5, 4), 90)))
    assert arr.shape == (4, 5, 3) and np.all(arr == 90)


@pytest.mark.parametrize("fmt", ["EPS", "PDF", "PCX", "SGI", "XBM", "QOI", "DDS", "MSP"])
def test_other_pillow_formats_are_refused_by_name(fmt, no_programs):
    image = Image.new("1" if fmt in ("XBM", "MSP") else "RGB", (16, 12), 1)
    with pytest.raises(UnsupportedFormat) as excinfo:
        decode_image(encoded(fmt, image))
    assert isinstance(excinfo.value, ImageError)
    message = str(excinfo.value)
    assert message.startswith(f"unsupported format: {fmt} ") and "\n" not in message


def test_eps_never_starts_ghostscript(tmp_path, no_programs):
    """An EPS file is refused from its first bytes: Pillow would run Ghostscript to
    render it (the patched Popen fails the test if anything is started)."""
    path = tmp_path / "figure.eps"
    path.write_bytes(encoded("EPS"))
    with pytest.raises(UnsupportedFormat, match=r"^unsupported format: EPS"):
        load_image(path, (227, 227))
    assert no_programs == []


@pytest.mark.parametrize("head, name", [
    (b"\0\0\0\x18ftypheic\0\0\0\0mif1heic", "HEIC"),
    (b"%PDF-1.7\n%\xe2\xe3", "PDF"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "SVG"),
])
def test_common_unreadable_files_are_named(head, name):
    with pytest.raises(UnsupportedFormat, match=f"^unsupported format: {name}"):
        decode_image(head + b"\0" * 64)


def test_unsupported_file_is_a_skipped_row_when_embedding(tmp_path, monkeypatch):
    good = tmp_path / "a.jpg"
    good.write_bytes(encoded("JPEG", quality=95))
    eps = tmp_path / "b.eps"
    eps.write_bytes(encoded("EPS"))
    embedder = Embedder("squeezenet", backend="torch", cache=False, random_weights=True)
    started = refuse_programs(monkeypatch)  # loading torch may run ldconfig; decoding not
    result = embedder.embed([str(good), str(eps)])
    assert started == []
    assert list(result.indices) == [0]
    [skipped] = result.skipped
    assert skipped.index == 1 and skipped.reason.startswith("unsupported format: EPS")


def test_mpo_camera_jpeg_first_frame(no_programs):
    """Many cameras write MPO (JPEG with a second picture); Pillow opens it as JPEG."""
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(
        buf, "MPO", save_all=True, append_images=[Image.new("RGB", (64, 48), (0, 0, 255))])
    arr = decode_image(buf.getvalue(), (16, 12))
    assert arr.shape == (12, 16, 3) and np.all(np.abs(arr[6, 8].astype(int) - (200, 30, 30)) < 20)


def test_import_images_lists_only_what_embedding_decodes(tmp_path, no_programs):
    """Import Images reads headers with the same allow-list: an EPS is a skipped row with
    decoding's reason (never imported and then skipped at embedding), a 2-channel lab
    TIFF that Pillow cannot open is imported with its size from tifffile."""
    import tifffile
    from orangecontrib.deepimage.core.images import header_size
    from orangecontrib.deepimage.imports import probe_image

    (tmp_path / "figure.eps").write_bytes(encoded("EPS"))
    tifffile.imwrite(tmp_path / "cells.tif", np.zeros((2, 30, 40), np.uint16),
                     photometric="minisblack", planarconfig="separate")
    (tmp_path / "photo.png").write_bytes(encoded("PNG"))

    info, reason = probe_image(str(tmp_path / "figure.eps"))
    assert reason.startswith("unsupported format: EPS")
    with pytest.raises(UnsupportedFormat):
        header_size(tmp_path / "figure.eps")
    info, reason = probe_image(str(tmp_path / "cells.tif"))
    assert reason is None and (info["width"], info["height"]) == (40, 30)
    assert probe_image(str(tmp_path / "photo.png")) == (
        {"size": (tmp_path / "photo.png").stat().st_size, "width": 16, "height": 12}, None)
