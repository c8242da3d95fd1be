"""The `deepimage` command: one module per command group, each only parsing its
arguments, calling core/ (and the Orange glue) and printing.

- embed.py: `models`, `embed` (ray.py: its --ray options, run on a Ray cluster)
- train.py: `train`, `export`; evaluate.py: `evaluate`; progress.py: training's progress
- explain.py: `explain`
- label.py: `label-next`, `label-issues` (the labelling loop)
- segment.py: `segment`, `segment-train` (objects in images: core/segment)
- serve.py: `serve` (the server lives in server/ at the top of the repository and is
  installed as orangecontrib.deepimage.server)
- common.py: the error line, the image progress bar, reading a model file

Heavy packages (torch, Orange, fastapi) are imported inside the commands, so
`deepimage models` and `deepimage embed` start fast.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from . import embed, evaluate, explain, label, segment, serve, train
from .common import ProgressBar, fail

__all__ = ["main", "build_parser", "ProgressBar", "fail"]

#: the command groups, in the order `deepimage --help` lists them; each has register()
COMMAND_GROUPS = (embed, train, evaluate, explain, label, segment, serve)


def build_parser(serve_options: bool = True) -> argparse.ArgumentParser:
    """The `deepimage` parser with every sub-command. ``serve_options`` False leaves out
    `serve`'s options (they come from the server's Settings, which imports pydantic)."""
    parser = argparse.ArgumentParser(
        prog="deepimage",
        description="Deep networks for images: embed, train, evaluate, explain and serve.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for group in COMMAND_GROUPS:
        group.register(commands)
    if serve_options:
        serve.add_options(commands.choices["serve"])
    return parser


def _command(argv: Sequence[str]) -> "str | None":
    """The sub-command named in ``argv`` (its first word that is not an option)."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: "Sequence[str] | None" = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(serve_options=_command(argv) == "serve").parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:  # `deepimage embed ... | head`
        return 0
