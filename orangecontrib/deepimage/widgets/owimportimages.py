"""Import Images: a folder of images (class from subfolders) as an Orange table.

The work (listing, reading headers, building the tables) is ``imports.run_import``,
run off the GUI thread; this widget only keeps the folder and shows progress.
"""
from __future__ import annotations

import collections
import os
from typing import List, Optional

from AnyQt.QtCore import QSize, Qt
from AnyQt.QtGui import QDragEnterEvent, QDropEvent
from AnyQt.QtWidgets import QComboBox, QFileDialog, QLabel, QPushButton, QSizePolicy, QStyle
from Orange.data import Table
from Orange.widgets import gui
from Orange.widgets.settings import Setting
from Orange.widgets.utils.concurrent import ConcurrentWidgetMixin
from Orange.widgets.utils.filedialogs import RecentPath
from Orange.widgets.widget import Msg, Output, OWWidget

from orangecontrib.deepimage.core.cancel import Cancelled
from orangecontrib.deepimage.imports import ImportResult, run_import, summary

MAX_RECENT = 15


def is_lesson_digits(folder: str) -> bool:
    """The 'digits' folder beside a lesson's workflow (tutorials/lesson*.ows)."""
    parent = os.path.dirname(os.path.normpath(folder))
    if os.path.basename(os.path.normpath(folder)) != "digits":
        return False
    try:
        return any(n.startswith("lesson") and n.endswith(".ows") for n in os.listdir(parent))
    except OSError:
        return False


