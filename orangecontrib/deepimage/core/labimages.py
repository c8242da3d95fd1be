"""Lab images -> 8-bit RGB, one documented way (doc/troubleshooting.md).

Microscopes and scientific cameras write 16-bit, 32-bit and float data, several
channels, stacks and hyperstacks. What a network gets from such a file:

- the first plane: the first page of a stack, index 0 of every axis but the
  channels (time, depth, position ...), read with ``tifffile`` (only the pages
  needed are read);
- channels 1-3: one channel is grey, two are red and green (blue empty), three
  are red, green and blue, a fourth and fifth channel are left out;
- 8-bit data as stored; deeper data (16/32-bit, float) stretched so that the
  0.5th percentile is black and the 99.5th white, channel by channel (an RGB
  picture's three channels together, so its colours stay), so one hot pixel
  does not turn the rest black as a min-max stretch would. NaN is black.

Big images are shrunk (a box average) before anything is converted, so memory
stays near the size of the file's own pixels.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["TIFF_MAGIC", "is_tiff", "read_tiff", "planes_to_rgb", "stretch_to_uint8",
           "TRANSPOSE_FOR_ORIENTATION", "orient_array", "PillowPlane", "crop_box",
           "pillow_misreads"]

TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")  # classic and BigTIFF

#: how to turn an image stored with an EXIF/TIFF orientation into the one shown
TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = {5, 6, 7, 8}
# the same turns on an H x W (x C) array, for values Pillow cannot hold (16-bit colour,
# float, many channels)
_ARRAY_TURNS = {
    2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
    5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.rot90(a, -1),
    7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1), 8: lambda a: np.rot90(a, 1),
}


def orient_array(values: np.ndarray, orientation: int) -> np.ndarray:
    """``values`` (H x W or H x W x C) turned upright for an EXIF/TIFF ``orientation``,
    as TRANSPOSE_FOR_ORIENTATION turns a Pillow image; contiguous."""
    turn = _ARRAY_TURNS.get(orientation)
    return np.ascontiguousarray(turn(values) if turn is not None else values)
_PERCENTILES = (0.5, 99.5)
_SAMPLE = 1 << 22  # percentiles from at most ~4 M values per channel (a regular grid)
_CHUNK = 1 << 20   # values converted to float at a time


def is_tiff(data: bytes) -> bool:
    return data[:4] in TIFF_MAGIC


def _as_tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def pillow_misreads(image: Image.Image) -> bool:
    """A TIFF opened by Pillow that Pillow would misread, so tifffile reads it: deeper
    than 8 bits (Pillow shows 16-bit RGB as its high bytes), float, samples that are not
    its mode's bands (2 or 5 channels), channels marked as unspecified extra samples
    (not alpha), or ImageJ/tifffile axes in its description."""
    tags = image.tag_v2
    description = str(tags.get(270, "")).lstrip()
    return (any(b > 8 for b in _as_tuple(tags.get(258, 1)))
            or 3 in _as_tuple(tags.get(339, 1))
            or tags.get(277, 1) != len(image.getbands())
            or 0 in _as_tuple(tags.get(338, ()))
            or description.startswith("ImageJ=")
            or (description.startswith("{") and '"axes"' in description))


@dataclass(frozen=True)
class TiffPlanes:
    """The first plane of a TIFF: H x W x C values, whether C is an RGB picture's,
    and the TIFF orientation."""

    values: np.ndarray
    rgb: bool
    orientation: int


def tiff_shape(tif) -> "tuple[int, int]":
    """(width, height) of the first series' planes, from the header."""
    series = tif.series[0]
    axes = series.axes
    return series.shape[axes.index("X")], series.shape[axes.index("Y")]


