"""Embed images on a remote embedding server (ours, or any speaking Orange's protocol).

The client does the cheap work and the server the expensive: files are read,
decoded and resized here with core.images (a bad file is skipped with its
reason and never sent), encoded losslessly (PNG) so the server's vectors equal
local ones, and streamed to ``POST /v1/embed/{model}`` in batches with a few
requests in flight. Transient failures (connection errors, 502/503/504) are
retried with backoff, honouring Retry-After. Vectors go to the same persistent
cache as local embedding, under the same key, so a re-run costs nothing and
local and remote vectors of the same weights are shared. Servers that speak
only Orange's protocol (``POST /image/{model}``, one JPEG per request) are
detected and used one image per request, concurrently.

One module per job: :mod:`.errors` (errors, addresses, tokens), :mod:`.transport`
(HTTP with retries), :mod:`.discovery` (the models a server offers),
:mod:`.protocols` (one object per wire protocol) and :mod:`.remote_embedder`
(RemoteEmbedder: the shared pipeline with a server as its runner).

No Qt and no Orange imports: the Image Embedder widget and the CLI both use it.
"""
from .discovery import list_models
from .errors import (TOKEN_VARIABLE, AccessRefused, RemoteError, ServerError, ServerUnavailable,
                     UnknownRemoteModel, base_url, read_token)
from .remote_embedder import RemoteEmbedder
from .protocols import JPEG_QUALITY
from .transport import MAX_RETRY_AFTER, TRANSIENT_STATUS

__all__ = ["RemoteEmbedder", "list_models", "read_token", "RemoteError", "AccessRefused",
           "ServerUnavailable", "UnknownRemoteModel", "ServerError", "base_url",
           "TOKEN_VARIABLE", "JPEG_QUALITY", "MAX_RETRY_AFTER", "TRANSIENT_STATUS"]
