"""The typed state of one server, handed to routes and guards through ``Depends``.

``create_app`` makes one :class:`ServerState` and keeps it as ``app.state.server``;
routes ask for it with ``state: StateDep`` instead of reading untyped attributes off
``request.app.state``.
"""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from orangecontrib.deepimage.core.budget import PixelBudget

from .batching import Dispatcher
from .config import Settings
from .metrics import Metrics
from .registry import ModelPlan, ServedModel

__all__ = ["ServerState", "get_state", "StateDep"]


@dataclass(eq=False)
class ServerState:
    """Settings, models and the counters the guards keep for one server."""

    settings: Settings
    tokens: list[bytes]
    plans: dict[str, ModelPlan]
    devices: list[str]  # one network worker per entry (--devices)
    metrics: Metrics = field(default_factory=Metrics)
    checks_host: bool = False  # Host (and Origin) must name this computer or an allowed name
    models: dict[str, ServedModel] = field(default_factory=dict)
    batchers: dict[str, Dispatcher] = field(default_factory=dict)
    ready: bool = False
    load_error: "str | None" = None
    pending: int = 0  # embedding requests being handled (admission control)
    buffered: int = 0  # request-body bytes held by all requests together
    decode_pool: "ThreadPoolExecutor | None" = None
    # pixels being decoded by all requests together (--decode-budget-pixels)
    decode_budget: "PixelBudget | None" = None
    loading: "asyncio.Task | None" = None

    def __post_init__(self) -> None:
        if self.decode_budget is None:
            self.decode_budget = PixelBudget(self.settings.decode_budget_pixels)


def get_state(request: Request) -> ServerState:
    """Dependency: this server's state."""
    return request.app.state.server


StateDep = Annotated[ServerState, Depends(get_state)]
