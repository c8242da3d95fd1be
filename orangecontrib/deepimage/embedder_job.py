"""The Image Embedder's work, without Qt: choose an embedder, embed a table's images.

The widget runs :func:`run_embedding` in a worker thread (Orange's
``ConcurrentWidgetMixin``); tests call it directly with a stand-in state. An
:class:`EmbedderPool` keeps the loaded network between runs, because loading
(and, on the CPU, exporting to ONNX) costs far more than embedding a few
images that are already in the cache.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol
from urllib.parse import urlparse

from Orange.data import StringVariable, Table

from .core.cancel import Cancelled
from .core.pipeline import EmbeddingResult
from .core.loopback import is_loopback
from .core.models import get_spec
from .data import embeddings_table, image_paths

__all__ = ["EmbedderChoice", "EmbedderPool", "EmbeddingOutcome", "NotAnImageModel",
           "run_embedding", "summary", "server_host", "LOCAL", "SERVER", "CUSTOM",
           "local_server_possible", "start_local_server"]

LOCAL, SERVER, CUSTOM = "local", "server", "custom"


class State(Protocol):
    """What run_embedding needs of Orange's TaskState."""

    def set_status(self, text: str) -> None: ...
    def set_progress_value(self, value: float) -> None: ...
    def is_interruption_requested(self) -> bool: ...


class NotAnImageModel(TypeError):
    """The Model input is not a network that can embed images."""


def server_host(url: str) -> str:
    """The host (and port) of a server URL, for labels: 'gpu.lab.org:8000'."""
    parsed = urlparse(url if "://" in url else "http://" + url)
    return parsed.netloc or url


@dataclass(frozen=True)
class EmbedderChoice:
    """Which embedder to use: a registry model here, one on a server, or a fine-tuned one.

    Two equal choices give the same embedder, so the pool can reuse it.
    ``model_id`` tells fine-tuned models apart (``id`` of the connected model).
    """

    where: str = LOCAL  # LOCAL, SERVER or CUSTOM
    model: str = "squeezenet"
    device: str = "auto"
    server_url: str = ""
    token: str = field(default="", repr=False)  # never in logs or tracebacks
    model_id: int = 0
    use_cache: bool = True  # False: embed every image again (and keep nothing)

    @property
    def key(self) -> str:
        """The widget's setting for this choice, "where:model": 'local:squeezenet'."""
        return f"{self.where}:{self.model}"

    @classmethod
    def from_key(cls, key: str, **options) -> "EmbedderChoice":
        """The choice a widget's "where:model" setting names (``options``: the rest)."""
        where, _, model = key.partition(":")
        return cls(where, model, **options)

    def label(self) -> str:
        """How the widget names this choice: 'SqueezeNet 1.1 (on this computer)'."""
        if self.where == CUSTOM:
            return "fine-tuned model (on this computer)"
        try:
            name = get_spec(self.model).display_name
        except KeyError:
            name = self.model
        if self.where == SERVER:
            return f"{name} (server: {server_host(self.server_url)})"
        return f"{name} (on this computer)"


@dataclass(frozen=True)
class EmbeddingOutcome:
    """What a run produced: the two output tables and the core result for the summary."""

    embedded: Optional[Table]
    skipped: Optional[Table]
    result: EmbeddingResult


def _remote_embedder(choice: EmbedderChoice):
    from .client import RemoteEmbedder  # only when the user picked a server
    return RemoteEmbedder(choice.server_url, choice.model, token=choice.token or None,
                          cache=choice.use_cache)


def make_embedder(choice: EmbedderChoice, custom_model: Any = None):
    """Load the embedder a choice names (slow: builds the network, may export ONNX)."""
    if choice.where == CUSTOM:
        if custom_model is None or not callable(getattr(custom_model, "embedder", None)):
            raise NotAnImageModel(
                f"The connected model ({type(custom_model).__name__}) cannot embed images: "
                "connect a model from Trainer, or disconnect the Model input to use "
                "a pretrained network.")
        return custom_model.embedder(device=choice.device, cache=choice.use_cache)
    if choice.where == SERVER:
        return _remote_embedder(choice)
    from .core.local_embedder import Embedder
    return Embedder(choice.model, device=choice.device, cache=choice.use_cache)


