"""An embedding server's access token, kept in the system keyring (through Orange's
CredentialManager), never in the workflow; and the models a server offers."""
from __future__ import annotations

__all__ = ["CREDENTIALS_SERVICE", "credentials", "load_token", "save_token",
           "list_server_models"]

CREDENTIALS_SERVICE = "Deep Image Embedder: {}"


def credentials(url: str):
    """Orange's keyring wrapper for the server's token, or None without keyring."""
    try:
        from Orange.widgets.credentials import CredentialManager
    except ImportError:  # keyring not installed: the token lives only in this session
        return None
    return CredentialManager(CREDENTIALS_SERVICE.format(url.rstrip("/")))


def load_token(url: str) -> str:
    """The token kept for the server at ``url`` ("" if none, or no keyring)."""
    stored = credentials(url) if url else None
    return (stored.token if stored is not None else None) or ""


def save_token(url: str, token: str) -> bool:
    """Keep ``token`` for the server at ``url`` (forget it if empty); False when there
    is no keyring to keep it in."""
    stored = credentials(url)
    if stored is None:
        return False
    if token:
        stored.token = token
    else:
        del stored.token
    return True


def list_server_models(url: str, token: str) -> list[tuple[str, str]]:
    """(name, title) of each model the server offers (runs in a worker thread)."""
    from orangecontrib.deepimage.client import list_models
    return [(m["name"], m.get("title") or m["name"]) for m in list_models(url, token or None)]
