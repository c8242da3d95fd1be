"""HTTP with retries: transient failures (connection errors, 502/503/504) are retried
with backoff, honouring Retry-After; the rest become the client's errors."""
from __future__ import annotations

import logging
import random
import threading
import time

import httpx

from ..core.cancel import Cancelled
from .errors import AccessRefused, ServerError, ServerUnavailable

__all__ = ["TRANSIENT_STATUS", "MAX_RETRY_AFTER", "auth_headers", "error_detail",
           "retry_delay", "refused", "unreachable", "request", "fetch_models"]

log = logging.getLogger(__name__)

TRANSIENT_STATUS = frozenset({502, 503, 504})
MAX_RETRY_AFTER = 30.0  # seconds; a server asking for longer is treated as down


def auth_headers(token: "str | None") -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


def error_detail(response: httpx.Response) -> str:
    """The server's one-line reason for an error response."""
    try:
        detail = response.json().get("detail")
    except Exception:
        detail = None
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(str(d.get("msg", d)) if isinstance(d, dict) else str(d) for d in detail)
    return str(detail) if detail else (response.text.strip()[:200] or response.reason_phrase)


def retry_delay(response: "httpx.Response | None", attempt: int) -> float:
    """Seconds to wait before the next try: the server's Retry-After, else exponential backoff."""
    if response is not None:
        value = response.headers.get("Retry-After")
        if value:
            try:
                return min(max(float(value), 0.0), MAX_RETRY_AFTER)
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
    return min(0.25 * 2 ** attempt, 8.0) * (0.5 + random.random())


def refused(url: str, token: "str | None") -> AccessRefused:
    if token:
        return AccessRefused(f"The server at {url} refused the access token: check that it "
                             f"is the server's current token.")
    return AccessRefused(f"The server at {url} refused the access token: it requires one; "
                         f"ask its operator for the token.")


def unreachable(url: str, exc: Exception) -> ServerUnavailable:
    return ServerUnavailable(f"There is no embedding server at {url} ({type(exc).__name__}: "
                             f"{exc}); check the address and that the server is running.")


def fetch_models(client: httpx.Client, url: str, token: "str | None",
                  retries: int) -> "list[dict] | None":
    """The server's /v1/models list, or None when it speaks only Orange's protocol."""
    response = request(client, "GET", f"{url}/v1/models", url, token, retries)
    if response.status_code == 404:
        return None
    if response.status_code != 200:
        raise ServerError(f"The server at {url} could not list its models "
                          f"({response.status_code}: {error_detail(response)}).")
    try:
        models = response.json()["models"]
        assert isinstance(models, list)
    except Exception:
        raise ServerError(f"{url} answered /v1/models with something that is not a model "
                          f"list; is it an embedding server?") from None
    return models


def request(client: httpx.Client, method: str, address: str, url: str, token: "str | None",
             retries: int, stop: "threading.Event | None" = None, **kwargs) -> httpx.Response:
    """One HTTP request with retries of transient failures; raises RemoteError for
    failures retrying cannot fix (401, nothing listening, still busy after ``retries``)."""
    headers = {**kwargs.pop("headers", {}), **auth_headers(token)}
    attempt = 0
    while True:
        response, error = None, None
        try:
            response = client.request(method, address, headers=headers, **kwargs)
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            error = exc
        if response is not None and response.status_code == 401:
            raise refused(url, token)
        if response is not None and response.status_code not in TRANSIENT_STATUS:
            return response
        if attempt >= retries:
            if error is not None:
                if isinstance(error, httpx.ConnectError):
                    raise unreachable(url, error)
                raise ServerUnavailable(f"The server at {url} did not answer ({type(error).__name__}"
                                        f": {error}) after {retries + 1} tries; try again later.")
            raise ServerUnavailable(
                f"The server at {url} is busy or failing ({response.status_code}: "
                f"{error_detail(response)}) after {retries + 1} tries; try again later or send "
                f"fewer requests at once (in_flight).")
        delay = retry_delay(response, attempt)
        log.info("Retrying %s in %.1f s (%s)", address, delay,
                 error if error is not None else response.status_code)
        attempt += 1
        if stop is not None:
            if stop.wait(delay):
                raise Cancelled()
        else:
            time.sleep(delay)
