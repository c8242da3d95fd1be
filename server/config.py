"""Server settings: command-line options and ``DEEPIMAGE_SERVER_*`` environment variables.

One frozen pydantic-settings object, built once by `deepimage serve` (options given on
the command line win over the environment) and handed to ``create_app``. Lists are
comma-separated in the environment (``DEEPIMAGE_SERVER_MODELS=squeezenet,vgg16``,
``DEEPIMAGE_SERVER_WEIGHTS=mine=/srv/mine.onnx``, ``DEEPIMAGE_SERVER_TOKENS=a,b``).
The fields are also the options of `deepimage serve` (orangecontrib/deepimage/cli/serve.py makes one option per
field from its ``json_schema_extra``), so a new setting is written once, here.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orangecontrib.deepimage.core.devices import BACKENDS, DEVICES
from orangecontrib.deepimage.core.loopback import is_loopback
from orangecontrib.deepimage.core.portable import read_text

__all__ = ["Settings", "ConfigError", "is_loopback", "NAME_PATTERN"]

# Default --max-batch by device (see Settings.batch_limit).
GPU_MAX_BATCH = 64
CPU_MAX_BATCH = 4

# What --devices may name: cpu, cuda, cuda:N (gpu is an alias of cuda), mps (Apple GPU).
DEVICE_PATTERN = re.compile(r"^(cpu|gpu|mps|cuda(:[0-9]{1,2})?)$")

# What a served model may be called: it appears in URLs, never as a path.
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

# What an access token may contain: printable ASCII without spaces (an HTTP header value,
# a URL path segment after quoting); the client checks the same.
PRINTABLE_TOKEN = re.compile(r"^[\x21-\x7e]+$")


class ConfigError(ValueError):
    """The settings cannot work; the message says which one and what to do."""


def _split(value):
    """'a,b , c' -> ['a', 'b', 'c']; lists pass through."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value)


def _cli(help: str, metavar: "str | None" = None, **extra) -> dict:
    """What `deepimage serve --help` says about a field (cli/serve.py builds the options
    from the fields, so the settings and the options are one list)."""
    return {"help": help, **({"metavar": metavar} if metavar else {}), **extra}


