"""Server settings: command-line options and ``DEEPIMAGE_SERVER_*`` environment variables.

One frozen pydantic-settings object, built once by `deepimage serve` (options given on
the command line win over the environment) and handed to ``create_app``. Lists are
comma-separated in the environment (``DEEPIMAGE_SERVER_MODELS=squeezenet,vgg16``,
``DEEPIMAGE_SERVER_WEIGHTS=mine=/srv/mine.onnx``, ``DEEPIMAGE_SERVER_TOKENS=a,b``).
"""
from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

__all__ = ["Settings", "ConfigError", "is_loopback", "NAME_PATTERN"]

# Default --max-batch by device (see Settings.batch_limit).
GPU_MAX_BATCH = 64
CPU_MAX_BATCH = 4

# What a served model may be called: it appears in URLs, never as a path.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


class ConfigError(ValueError):
    """The settings cannot work; the message says which one and what to do."""


def is_loopback(host: str) -> bool:
    """True for addresses only this computer can reach (127.x, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything, so it is treated as public


def _split(value):
    """'a,b , c' -> ['a', 'b', 'c']; lists pass through."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)


class Settings(BaseSettings):
    """Everything `deepimage serve` can be told; see `deepimage serve --help`."""

    model_config = SettingsConfigDict(env_prefix="DEEPIMAGE_SERVER_", frozen=True,
                                      extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    models: Annotated[list[str], NoDecode] = ["squeezenet"]
    weights: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="NAME=FILE: a registry model's weights file, or a "
                                          "fine-tuned network exported as .onnx")
    device: str = "auto"
    backend: str = "auto"
    max_batch: "int | None" = Field(None, ge=1, le=4096, description=(
        "most images in one network call; default (None): 64 on a GPU, 4 on a CPU"))
    max_delay_ms: float = Field(0.0, ge=0, le=10_000, description=(
        "longest wait of an idle network for images still being decoded; 0: never wait"))
    batching: bool = True
    token_file: "Path | None" = None
    tokens: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False)
    max_request_bytes: int = Field(32 * 2**20, ge=1024)
    max_pixels: int = Field(50_000_000, ge=1)
    decode_budget_pixels: int = Field(100_000_000, ge=1, description=(
        "most pixels (width x height) being decoded at once, all requests together; "
        "bounds decoding memory (about 4-10 bytes a pixel). An image larger than the "
        "budget is decoded alone"))
    decode_budget_wait_s: float = Field(5.0, ge=0, description=(
        "longest wait for room in the decode budget before answering 503"))
    max_images_per_request: int = Field(64, ge=1)
    max_pending_requests: int = Field(256, ge=1)
    max_queued_images: int = Field(1024, ge=1)
    request_timeout_s: float = Field(60.0, gt=0)
    decode_threads: int = Field(default_factory=lambda: min(8, os.cpu_count() or 2), ge=1)
    crop: bool = False
    random_weights: bool = Field(False, description="TESTING ONLY: untrained networks")
    log_level: str = "info"

    def batch_limit(self, device: str) -> int:
        """--max-batch, or the default for ``device``: 64 on a GPU, 4 on a CPU.

        On a CPU a network call costs about the same per image at 1 to 4 images and
        more at 8 and up (caches), and big batches answer many requests at the same
        instant, which makes clients send them back in bursts; small batches keep the
        network busy and the answers spread out (benchmarks/README.md, server_load.py).
        """
        if self.max_batch is not None:
            return self.max_batch
        return GPU_MAX_BATCH if str(device).startswith("cuda") else CPU_MAX_BATCH

    @field_validator("models", "weights", "tokens", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        return _split(value)

    @field_validator("models")
    @classmethod
    def _lower_names(cls, value: list[str]) -> list[str]:
        return [name.lower() for name in value]

    def weights_files(self) -> dict[str, Path]:
        """The --weights options as {name: file}; ConfigError for a malformed one."""
        files = {}
        for item in self.weights:
            name, sep, file = item.partition("=")
            name = name.strip().lower()
            if not sep or not name or not file.strip():
                raise ConfigError(f"--weights {item!r}: write it as NAME=FILE, e.g. "
                                  f"mymodel=/srv/models/mymodel.onnx")
            if not NAME_PATTERN.match(name):
                raise ConfigError(f"--weights {item!r}: a model name has lowercase letters, "
                                  f"digits, '.', '_' and '-' only (at most 64).")
            files[name] = Path(file.strip()).expanduser()
        return files

    def load_tokens(self) -> list[str]:
        """Access tokens from the environment and the token file (one per line, '#' comments)."""
        tokens = [t for t in self.tokens if t]
        if self.token_file is not None:
            try:
                text = Path(self.token_file).expanduser().read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"Cannot read the token file {self.token_file}: "
                                  f"{exc.strerror or exc}") from None
            tokens += [line.strip() for line in text.splitlines()
                       if line.strip() and not line.lstrip().startswith("#")]
        short = [t for t in tokens if len(t) < 16]
        if short:
            raise ConfigError(f"{len(short)} access token(s) are shorter than 16 characters; "
                              f"make longer ones, e.g. with `python -c \"import secrets; "
                              f"print(secrets.token_urlsafe(32))\"`.")
        return tokens

    def check_security(self, tokens: list[str]) -> None:
        """Refuse to listen on a non-loopback address without access tokens."""
        if not tokens and not is_loopback(self.host):
            raise ConfigError(
                f"Refusing to listen on {self.host} without access tokens: anyone who can "
                f"reach this address could use the server. Give --token-file FILE (one token "
                f"per line) or set DEEPIMAGE_SERVER_TOKENS, or listen on 127.0.0.1.")
