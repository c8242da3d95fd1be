"""All lessons together: Orange Canvas lists them in its example browser, in order, and
no workflow carries anything of the author's machine."""
import glob
import os
from pathlib import Path

from orangecanvas.scheme.readwrite import loads, parse_ows_stream

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"
LESSONS = ["lesson1_clustering", "lesson2_classification", "lesson3_server"]


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


def test_workflows_store_no_machine_specific_paths_or_tokens():
    for path in glob.glob(str(TUTORIALS / "*.ows")):
        with open(path, "rb") as f:
            parsed = parse_ows_stream(f)
        for node in parsed.nodes:
            assert node.project_name in ("Orange3", "Orange3-DeepImage"), (path, node.title)
            props = loads(node.data.data, node.data.format) if node.data else {}
            for recent in props.get("recent_paths", []):
                assert (recent.prefix, recent.relpath) == ("basedir", "digits"), path
                assert not os.path.isabs(recent.abspath), path
            assert not props.get("token"), (path, node.title)
        text = Path(path).read_text(encoding="utf-8")
        assert "/root/" not in text and "/home/" not in text and "/work/" not in text, path
