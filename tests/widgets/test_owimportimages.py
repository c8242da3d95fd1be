"""Import Images: run_import without a GUI, then the widget (offscreen Qt)."""
import inspect
import os
import shutil
import tempfile
import threading
from unittest.mock import Mock, patch

import numpy as np
import pytest
from image_folders import make_class_folders
from Orange.widgets.tests.base import WidgetTest
from Orange.widgets.utils.filedialogs import RecentPath
from PIL import Image

from orangecontrib.deepimage import imports
from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.data import image_column, image_paths
from orangecontrib.deepimage.imports import probe_image, run_import, summary
from orangecontrib.deepimage.widgets import owimportimages
from orangecontrib.deepimage.widgets.owimportimages import OWImportImages


def create_widget_in_workflow(test: WidgetTest, cls, stored_settings: dict, basedir: str):
    """Create a widget as Orange Canvas does when it opens a workflow saved in basedir.

    Canvas hands the workflow's env to OWBaseWidget.__new__. WidgetTest.create_widget
    forwards it (``env=``) from orange-widget-base 4.28 on; on 4.22 (Orange 3.36) it
    does not, so there the env goes to __new__ directly, as Canvas gives it.
    """
    env = {"basedir": basedir}
    if "kwargs" in inspect.signature(test.create_widget).parameters:
        return test.create_widget(cls, stored_settings=stored_settings, env=env)
    base_new = cls.__new__

    def new_in_workflow(klass, *args, **kwargs):
        return base_new(klass, *args, env=env, **kwargs)

    with patch.object(cls, "__new__", new_in_workflow):
        return test.create_widget(cls, stored_settings=stored_settings)


def mock_state(stop_after=None):
    """A TaskState stand-in; asks to stop after ``stop_after`` checks when given."""
    state = Mock()
    calls = iter(range(10**9))
    state.is_interruption_requested.side_effect = \
        lambda: stop_after is not None and next(calls) >= stop_after
    return state


# --- run_import, no GUI ---------------------------------------------------------------
def test_class_folders_and_skipped_files_with_reasons(tmp_path):
    root = make_class_folders(tmp_path)
    result = run_import(root, mock_state())
    data = result.data
    assert len(data) == 6 and list(data.domain.class_var.values) == ["cats", "dogs"]
    assert [m.name for m in data.domain.metas] == ["image name", "image", "size", "width",
                                                   "height"]
    assert image_column(data).attributes == {"type": "image", "origin": root}
    assert list(data.get_column("image"))[:2] == ["cats/cats0.jpg", "cats/cats1.jpg"]
    assert set(data.get_column("width")) == {24} and set(data.get_column("height")) == {16}
    assert all(os.path.exists(p) for p in image_paths(data))
    reasons = dict(zip(result.skipped.get_column("image"), result.skipped.get_column("reason")))
    assert reasons == {"README.txt": "not an image file type (.txt)",
                       "cats/empty.jpg": "empty file (0 bytes)",
                       "dogs/notes.png": "not an image Pillow can read (unknown or corrupt "
                                         "header)"}
    assert result.skipped.domain.class_var is None
    assert summary(result) == "6 images in 2 classes; 3 skipped"


def test_progress_goes_up_to_100(tmp_path):
    state = mock_state()
    run_import(make_class_folders(tmp_path), state)
    values = [c.args[0] for c in state.set_progress_value.call_args_list]
    assert values == sorted(values) and values[-1] == 100 and len(values) >= 3


def test_each_file_is_opened_once_and_never_decoded(tmp_path):
    root = make_class_folders(tmp_path)
    opened = []
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        opened.append(fp)
        return real_open(fp, *args, **kwargs)

    with patch.object(Image, "open", counting_open), \
            patch("orangecontrib.deepimage.data.describe", side_effect=AssertionError), \
            patch.object(Image.Image, "load", side_effect=AssertionError("decoded")):
        result = run_import(root, mock_state())
    assert result.n_images == 6
    # 6 + notes.png + README.txt (read for its contents, which are no image)
    assert sorted(opened) == sorted(set(opened)) and len(opened) == 8


def test_images_are_recognised_by_content_not_by_extension(tmp_path):
    """As orange3-imageanalytics: a photo saved with no extension, as .jfif or .pjp
    (browsers' names for JPEG) is imported; other files are skipped with a reason."""
    Image.new("RGB", (8, 6), "red").save(tmp_path / "no-extension", "JPEG")
    Image.new("RGB", (8, 6), "red").save(tmp_path / "photo.jfif", "JPEG")
    Image.new("RGB", (5, 4), "red").save(tmp_path / "photo.pjp", "JPEG")
    Image.new("RGB", (5, 4), "red").save(tmp_path / "drawing.dat", "PNG")
    (tmp_path / "notes").write_text("no picture here")
    (tmp_path / "data.csv").write_text("a,b\n1,2\n")
    (tmp_path / "empty.bin").write_bytes(b"")
    result = run_import(str(tmp_path), mock_state())
    assert sorted(result.data.get_column("image")) == [
        "drawing.dat", "no-extension", "photo.jfif", "photo.pjp"]
    assert sorted(result.data.get_column("width")) == [5, 5, 8, 8]
    reasons = dict(zip(result.skipped.get_column("image"), result.skipped.get_column("reason")))
    assert reasons == {"data.csv": "not an image file type (.csv)",
                       "empty.bin": "empty file (0 bytes)",
                       "notes": "not an image file type (no extension)"}
    assert (result.data.name, result.skipped.name) == (tmp_path.name, "Skipped files")


