"""Sphinx extension: check that Orange Canvas can find every widget's help in the site.

setup.py registers the site's index.html as an ``orange.canvas.help`` "html-index"
(WIDGET_HELP_PATH in orangecontrib/deepimage/widgets/__init__.py): the copy a wheel
carries in orangecontrib/deepimage/help/ (setup.py's build_py copies this site there),
else doc/_build/html/ of a checkout. Orange reads that page and takes
``.//*[@id='widgets']//li/a``: the links in the list inside the element whose id is
``widgets`` (the Widgets toctree of index.md, ``:name: widgets``), keyed by their text,
lower-cased, which must be a widget's ``name``. After the HTML is written this extension
reads index.html the way Orange does and warns (an error under -W) for any widget whose
help Orange would not find.
"""
from __future__ import annotations

import ast
import os
from html.parser import HTMLParser
from xml.etree.ElementTree import Element, TreeBuilder

from sphinx.application import Sphinx
from sphinx.util import logging

log = logging.getLogger(__name__)

WIDGETS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "orangecontrib", "deepimage",
                           "widgets")
XPATH = ".//*[@id='widgets']//li/a"  # orangecanvas.help.provider.HtmlIndexProvider's default


def widget_names(folder: str = WIDGETS_DIR) -> "list[str]":
    """The ``name`` of every widget class in ow*.py, read from the source (no Qt)."""
    names = []
    for filename in sorted(os.listdir(folder)):
        if not (filename.startswith("ow") and filename.endswith(".py")):
            continue
        with open(os.path.join(folder, filename), encoding="utf-8") as f:
            tree = ast.parse(f.read(), filename)
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                for statement in node.body:
                    if (isinstance(statement, ast.Assign)
                            and any(getattr(t, "id", None) == "name" for t in statement.targets)
                            and isinstance(statement.value, ast.Constant)):
                        names.append(statement.value.value)
    return names


class _TreeParser(HTMLParser):
    """HTML into an ElementTree, as orangecanvas' HtmlIndexProvider._XHTMLParser does."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.builder = TreeBuilder(element_factory=Element)

    def handle_starttag(self, tag, attrs):
        self.builder.start(tag, dict(attrs))

    def handle_endtag(self, tag):
        self.builder.end(tag)

    def handle_data(self, data):
        self.builder.data(data)


def help_index(html: str) -> "dict[str, str]":
    """{lower-cased link text: href} as Orange Canvas reads them from ``html``."""
    try:  # the real thing when Orange is installed (it imports AnyQt, not a display)
        from types import SimpleNamespace

        from orangecanvas.help.provider import HtmlIndexProvider
        return HtmlIndexProvider._parse(SimpleNamespace(xpathquery=None), html)
    except ImportError:
        parser = _TreeParser()
        parser.feed(html)
        root = parser.builder.close()
        return {a.text.lower(): a.attrib.get("href") for a in root.findall(XPATH)}


def _check(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    index = os.path.join(app.outdir, "index.html")
    with open(index, encoding="utf-8") as f:
        found = help_index(f.read())
    for name in widget_names():
        href = found.get(name.lower())
        if href is None:
            log.warning("Orange Canvas will not find the help of widget %r: index.html has "
                        "no link titled %r inside the element with id 'widgets' (the "
                        "toctree with ':name: widgets' in index.md; found: %s)",
                        name, name, ", ".join(sorted(found)) or "none")
        elif not os.path.isfile(os.path.join(app.outdir, href.split("#")[0])):
            log.warning("The help link of widget %r points to %s, which was not built",
                        name, href)


def setup(app: Sphinx) -> dict:
    app.connect("build-finished", _check)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
