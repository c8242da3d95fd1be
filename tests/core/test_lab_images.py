"""Lab images: 16-bit, float, stacks and 2-5 channel microscopy files, built here with
tifffile and Pillow, decoded to RGB the one documented way (core/labimages.py)."""
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from orangecontrib.deepimage.core.images import ImageError, decode_image, load_image

tifffile = pytest.importorskip("tifffile")

PHOTOS = Path(__file__).resolve().parents[2] / "tutorials" / "sample-photos"
H, W = 40, 60
LOW, HIGH = 100, 3000


def bands(channels, dtype=np.uint16):
    """C x H x W: channel c is HIGH in the vertical band c (12 px wide), LOW elsewhere."""
    planes = np.full((channels, H, W), LOW, dtype)
    for c in range(channels):
        planes[c, :, 12 * c:12 * (c + 1)] = HIGH
    return planes


def band_colours(arr):
    """The mean RGB of each of the five bands of a decoded H x W x 3 image."""
    return [tuple(int(v) for v in arr[:, 12 * b + 2:12 * (b + 1) - 2].mean(axis=(0, 1)))
            for b in range(5)]


RED, GREEN, BLUE, BLACK, WHITE = (255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0), (255,) * 3
# what bands() of C channels becomes: 1 grey, 2 red+green, 3+ red, green, blue (4th, 5th dropped)
EXPECTED = {1: [WHITE, BLACK, BLACK, BLACK, BLACK], 2: [RED, GREEN, BLACK, BLACK, BLACK],
            3: [RED, GREEN, BLUE, BLACK, BLACK], 4: [RED, GREEN, BLUE, BLACK, BLACK],
            5: [RED, GREEN, BLUE, BLACK, BLACK]}


def write(path, data, **kwargs):
    tifffile.imwrite(path, data, **kwargs)
    return path


@pytest.mark.parametrize("channels", [2, 3, 4, 5])
@pytest.mark.parametrize("layout", ["channels-last", "channels-first", "imagej", "imagej-8bit",
                                    "tifffile-axes"])
