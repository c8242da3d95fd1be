"""Generated test images whose true masks are known.

- :func:`make_cells`: fluorescent-like cells or nuclei (round and elliptic, some
  touching, blurred by the optics, with shot-like noise and an uneven illumination
  gradient across the field, as microscopes give), as a 16-bit image and its label
  image (0 background, 1..N cells).
- :func:`make_texture_mosaic`: a mosaic of 2 or 3 textures of equal mean brightness
  and equal contrast (only their structure differs), and its class map (1..K).

Used by the tests, the benchmarks and lesson 4's images; every generator is
deterministic for a given seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

__all__ = ["SyntheticImage", "make_cells", "make_texture_mosaic", "TEXTURES", "mosaic_labels",
           "sparse_labels"]


@dataclass(frozen=True)
class SyntheticImage:
    """A generated image and its truth: ``labels`` is a label image (cells: 0
    background, 1..N objects) or a class map (mosaics: 1..K textures)."""

    image: np.ndarray
    labels: np.ndarray


def _place_cells(rng: np.random.Generator, shape, count: int, radius,
                 touching: float) -> list[tuple[float, float, float, float, float]]:
    """Centres, semi-axes and angles of cells that do not overlap by much; a
    ``touching`` share of them is placed against an earlier one."""
    height, width = shape
    cells: list[tuple[float, float, float, float, float]] = []
    for _ in range(count * 40):
        if len(cells) >= count:
            break
        a = rng.uniform(*radius)
        b = a * rng.uniform(0.65, 1.0)
        angle = rng.uniform(0, np.pi)
        if cells and rng.random() < touching:
            y0, x0, a0, _, _ = cells[rng.integers(len(cells))]
            direction = rng.uniform(0, 2 * np.pi)
            distance = (a0 + a) * 0.92  # a small overlap: they touch along a neck
            y, x = y0 + distance * np.sin(direction), x0 + distance * np.cos(direction)
        else:
            y, x = rng.uniform(a, height - a), rng.uniform(a, width - a)
        if not (a <= y < height - a and a <= x < width - a):
            continue
        near = [(y - c[0]) ** 2 + (x - c[1]) ** 2 < (0.85 * (a + c[2])) ** 2 for c in cells]
        if not any(near):
            cells.append((y, x, a, b, angle))
    return cells


def _draw_cells(shape, cells) -> np.ndarray:
    """Label image of the ellipses; a pixel inside two belongs to the nearer centre
    (in units of each ellipse's size), so touching cells share a straight-ish border."""
    labels = np.zeros(shape, np.int32)
    best = np.full(shape, np.inf, np.float32)
    for index, (y, x, a, b, angle) in enumerate(cells, start=1):
        top, bottom = int(max(0, y - a - 1)), int(min(shape[0], y + a + 2))
        left, right = int(max(0, x - a - 1)), int(min(shape[1], x + a + 2))
        yy, xx = np.mgrid[top:bottom, left:right].astype(np.float32)
        dy, dx = yy - y, xx - x
        u = dx * np.cos(angle) + dy * np.sin(angle)
        v = -dx * np.sin(angle) + dy * np.cos(angle)
        r = (u / a) ** 2 + (v / b) ** 2
        window = (slice(top, bottom), slice(left, right))
        inside = (r <= 1) & (r < best[window])
        labels[window][inside] = index
        best[window][inside] = r[inside]
    return labels


def _illumination(shape, rng: np.random.Generator, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """A multiplicative (vignetting) and an additive (background glow) gradient
    across the field, in a random direction."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    direction = rng.uniform(0, 2 * np.pi)
    ramp = (xx * np.cos(direction) + yy * np.sin(direction))
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1.0)
    gain = 1.0 - 0.6 * strength * (1.0 - ramp)
    glow = 0.55 * strength * ramp
    return gain, glow


def make_cells(shape: tuple[int, int] = (256, 256), count: int = 40,
               radius: tuple[float, float] = (7.0, 12.0), touching: float = 0.3,
               gradient: float = 1.0, noise: float = 0.03, seed: int = 0,
               max_count: int = 4000) -> SyntheticImage:
    """Fluorescent-like cells (bright on dark) as uint16 counts of a 12-bit camera.

    ``gradient`` 0 gives even illumination; 1 a field whose one side has its cells
    at 40% brightness and the other a background glow brighter than those cells
    (a global threshold cannot separate both sides). ``touching`` is the share of
    cells placed against another. The truth is the label image of the cells.
    """
    rng = np.random.default_rng(seed)
    cells = _place_cells(rng, shape, min(count, max_count), radius, touching)
    labels = _draw_cells(shape, cells)
    brightness = np.concatenate([[0.0], rng.uniform(0.55, 1.0, len(cells))]).astype(np.float32)
    signal = brightness[labels]
    texture = ndi.gaussian_filter(rng.normal(0, 1, shape).astype(np.float32), 1.5)
    signal *= 1 + 0.15 * texture
    signal = ndi.gaussian_filter(signal, 1.0) + 0.05
    gain, glow = _illumination(shape, rng, gradient)
    image = signal * gain + glow
    image += rng.normal(0, noise, shape).astype(np.float32) * np.sqrt(np.maximum(image, 0.01) * 4)
    counts = np.clip(image * 3000 + 100, 0, 4095)
    return SyntheticImage(counts.astype(np.uint16), labels)


def _normalised(values: np.ndarray) -> np.ndarray:
    values = values - values.mean()
    return values / max(float(values.std()), 1e-6)


def _stripes(rng, shape) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    angle = np.pi / 4 + rng.normal(0, 0.05)
    wave = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / 8 + rng.uniform(0, 6.3))
    return _normalised(wave + 0.3 * rng.normal(0, 1, shape))


def _blobs(rng, shape) -> np.ndarray:
    return _normalised(ndi.gaussian_filter(rng.normal(0, 1, shape), 3.0))


def _grain(rng, shape) -> np.ndarray:
    return _normalised(ndi.gaussian_filter(rng.normal(0, 1, shape), 0.7))


#: the textures of the mosaics: name -> generator(rng, shape) of zero mean, unit std
TEXTURES = {"stripes": _stripes, "blobs": _blobs, "grain": _grain}


def make_texture_mosaic(shape: tuple[int, int] = (192, 192), textures: int = 2,
                        regions: int = 6, seed: int = 0) -> SyntheticImage:
    """A Voronoi mosaic of ``textures`` (2 or 3) textures with equal mean and standard
    deviation, as uint8 grey; the truth is the class map (1..K, K = ``textures``),
    so a label image for training uses the same numbers shifted by one (see
    :func:`mosaic_labels`)."""
    if textures not in (2, 3):
        raise ValueError(f"a mosaic has 2 or 3 textures, not {textures}")
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, 1, (max(regions, textures), 2)) * shape
    kinds = np.concatenate([np.arange(textures), rng.integers(0, textures, len(seeds) - textures)])
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    nearest = np.argmin((yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2,
                        axis=-1)
    truth = kinds[nearest].astype(np.uint8) + 1
    image = np.zeros(shape, np.float32)
    for kind, make in enumerate(list(TEXTURES.values())[:textures], start=1):
        image[truth == kind] = make(rng, shape)[truth == kind]
    image = np.clip(128 + 40 * image, 0, 255).astype(np.uint8)
    return SyntheticImage(image, truth)


def mosaic_labels(truth: np.ndarray) -> np.ndarray:
    """A class map of a mosaic (1..K) as a training label image: texture 1 is the
    'background' class (1) and the others kinds of object (2..K)."""
    return truth.astype(np.uint8)


def sparse_labels(truth: np.ndarray, fraction: float = 0.05, seed: int = 0,
                  objects: bool = True) -> np.ndarray:
    """Scribble-like sparse labels from a truth: a random ``fraction`` of pixels
    labelled (1 background, 2 object for a label image of cells when ``objects``,
    else the class map's own value), the rest 0 (unlabelled)."""
    rng = np.random.default_rng(seed)
    chosen = rng.random(truth.shape) < fraction
    values = np.where(truth > 0, 2, 1) if objects else truth
    return np.where(chosen, values, 0).astype(np.uint8)
