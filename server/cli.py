"""`deepimage serve`: start the embedding server.

``register(commands)`` only adds the sub-command; fastapi and uvicorn are imported
when the command runs, so `deepimage embed` never loads them. Options left out
come from ``DEEPIMAGE_SERVER_*`` environment variables, then the defaults.
"""
from __future__ import annotations

import argparse
import logging
import sys

from orangecontrib.deepimage.core.embed import BACKENDS, DEVICES

__all__ = ["register", "cmd_serve"]

def register(commands) -> None:
    """Add `serve` to the `deepimage` sub-commands."""
    serve = commands.add_parser(
        "serve", help="run the embedding server (for Orange's add-on and our client)",
        description="Serve image embeddings over HTTP: our batch API (/v1/embed/MODEL) and "
                    "Orange's own protocol (/image/MODEL, for ORANGE_EMBEDDING_API_URL). "
                    "Every option can also be set as DEEPIMAGE_SERVER_<OPTION> (e.g. "
                    "DEEPIMAGE_SERVER_MODELS=squeezenet,vgg16).")
    # not given: the environment or the default decides. Every option's dest is the
    # name of a Settings field, so cmd_serve hands over whatever was given.
    S = argparse.SUPPRESS
    serve.add_argument("--host", default=S, help="address to listen on (default 127.0.0.1; "
                                                 "any other needs access tokens)")
    serve.add_argument("--port", type=int, default=S, help="TCP port (default 8000)")
    serve.add_argument("--models", default=S, metavar="A,B",
                       help="registry models to serve (default squeezenet; also vgg16, "
                            "vgg19, inception-v3)")
    serve.add_argument("--weights", action="append", default=S, metavar="NAME=FILE",
                       help="weights file of a registry model, or a fine-tuned network "
                            "exported as FILE.onnx served under NAME (repeatable)")
    serve.add_argument("--device", default=S, choices=DEVICES,
                       help="where the networks run (default: a GPU when there is one)")
    serve.add_argument("--backend", default=S, choices=BACKENDS,
                       help="auto: onnxruntime on a CPU, torch with mixed precision on a GPU")
    serve.add_argument("--max-batch", type=int, default=S, metavar="N",
                       help="most images in one network call (default 64 on a GPU, 4 on "
                            "a CPU, where bigger batches cost more per image)")
    serve.add_argument("--max-delay-ms", type=float, default=S, metavar="MS",
                       help="longest wait of an idle network for images still being "
                            "decoded, to send them in one call (default 0: never wait; a "
                            "lone request never waits)")
    serve.add_argument("--no-batching", dest="batching", action="store_false", default=S,
                       help="one network call per request (for comparisons)")
    serve.add_argument("--token-file", default=S, metavar="FILE",
                       help="access tokens, one per line (or DEEPIMAGE_SERVER_TOKENS=a,b)")
    serve.add_argument("--max-request-bytes", type=int, default=S, metavar="N",
                       help="largest request body (default 32 MiB)")
    serve.add_argument("--max-pixels", type=int, default=S, metavar="N",
                       help="largest image, checked before decoding (default 50 million)")
    serve.add_argument("--max-images-per-request", type=int, default=S, metavar="N",
                       help="most images in one /v1/embed request (default 64)")
    serve.add_argument("--max-pending-requests", type=int, default=S, metavar="N",
                       help="embedding requests handled at once; more get 503 (default 256)")
    serve.add_argument("--max-queued-images", type=int, default=S, metavar="N",
                       help="images waiting per model; more get 503 (default 1024)")
    serve.add_argument("--request-timeout-s", type=float, default=S, metavar="S",
                       help="per-request time limit; 504 after it (default 60)")
    serve.add_argument("--decode-threads", type=int, default=S, metavar="N",
                       help="image decoding threads (default: cores, at most 8)")
    serve.add_argument("--crop", action="store_true", default=S,
                       help="keep the central square instead of resizing the whole image")
    serve.add_argument("--random-weights", action="store_true", default=S,
                       help="FOR TESTING ONLY: serve untrained networks (meaningless vectors)")
    serve.add_argument("--log-level", default=S,
                       choices=("debug", "info", "warning", "error"))
    serve.set_defaults(run=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    """Check the settings, build the app, run uvicorn until interrupted."""
    try:
        import uvicorn
        from pydantic import ValidationError

        from .app import create_app
        from .config import ConfigError, Settings
    except ImportError as exc:
        print(f"deepimage: error: the server needs its extra packages ({exc.name} is "
              f"missing): pip install 'Orange3-DeepImage[server]'", file=sys.stderr)
        return 2
    given = {name: value for name, value in vars(args).items()
             if name in Settings.model_fields}
    try:
        settings = Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors())
        print(f"deepimage: error: {problems}", file=sys.stderr)
        return 2
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app = create_app(settings)
    except (ConfigError, ValueError) as exc:
        print(f"deepimage: error: {exc}", file=sys.stderr)
        return 2
    tokens = len(app.state.tokens)
    logging.getLogger("orangecontrib.deepimage.server").info(
        "Listening on http://%s:%d (%s); models: %s", settings.host, settings.port,
        f"{tokens} access token(s)" if tokens else "no access tokens: loopback only",
        ", ".join(app.state.plans))
    # uvicorn's own access log would print raw paths (a /t/<token>/ path included);
    # the server logs requests itself by route template
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level,
                access_log=False, timeout_keep_alive=30, server_header=False)
    return 0
