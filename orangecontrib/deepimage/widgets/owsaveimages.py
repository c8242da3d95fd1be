"""Save Images: write the images of a table to a folder, in subfolders by a column.

The work (saving.run_save -> core.save) runs off the GUI thread with progress and
cancel. Files already in the folder are never overwritten silently.
"""
from __future__ import annotations

import os
import threading
from typing import Optional

from AnyQt.QtCore import QSize, Qt
from AnyQt.QtWidgets import QFileDialog, QLabel, QPlainTextEdit
from Orange.data import DiscreteVariable, StringVariable, Table
from Orange.widgets import gui
from Orange.widgets.settings import ContextSetting, DomainContextHandler, Setting
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin
from Orange.widgets.utils.itemmodels import DomainModel
from Orange.widgets.widget import Input, Msg, OWWidget

from orangecontrib.deepimage.core.save import FORMATS, KEEP, RENAME, REPLACE, SaveOptions, SaveReport
from orangecontrib.deepimage.data import image_column
from orangecontrib.deepimage.saving import (folder_from_stored, run_save, stored_folder,
                                            summary)

EXISTING_LABELS = ((KEEP, "Keep it (do not save that image)"),
                   (RENAME, "Save under a new name (name-2, …)"),
                   (REPLACE, "Replace it"))
MAX_LISTED = 500  # skipped rows listed in the widget