def test_multichannel_tiffs_map_channels_1_to_3(tmp_path, channels, layout):
    planes = bands(channels)
    if layout == "channels-last":
        kwargs = {"photometric": "minisblack", "planarconfig": "contig"}
        data = np.moveaxis(planes, 0, -1)
    elif layout == "channels-first":
        kwargs = {"photometric": "minisblack", "planarconfig": "separate"}
        data = planes
    elif layout == "tifffile-axes":  # tifffile's own JSON description names the axes
        kwargs = {"metadata": {"axes": "CYX"}, "photometric": "minisblack"}  # C pages
        data = planes
    else:
        kwargs = {"imagej": True, "metadata": {"axes": "CYX"}}
        data = planes if layout == "imagej" else (planes // 12).astype(np.uint8)
    path = write(tmp_path / "cells.tif", data, **kwargs)
    arr = load_image(path)
    assert arr.shape == (H, W, 3) and arr.dtype == np.uint8
    colours = band_colours(arr)
    if layout == "imagej-8bit":  # 8-bit data is shown as stored: 250 on 8
        expected = [tuple(250 if v else 8 for v in c) for c in EXPECTED[channels]]
        if channels == 2:  # no third channel: blue is empty
            expected = [(r, g, 0) for r, g, _ in expected]
        assert colours == expected
    else:
        assert colours == EXPECTED[channels]


@pytest.mark.parametrize("kind", ["imagej", "ome"])
def test_hyperstack_uses_the_first_time_point_and_slice(tmp_path, kind):
    stack = np.zeros((2, 3, 3, H, W), np.uint16)   # T, Z, C, Y, X
    stack[...] = bands(3)[::-1]                      # every other plane: channels reversed
    stack[0, 0] = bands(3)
    path = write(tmp_path / "hyper.tif", stack, metadata={"axes": "TZCYX"},
                 **({"imagej": True} if kind == "imagej" else {"ome": True}))
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "TZCYX" and len(tif.pages) == 18
    assert band_colours(load_image(path))[:3] == [RED, GREEN, BLUE]
    small = load_image(path, size=(30, 20))
    assert small.shape == (20, 30, 3)


@pytest.mark.parametrize("writer", ["tifffile", "pillow"])
def test_multipage_tiff_first_page(tmp_path, writer):
    first, second = bands(1)[0], bands(1)[0][:, ::-1].copy()
    path = tmp_path / "pages.tif"
    if writer == "tifffile":
        with tifffile.TiffWriter(path) as tif:
            tif.write(first)
            tif.write(second)
    else:
        frames = [Image.fromarray((p // 12).astype(np.uint8)) for p in (first, second)]
        frames[0].save(path, save_all=True, append_images=frames[1:])
    arr = load_image(path)
    assert arr.shape == (H, W, 3)
    assert arr[:, :10].mean() > 200 > 50 > arr[:, -10:].mean()   # page 1: bright on the left


@pytest.mark.parametrize("fmt", ["png", "tif"])
def test_one_hot_pixel_does_not_blank_a_16bit_image(tmp_path, fmt):
    """A percentile stretch, not min-max: one saturated pixel leaves the rest visible."""
    values = np.tile(np.linspace(100, 1000, W), (H, 1)).astype(np.uint16)
    values[5, 5] = 65535
    path = tmp_path / f"hot.{fmt}"
    Image.fromarray(values).save(path)
    arr = load_image(path)[..., 0].astype(int)
    assert arr[20, 0] <= 5 and arr[20, -1] >= 250
    assert 100 <= arr[20, W // 2] <= 155            # mid-grey stays mid-grey
    assert arr[5, 5] == 255


def test_float_tiff_with_hot_pixel_and_infinities(tmp_path):
    values = np.tile(np.linspace(0, 1, W, dtype=np.float32), (H, 1))
    values[0, 0], values[0, 1], values[0, 2] = 1e30, np.inf, -np.inf
    path = write(tmp_path / "f.tif", values)
    arr = load_image(path)[..., 0].astype(int)
    assert 100 <= arr[20, W // 2] <= 155
    assert arr[0, 1] == 255 and arr[0, 2] == 0


def test_16bit_rgb_tiff_keeps_its_colours(tmp_path):
    """Pillow reads 16-bit RGB TIFFs as their high bytes (12-bit data: black); tifffile
    reads them, and the three channels are stretched together so colours stay."""
    rgb = np.zeros((H, W, 3), np.uint16)
    rgb[:, :20] = (4000, 0, 0)
    rgb[:, 20:40] = (2000, 2000, 0)
    rgb[:, 40:] = (0, 0, 1000)
    arr = load_image(write(tmp_path / "rgb12.tif", rgb, photometric="rgb"))
    assert tuple(arr[20, 10]) == (255, 0, 0)
    assert tuple(arr[20, 30]) == (128, 128, 0)
    assert tuple(arr[20, 50]) == (0, 0, 64)


def test_tiff_orientation_tag_applied(tmp_path):
    values = bands(1)[0]  # bright band on the left
    path = write(tmp_path / "o.tif", values, extratags=[(274, "H", 1, 3, True)])  # 180 deg
    arr = load_image(path)
    assert arr[:, -10:].mean() > 200 > 50 > arr[:, :10].mean()


def test_lzw_tiff_without_imagecodecs_is_read_by_pillow_or_explained(tmp_path):
    values = np.tile(np.linspace(100, 1000, W), (H, 1)).astype(np.uint16)
    path = tmp_path / "lzw.tif"
    Image.fromarray(values).save(path, compression="tiff_lzw")   # Pillow reads it
    arr = load_image(path)
    assert arr[20, 0, 0] <= 5 and arr[20, -1, 0] >= 250
    write(tmp_path / "lzw2.tif", bands(2), photometric="minisblack",
          planarconfig="separate", compression="zlib")
    assert band_colours(load_image(tmp_path / "lzw2.tif"))[:2] == [RED, GREEN]


def test_shrinks_before_converting(tmp_path):
    """A 16-bit image decoded to 227 x 227 never has a full-size float copy (numpy's
    allocations are traced; a 3000 x 3000 float32 copy alone is 34 MiB)."""
    values = np.zeros((3000, 3000), np.uint16)
    values[:, 1500:] = 4000
    data = (tmp_path / "big.png")
    Image.fromarray(values).save(data)
    data = data.read_bytes()
    decode_image(data, (227, 227))  # warm-up: imports, plugin registration
    tracemalloc.start()
    try:
        arr = decode_image(data, (227, 227))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert arr[100, 10, 0] == 0 and arr[100, 220, 0] == 255
    assert peak < 12 * 2**20, f"{peak / 2**20:.0f} MiB"


def test_unreadable_tiff_gives_a_reason(tmp_path):
    path = tmp_path / "bad.tif"
    path.write_bytes(b"II*\x00" + b"\xff" * 40)
    with pytest.raises(ImageError) as excinfo:
        load_image(path)
    assert "tiff" in str(excinfo.value).lower() and "\n" not in str(excinfo.value)


# --- the same picture at 8 and at 16 bits embeds the same; the CLI embeds every kind ----

def photo(grey=False):
    with Image.open(PHOTOS / "kittens-4020199_640.jpg") as image:
        return np.asarray(image.convert("L" if grey else "RGB"))


def cosine(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_8bit_and_16bit_twins_embed_alike(tmp_path):
    from orangecontrib.deepimage.core import Embedder
    rgb, grey = photo(), photo(grey=True)
    Image.fromarray(rgb).save(tmp_path / "rgb8.png")
    write(tmp_path / "rgb12.tif", rgb.astype(np.uint16) * 16, photometric="rgb")  # 12-bit
    write(tmp_path / "rgb16.tif", rgb.astype(np.uint16) * 257, photometric="rgb")
    Image.fromarray(grey).save(tmp_path / "grey8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "grey16.png")
    write(tmp_path / "greyf.tif", grey.astype(np.float32) / 255)
    names = ["rgb8.png", "rgb12.tif", "rgb16.tif", "grey8.png", "grey16.png", "greyf.tif"]
    result = Embedder("squeezenet", backend="torch", cache=False).embed(
        [str(tmp_path / n) for n in names])
    assert not result.skipped
    vectors = result.embeddings
    similar = cosine(vectors[[1, 2, 4, 5]], vectors[[0, 0, 3, 3]])
    assert similar.min() >= 0.98, dict(zip(names[1:3] + names[4:], similar.round(4)))


def test_cli_embeds_a_folder_of_every_lab_kind(tmp_path, capsys):
    from orangecontrib.deepimage.cli import main
    folder = tmp_path / "lab"
    folder.mkdir()
    grey16 = np.tile(np.linspace(100, 4000, W), (H, 1)).astype(np.uint16)
    Image.fromarray(grey16).save(folder / "a_grey16.png")
    write(folder / "b_grey16.tif", grey16)
    write(folder / "c_float.tif", grey16.astype(np.float32) / 4000)
    with tifffile.TiffWriter(folder / "d_pages.tif") as tif:
        for _ in range(3):
            tif.write(grey16)
    write(folder / "e_2ch_last.tif", np.moveaxis(bands(2), 0, -1), photometric="minisblack",
          planarconfig="contig")
    write(folder / "f_5ch_first.tif", bands(5), photometric="minisblack",
          planarconfig="separate")
    write(folder / "g_hyperstack.tif", np.stack([np.stack([bands(4)] * 3)] * 2), imagej=True,
          metadata={"axes": "TZCYX"})
    write(folder / "h_rgb16.tif", np.moveaxis(bands(3), 0, -1), photometric="rgb")
    out = tmp_path / "out.npy"
    assert main(["embed", str(folder), "-o", str(out), "--backend", "torch", "--no-cache"]) == 0
    err = capsys.readouterr().err
    assert "Embedded 8 images" in err and "skipped 0" in err, err
    vectors = np.load(out)
    assert vectors.shape == (8, 512) and np.isfinite(vectors).all()


def test_tiff_needing_imagecodecs_says_so(tmp_path):
    """A TIFF neither reader can decode without imagecodecs gets a reason that names it."""
    try:
        import imagecodecs  # noqa: F401
        pytest.skip("imagecodecs is installed: the fake LZW data would just be corrupt")
    except ImportError:
        pass
    path = write(tmp_path / "lzw.tif", bands(2), photometric="minisblack",
                 planarconfig="separate", compression="zlib")
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags[259]   # Compression: a SHORT stored in the tag itself
        assert tag.value == 8
        where = tag.valueoffset
    data = bytearray(path.read_bytes())
    data[where:where + 2] = (5).to_bytes(2, "little")   # claim LZW
    path.write_bytes(bytes(data))
    with pytest.raises(ImageError) as excinfo:
        load_image(path)
    assert "LZW" in str(excinfo.value) and "pip install imagecodecs" in str(excinfo.value)
