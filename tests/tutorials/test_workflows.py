"""All lessons together: Orange Canvas lists them in its example browser, in order, and
no workflow carries anything of the author's machine."""
import glob
import os
import re
from pathlib import Path

from orangecanvas.scheme.readwrite import loads, parse_ows_stream

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"
LESSONS = ["lesson1_clustering", "lesson2_classification", "lesson3_server",
           "lesson4_segmentation"]
#: the folder next to the workflows that each lesson's Import Images reads
IMAGES = {"lesson4_segmentation": "cells"}


def test_every_lesson_has_a_workflow_a_note_and_a_script():
    for lesson in LESSONS:
        for suffix in (".ows", ".md", ".py"):
            assert (TUTORIALS / (lesson + suffix)).is_file(), lesson + suffix
    assert sorted(p.stem for p in TUTORIALS.glob("*.ows")) == LESSONS


def test_canvas_example_browser_lists_the_lessons():
    """What Help > Example Workflows reads: the orange.widgets.tutorials entry point."""
    from Orange.canvas.config import Config
    from orangecanvas.application.examples import workflows
    ours = [w for w in workflows(Config())
            if w.package is not None and w.package.__name__ == "orangecontrib.deepimage.tutorials"]
    assert [w.resource for w in ours] == [lesson + ".ows" for lesson in LESSONS]
    for workflow in ours:
        with workflow.stream() as f:
            parsed = parse_ows_stream(f)
        assert parsed.title.startswith(f"Lesson {LESSONS.index(Path(workflow.resource).stem) + 1}")
        assert len(parsed.description) > 80  # the browser shows it: say what to do first
        assert os.path.samefile(workflow.abspath(), TUTORIALS / workflow.resource)


def stored_strings(value):
    """Every string in a node's stored settings, keys too, down to objects' fields."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from stored_strings(item)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from stored_strings(item)
    elif hasattr(value, "__dict__"):
        yield from stored_strings(vars(value))


def test_workflows_store_no_machine_specific_paths_or_tokens():
    """A workflow opened on a student's computer finds the digits next to it, and
    carries neither the author's folders nor a server's access token."""
    paths = sorted(glob.glob(str(TUTORIALS / "*.ows")))
    assert [Path(p).stem for p in paths] == LESSONS
    for path in paths:
        with open(path, "rb") as f:
            parsed = parse_ows_stream(f)
        settings = {}
        for node in parsed.nodes:
            assert node.project_name in ("Orange3", "Orange3-DeepImage"), (path, node.title)
            settings[node.title] = loads(node.data.data, node.data.format) if node.data else {}
        # Import Images reads "digits" (or "cells") relative to the workflow's own folder
        (recent,) = settings["Import Images"]["recent_paths"]
        folder = IMAGES.get(Path(path).stem, "digits")
        assert (recent.prefix, recent.relpath, recent.abspath) == (
            "basedir", folder, folder), path
        for title, values in settings.items():
            stored = list(stored_strings(values))
            assert not [s for s in stored if "token" in s.lower()], (path, title)
            assert not [s for s in stored
                        if os.path.isabs(s) or re.match(r"[A-Za-z]:[\\/]", s)], (path, title)
        text = Path(path).read_text(encoding="utf-8")
        assert not re.search(r"/(home|Users|root|tmp|work)/|[A-Za-z]:\\", text), path