class OWSaveImages(OWWidget, ConcurrentWidgetMixin):
    name = "Save Images"
    description = "Save the images of a table to a folder, in subfolders by class."
    icon = "icons/SaveImages.svg"
    priority = 50
    keywords = "save images, save, images, export, folder, deep image"

    class Inputs:
        data = Input("Data", Table)

    class Error(OWWidget.Error):
        no_image_column = Msg("The data has no image column (a text column with file names or "
                              "URLs): connect Import Images or a widget after it.")
        no_folder = Msg("Choose a folder with 'Save as…' before saving automatically.")
        failed = Msg("Could not save: {}")

    class Warning(OWWidget.Warning):
        skipped = Msg("{} could not be saved; the list below says why.")
        missing_folder = Msg("The folder {} is not on this computer (was the workflow made "
                             "on another one?), so nothing is saved there: choose a folder "
                             "with 'Save as…'.")

    class Information(OWWidget.Information):
        kept = Msg("{} already in the folder: kept, not written again. To write them, "
                   "choose 'Save under a new name' or 'Replace it' below.")

    settingsHandler = DomainContextHandler()
    settings_version = 2
    last_dir: str = Setting("")
    #: the folder, relative to the workflow's when inside it (saving.stored_folder)
    stored_path: str = Setting("", schema_only=True)
    auto_save: bool = Setting(False)
    image_attr: Optional[StringVariable] = ContextSetting(None)
    subfolder_attr: Optional[DiscreteVariable] = ContextSetting(None)
    file_format: str = Setting("png")
    resize: bool = Setting(False)
    max_side: int = Setting(512)
    existing: int = Setting(0)  # index into EXISTING_LABELS

    want_main_area = False

    def __init__(self):
        OWWidget.__init__(self)
        ConcurrentWidgetMixin.__init__(self)
        self.data: Optional[Table] = None
        self.report_: Optional[SaveReport] = None
        self._dirname = folder_from_stored(self.stored_path, self.workflowEnv().get("basedir"))
        self._stop = threading.Event()  # Stop: finish the current image, then report

        box = gui.vBox(self.controlArea, "Images")
        self.image_model = DomainModel(valid_types=(StringVariable,))
        gui.comboBox(box, self, "image_attr", model=self.image_model, label="Image column:",
                     orientation=Qt.Orientation.Horizontal, callback=self._setting_changed)
        self.subfolder_model = DomainModel(placeholder="(none: all in one folder)",
                                           valid_types=(DiscreteVariable,))
        gui.comboBox(box, self, "subfolder_attr", model=self.subfolder_model,
                     label="Subfolders by:", orientation=Qt.Orientation.Horizontal,
                     callback=self._setting_changed,
                     tooltip="One subfolder per value (the class by default), as Import "
                             "Images reads classes from subfolders")

        box = gui.vBox(self.controlArea, "Files")
        gui.comboBox(box, self, "file_format", items=tuple(FORMATS), sendSelectedValue=True,
                     label="Format:", orientation=Qt.Orientation.Horizontal,
                     callback=self._setting_changed)
        row = gui.hBox(box)
        gui.checkBox(row, self, "resize", "Shrink to fit within", callback=self._setting_changed)
        self.side_spin = gui.spin(row, self, "max_side", 16, 8192, step=16,
                                  callback=self._setting_changed)
        gui.widgetLabel(row, "px")
        gui.rubber(row)
        gui.radioButtons(box, self, "existing", [label for _, label in EXISTING_LABELS],
                         label="When a file of that name is already there:",
                         callback=self._setting_changed)
        gui.checkBox(self.controlArea, self, "auto_save",
                     "Save automatically when the data or these settings change",
                     callback=self._auto_save_changed)

        self.info_label = QLabel("No data.", wordWrap=True)
        self.info_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.skipped_view = QPlainTextEdit(readOnly=True)
        self.skipped_view.setMaximumHeight(120)
        self.skipped_view.setPlaceholderText("Images that could not be saved, with reasons.")
        box = gui.vBox(self.controlArea, "Result")
        box.layout().addWidget(self.info_label)
        box.layout().addWidget(self.skipped_view)

        self.save_button = gui.button(self.buttonsArea, self, "Save", callback=self.save)
        gui.button(self.buttonsArea, self, "Save as…", callback=self.save_as)
        self._update_controls()

    def sizeHint(self) -> QSize:
        return QSize(480, 520)

    @Inputs.data
    def set_data(self, data: Optional[Table]) -> None:
        self.closeContext()
        self.Error.no_image_column.clear()
        self.cancel()
        self.data, self.report_ = data, None
        domain = data.domain if data is not None else None
        self.image_model.set_domain(domain)
        self.subfolder_model.set_domain(domain)
        self.image_attr = self.subfolder_attr = None
        if data is not None and not self.image_model:
            self.Error.no_image_column()
            self.data = None
        if self.data is not None:
            self.image_attr = image_column(data) or self.image_model[0]
            self.subfolder_attr = domain.class_var if domain.class_var in self.subfolder_model \
                else None
            self.openContext(data)
        self._update_controls()
        if self.data is not None and self.auto_save and self.dirname:
            self.save()

    @property
    def dirname(self) -> str:
        """The absolute folder to save into ("" when none was chosen)."""
        return self._dirname

    @dirname.setter
    def dirname(self, folder: str) -> None:
        self._dirname = folder
        self.stored_path = stored_folder(folder, self.workflowEnv().get("basedir"))

    def workflowEnvChanged(self, key, value, oldvalue) -> None:
        if key == "basedir":  # the workflow was saved (elsewhere): store the folder anew
            self.stored_path = stored_folder(self._dirname, value)

    def _folder_is_missing(self) -> bool:
        return bool(self.dirname) and not os.path.isdir(self.dirname)

    # --- saving -----------------------------------------------------------------------
    def options(self) -> SaveOptions:
        return SaveOptions(self.dirname, self.file_format,
                           self.max_side if self.resize else None,
                           EXISTING_LABELS[self.existing][0])

    def save(self) -> None:
        """Save to the chosen folder (asking for one first); while saving, Stop."""
        if self.task is not None:
            self._stop.set()
            self.save_button.setText("Stopping…")
            return
        if not self.dirname:
            self.save_as()
            return
        if self.data is None:
            return
        if self._folder_is_missing():  # never made here: it is another computer's folder
            self._update_controls()
            return
        self.Error.failed.clear()
        self.Warning.skipped.clear()
        self.Information.kept.clear()
        self.skipped_view.clear()
        self.info_label.setText(f"Saving {len(self.data):,} images to {self.dirname}…")
        self._stop = threading.Event()
        self.start(run_save, self.data, self.image_attr, self.subfolder_attr, self.options(),
                   stop=self._stop.is_set)
        self._update_controls()

    def save_as(self) -> None:
        start = self.dirname or self.last_dir or os.path.expanduser("~")
        folder = QFileDialog.getExistingDirectory(self, "Save images into folder", start)
        if not folder:
            return
        self.dirname = folder
        self.last_dir = os.path.dirname(folder)
        self.Error.no_folder.clear()
        self.cancel()
        self.save()

    def on_done(self, report: SaveReport) -> None:
        self.report_ = report
        self.info_label.setText(summary(report, self.dirname))
        others = [s for s in report.skipped if "already there and was kept" not in s.reason]
        self.Warning.skipped(f"{len(others):,} image" + "s" * (len(others) != 1),
                             shown=bool(others))
        self.Information.kept(f"{report.already_there:,} image" +
                              "s were" * (report.already_there != 1) +
                              " was" * (report.already_there == 1),
                              shown=bool(report.already_there))
        lines = [f"row {s.index + 1}: {s.source or '(no file name)'}: {s.reason}"
                 for s in report.skipped[:MAX_LISTED]]
        if len(report.skipped) > MAX_LISTED:
            lines.append(f"… and {len(report.skipped) - MAX_LISTED:,} more")
        self.skipped_view.setPlainText("\n".join(lines))
        self._update_controls()

    def on_exception(self, ex: Exception) -> None:
        self.Error.failed(f"{ex}. Choose a folder you can write to.")
        self.info_label.setText("Nothing saved.")
        self._update_controls()

    def on_partial_result(self, _) -> None:
        pass

    # --- settings ---------------------------------------------------------------------
    def _setting_changed(self) -> None:
        self._update_controls()
        if self.auto_save and self.dirname and self.data is not None:
            self.cancel()
            self.save()

    def _auto_save_changed(self) -> None:
        self._update_controls()
        if self.auto_save and self.dirname and self.data is not None:
            self.save()

    def _update_controls(self) -> None:
        self.side_spin.setEnabled(self.resize)
        self.Error.no_folder(shown=self.auto_save and not self.dirname)
        self.Warning.missing_folder(self.dirname, shown=self._folder_is_missing())
        running = self.task is not None
        self.save_button.setText("Stop" if running else
                                 f"Save to {os.path.basename(self.dirname)}" if self.dirname
                                 else "Save")
        self.save_button.setEnabled(running or self.data is not None or not self.dirname)
        if self.data is None and not running:
            self.info_label.setText("No data.")
        elif not running and self.report_ is None:
            self.info_label.setText(f"{len(self.data):,} images to save.")

    @classmethod
    def migrate_settings(cls, settings: dict, version: Optional[int]) -> None:
        if (version or 0) < 2 and "dirname" in settings:  # an absolute folder, till 2
            settings["stored_path"] = settings.pop("dirname")

    def send_report(self) -> None:
        items = [("Folder", self.dirname or "(not chosen)"), ("Subfolders by", self.subfolder_attr),
                 ("Format", self.file_format),
                 ("Size", f"fit within {self.max_side} px" if self.resize else "as they are")]
        if self.report_ is not None:
            items += [("Written", len(self.report_.written)),
                      ("Not saved", len(self.report_.skipped))]
        self.report_items(items)

    def onDeleteWidget(self) -> None:
        self.shutdown()
        super().onDeleteWidget()


if __name__ == "__main__":  # pragma: no cover
    import sys

    from orangewidget.utils.widgetpreview import WidgetPreview

    from orangecontrib.deepimage.core.images import find_images
    from orangecontrib.deepimage.data import image_table

    folder = sys.argv[1] if len(sys.argv) > 1 else "."
    WidgetPreview(OWSaveImages).run(image_table(find_images(folder), folder))