class EmbedderPool:
    """Holds the last loaded embedder and returns it again while the choice is unchanged.

    Safe to call from the worker thread while the GUI thread asks ``clear``.
    """

    def __init__(self, factory: Callable[..., Any] = make_embedder):
        self._factory = factory
        self._lock = threading.Lock()
        self._choice: Optional[EmbedderChoice] = None
        self._custom = None  # the connected model the embedder came from, if any
        self._embedder = None
        self.loads = 0  # how many times a network was loaded; tests read it

    def get(self, choice: EmbedderChoice, custom_model: Any = None):
        """The embedder for ``choice``, loading it only if the choice changed."""
        with self._lock:
            if self._embedder is None or self._choice != choice \
                    or self._custom is not custom_model:
                self._embedder = None  # free the old network before loading the next
                self._embedder = self._factory(choice, custom_model)
                self._choice, self._custom = choice, custom_model
                self.loads += 1
            return self._embedder

    def clear(self) -> None:
        """Forget the loaded embedder (its memory is freed once no run uses it)."""
        with self._lock:
            self._choice = self._custom = self._embedder = None


def run_embedding(table: Table, column: StringVariable, choice: EmbedderChoice,
                  pool: EmbedderPool, state: State, custom_model: Any = None
                  ) -> EmbeddingOutcome:
    """Embed the images in ``column`` of ``table``; the work of the Image Embedder widget.

    Progress is reported per batch; cancellation is checked between batches and
    raises :class:`Cancelled` (what was embedded before is in the cache, unless the
    choice says not to use one).
    """
    sources = image_paths(table, column)
    state.set_status(f"Loading {choice.label()}...")
    embedder = pool.get(choice, custom_model)
    if state.is_interruption_requested():
        raise Cancelled()
    state.set_status(f"Embedding {len(sources):,} images...")

    def progress(done: int, total: int) -> None:
        state.set_progress_value(100 * done / max(total, 1))

    result = embedder.embed(sources, progress, state.is_interruption_requested)
    embedded, skipped = embeddings_table(table, result)
    return EmbeddingOutcome(embedded if len(embedded) else None, skipped, result)


def summary(result: EmbeddingResult) -> str:
    """One line for people: 'Embedded 1,200 images (1,100 from cache), 3 skipped, 4.2 s, ...'."""
    embedded = len(result.indices)
    parts = [f"Embedded {embedded:,} image{'s' if embedded != 1 else ''}"
             + (f" ({result.cached:,} from cache)" if result.cached else "")]
    if result.skipped:
        parts.append(f"{len(result.skipped):,} skipped")
    parts.append(f"{result.seconds:.1f} s")
    if result.seconds > 0:
        parts.append(f"{result.rate:,.0f} images/s")
    return ", ".join(parts)


# --- a server on this computer, started from the widget (lesson 3 with no terminal) ---

def local_server_possible(url: str) -> bool:
    """Whether the widget can start `deepimage serve` for ``url`` itself: the address is
    this computer (loopback, http) and the server's packages are installed."""
    import importlib.util
    parsed = urlparse(url if "://" in url else f"http://{url}")
    return (parsed.scheme == "http" and is_loopback(parsed.hostname or "")
            and all(importlib.util.find_spec(name) is not None
                    for name in ("fastapi", "uvicorn", "pydantic_settings")))


def start_local_server(url: str, timeout: float = 300):
    """`deepimage serve` on this computer at ``url``'s port, returned once ready (its
    networks loaded): a server.launch.ServerProcess, which the caller stops. Raises
    ServerNotReady with what the server printed (e.g. the port is taken). "localhost"
    means 127.0.0.1, the address the server's URL then gives (a client asking for
    localhost may try ::1 first, which costs seconds on Windows)."""
    # server/ is at the top of the repository, installed as orangecontrib.deepimage.server
    from .server.launch import start_server
    parsed = urlparse(url if "://" in url else f"http://{url}")
    host = parsed.hostname or "127.0.0.1"
    host = "127.0.0.1" if host.rstrip(".") == "localhost" else host
    return start_server(host=host, port=parsed.port or 80, timeout=timeout)
