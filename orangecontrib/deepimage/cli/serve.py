"""`deepimage serve`: start the embedding server (server/ at the top of the repository,
installed as orangecontrib.deepimage.server).

``register(commands)`` only adds the sub-command; fastapi and uvicorn are imported
when the command runs, so `deepimage embed` never loads them. Options left out
come from ``DEEPIMAGE_SERVER_*`` environment variables, then the defaults.
"""
from __future__ import annotations

import argparse
import logging

from .common import fail

__all__ = ["register", "add_options", "cmd_serve", "add_settings_options"]


def register(commands) -> None:
    """Add `serve` to the `deepimage` sub-commands. Its options are added by
    ``add_options`` only when `serve` is the command (they are the fields of the server's
    Settings: other commands never import pydantic(-settings), 0.2-0.8 s)."""
    serve = commands.add_parser(
        "serve", help="run the embedding server (for Orange's add-on and our client)",
        description="Serve image embeddings over HTTP: our batch API (/v1/embed/MODEL) and "
                    "Orange's own protocol (/image/MODEL, for ORANGE_EMBEDDING_API_URL). "
                    "Every option can also be set as DEEPIMAGE_SERVER_<OPTION> (e.g. "
                    "DEEPIMAGE_SERVER_MODELS=squeezenet,vgg16).")
    serve.set_defaults(run=cmd_serve)


def add_options(serve: argparse.ArgumentParser) -> None:
    """One option per field of the server's Settings on the `serve` parser; options left
    out stay unset (the environment or the default decides)."""
    try:
        from ..server.config import Settings
    except ImportError as exc:  # a broken installation: `serve` says what is missing
        serve.set_defaults(run=lambda args: _missing_packages(exc))
        return
    add_settings_options(serve, Settings)


def add_settings_options(parser: argparse.ArgumentParser, settings_class) -> None:
    """One option per field of ``settings_class`` that has CLI help (json_schema_extra):
    ``--field-name``; a bool field is a switch (``flag`` names it, e.g. --no-batching)."""
    S = argparse.SUPPRESS
    for name, field in settings_class.model_fields.items():
        cli = field.json_schema_extra
        if not isinstance(cli, dict) or "help" not in cli:
            continue  # set from the environment only (tokens)
        flag = cli.get("flag") or "--" + name.replace("_", "-")
        options = {"dest": name, "default": S, "help": cli["help"]}
        if field.annotation is bool:
            options["action"] = "store_false" if field.default else "store_true"
        else:
            kind = field.annotation
            kind = kind if kind in (int, float) else _optional_of(kind)
            if kind in (int, float):
                options["type"] = kind
            for key in ("metavar", "choices", "action"):
                if key in cli:
                    options[key] = cli[key]
        parser.add_argument(flag, **options)


def _optional_of(annotation):
    """int for ``int | None`` (and Optional[int]); None otherwise."""
    args = [a for a in getattr(annotation, "__args__", ()) if a is not type(None)]
    return args[0] if len(args) == 1 else None


def _missing_packages(exc: ImportError) -> int:
    return fail(f"the server's packages are incomplete ({exc.name} is missing): install "
                f"Orange3-DeepImage again (pip install --force-reinstall Orange3-DeepImage)")


def cmd_serve(args: argparse.Namespace) -> int:
    """Check the settings, build the app, run uvicorn until interrupted."""
    try:
        import uvicorn
        from pydantic import ValidationError

        from ..server.app import create_app
        from ..server.config import ConfigError, Settings
    except ImportError as exc:
        return _missing_packages(exc)
    from ..server.launch import exit_with_parent
    exit_with_parent()  # started by server.launch.ServerProcess: stop when its parent has gone
    given = {name: value for name, value in vars(args).items()
             if name in Settings.model_fields}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors())
        return fail(str(problems))
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(settings)
    except (ConfigError, ValueError) as exc:
        return fail(str(exc))
    state = app.state.server
    tokens = len(state.tokens)
    logging.getLogger("orangecontrib.deepimage.server").info(
        "Listening on http://%s:%d (%s); models: %s", settings.host, settings.port,
        f"{tokens} access token(s)" if tokens else "no access tokens: loopback only",
        ", ".join(state.plans))
    # uvicorn's own access log would print raw paths (a /t/<token>/ path included);
    # the server logs requests itself by route template. Connections: heads within
    # --header-timeout-s (protocol.py), idle ones closed after --keep-alive-s, at most
    # --max-connections at once.
    from ..server.protocol import protocol_class
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False, server_header=False,
                http=protocol_class(settings.header_timeout_s),
                timeout_keep_alive=settings.keep_alive_s,
                limit_concurrency=settings.max_connections)
    return 0
