"""``create_app(settings)``: the FastAPI application of the embedding server.

Models are loaded in the lifespan, in a worker thread and in the background, so
/healthz answers at once and /readyz turns 200 only when every model is loaded
and warmed up (orchestrators route traffic by it). Nothing is loaded at import.
The app's state is one typed ``ServerState`` (``app.state.server``), which routes get
through ``Depends`` (state.py); every request passes ``GuardMiddleware`` (guards.py).
"""
from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI

from .batching import Batcher, Dispatcher, worker_labels
from .config import Settings
from .docs import install_docs
from .errors import install_error_handlers
from .guards import GuardMiddleware
from .registry import load_model, plan_models
from .routes import health, orange, v1
from .state import ServerState

__all__ = ["create_app"]

log = logging.getLogger("orangecontrib.deepimage.server")

VERSION = "0.1.0"


async def _load_all(state: ServerState) -> None:
    """Load every planned model on every worker device in turn, off the event loop; start
    one batcher per device behind the model's dispatcher."""
    settings = state.settings
    loop = asyncio.get_running_loop()
    labels = worker_labels(state.devices)
    try:
        for plan in state.plans.values():
            log.info("Loading %s on %s ...", plan.name, ", ".join(state.devices))
            loaded = []
            for device in state.devices:
                loaded.append(await loop.run_in_executor(None, load_model, plan, settings,
                                                         device))
            served = dataclasses.replace(loaded[0], devices=tuple(s.device for s in loaded))
            batchers = [Batcher(one.name, one.run, max_batch=settings.batch_limit(one.device),
                                max_delay=settings.max_delay_ms / 1000,
                                max_queued=settings.max_queued_images,
                                batching=settings.batching, metrics=state.metrics,
                                device=label)
                        for one, label in zip(loaded, labels)]
            dispatcher = Dispatcher(batchers)
            dispatcher.start()
            state.batchers[served.name] = dispatcher
            state.models[served.name] = served
            log.info("Ready: %s (%s, %d-d, %dx%d input, %s on %s, weights %s)", served.name,
                     served.title, served.dim, served.input_size, served.input_size,
                     served.backend, ", ".join(served.devices), served.weights_id)
    except Exception as exc:
        state.load_error = f"{type(exc).__name__}: {exc}"
        log.error("Could not load the models: %s", state.load_error)
        return
    state.ready = True
    state.metrics.ready.set(1)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI):
    state: ServerState = app.state.server
    state.decode_pool = ThreadPoolExecutor(state.settings.decode_threads,
                                           thread_name_prefix="deepimage-decode")
    loading = asyncio.create_task(_load_all(state))
    state.loading = loading
    try:
        yield
    finally:
        loading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loading
        for batcher in list(state.batchers.values()):
            await batcher.stop()
        state.decode_pool.shutdown(wait=False, cancel_futures=True)


def create_app(settings: "Settings | None" = None) -> FastAPI:
    """A server for ``settings``; raises ConfigError for settings that cannot work.

    Checks happen here, before anything loads: tokens (required off loopback, printable
    ASCII), limits that could never be met, the models and their weights files.
    """
    settings = settings or Settings()
    tokens = settings.load_tokens()
    settings.check_security(tokens)
    settings.check_limits()
    plans = plan_models(settings)
    devices = settings.worker_devices()

    app = FastAPI(title="Orange3-DeepImage embedding server", version=VERSION,
                  description="Embeds images with deep networks for Orange: our batch API "
                              "(/v1) and Orange's own protocol (/image/{model}).",
                  lifespan=_lifespan, docs_url=None, redoc_url=None)  # docs.py
    state = ServerState(settings=settings, tokens=[t.encode("ascii") for t in tokens],
                        plans={plan.name: plan for plan in plans}, devices=devices,
                        checks_host=settings.checks_host(tokens))
    app.state.server = state
    install_error_handlers(app)
    app.add_middleware(GuardMiddleware, state=state)
    app.include_router(orange.router)
    app.include_router(v1.router)
    app.include_router(v1.embedding)
    app.include_router(health.router)
    install_docs(app)  # /docs and /redoc with their assets served here, not from a CDN
    if settings.random_weights:
        log.warning("Serving networks with RANDOM weights (--random-weights): for testing "
                    "only, the vectors mean nothing.")
    return app
