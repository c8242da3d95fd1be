"""Save Images' folder in a workflow (issue 21, item 6): stored relative to the workflow
as Orange's own save widgets store theirs, so a workflow and its folder move together;
a folder from a workflow made on another computer is never created, only warned about
(auto-save included); workflows saved before (an absolute ``dirname``) still open."""
import ntpath
import os
import shutil
import tempfile
from contextlib import contextmanager
from types import MappingProxyType
from unittest import mock

from image_folders import make_class_folders
from Orange.widgets.tests.base import WidgetTest

from orangecontrib.deepimage import saving
from orangecontrib.deepimage.imports import run_import
from orangecontrib.deepimage.saving import folder_from_stored, stored_folder
from orangecontrib.deepimage.widgets.owsaveimages import OWSaveImages
from tests_state import State


def test_stored_folder_is_relative_inside_the_workflow_folder():
    assert stored_folder("/w/lesson/out", "/w/lesson") == "out"
    assert stored_folder("/w/lesson/a/b", "/w/lesson") == os.path.join("a", "b")
    assert stored_folder("/w/other", "/w/lesson") == "/w/other"
    assert stored_folder("/w/lesson", "/w/lesson") == "."
    assert stored_folder("/w/out", None) == "/w/out"
    assert folder_from_stored("out", "/elsewhere/lesson") == "/elsewhere/lesson/out"
    assert folder_from_stored("/w/other", "/elsewhere") == "/w/other"
    assert folder_from_stored(".", "/w/lesson") == "/w/lesson"


def test_stored_folder_on_windows_drives(monkeypatch):
    monkeypatch.setattr(saving, "os", type("os", (), {"path": ntpath, "sep": "\\"}))
    assert stored_folder(r"C:\w\lesson\out", r"C:\w\lesson") == "out"
    assert stored_folder(r"D:\out", r"C:\w\lesson") == r"D:\out"  # relpath's ValueError
    assert folder_from_stored("out", r"C:\w\lesson") == r"C:\w\lesson\out"


@contextmanager
def basedir(folder: str):
    """The widgets see a workflow saved in ``folder`` (its env's "basedir", as Orange
    Canvas gives it; WidgetTest.create_widget takes no env before orange-widget-base 4.23)."""
    with mock.patch.object(OWSaveImages, "workflowEnv",
                           lambda self: MappingProxyType({"basedir": folder})):
        yield


class TestSaveImagesFolder(WidgetTest):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.images = run_import(make_class_folders(os.path.join(cls.tmp, "pets")),
                                State()).data[:2]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def workflow(self, name):
        folder = os.path.join(self.tmp, name)
        os.makedirs(os.path.join(folder, "out"), exist_ok=True)
        return folder

    def test_folder_inside_the_workflow_is_stored_relative_and_moves_with_it(self):
        here = self.workflow("here")
        with basedir(here):
            widget = self.create_widget(OWSaveImages)
            widget.dirname = os.path.join(here, "out")
            settings = widget.settingsHandler.pack_data(widget)
        self.assertEqual(settings["stored_path"], "out")
        moved = self.workflow("moved")  # the workflow copied to another computer
        with basedir(moved):
            restored = self.create_widget(OWSaveImages, stored_settings=settings)
            self.assertEqual(restored.dirname, os.path.join(moved, "out"))
        self.assertFalse(restored.Warning.missing_folder.is_shown())

    def test_saving_the_workflow_elsewhere_stores_the_folder_anew(self):
        here = self.workflow("later")
        widget = self.create_widget(OWSaveImages)
        widget.dirname = os.path.join(here, "out")
        self.assertEqual(widget.stored_path, os.path.join(here, "out"))
        widget.workflowEnvChanged("basedir", here, None)
        self.assertEqual(widget.stored_path, "out")

    def test_a_missing_folder_from_another_computer_is_never_created(self):
        gone = os.path.join(self.tmp, "C:\\home\\teacher\\out" if os.sep == "/" else "gone")
        settings = {"stored_path": gone, "auto_save": True, "__version__": 2}
        with basedir(self.workflow("opened")):
            widget = self.create_widget(OWSaveImages, stored_settings=settings)
            self.assertTrue(widget.Warning.missing_folder.is_shown())
            self.send_signal(widget.Inputs.data, self.images)  # auto-save would run here
            widget.save()
            self.wait_until_finished(widget, timeout=10000)
        self.assertFalse(os.path.exists(gone))
        self.assertIsNone(widget.report_)
        self.assertTrue(widget.Warning.missing_folder.is_shown())

    def test_old_workflows_with_an_absolute_dirname_open(self):
        out = os.path.join(self.workflow("old"), "out")
        widget = self.create_widget(OWSaveImages,
                                    stored_settings={"dirname": out, "__version__": 1})
        self.assertEqual(widget.dirname, out)
        self.send_signal(widget.Inputs.data, self.images)
        widget.save()
        self.wait_until_finished(widget, timeout=30000)
        self.assertEqual(len(widget.report_.written), 2)