def read_tiff(tif) -> TiffPlanes:
    """The first plane of an open ``tifffile.TiffFile``'s first series (see module doc).

    Reads only the pages that hold it: a 100-slice stack costs one slice.
    """
    import tifffile

    series = tif.series[0]
    axes, shape = series.axes, tuple(series.shape)
    page = series.keyframe
    page_shape = tuple(page.shape)
    lead = len(axes) - len(page_shape)
    if lead < 0 or shape[lead:] != page_shape:  # a layout we do not follow: page 0 alone
        axes, shape, lead = page.axes, page_shape, 0
    names = axes[lead:]
    channel = "S" if "S" in axes else ("C" if "C" in axes else None)
    lead_axes, lead_shape = axes[:lead], shape[:lead]
    if channel is not None and channel in lead_axes:
        where = lead_axes.index(channel)
        count = min(3, lead_shape[where])
        index = [0] * lead
        keys = []
        for c in range(count):
            index[where] = c
            keys.append(int(np.ravel_multi_index(index, lead_shape)))
        names = channel + names
    else:
        keys = [0]
        names = "K" + names  # a dummy axis of length 1
    values = tif.asarray(key=keys, series=0) if lead else page.asarray()
    values = values.reshape((len(keys),) + page_shape) if lead else values[None]
    if "Y" not in names or "X" not in names:
        raise ValueError(f"TIFF series has axes {axes!r}, no Y and X")
    # index 0 along everything but Y, X and the channels; then order as Y, X, channels
    keep = [n for n in names if n in ("Y", "X") or n == channel]
    selector = tuple(slice(None) if n in keep else 0 for n in names)
    values = values[selector]
    order = [keep.index("Y"), keep.index("X")] + ([keep.index(channel)] if channel in keep else [])
    values = np.transpose(values, order)
    if values.ndim == 2:
        values = values[:, :, None]
    rgb = channel == "S" and page.photometric == tifffile.PHOTOMETRIC.RGB
    tag = page.tags.get(274)  # Orientation
    orientation = int(tag.value) if tag is not None else 1
    return TiffPlanes(values, rgb, orientation)


class PillowPlane:
    """A deep (16-bit, 32-bit, float) Pillow image seen as H x W x 1 values that are
    copied out a strip of rows at a time, so that it is never copied whole."""

    def __init__(self, image: Image.Image, box: "tuple[int, int, int, int] | None" = None):
        self.image = image
        self.box = box or (0, 0, image.width, image.height)  # left, top, right, bottom
        self.shape = (self.box[3] - self.box[1], self.box[2] - self.box[0], 1)

    def crop(self, left: int, top: int, width: int, height: int) -> "PillowPlane":
        x, y = self.box[0] + left, self.box[1] + top
        return PillowPlane(self.image, (x, y, x + width, y + height))

    def rows(self, start: int, stop: int) -> np.ndarray:
        left, top, right, _ = self.box
        strip = self.image.crop((left, top + start, right, top + stop))
        return np.asarray(strip)[:, :, None]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        values = self.rows(0, self.shape[0])
        return values if dtype is None else values.astype(dtype)


def _rows(values, start: int, stop: int) -> np.ndarray:
    return values.rows(start, stop) if isinstance(values, PillowPlane) else values[start:stop]


