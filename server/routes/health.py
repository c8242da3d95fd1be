"""Liveness, readiness and metrics: ``/healthz``, ``/readyz``, ``/metrics``.

/healthz and /readyz need no token (load balancers and orchestrators probe
them); /readyz is 503 until every model is loaded and warmed up. /metrics needs
a token when the server has tokens (Prometheus can send one).
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..deps import require_token
from ..metrics import CONTENT_TYPE_LATEST
from ..state import StateDep

router = APIRouter(tags=["Operations"])


class Alive(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    models: list[str]


@router.get("/healthz", response_model=Alive, summary="The process is alive")
async def healthz() -> Alive:
    return Alive(status="alive")


@router.get("/readyz", response_model=Ready, summary="Every model is loaded and warmed up",
            responses={503: {"description": "still loading, or a model failed to load"}})
async def readyz(state: StateDep) -> "Ready | JSONResponse":
    loaded, planned = sorted(state.models), sorted(state.plans)
    if state.load_error:
        return JSONResponse({"detail": f"A model failed to load: {state.load_error}",
                             "loaded": loaded, "models": planned}, status_code=503)
    if not state.ready:
        return JSONResponse({"detail": "Models are still loading.", "loaded": loaded,
                             "models": planned}, status_code=503,
                            headers={"Retry-After": "5"})
    return Ready(status="ready", models=planned)


@router.get("/metrics", dependencies=[Depends(require_token)],
            summary="Prometheus metrics (text exposition format)",
            response_class=Response)
async def metrics(state: StateDep) -> Response:
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
