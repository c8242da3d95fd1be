"""Addresses on this computer: loopback hosts, URLs for them, and HTTP clients that
never send loopback requests to a proxy.

Orange copies the system's proxy into ``http_proxy``/``https_proxy`` without a
``no_proxy``, and httpx honours those variables: behind a lab proxy every request to
127.0.0.1 would go to the proxy and fail after minutes. :func:`http_client` is the one
way this add-on (client, discovery, the server launcher, the lessons) makes an httpx
client: loopback hosts (localhost, 127.0.0.0/8, ::1) always connect directly, every
other host keeps the user's proxy settings; :func:`urlopen` does the same for urllib
(images named by URL). Imports httpx only when a client is made.
"""
from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

__all__ = ["is_loopback", "url_host", "http_url", "no_proxy_mounts", "http_client", "urlopen"]

# the loopback names a client may use without saying which 127.x address it means
DIRECT_HOSTS = ("127.0.0.1", "localhost", "[::1]", "*.localhost")


def is_loopback(host: str) -> bool:
    """True for addresses only this computer can reach (127.x, ::1, localhost)."""
    host = (host or "").strip().lower().rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, so it is treated as public


def url_host(host: str) -> str:
    """``host`` as a URL writes it: IPv6 addresses in brackets ('::1' -> '[::1]')."""
    host = host.strip()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def http_url(host: str, port: int, scheme: str = "http") -> str:
    """'http://127.0.0.1:8000', 'http://[::1]:8000': a valid URL for any host."""
    return f"{scheme}://{url_host(host)}:{int(port)}"


def no_proxy_mounts(*urls: str) -> "dict[str, None]":
    """httpx ``mounts`` that send loopback hosts (and ``urls``' hosts, when loopback)
    past any proxy from the environment: a mount of None is httpx's direct connection."""
    hosts = list(DIRECT_HOSTS)
    for url in urls:
        host = urlsplit(url if "://" in url else f"//{url}").hostname or ""
        if is_loopback(host):
            hosts.append(url_host(host))
    return {f"all://{host}": None for host in dict.fromkeys(hosts)}


def http_client(*urls: str, **options: Any):
    """An ``httpx.Client(**options)`` whose requests to loopback hosts never go through
    a proxy (``urls``: the servers it will talk to, so that any 127.x address is
    direct too); other hosts keep ``http_proxy``/``https_proxy``/``all_proxy``."""
    import httpx
    mounts = {**no_proxy_mounts(*urls), **options.pop("mounts", {})}
    return httpx.Client(mounts=mounts, **options)


def urlopen(url: str, timeout: float = 30.0):
    """``urllib.request.urlopen(url)``, but straight to the host when it is this computer
    (no proxy from the environment or the system's settings). Proxies are read at each
    call, as httpx reads them for each client (urlopen keeps the first it saw)."""
    import urllib.request
    host = (urlsplit(url).hostname or "").rstrip(".")
    direct = is_loopback(host) or host.endswith(".localhost")
    handlers = [urllib.request.ProxyHandler({})] if direct else []
    return urllib.request.build_opener(*handlers).open(url, timeout=timeout)