def test_cancel_raises_cancelled(tmp_path):
    root = make_class_folders(tmp_path, per_class=3)
    with pytest.raises(Cancelled):
        run_import(root, mock_state(stop_after=0))
    # also between header chunks, after listing
    with patch.object(imports, "_CHUNK", 2), pytest.raises(Cancelled):
        run_import(root, mock_state(stop_after=5))


def test_single_folder_has_no_class_and_empty_folder_no_data(tmp_path):
    root = make_class_folders(tmp_path / "one", classes=("only",))
    result = run_import(os.path.join(root, "only"), mock_state())
    assert result.data.domain.class_var is None and summary(result) == "3 images; 2 skipped"
    (tmp_path / "nothing").mkdir()
    result = run_import(str(tmp_path / "nothing"), mock_state())
    assert result.data is None and result.skipped is None and summary(result) == "0 images"


def test_missing_folder_says_what_to_do(tmp_path):
    with pytest.raises(NotADirectoryError, match="choose the folder again"):
        run_import(str(tmp_path / "gone"), mock_state())


def test_probe_reports_shown_size_of_rotated_photos(tmp_path):
    image = Image.new("RGB", (40, 10))
    exif = image.getexif()
    exif[0x0112] = 6  # rotated 90 degrees: shown 10 wide, 40 high
    image.save(tmp_path / "r.jpg", exif=exif)
    info, reason = probe_image(str(tmp_path / "r.jpg"))
    assert reason is None and (info["width"], info["height"]) == (10, 40)


