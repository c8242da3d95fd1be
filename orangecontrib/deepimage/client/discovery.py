"""Which models a server offers, and which wire protocol it speaks."""
from __future__ import annotations

from ..core.loopback import http_client
from ..core.models import MODELS, UnknownModel, get_spec
from .errors import base_url, check_token
from .transport import fetch_models

__all__ = ["list_models", "pick_model"]


def list_models(url: str, token: "str | None" = None, timeout: float = 10.0,
                retries: int = 1) -> list[dict]:
    """The models a server offers, for a model chooser.

    Dicts with name, title, dim, input_size, device, weights_id, fine_tuned and
    protocol ("v1"). A server that speaks only Orange's protocol cannot list its
    models: then the registry's networks are listed with protocol "orange" and
    dim None (known after the first image).
    """
    base = base_url(url)
    check_token(token)
    with http_client(base, timeout=timeout) as client:
        models = fetch_models(client, base, token, retries)
    if models is None:
        return [{**spec.describe(), "protocol": "orange"} for spec in MODELS.values()]
    return [{**model, "protocol": "v1"} for model in models]


def pick_model(models: list[dict], name: str) -> "dict | None":
    """The server's entry for ``name``: exact first, then by the registry's aliases."""
    for model in models:
        if model.get("name") == name:
            return model
    try:
        canonical = get_spec(name).name
    except UnknownModel:
        return None
    return next((m for m in models if m.get("name") == canonical), None)
