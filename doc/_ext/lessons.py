"""Sphinx extension: the lesson pages, which include the lesson notes from ../tutorials.

Each page in doc/lessons/ is one MyST ``{include}`` of a ``tutorials/lessonN_*.md`` file
(``:relative-images:`` fixes its screenshots). The notes are written to be read on
GitHub too, so their links are relative to tutorials/: ``[workflow](lesson1_clustering.ows)``,
``[lesson 2](lesson2_classification.md)``, ``[Trainer](../doc/widgets/trainer.md)``.
On ``include-read`` those links are rewritten relative to the lesson page: a lesson's
notes become its page, a page of this site stays a page, and any other file (a
workflow, a script) becomes a download. A lesson page whose notes are missing is a
build warning (an error under ``-W``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

log = logging.getLogger(__name__)

LESSON_DIR = "lessons"
INCLUDE = re.compile(r"^```\{include\}\s+(\S+)\s*$", re.MULTILINE)
# [text](target "title") but not ![image](...); and reference definitions [id]: target
INLINE_LINK = re.compile(r"(?<!!)(\[[^\]\n]*\]\()([^)\s]+)((?:\s+\"[^\"]*\")?\))")
REFERENCE = re.compile(r"^(\s{0,3}\[[^\]\n]+\]:\s*)(\S+)", re.MULTILINE)


def lesson_pages(srcdir: "str | os.PathLike") -> "dict[Path, str]":
    """{absolute path of the included notes: the lesson page's docname}."""
    pages = {}
    folder = Path(srcdir) / LESSON_DIR
    for page in sorted(folder.glob("*.md")):
        match = INCLUDE.search(page.read_text(encoding="utf-8"))
        if match:
            notes = (page.parent / match.group(1)).resolve()
            pages[notes] = f"{LESSON_DIR}/{page.stem}"
    return pages


def rewrite_links(text: str, notes_dir: Path, page_dir: Path, srcdir: Path,
                  pages: "dict[Path, str]") -> str:
    """``text``'s relative links, written for ``notes_dir``, made relative to ``page_dir``."""
    def new_target(target: str) -> str:
        if "://" in target or target.startswith(("#", "/", "mailto:")):
            return target
        path, hash_, fragment = target.partition("#")
        resolved = (notes_dir / path).resolve()
        if resolved in pages:  # another lesson's notes: link to its page
            resolved = (srcdir / (pages[resolved] + ".md")).resolve()
        return os.path.relpath(resolved, page_dir).replace(os.sep, "/") + hash_ + fragment

    text = INLINE_LINK.sub(lambda m: m.group(1) + new_target(m.group(2)) + m.group(3), text)
    return REFERENCE.sub(lambda m: m.group(1) + new_target(m.group(2)), text)


def _include_read(app: Sphinx, relative_path, parent_docname: str, content: list) -> None:
    srcdir = Path(app.srcdir)
    notes = (srcdir / relative_path).resolve()
    pages = lesson_pages(srcdir)
    if notes not in pages:
        return
    page_dir = (srcdir / pages[notes]).parent
    content[0] = rewrite_links(content[0], notes.parent, page_dir, srcdir, pages)


def _missing_notes(app: Sphinx, docname: str, source: list) -> None:
    """A lesson page whose notes file is missing warns (fails a ``-W`` build)."""
    for notes, page in lesson_pages(app.srcdir).items():
        if page == docname and not notes.is_file():
            where = os.path.relpath(notes, Path(app.srcdir).parent).replace(os.sep, "/")
            log.warning("%s: the lesson notes %s do not exist", page, where,
                        location=docname)


def setup(app: Sphinx) -> dict:
    app.connect("source-read", _missing_notes)
    app.connect("include-read", _include_read)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
