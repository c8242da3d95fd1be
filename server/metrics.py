"""Prometheus metrics of one server (one registry per app, so tests can run many apps).

Every label comes from a fixed set: route templates (``/image/{model}``, never raw
paths, so a token in a path never reaches a metric), methods the server knows (else
"other"), the error kinds of errors.ERROR_KINDS and the served models' names.
"""
from __future__ import annotations

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge,
                               Histogram, generate_latest)

from .errors import ERROR_KINDS

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]



class Metrics:
    """The counters, histograms and gauges /metrics exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("deepimage_requests", "HTTP requests by route and status",
                                ("route", "method", "status"), registry=r)
        self.latency = Histogram(
            "deepimage_request_seconds", "Request latency by route", ("route",), registry=r,
            buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120))
        self.batch_size = Histogram(
            "deepimage_batch_size", "Images per network call", ("model",), registry=r,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.network_seconds = Histogram(
            "deepimage_network_seconds", "Time of one network call", ("model",), registry=r,
            buckets=(.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.queue_depth = Gauge("deepimage_queue_depth",
                                 "Images waiting for or in a network call", ("model",),
                                 registry=r)
        self.pending_requests = Gauge("deepimage_pending_requests",
                                      "Embedding requests being handled", registry=r)
        self.images = Counter("deepimage_images_embedded", "Images embedded", ("model",),
                              registry=r)
        # one series per model and network worker (--devices): work per device
        self.device_images = Counter("deepimage_device_images_embedded",
                                     "Images embedded by each device's worker",
                                     ("model", "device"), registry=r)
        self.device_busy = Counter("deepimage_device_busy_seconds",
                                   "Time each device's worker spent in network calls (its "
                                   "rate is the device's utilisation)", ("model", "device"),
                                   registry=r)
        self.device_queue_depth = Gauge("deepimage_device_queue_depth",
                                        "Images waiting for or in a network call, per device",
                                        ("model", "device"), registry=r)
        self.errors = Counter("deepimage_errors", "Errors by kind", ("kind",), registry=r)
        self.ready = Gauge("deepimage_ready", "1 when every model is loaded and warmed up",
                           registry=r)
        for kind in ERROR_KINDS:  # so that every kind shows up, at 0, from the start
            self.errors.labels(kind)

    def error(self, kind: str) -> None:
        self.errors.labels(kind if kind in ERROR_KINDS else "internal").inc()

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