# --- the widget -------------------------------------------------------------------------
class TestOWImportImages(WidgetTest):
    def setUp(self):
        self.tmp = tempfile.mkdtemp()
        self.root = make_class_folders(os.path.join(self.tmp, "pets"))
        self.widget = self.create_widget(OWImportImages)

    def tearDown(self):
        super().tearDown()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_nothing_chosen(self):
        self.assertTrue(self.widget.Information.no_folder.is_shown())
        self.assertIsNone(self.get_output(self.widget.Outputs.data))

    def test_import_sends_data_and_skipped_files(self):
        self.widget.set_folder(self.root)
        data = self.get_output(self.widget.Outputs.data, wait=5000)
        skipped = self.get_output(self.widget.Outputs.skipped)
        self.assertEqual(len(data), 6)
        self.assertEqual(len(skipped), 3)
        self.assertIn("reason", [m.name for m in skipped.domain.metas])
        self.assertEqual(self.widget.info_label.text(), "6 images in 2 classes; 3 skipped")
        self.assertTrue(self.widget.Warning.skipped.is_shown())
        self.assertEqual(self.widget.recent_paths[0].abspath, self.root)

    def test_reload_sees_new_files(self):
        self.widget.set_folder(self.root)
        self.assertEqual(len(self.get_output(self.widget.Outputs.data, wait=5000)), 6)
        Image.new("RGB", (8, 8)).save(os.path.join(self.root, "dogs", "new.png"))
        self.widget.reload_button.click()
        self.process_events(lambda: len(self.get_output(self.widget.Outputs.data)) == 7)

    def test_cancel_sends_nothing_new(self):
        started, release = threading.Event(), threading.Event()

        def slow_import(folder, state):
            started.set()
            while not state.is_interruption_requested():
                release.wait(0.01)
            raise Cancelled()

        with patch.object(owimportimages, "run_import", slow_import):
            self.widget.set_folder(self.root)
            self.assertTrue(started.wait(5))
            self.assertTrue(self.widget.cancel_button.isVisibleTo(self.widget))
            self.widget.cancel_button.click()
        self.process_events(lambda: self.widget.task is None)
        self.assertEqual(self.widget.info_label.text(), "Cancelled.")
        self.assertIsNone(self.get_output(self.widget.Outputs.data))
        self.assertFalse(self.widget.cancel_button.isVisibleTo(self.widget))

    def test_folder_is_remembered_and_relocated_with_the_workflow(self):
        self.widget.set_folder(self.root)
        self.get_output(self.widget.Outputs.data, wait=5000)
        settings = self.widget.settingsHandler.pack_data(self.widget)
        # the workflow (saved in self.tmp) and its images move elsewhere together
        saved = RecentPath.create(self.root, [("basedir", self.tmp)])
        self.assertEqual((saved.prefix, saved.relpath), ("basedir", "pets"))
        moved = os.path.join(tempfile.mkdtemp(), "moved")
        settings["recent_paths"] = [saved]
        shutil.move(self.tmp, moved)
        self.tmp = moved
        widget = create_widget_in_workflow(self, OWImportImages, settings, moved)
        self.assertEqual(widget.current_folder(), os.path.join(moved, "pets"))
        data = self.get_output(widget.Outputs.data, widget=widget, wait=5000)
        self.assertEqual(image_column(data).attributes["origin"], os.path.join(moved, "pets"))
        self.assertTrue(all(os.path.exists(p) for p in image_paths(data)))

    def test_missing_folder_is_an_error_not_a_crash(self):
        gone = os.path.join(self.tmp, "gone")
        widget = self.create_widget(
            OWImportImages, stored_settings={"recent_paths": [RecentPath(gone, None, None)]})
        self.assertTrue(widget.Error.folder_missing.is_shown())
        self.assertIsNone(self.get_output(widget.Outputs.data, widget=widget))

    def test_a_lesson_saved_elsewhere_still_finds_the_installed_digits(self):
        """File > Save As of a lesson opened from the example browser: the new folder has
        no digits/, but the ones installed with the add-on are still where they were."""
        lesson, elsewhere = os.path.join(self.tmp, "installed"), os.path.join(self.tmp, "docs")
        digits = os.path.join(lesson, "digits")
        from orangecontrib.deepimage.tutorials.make_digits import write_digits
        write_digits(digits, per_class=1)
        os.makedirs(elsewhere)
        widget = create_widget_in_workflow(
            self, OWImportImages,
            {"recent_paths": [RecentPath("digits", "basedir", "digits")]}, lesson)
        self.assertEqual(widget.current_folder(), digits)
        self.get_output(widget.Outputs.data, widget=widget, wait=5000)
        settings = widget.settingsHandler.pack_data(widget)  # as saved in "docs"
        widget = create_widget_in_workflow(self, OWImportImages, settings, elsewhere)
        self.assertEqual(widget.current_folder(), digits)
        data = self.get_output(widget.Outputs.data, widget=widget, wait=5000)
        self.assertEqual(len(data), 10)
        self.assertFalse(widget.Error.active)

    def test_a_lessons_missing_digits_say_where_they_come_from(self):
        lesson = os.path.join(self.tmp, "lesson")
        os.makedirs(lesson)
        open(os.path.join(lesson, "lesson1_clustering.ows"), "w").close()
        digits = os.path.join(lesson, "digits")
        # as the lesson's workflow stores it: relative to the workflow, never written here
        stored = RecentPath("digits", "basedir", "digits")
        widget = create_widget_in_workflow(self, OWImportImages, {"recent_paths": [stored]},
                                           lesson)
        self.assertEqual(widget.current_folder(), digits)
        self.assertTrue(widget.Error.lesson_digits_missing.is_shown())
        self.assertIn(digits, str(widget.Error.lesson_digits_missing.formatted))
        self.assertFalse(widget.Error.folder_missing.is_shown())
        self.assertIn("Help > Example Workflows", str(widget.Error.lesson_digits_missing))
        self.assertNotIn("make", str(widget.Error.lesson_digits_missing))
        from orangecontrib.deepimage.tutorials.make_digits import write_digits
        write_digits(digits, per_class=1)
        widget.reload()
        data = self.get_output(widget.Outputs.data, widget=widget, wait=5000)
        self.assertEqual(len(data), 10)
        self.assertFalse(widget.Error.lesson_digits_missing.is_shown())

    def test_report_has_the_folder_counts_and_reasons(self):
        self.widget.set_folder(self.root)
        self.get_output(self.widget.Outputs.data, wait=5000)
        with patch.object(self.widget, "report_items") as report:
            self.widget.send_report()
        (main,), (title, reasons) = report.call_args_list[0][0], report.call_args_list[1][0]
        self.assertEqual(dict(main), {"Folder": self.root, "Images": "6",
                                      "Classes": "cats, dogs", "Skipped": "3"})
        self.assertEqual(title, "Skipped files")
        self.assertEqual(sum(int(n) for _, n in reasons), 3)

    def test_anchors_image_viewer_accepts_our_table(self):
        viewer_module = pytest.importorskip(
            "orangecontrib.imageanalytics.widgets.owimageviewer")
        self.widget.set_folder(self.root)
        data = self.get_output(self.widget.Outputs.data, wait=5000)
        viewer = self.create_widget(viewer_module.OWImageViewer)
        self.send_signal(viewer.Inputs.data, data, widget=viewer)
        self.assertEqual(viewer.image_attr.name, "image")
        self.assertEqual(viewer.thumbnailView.model().rowCount(), 6)
        self.assertEqual(np.sum([it.url.isLocalFile() for it in viewer.items]), 6)