class OWImportImages(OWWidget, ConcurrentWidgetMixin):
    name = "Import Images"
    description = "Import a folder of images; subfolders become classes."
    icon = "icons/ImportImages.svg"
    priority = 10
    keywords = "deep image, import images, folder, directory, load, read, photos"

    class Outputs:
        data = Output("Data", Table, default=True,
                      doc="One row per image: name, path (type=image), size, width, height.")
        skipped = Output("Skipped Files", Table,
                         doc="Files that are not usable images, with the reason.")

    class Error(OWWidget.Error):
        folder_missing = Msg("Folder '{}' was not found. Choose it again with the '…' button.")
        lesson_digits_missing = Msg(
            "The lesson's digits are not in '{}'. They come with the add-on: open the "
            "lesson again from Help > Example Workflows, or reinstall Orange3-DeepImage "
            "(Options > Add-ons).")
        failed = Msg("Import failed: {}")

    class Warning(OWWidget.Warning):
        no_images = Msg("No images in '{}'.")
        skipped = Msg("{} skipped: see the Skipped Files output.")

    class Information(OWWidget.Information):
        no_folder = Msg("Choose a folder with images (or drop one here).")

    want_main_area = False
    resizing_enabled = False

    settings_version = 1
    #: folders used, newest first; RecentPath keeps them relative to the workflow
    recent_paths: List[RecentPath] = Setting([])

    def __init__(self):
        OWWidget.__init__(self)
        ConcurrentWidgetMixin.__init__(self)
        self.result: Optional[ImportResult] = None
        self.setAcceptDrops(True)

        box = gui.hBox(self.controlArea, "Folder")
        self.folder_combo = QComboBox(
            minimumContentsLength=24,
            sizeAdjustPolicy=QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.folder_combo.activated.connect(self._on_recent_activated)
        box.layout().addWidget(self.folder_combo)
        style = self.style()
        self.browse_button = QPushButton(
            "…", toolTip="Choose a folder of images",
            icon=style.standardIcon(QStyle.StandardPixmap.SP_DirOpenIcon))
        self.browse_button.clicked.connect(self.browse)
        box.layout().addWidget(self.browse_button)
        self.reload_button = QPushButton(
            "Reload", toolTip="Import the folder again (after files were added or removed)",
            icon=style.standardIcon(QStyle.StandardPixmap.SP_BrowserReload))
        self.reload_button.clicked.connect(self.reload)
        box.layout().addWidget(self.reload_button)

        info = gui.hBox(self.controlArea, "Info")
        self.info_label = QLabel("No folder chosen.", wordWrap=True)
        self.info_label.setSizePolicy(QSizePolicy.Policy.Expanding,
                                      QSizePolicy.Policy.Preferred)
        info.layout().addWidget(self.info_label)
        self.cancel_button = QPushButton(
            "Cancel", icon=style.standardIcon(QStyle.StandardPixmap.SP_DialogCancelButton))
        self.cancel_button.clicked.connect(self.cancel_import)
        self.cancel_button.setVisible(False)
        info.layout().addWidget(self.cancel_button)

        self._relocate()
        self._update_combo()
        if self.current_folder() is not None:
            self.reload()
        else:
            self.Information.no_folder()

    def sizeHint(self) -> QSize:
        return QSize(460, 150)

    # --- the folder ---------------------------------------------------------------
    def _search_paths(self) -> list:
        basedir = self.workflowEnv().get("basedir")
        return [("basedir", basedir)] if basedir else []

    def _relocate(self) -> None:
        """Find the saved folders again when the workflow was moved with its images."""
        search_paths = self._search_paths()
        relocated = []
        basedir = dict(search_paths).get("basedir")
        for recent in self.recent_paths:
            resolved = recent.resolve(search_paths)
            path = resolved.abspath if resolved is not None else recent.search(search_paths)
            if not path and os.path.isabs(recent.abspath) and os.path.isdir(recent.abspath):
                # the workflow was saved elsewhere without its images: they are still
                # where they were (the lesson's digits, installed with the add-on)
                path = recent.abspath
            if not path and basedir and recent.prefix == "basedir" and recent.relpath:
                # not there (yet): where the workflow expects it, so that the error names
                # the real place and Reload finds it once it is written
                path = os.path.join(basedir, recent.relpath)
            relocated.append(RecentPath.create(path, search_paths) if path else recent)
        self.recent_paths = relocated

    def workflowEnvChanged(self, key, value, oldvalue):
        super().workflowEnvChanged(key, value, oldvalue)
        if key == "basedir":
            self._relocate()
            self._update_combo()

    def current_folder(self) -> Optional[str]:
        return self.recent_paths[0].abspath if self.recent_paths else None

    def _update_combo(self) -> None:
        self.folder_combo.clear()
        icon = self.style().standardIcon(QStyle.StandardPixmap.SP_DirIcon)
        for recent in self.recent_paths:
            name = os.path.basename(os.path.normpath(recent.abspath)) or recent.abspath
            self.folder_combo.addItem(icon, name)
            self.folder_combo.setItemData(self.folder_combo.count() - 1, recent.abspath,
                                          Qt.ItemDataRole.ToolTipRole)
        self.folder_combo.setCurrentIndex(0 if self.recent_paths else -1)
        self.folder_combo.setToolTip(self.current_folder() or "")
        self.reload_button.setEnabled(bool(self.recent_paths))

    def set_folder(self, path: str) -> None:
        """Make ``path`` the current folder (first in the recent list) and import it."""
        recent = RecentPath.create(path, self._search_paths())
        self.recent_paths = [recent] + [r for r in self.recent_paths if r != recent]
        del self.recent_paths[MAX_RECENT:]
        self._update_combo()
        self.reload()

    def _on_recent_activated(self, index: int) -> None:
        if 0 <= index < len(self.recent_paths):
            self.set_folder(self.recent_paths[index].abspath)

    def browse(self) -> None:
        start = os.path.dirname(self.current_folder()) if self.current_folder() \
            else os.path.expanduser("~")
        path = QFileDialog.getExistingDirectory(self, "Folder with images", start)
        if path:
            self.set_folder(path)

    # --- drag and drop of a folder ------------------------------------------------
    @staticmethod
    def _dropped_folder(event) -> Optional[str]:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        for url in urls:
            if url.isLocalFile() and os.path.isdir(url.toLocalFile()):
                return url.toLocalFile()
        return None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._dropped_folder(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        folder = self._dropped_folder(event)
        if folder:
            event.acceptProposedAction()
            self.set_folder(folder)

    # --- the import -----------------------------------------------------------------
    def reload(self) -> None:
        """(Re)import the current folder in a worker thread."""
        self.Error.clear()
        self.Warning.clear()
        self.Information.clear()
        folder = self.current_folder()
        if folder is None:
            self.Information.no_folder()
            return
        if not os.path.isdir(folder):
            self.cancel_import()
            if is_lesson_digits(folder):
                self.Error.lesson_digits_missing(folder)
            else:
                self.Error.folder_missing(folder)
            self._send(None)
            return
        self.info_label.setText(f"Importing {folder}…")
        self.cancel_button.setVisible(True)
        self.start(run_import, folder)

    def cancel_import(self) -> None:
        if self.task is not None:
            self.cancel()
            self.info_label.setText("Cancelled.")
        self.cancel_button.setVisible(False)

    def on_done(self, result: ImportResult) -> None:
        self.cancel_button.setVisible(False)
        self.info_label.setText(summary(result))
        if result.data is None:
            self.Warning.no_images(result.root)
        if result.n_skipped:
            self.Warning.skipped(f"{result.n_skipped:,} file" + "s" * (result.n_skipped > 1))
        self._send(result)

    def on_exception(self, ex: Exception) -> None:
        self.cancel_button.setVisible(False)
        if isinstance(ex, Cancelled):
            self.info_label.setText("Cancelled.")
            return
        self.info_label.setText("Import failed.")
        self.Error.failed(str(ex))
        self._send(None)

    def on_partial_result(self, _) -> None:
        pass

    def _send(self, result: Optional[ImportResult]) -> None:
        self.result = result
        self.Outputs.data.send(result.data if result else None)
        self.Outputs.skipped.send(result.skipped if result else None)

    def send_report(self) -> None:
        result = self.result
        items = [("Folder", self.current_folder() or "none")]
        if result is not None:
            items += [("Images", f"{result.n_images:,}"),
                      ("Classes", ", ".join(result.data.domain.class_var.values)
                       if result.data is not None and result.data.domain.class_var
                       else "none (no subfolders)"),
                      ("Skipped", f"{result.n_skipped:,}")]
        self.report_items(items)
        if result is not None and result.skipped is not None:
            reasons = collections.Counter(result.skipped.get_column("reason"))
            self.report_items("Skipped files", [(reason, f"{n:,}")
                                                for reason, n in reasons.most_common(10)])

    def onDeleteWidget(self) -> None:
        self.shutdown()
        super().onDeleteWidget()


if __name__ == "__main__":  # pragma: no cover
    from orangewidget.utils.widgetpreview import WidgetPreview

    WidgetPreview(OWImportImages).run()
