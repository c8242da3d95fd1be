"""Images named by URL rather than by a file on this computer. No Qt.

- ``is_url`` and ``resolve``: how a table's image value becomes something to read. A
  value that is itself a URL (http, https, data) is kept; a relative value joins its
  column's ``origin`` with ``urllib.parse.urljoin`` when the origin is a URL (so
  ``https://host/photos`` + ``cat.jpg`` is ``https://host/photos/cat.jpg`` and
  ``/other.jpg`` goes to the host's root), else with ``os.path.join``. This is what
  orange3-imageanalytics does, so the same table names the same images in both.
- ``fetch``: the bytes behind a URL. ``data:`` URLs are decoded (nothing is fetched);
  http(s) images are fetched once and kept in a disk cache, so embedding, viewing and
  training the same remote images again does not download them again.

The disk cache is ``<cache dir>/urls`` (see core.cache.default_cache_dir), one file
per URL named by its SHA-256, written atomically, trimmed to ``$DEEPIMAGE_URL_CACHE_MB``
(default 1024 MiB) oldest first. Deleting the folder is always safe.
"""
from __future__ import annotations

import hashlib
import os
import threading
import urllib.request
from pathlib import Path
from urllib.parse import urljoin, urlparse

from .atomic import atomic_path
from .cache import default_cache_dir
from .loopback import urlopen

__all__ = ["URL_SCHEMES", "is_url", "resolve", "fetch", "UrlCache", "url_cache"]

URL_SCHEMES = ("http", "https", "data")
DEFAULT_URL_CACHE_MB = 1024
_TRIM_EVERY = 50  # writes between size checks of the cache folder


def is_url(value: object) -> bool:
    """Whether ``value`` is an http(s) or data URL (as opposed to a file path)."""
    if not isinstance(value, str):
        return False
    scheme, sep, _ = value.partition(":")
    return bool(sep) and scheme.lower() in URL_SCHEMES and (
        scheme.lower() == "data" or value[len(scheme) + 1:].startswith("//"))


def resolve(origin: str, value: str) -> str:
    """The file path or URL that an image column's ``value`` names, given its ``origin``."""
    if not value or is_url(value) or not origin:
        return value
    if is_url(origin):
        return urljoin(origin if origin.endswith("/") else origin + "/", value)
    return os.path.join(origin, value)


class UrlCache:
    """Fetched http(s) images on disk, one file per URL; thread-safe."""

    def __init__(self, folder: "str | os.PathLike | None" = None,
                 max_bytes: "int | None" = None):
        self.folder = Path(folder) if folder is not None else default_cache_dir() / "urls"
        if max_bytes is None:
            max_bytes = int(float(os.environ.get("DEEPIMAGE_URL_CACHE_MB",
                                                 DEFAULT_URL_CACHE_MB)) * 2**20)
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._writes = 0

    def path(self, url: str) -> Path:
        return self.folder / hashlib.sha256(url.encode("utf-8")).hexdigest()

    def get(self, url: str) -> "bytes | None":
        try:
            return self.path(url).read_bytes()
        except OSError:
            return None

    def put(self, url: str, data: bytes) -> None:
        """Keep ``data``; a cache that cannot be written (read-only home) is skipped."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.path(url)) as tmp, open(tmp, "wb") as f:
                f.write(data)
        except OSError:
            return
        with self._lock:
            self._writes += 1
            trim = self._writes % _TRIM_EVERY == 1
        if trim:
            self.trim()

    def trim(self) -> None:
        """Delete the least recently written files until the folder fits ``max_bytes``."""
        try:
            files = [(e.stat().st_mtime, e.stat().st_size, e.path)
                     for e in os.scandir(self.folder) if e.is_file()]
        except OSError:
            return
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            try:
                os.remove(path)
                total -= size
            except OSError:
                pass


_cache: "UrlCache | None" = None
_cache_lock = threading.Lock()


def url_cache() -> UrlCache:
    """The process' URL cache (created on first use, so tests can set the environment)."""
    global _cache
    with _cache_lock:
        if _cache is None:
            _cache = UrlCache()
        return _cache


def fetch(url: str, max_bytes: int, timeout: float = 30.0,
          cache: "UrlCache | None" = None) -> bytes:
    """The bytes behind an http(s) or data URL, at most ``max_bytes + 1`` of them
    (the caller tells a user the file is too big). OSError (URLError, HTTPError,
    a data URL that is not one) when they cannot be had; failures are not cached."""
    if urlparse(url).scheme.lower() == "data":
        try:
            with urllib.request.urlopen(url) as response:
                return response.read(max_bytes + 1)
        except ValueError as exc:  # malformed data URL
            raise OSError(f"not a valid data: URL ({exc})") from None
    cache = cache if cache is not None else url_cache()
    data = cache.get(url)
    if data is not None:
        return data
    with urlopen(url, timeout=timeout) as response:  # this computer: never via a proxy
        data = response.read(max_bytes + 1)
    if len(data) <= max_bytes:
        cache.put(url, data)
    return data
