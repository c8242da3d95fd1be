"""The client's errors, server addresses and access tokens."""
from __future__ import annotations

import ipaddress
import os

import httpx

from ..core.models import UnknownModel
from ..core.portable import read_text

__all__ = ["RemoteError", "AccessRefused", "ServerUnavailable", "ServerError",
           "UnknownRemoteModel", "Rejected", "base_url", "check_token", "read_token",
           "TOKEN_VARIABLE"]

TOKEN_VARIABLE = "DEEPIMAGE_SERVER_TOKEN"


class RemoteError(Exception):
    """Embedding on the server failed; ``str(error)`` says why and what to do."""


class AccessRefused(RemoteError):
    """401: the token is wrong or missing (or cannot be sent: not printable ASCII)."""


class ServerUnavailable(RemoteError):
    """Nothing answers at the URL, or the server stayed busy or failing after retries."""


class ServerError(RemoteError):
    """The server answered with an error that retrying will not fix."""


class UnknownRemoteModel(RemoteError, UnknownModel):
    """The server has no such model (also an UnknownModel, as for local embedding)."""

    def __str__(self) -> str:
        return str(self.args[0])


class Rejected(Exception):
    """The server refused these images (413/422); split the batch or skip the image."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


def base_url(url: str) -> str:
    """The server's base URL without a trailing slash (a path prefix is kept, as Orange does).

    Without a scheme: http:// for this computer (localhost, 127.x, [::1]), https:// for
    any other host, so a token never crosses a network in clear text unless the user
    writes http:// explicitly.
    """
    url = url.strip()
    if "://" not in url:
        host = httpx.URL("//" + url).host
        local = host == "localhost" or host.endswith(".localhost")
        try:
            local = local or ipaddress.ip_address(host).is_loopback
        except ValueError:
            pass
        url = ("http://" if local else "https://") + url
    return url.rstrip("/")


def check_token(token: "str | None") -> None:
    """AccessRefused for a token an HTTP header cannot carry (the server refuses such
    tokens too): printable ASCII only, no spaces."""
    if token and not all("!" <= c <= "~" for c in token):
        raise AccessRefused("The access token has characters other than printable ASCII "
                            "(letters, digits, punctuation; no spaces or accents), so it "
                            "cannot be sent; copy it again from the server's operator.")


def read_token(path: "str | None" = None) -> "str | None":
    """A server's access token for scripts and the CLI: the text of the file ``path``
    when given, else $DEEPIMAGE_SERVER_TOKEN; None when that is empty or unset.

    The file may be UTF-8 (Notepad's byte order mark too) or UTF-16 (PowerShell's
    ``Out-File`` and ``>``). Raises OSError when the file cannot be read.
    """
    if path:
        try:
            return read_text(path).strip() or None
        except UnicodeError:
            raise OSError(f"{path} is not a text file (UTF-8 or UTF-16)") from None
    return os.environ.get(TOKEN_VARIABLE) or None
