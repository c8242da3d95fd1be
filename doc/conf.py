"""Sphinx configuration of the Orange3-DeepImage documentation (`make docs`).

Pages are Markdown (MyST). Local extensions in _ext/: generated_pages renders the
CLI and server API references from the code; lessons includes the lesson notes from
../tutorials; orange_help checks that Orange Canvas finds each widget's page (the
pages in widgets/ are also its in-app help). Nothing here loads a network or
downloads anything.
"""
import os
import sys
from importlib.metadata import PackageNotFoundError, version as dist_version

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "_ext"))

project = "Orange3-DeepImage"
author = "Orange3-DeepImage contributors"
copyright = "Orange3-DeepImage contributors, GPL-3.0-or-later"
try:
    release = dist_version("Orange3-DeepImage")
except PackageNotFoundError:
    release = ""
version = release

extensions = ["myst_parser", "generated_pages", "lessons", "orange_help"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "**/.*", "Thumbs.db", ".DS_Store"]

myst_heading_anchors = 3  # [text](page.md#a-heading) links, as on GitHub

try:
    import furo  # noqa: F401
    html_theme = "furo"
except ImportError:
    html_theme = "alabaster"
html_title = f"Orange3-DeepImage {release}".strip()
html_static_path = []
html_last_updated_fmt = None
html_show_sourcelink = False
