"""The documentation's generated parts match the code, without building the site.

The site itself is built by `make docs` (in CI, with warnings as errors); these tests
call the local Sphinx extensions' render functions in doc/_ext/ directly.
"""
import argparse
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "doc"
sys.path.insert(0, str(DOC / "_ext"))

import cli_reference  # noqa: E402


def test_cli_reference_has_every_command_and_option():
    from orangecontrib.deepimage.cli import build_parser
    text = cli_reference.render_cli_reference()
    commands = cli_reference.subcommands(build_parser())
    assert set(commands) >= {"models", "embed", "train", "evaluate", "export", "serve"}
    for name, parser in commands.items():
        section = text.split(f"## `deepimage {name}`", 1)[1].split("\n## ", 1)[0]
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            for option in action.option_strings:
                assert option in section, f"deepimage {name} {option}"


def test_server_reference_lists_every_operation():
    pytest.importorskip("fastapi")
    import openapi_reference
    spec = openapi_reference.server_openapi()
    text = openapi_reference.render_openapi_reference(spec)
    operations = openapi_reference.operations(spec)
    assert {path for path, _, _ in operations} == set(spec["paths"])
    assert {"/image/{model}", "/v1/embed/{model}", "/v1/models", "/healthz",
            "/readyz", "/metrics"} <= set(spec["paths"])
    for path, method, operation in operations:
        heading = f"### `{method} {path}`"
        assert heading in text
        section = text.split(heading, 1)[1].split("\n### ", 1)[0]
        for status in operation["responses"]:
            assert f"| {status} |" in section, (method, path, status)
        for parameter in operation.get("parameters", ()):
            assert f"| `{parameter['name']}` |" in section, (method, path, parameter["name"])
    for name in spec["components"]["schemas"]:
        assert f"(schema-{name.lower()})=" in text


def test_front_page_lists_every_widget_for_orange_help():
    """Orange Canvas finds a widget's help by the link text in index.html's 'widgets'
    list (orange_help checks the built page); here: the toctree and the page titles."""
    pytest.importorskip("sphinx")
    from orange_help import widget_names
    index = (DOC / "index.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```\{toctree\}\n(.*?)```", index, re.S)
                 if ":name: widgets" in b)
    pages = [line for line in block.splitlines() if line and not line.startswith(":")]
    titles = {(DOC / f"{page}.md").read_text(encoding="utf-8").splitlines()[0]
              for page in pages}
    assert titles == set(widget_names()) == {"Import Images", "Image Embedder", "Trainer",
                                             "Image Viewer", "Image Grid", "Save Images",
                                             "Segment Images"}


def test_lesson_links_are_rewritten_for_the_lesson_pages(tmp_path):
    pytest.importorskip("sphinx")
    from lessons import rewrite_links
    src, notes_dir = tmp_path / "doc", tmp_path / "tutorials"
    notes = notes_dir / "lesson2_classification.md"
    pages = {notes.resolve(): "lessons/lesson2-classification"}
    text = ("[next](lesson2_classification.md#start) [flow](lesson1_clustering.ows) "
            "![shot](images/a.png) [Trainer](../doc/widgets/trainer.md) "
            "[web](https://orangedatamining.com) [here](#top)\n[ref]: ../doc/cli.md\n")
    out = rewrite_links(text, notes_dir.resolve(), (src / "lessons").resolve(),
                        src.resolve(), pages)
    assert "[next](lesson2-classification.md#start)" in out
    assert "[flow](../../tutorials/lesson1_clustering.ows)" in out
    assert "![shot](images/a.png)" in out  # images: MyST's :relative-images:
    assert "[Trainer](../widgets/trainer.md)" in out
    assert "[web](https://orangedatamining.com) [here](#top)" in out
    assert "[ref]: ../cli.md" in out


def test_python_examples_in_the_docs_compile():
    blocks = [(page.name, code) for page in DOC.glob("*.md")
              for code in re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"),
                                     re.S)]
    assert len(blocks) >= 4
    for name, code in blocks:
        compile(code, name, "exec")