def _block_mean(values, factor: int) -> np.ndarray:
    """H x W x C -> (H/f) x (W/f) x C float32 means of f x f blocks, a strip at a time
    (no full-size copy, of an array or of a PillowPlane)."""
    out_h, out_w = values.shape[0] // factor, values.shape[1] // factor
    channels = values.shape[2]
    out = np.empty((out_h, out_w, channels), np.float32)
    step = max(1, _CHUNK // max(1, factor * factor * out_w * channels))
    for row in range(0, out_h, step):
        stop = min(out_h, row + step)
        strip = _rows(values, row * factor, stop * factor)[:, :out_w * factor]
        blocks = strip.reshape(stop - row, factor, out_w, factor, channels)
        out[row:stop] = blocks.mean(axis=(1, 3), dtype=np.float32)
    return out


def _range(values: np.ndarray) -> "tuple[float, float]":
    """The 0.5 and 99.5 percentiles of the finite values (min and max if they are equal)."""
    step = max(1, int(np.ceil(np.sqrt(values.size / _SAMPLE))))
    sample = np.asarray(values[::step, ::step], dtype=np.float64).ravel()
    sample = sample[np.isfinite(sample)]
    if not sample.size:
        return 0.0, 0.0
    low, high = np.percentile(sample, _PERCENTILES)
    if high <= low:  # mostly one value (dark background, a few bright cells)
        low, high = sample.min(), sample.max()
    return float(low), float(high)


def stretch_to_uint8(values: np.ndarray, joint: bool = False) -> np.ndarray:
    """H x W x C of any real type -> uint8, percentile stretch per channel (``joint``:
    one for all channels). NaN and -inf are black, +inf white. Converted in chunks."""
    channels = values.shape[2]
    if joint:
        ranges = [_range(values)] * channels
    else:
        ranges = [_range(values[:, :, c]) for c in range(channels)]
    low = np.array([r[0] for r in ranges], np.float32)
    spread = np.array([r[1] - r[0] for r in ranges], np.float32)
    scale = np.divide(255.0, spread, out=np.zeros_like(spread), where=spread > 0)
    out = np.empty(values.shape, np.uint8)
    rows = max(1, _CHUNK // max(1, values.shape[1] * channels))
    for top in range(0, values.shape[0], rows):
        chunk = values[top:top + rows].astype(np.float32)
        chunk -= low
        chunk *= scale
        np.nan_to_num(chunk, copy=False, nan=0.0)
        np.clip(chunk, 0, 255, out=chunk)
        out[top:top + rows] = np.rint(chunk)
    return out


def _as_rgb(values: np.ndarray) -> np.ndarray:
    """H x W x C uint8 -> H x W x 3: grey, (R, G, 0) or the first three channels."""
    channels = values.shape[2]
    if channels == 1:
        return np.repeat(values, 3, axis=2)
    if channels == 2:
        return np.concatenate([values, np.zeros(values.shape[:2] + (1,), np.uint8)], axis=2)
    return np.ascontiguousarray(values[:, :, :3])


def crop_box(width: int, height: int, size: "tuple[int, int]") -> "tuple[int, int, int, int]":
    """(left, top, width, height) of the largest central region with ``size``'s aspect."""
    target = size[0] / size[1]
    if width / height > target:
        new_width = max(1, round(height * target))
        return (width - new_width) // 2, 0, new_width, height
    new_height = max(1, round(width / target))
    return 0, (height - new_height) // 2, width, new_height


def planes_to_rgb(values: "np.ndarray | PillowPlane", size: "tuple[int, int] | None", crop: bool = False,
                  rgb: bool = False, orientation: int = 1) -> np.ndarray:
    """H x W x C values (any real dtype; or a PillowPlane) -> uint8 RGB at ``size``
    (w, h), shown the right way up: crop (a view), shrink by whole blocks, stretch,
    then resize.

    ``rgb``: the channels are an RGB picture's (stretched together, alpha dropped).
    """
    lazy = isinstance(values, PillowPlane)
    dtype = np.asarray(values.image.crop((0, 0, 1, 1))).dtype if lazy else values.dtype
    if dtype.kind not in "biuf":
        raise ValueError(f"{dtype} pixel values cannot be shown")
    if not lazy:
        values = values[:, :, :3]
        if dtype == bool:  # a mask: black and white
            values, dtype = values.view(np.uint8) * np.uint8(255), np.dtype(np.uint8)
    height, width = values.shape[:2]
    target = None
    if size is not None:
        target = (size[1], size[0]) if orientation in _SWAPS_SIDES else tuple(size)
        if crop:
            left, top, w, h = crop_box(width, height, target)
            values = (values.crop(left, top, w, h) if lazy
                      else values[top:top + h, left:left + w])
            width, height = w, h
    factor = 1 if target is None else max(1, min(width // (2 * target[0]),
                                                 height // (2 * target[1])))
    if factor > 1:
        values = _block_mean(values, factor)
    elif lazy:
        values = np.asarray(values)
    deep = dtype.kind != "u" or dtype.itemsize > 1
    if deep:
        pixels = stretch_to_uint8(values, joint=rgb)
    else:
        pixels = np.rint(values).clip(0, 255).astype(np.uint8) if factor > 1 else values
    image = Image.fromarray(_as_rgb(pixels), "RGB")
    if target is not None and image.size != target:
        image = image.resize(target, Image.Resampling.BILINEAR, reducing_gap=3.0)
    if orientation in TRANSPOSE_FOR_ORIENTATION:
        image = image.transpose(TRANSPOSE_FOR_ORIENTATION[orientation])
    return np.asarray(image, dtype=np.uint8)


def open_tiff(data: bytes):
    """A ``tifffile.TiffFile`` over ``data`` (the caller closes it)."""
    import tifffile
    return tifffile.TiffFile(io.BytesIO(data))
