"""The engine: decoding, the model registry, weights, embedding, cache.

Never imports Qt or Orange's GUI (a test enforces this), so the CLI and the
server run without a display. torch is imported only when a network is built.
"""
from .images import (DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, ImageError, Skipped,
                     decode_image, find_images, load_image, read_bytes)
from .models import MODELS, ModelSpec, UnknownModel, get_spec, model_names
from .weights import WeightsUnavailable, locate_weights, weights_available
from .cache import EmbeddingCache, default_cache_dir
from .cancel import Cancelled
from .devices import resolve_device
from .local_embedder import Embedder, embed_images
from .pipeline import EmbeddingResult

__all__ = [
    "DEFAULT_MAX_PIXELS", "IMAGE_EXTENSIONS", "ImageError", "Skipped", "decode_image",
    "find_images", "load_image", "read_bytes", "MODELS", "ModelSpec", "UnknownModel",
    "get_spec", "model_names", "WeightsUnavailable", "locate_weights", "weights_available",
    "EmbeddingCache", "default_cache_dir", "Cancelled", "Embedder", "EmbeddingResult",
    "embed_images", "resolve_device",
]
