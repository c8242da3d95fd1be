"""Classic filter features of every pixel, fast: what scikit-image's
``multiscale_basic_features`` computes (Gaussian-smoothed intensity, gradient
magnitude and the two Hessian eigenvalues at scales 1, 2, 4, 8, 16), with the large
scales computed on a 2x, 4x, 8x smaller copy (2 x 2 block means, repeated; a Gaussian
of sigma 16 blurs away what the full grid holds) and brought back by linear
interpolation; plus the
intensity minus its sigma-32 surroundings (what uneven illumination leaves alone).

About three times faster than the full-size filters on a 1-megapixel image; each
feature correlates with scikit-image's at 0.97 or more (generated cells, measured).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["SIGMAS", "FEATURES_PER_CHANNEL", "filter_features", "halve", "upsample"]

SIGMAS = (1.0, 2.0, 4.0, 8.0, 16.0)
FEATURES_PER_CHANNEL = 4 * len(SIGMAS) + 1
_CONTRAST_SIGMA = 32.0


def halve(values: np.ndarray) -> np.ndarray:
    """2 x 2 block means (an odd last row or column is repeated)."""
    if values.shape[0] % 2 or values.shape[1] % 2:
        values = np.pad(values, ((0, values.shape[0] % 2), (0, values.shape[1] % 2)), mode="edge")
    return 0.25 * (values[0::2, 0::2] + values[1::2, 0::2] + values[0::2, 1::2] + values[1::2, 1::2])


def _axis_weights(at: np.ndarray, small: int, factor: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices and weights that interpolate a grid of ``small`` block centres at the
    pixel centres ``at`` (block i covers pixels i*factor .. (i+1)*factor - 1)."""
    where = (np.asarray(at, dtype=np.float32) + 0.5) / factor - 0.5
    where = np.clip(where, 0, small - 1)
    low = np.minimum(where.astype(np.intp), max(small - 2, 0))
    weight = (where - low).astype(np.float32)
    high = np.minimum(low + 1, small - 1)
    return low, high, weight


def upsample(values: np.ndarray, factor: int, shape: tuple[int, int],
             at: "tuple[np.ndarray, np.ndarray] | None" = None) -> np.ndarray:
    """A grid ``factor`` times smaller brought to ``shape`` by linear interpolation;
    with ``at`` (row and column indices), only at those rows and columns."""
    rows_at, cols_at = at if at is not None else (np.arange(shape[0]), np.arange(shape[1]))
    if factor == 1:
        return values[:shape[0], :shape[1]] if at is None else values[np.ix_(rows_at, cols_at)]
    low, high, w = _axis_weights(rows_at, values.shape[0], factor)
    rows = values[low] * (1 - w)[:, None] + values[high] * w[:, None]
    low, high, w = _axis_weights(cols_at, values.shape[1], factor)
    return rows[:, low] * (1 - w) + rows[:, high] * w


def _scale_features(smooth: np.ndarray) -> tuple[np.ndarray, ...]:
    """Intensity, gradient magnitude and Hessian eigenvalues of a smoothed plane."""
    gy, gx = np.gradient(smooth)
    gyy, gyx = np.gradient(gy)
    gxx = np.gradient(gx, axis=1)
    magnitude = np.sqrt(gy * gy + gx * gx)
    half_trace = 0.5 * (gyy + gxx)
    root = np.sqrt((0.5 * (gyy - gxx)) ** 2 + gyx * gyx)
    return smooth, magnitude, half_trace + root, half_trace - root


def _derivative(values, at: np.ndarray, size: int) -> np.ndarray:
    """np.gradient's derivative at indices ``at`` of an axis of ``size`` (central
    inside, one-sided at the ends) of a function ``values(indices)``."""
    low, high = np.clip(at - 1, 0, size - 1), np.clip(at + 1, 0, size - 1)
    return (values(high) - values(low)) / (high - low).astype(np.float32)


def _scale_features_at(smooth: np.ndarray, rows: np.ndarray, cols: np.ndarray
                       ) -> tuple[np.ndarray, ...]:
    """:func:`_scale_features` at rows x cols only (the same numbers): the
    derivatives from the few neighbours they need, not from the whole plane."""
    height, width = smooth.shape
    rows, cols = rows[:, None], cols[None, :]

    def gy(r, c):
        return _derivative(lambda i: smooth[i, c], r, height)

    def gx(r, c):
        return _derivative(lambda j: smooth[r, j], c, width)

    gy0, gx0 = gy(rows, cols), gx(rows, cols)
    gyy = _derivative(lambda i: gy(i, cols), rows, height)
    gyx = _derivative(lambda j: gy(rows, j), cols, width)
    gxx = _derivative(lambda j: gx(rows, j), cols, width)
    magnitude = np.sqrt(gy0 * gy0 + gx0 * gx0)
    half_trace = 0.5 * (gyy + gxx)
    root = np.sqrt((0.5 * (gyy - gxx)) ** 2 + gyx * gyx)
    return smooth[rows, cols], magnitude, half_trace + root, half_trace - root


def filter_features(plane: np.ndarray, at: "tuple[np.ndarray, np.ndarray] | None" = None
                    ) -> np.ndarray:
    """H x W float32 (0..1) -> H x W x FEATURES_PER_CHANNEL float32 (a view of a
    feature-major array: each feature is written in one contiguous block).

    ``at`` (row indices, column indices): the features of only those rows and
    columns (len(rows) x len(cols) x F), the same values, for a fraction of the time
    when they are few (the live preview's view at screen resolution)."""
    plane = np.asarray(plane, dtype=np.float32)
    shape = plane.shape
    out_shape = shape if at is None else (len(at[0]), len(at[1]))
    out = np.empty((FEATURES_PER_CHANNEL,) + out_shape, np.float32)
    level, factor, k = plane, 1, 0
    for sigma in SIGMAS:
        while factor < max(1, int(sigma // 2)):
            level, factor = halve(level), factor * 2
        smooth = ndi.gaussian_filter(level, sigma / factor, mode="reflect")
        if factor == 1 and at is not None and min(shape) > 2:
            out[k:k + 4] = _scale_features_at(smooth, *at)
            k += 4
            continue
        # derivatives are per small pixel: scaled to full-size pixels
        for feature, power in zip(_scale_features(smooth), (0, 1, 2, 2)):
            if factor > 1 and power:
                feature *= 1.0 / factor ** power
            out[k] = upsample(feature, factor, shape, at)
            k += 1
    while factor < 8:
        level, factor = halve(level), factor * 2
    background = ndi.gaussian_filter(level, _CONTRAST_SIGMA / factor, mode="reflect")
    here = plane if at is None else plane[np.ix_(*at)]
    np.subtract(here, upsample(background, factor, shape, at), out=out[k])
    return np.moveaxis(out, 0, 2)