class Settings(BaseSettings):
    """Everything `deepimage serve` can be told; see `deepimage serve --help`.

    Each field is one option, ``--field-name``, in this order; its ``json_schema_extra``
    holds the option's help (and metavar, choices, or the flag of a switch). A field
    without it (``tokens``) is set from the environment only.
    """

    model_config = SettingsConfigDict(env_prefix="DEEPIMAGE_SERVER_", frozen=True,
                                      extra="forbid")

    host: str = Field("127.0.0.1", json_schema_extra=_cli(
        "address to listen on (default 127.0.0.1; any other needs access tokens)"))
    port: int = Field(8000, ge=0, le=65535, json_schema_extra=_cli("TCP port (default 8000)"))
    models: Annotated[list[str], NoDecode] = Field(["squeezenet"], json_schema_extra=_cli(
        "registry models to serve (default squeezenet; also vgg16, vgg19, inception-v3)",
        "A,B"))
    weights: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="NAME=FILE: a registry model's weights file, or a "
                                          "fine-tuned network exported as .onnx",
        json_schema_extra=_cli("weights file of a registry model, or a fine-tuned network "
                               "exported as FILE.onnx served under NAME (repeatable)",
                               "NAME=FILE", action="append"))
    device: str = Field("auto", json_schema_extra=_cli(
        "where the networks run (default: every GPU when there are any); see --devices",
        choices=DEVICES))
    devices: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="one network worker per device listed; default: "
                                          "every visible GPU, or one CPU worker",
        json_schema_extra=_cli(
            "one network worker per device, each batch to the least busy one, e.g. "
            "cuda:0,cuda:1 (default: every visible GPU, or one cpu worker without a GPU; "
            "a device twice means two workers on it); overrides --device", "A,B"))
    backend: str = Field("auto", json_schema_extra=_cli(
        "auto: onnxruntime on a CPU, torch with mixed precision on a GPU", choices=BACKENDS))
    max_batch: "int | None" = Field(None, ge=1, le=4096, description=(
        "most images in one network call; default (None): 64 on a GPU, 4 on a CPU"),
        json_schema_extra=_cli("most images in one network call (default 64 on a GPU, 4 on "
                               "a CPU, where bigger batches cost more per image)", "N"))
    max_delay_ms: float = Field(0.0, ge=0, le=10_000, description=(
        "longest wait of an idle network for images still being decoded; 0: never wait"),
        json_schema_extra=_cli("longest wait of an idle network for images still being "
                               "decoded, to send them in one call (default 0: never wait; a "
                               "lone request never waits)", "MS"))
    batching: bool = Field(True, json_schema_extra=_cli(
        "one network call per request (for comparisons)", flag="--no-batching"))
    token_file: "Path | None" = Field(None, json_schema_extra=_cli(
        "access tokens, one per line (or DEEPIMAGE_SERVER_TOKENS=a,b)", "FILE"))
    tokens: Annotated[list[str], NoDecode] = Field(default_factory=list, repr=False)
    max_request_bytes: int = Field(32 * 2**20, ge=1024, json_schema_extra=_cli(
        "largest request body (default 32 MiB)", "N"))
    max_pixels: int = Field(50_000_000, ge=1, json_schema_extra=_cli(
        "largest image, checked before decoding (default 50 million)", "N"))
    decode_budget_pixels: int = Field(100_000_000, ge=1, json_schema_extra=_cli(
        "most pixels (width x height) being decoded at once by all requests together; "
        "a decode that does not fit waits, then 503. Bounds decoding memory (4-10 bytes "
        "a pixel); an image larger than the budget decodes alone (default 100 million)",
        "N"))
    decode_budget_wait_s: float = Field(5.0, ge=0, le=3600, json_schema_extra=_cli(
        "longest wait for room in the decode budget; then 503 with Retry-After "
        "(default 5)", "S"))
    max_images_per_request: int = Field(64, ge=1, json_schema_extra=_cli(
        "most images in one /v1/embed request (default 64)", "N"))
    max_pending_requests: int = Field(256, ge=1, json_schema_extra=_cli(
        "embedding requests handled at once; more get 503 (default 256)", "N"))
    max_queued_images: int = Field(1024, ge=1, json_schema_extra=_cli(
        "images waiting per model and device; more get 503 (default 1024; at least "
        "--max-images-per-request)", "N"))
    request_timeout_s: float = Field(60.0, gt=0, json_schema_extra=_cli(
        "per-request time limit; 504 after it (default 60)", "S"))
    max_buffered_bytes: int = Field(256 * 2**20, ge=1024, json_schema_extra=_cli(
        "request bodies held in memory by all requests together; more get 503 (default "
        "256 MiB; at least --max-request-bytes)", "N"))
    header_timeout_s: float = Field(10.0, gt=0, le=3600, json_schema_extra=_cli(
        "time a client has to send a request's headers; then the connection is closed "
        "(default 10)", "S"))
    keep_alive_s: float = Field(15.0, gt=0, le=3600, json_schema_extra=_cli(
        "an idle connection is closed after this long (default 15)", "S"))
    max_connections: int = Field(512, ge=1, json_schema_extra=_cli(
        "open connections at once; requests beyond get 503 (default 512)", "N"))
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, json_schema_extra=_cli(
            "Host names clients may use besides localhost, 127.x and [::1], e.g. a proxy's "
            "name; a loopback server without tokens answers only those (default: none)",
            "A,B"))
    decode_threads: int = Field(default_factory=lambda: min(8, os.cpu_count() or 2), ge=1,
                                json_schema_extra=_cli(
                                    "image decoding threads (default: cores, at most 8)", "N"))
    crop: bool = Field(False, json_schema_extra=_cli(
        "keep the central square instead of resizing the whole image"))
    random_weights: bool = Field(False, description="TESTING ONLY: untrained networks",
                                 json_schema_extra=_cli("FOR TESTING ONLY: serve untrained "
                                                        "networks (meaningless vectors)"))
    log_level: str = Field("info", json_schema_extra=_cli(
        None, choices=("debug", "info", "warning", "error")))

    def batch_limit(self, device: str) -> int:
        """--max-batch, or the default for ``device``: 64 on a GPU, 4 on a CPU.

        On a CPU a network call costs about the same per image at 1 to 4 images and
        more at 8 and up (caches), and big batches answer many requests at the same
        instant, which makes clients send them back in bursts; small batches keep the
        network busy and the answers spread out (benchmarks/README.md, server_load.py).
        """
        if self.max_batch is not None:
            return self.max_batch
        return GPU_MAX_BATCH if str(device).startswith(("cuda", "mps")) else CPU_MAX_BATCH

    @field_validator("models", "weights", "tokens", "allowed_hosts", "devices", mode="before")
    @classmethod
    def _comma_separated(cls, value):
        return _split(value)

    @field_validator("models")
    @classmethod
    def _lower_names(cls, value: list[str]) -> list[str]:
        return [name.lower() for name in value]

    @field_validator("devices")
    @classmethod
    def _device_names(cls, value: list[str]) -> list[str]:
        names = [name.lower() for name in value]
        for name in names:
            if not DEVICE_PATTERN.match(name):
                raise ValueError(f"{name!r} is not a device: write cpu, cuda, cuda:N or mps "
                                 f"(e.g. cuda:0,cuda:1)")
        return names

    def worker_devices(self) -> list[str]:
        """The device of each network worker: --devices, else every visible GPU (with
        --device auto or cuda), else one CPU worker. ConfigError for a GPU that is not there.
        """
        from orangecontrib.deepimage.core.devices import resolve_device
        try:
            if not self.devices:
                device = resolve_device(self.device)
                if device != "cuda":
                    return [device]
                import torch
                return [f"cuda:{i}" for i in range(torch.cuda.device_count())] or ["cuda"]
            devices = [resolve_device(name) for name in self.devices]
        except ValueError as exc:
            raise ConfigError(f"--devices/--device: {exc}") from None
        numbered = [int(name[5:]) for name in devices if name.startswith("cuda:")]
        if numbered:
            import torch
            count = torch.cuda.device_count()
            missing = sorted({n for n in numbered if n >= count})
            if missing:
                raise ConfigError(f"--devices: no GPU cuda:{missing[0]} here: this computer "
                                  f"shows {count} GPU(s) (cuda:0 to cuda:{count - 1}); "
                                  f"check CUDA_VISIBLE_DEVICES.")
        return devices

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
                text = read_text(Path(self.token_file).expanduser())  # UTF-8 or UTF-16
            except OSError as exc:
                raise ConfigError(f"Cannot read the token file {self.token_file}: "
                                  f"{exc.strerror or exc}") from None
            except UnicodeError:
                raise ConfigError(f"The token file {self.token_file} is not a text file "
                                  f"(UTF-8 or UTF-16).") from None
            tokens += [line.strip() for line in text.splitlines()
                       if line.strip() and not line.lstrip().startswith("#")]
        odd = [i for i, t in enumerate(tokens, 1) if not PRINTABLE_TOKEN.match(t)]
        if odd:
            raise ConfigError(f"{len(odd)} access token(s) have characters other than printable "
                              f"ASCII (letters, digits, punctuation; no spaces or accents): an "
                              f"HTTP header cannot carry them. Make new ones, e.g. with "
                              f"`python -c \"import secrets; print(secrets.token_urlsafe(32))\"`.")
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

    def check_limits(self) -> None:
        """Refuse limits that make some request fail forever (503 with nothing to wait for)."""
        if self.max_queued_images < self.max_images_per_request:
            raise ConfigError(
                f"--max-queued-images {self.max_queued_images} is below "
                f"--max-images-per-request {self.max_images_per_request}: a full request could "
                f"never be queued. Raise --max-queued-images or lower --max-images-per-request.")
        if self.max_buffered_bytes < self.max_request_bytes:
            raise ConfigError(
                f"--max-buffered-bytes {self.max_buffered_bytes} is below --max-request-bytes "
                f"{self.max_request_bytes}: the largest allowed request could never be read. "
                f"Raise --max-buffered-bytes or lower --max-request-bytes.")

    def checks_host(self, tokens: list[str]) -> bool:
        """Whether requests must name this computer (or an --allowed-hosts name) in Host.

        A loopback server without tokens trusts whoever can connect, and a web page the
        user opens can connect (DNS rebinding, cross-site POST): it answers only requests
        for a local name. With --allowed-hosts the check is always on.
        """
        return bool(self.allowed_hosts) or (not tokens and is_loopback(self.host))

    def host_allowed(self, host: str) -> bool:
        """True for a Host header (or an Origin's host) naming this computer or an allowed name."""
        name = host.strip().lower()
        if name.startswith("["):  # [::1]:8000
            name = name[1:].partition("]")[0]
        elif name.count(":") == 1:  # name:port (a bare IPv6 address has more colons)
            name = name.partition(":")[0]
        name = name.rstrip(".")
        if not name:
            return False
        if name == "localhost" or name.endswith(".localhost") or is_loopback(name):
            return True
        return name in {h.strip().lower().rstrip(".") for h in self.allowed_hosts}
