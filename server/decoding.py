"""Request work shared by the routes: decode off the event loop, then the batcher.

Decoding is ``core.images.decode_image`` (the pipeline local embedding uses: EXIF
rotation, 16-bit, alpha, the pixel count checked from the header before any pixel
is decoded), run in a thread pool. A bad image becomes an :class:`ImageFailure`
with its reason; it never reaches the network and never stops the worker. The
pixels being decoded at once are bounded by ``--decode-budget-pixels``: a decode
that does not fit waits up to ``--decode-budget-wait-s``, then the request gets 503.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Awaitable, TypeVar

import numpy as np

from orangecontrib.deepimage.core.budget import BudgetTimeout, PixelBudget
from orangecontrib.deepimage.core.images import (ImageError, TooManyPixels, UnsupportedFormat,
                                                 decode_image)

from .batching import QueueFull
from .errors import ApiError
from .registry import ServedModel

__all__ = ["ImageFailure", "decode", "embed_images", "with_timeout"]

T = TypeVar("T")


@dataclass(frozen=True)
class ImageFailure:
    """Why one image could not be embedded, and the kind (for status codes and metrics)."""

    reason: str
    kind: str  # "bad_image", "too_many_pixels" or "unsupported_format"

    @property
    def status(self) -> int:
        return {"too_many_pixels": 413, "unsupported_format": 415}.get(self.kind, 422)


def _failure(exc: ImageError) -> ImageFailure:
    kind = ("too_many_pixels" if isinstance(exc, TooManyPixels)
            else "unsupported_format" if isinstance(exc, UnsupportedFormat) else "bad_image")
    return ImageFailure(str(exc), kind)


class _Busy(Exception):
    """The decode budget stayed full for the whole wait."""


def _decode(data: bytes, size: int, max_pixels: int, crop: bool,
            budget: "PixelBudget | None" = None, wait: "float | None" = None
            ) -> "np.ndarray | ImageFailure":
    if not data:
        return ImageFailure("empty image (0 bytes)", "bad_image")
    try:
        return decode_image(data, (size, size), max_pixels, crop, budget, wait)
    except ImageError as exc:
        return _failure(exc)
    except BudgetTimeout as exc:
        raise _Busy(str(exc)) from None
    except Exception as exc:  # a decoder bug must fail this image only
        return ImageFailure(f"could not be decoded ({type(exc).__name__})", "bad_image")


async def decode(state, data: bytes, model: ServedModel) -> "np.ndarray | ImageFailure":
    """Decode and resize one image to the model's input size, in the decode pool.

    The model's batcher is told while the image is being decoded (with --max-delay-ms,
    an idle network may wait for it to join the next call). 503 with Retry-After when
    the decode budget stays full for --decode-budget-wait-s.
    """
    settings = state.settings
    loop = asyncio.get_running_loop()
    batcher = state.batchers.get(model.name)
    if batcher is not None:
        batcher.arriving(1)
    try:
        return await loop.run_in_executor(state.decode_pool, _decode, data, model.input_size,
                                          settings.max_pixels, settings.crop,
                                          state.decode_budget, settings.decode_budget_wait_s)
    except _Busy as exc:
        raise ApiError(503, f"The server is busy decoding other images ({exc}); retry in a "
                            f"moment.", "overloaded", {"Retry-After": "1"}) from None
    finally:
        if batcher is not None:
            batcher.arriving(-1)


async def embed_images(state, model: ServedModel, images: list[np.ndarray]) -> np.ndarray:
    """Embed decoded images through the model's batcher; 503 when its queue is full."""
    if not images:
        return np.zeros((0, model.dim), np.float32)
    try:
        vectors = await state.batchers[model.name].submit(np.stack(images))
    except QueueFull as exc:
        raise ApiError(503, f"The server is busy ({exc}); retry in a moment.", "overloaded",
                       {"Retry-After": "1"}) from None
    return vectors


async def with_timeout(state, work: Awaitable[T]) -> T:
    """Run ``work`` within the per-request timeout (504 after it)."""
    timeout = state.settings.request_timeout_s
    try:
        return await asyncio.wait_for(work, timeout)
    except asyncio.TimeoutError:
        raise ApiError(504, f"The request took longer than the server's {timeout:g} s limit; "
                            f"send fewer or smaller images, or retry later.",
                       "timeout") from None


def finite_rows(vectors: np.ndarray) -> np.ndarray:
    """Which rows are all finite (JSON has no NaN; such a row is reported as an error)."""
    return np.isfinite(vectors).all(axis=1)
