"""FastAPI dependencies: the access-token check and the model lookup.

Tokens are compared with ``hmac.compare_digest`` against every configured token
(no early exit on the first match, so timing says nothing about which one), and
are never logged. Without configured tokens (allowed on loopback only) anyone
who can connect may embed.
"""
from __future__ import annotations

import hmac

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from orangecontrib.deepimage.core.models import get_spec

from .errors import ApiError
from .registry import ServedModel
from .state import ServerState, StateDep

__all__ = ["require_token", "check_token", "served_model", "bearer", "lookup_model"]

bearer = HTTPBearer(auto_error=False, description="An access token from the server's "
                                                  "token file (not needed on loopback "
                                                  "when none is configured).")


def check_token(state: ServerState, token: "str | None") -> None:
    """ApiError 401 unless ``token`` is one of the server's tokens (or none are set)."""
    tokens = state.tokens
    if not tokens:
        return
    given = (token or "").encode("utf-8", "surrogateescape")
    matched = False
    for known in tokens:
        matched |= hmac.compare_digest(given, known)
    if not matched:
        raise ApiError(401, "A valid access token is needed: send the header "
                            "'Authorization: Bearer <token>' (ask the server's operator "
                            "for a token)." if token is None else
                            "The access token is not valid; ask the server's operator "
                            "for a current one.",
                       "unauthorized", {"WWW-Authenticate": "Bearer"})


def require_token(state: StateDep,
                  credentials: "HTTPAuthorizationCredentials | None" = Depends(bearer)) -> None:
    """Dependency: the Authorization header carries a valid token."""
    check_token(state, credentials.credentials if credentials else None)


def served_model(state: StateDep, model: str) -> ServedModel:
    """Dependency: the loaded model named in the path (404 lists the served ones)."""
    return lookup_model(state, model)


def lookup_model(state: ServerState, model: str) -> ServedModel:
    """The loaded model called ``model``: 404 listing the served ones, 503 while loading."""
    name = model.strip().lower()
    if name not in state.plans:
        try:  # registry aliases, e.g. inception_v3 for inception-v3
            name = get_spec(name).name
        except KeyError:
            pass
    if name not in state.plans:
        served = ", ".join(sorted(state.plans)) or "none"
        raise ApiError(404, f"Model {model[:80]!r} is not served here; this server has: "
                            f"{served}.", "unknown_model")
    served_model = state.models.get(name)
    if served_model is None:
        reason = (f"failed to load: {state.load_error}" if state.load_error
                  else "still loading")
        raise ApiError(503, f"Model {name} is {reason}; try again shortly.", "not_ready",
                       {"Retry-After": "5"})
    return served_model
