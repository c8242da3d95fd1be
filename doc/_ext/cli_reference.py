"""The `deepimage` option reference, rendered from the real argparse parsers.

``render_cli_reference()`` builds the parser the console script uses
(``orangecontrib.deepimage.cli.build_parser``, which registers the train, evaluate,
evaluate, explain and serve sub-commands from the cli/ package) and writes each
command's ``--help`` as Markdown. A new option appears here without editing a page.
"""
from __future__ import annotations

import argparse

WIDTH = 88  # columns of the help text, whatever the terminal that builds the docs


def _fixed_width(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=WIDTH)


def subcommands(parser: argparse.ArgumentParser) -> "dict[str, argparse.ArgumentParser]":
    """{name: sub-parser} of ``parser``'s sub-commands, in the order they were added."""
    for action in parser._actions:  # argparse has no public accessor for these
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def one_line_helps(parser: argparse.ArgumentParser) -> "dict[str, str]":
    """{name: the one-line help shown in `deepimage --help`}."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}


def render_cli_reference() -> str:
    """Markdown: `deepimage --help`, then a section per sub-command with its --help."""
    from orangecontrib.deepimage.cli import build_parser
    parser = build_parser()
    commands = subcommands(parser)
    helps = one_line_helps(parser)
    for each in (parser, *commands.values()):
        _fixed_width(each)
    parts = ["## `deepimage`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for name, command in commands.items():
        summary = helps.get(name, "")
        parts += [f"## `deepimage {name}`", ""]
        if summary:
            parts += [summary[0].upper() + summary[1:] + ".", ""]
        parts += ["```text", command.format_help().rstrip(), "```", ""]
    return "\n".join(parts)
