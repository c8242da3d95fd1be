"""Save a table's images to a folder: the work behind Save Images. No Qt.

Rows become core.save.SaveItems (source path, subfolder from a categorical column,
file name from the image's own name) and core.save writes them.
"""
from __future__ import annotations

import os
from typing import Callable, Optional, Protocol

from Orange.data import DiscreteVariable, StringVariable, Table

from .core.save import SaveItem, SaveOptions, SaveReport, file_stem, safe_subfolder, save_images
from .data import image_paths

__all__ = ["save_items", "run_save", "summary", "stored_folder", "folder_from_stored"]


class State(Protocol):
    """What run_save needs of Orange's TaskState."""

    def set_status(self, text: str) -> None: ...
    def set_progress_value(self, value: float) -> None: ...
    def is_interruption_requested(self) -> bool: ...


def save_items(table: Table, image_var: StringVariable,
               group_var: Optional[DiscreteVariable] = None) -> "list[SaveItem]":
    """One SaveItem per row; the subfolder is the row's value of ``group_var`` (none
    when it is missing or when there is no ``group_var``)."""
    paths = image_paths(table, image_var)
    groups = [""] * len(table)
    if group_var is not None:
        values = table.get_column(group_var)
        groups = ["" if value != value else safe_subfolder(group_var.values[int(value)])
                  for value in values]
    return [SaveItem(i, path, group, file_stem(path, i) if path else "")
            for i, (path, group) in enumerate(zip(paths, groups, strict=True))]


def stored_folder(folder: str, basedir: "str | None") -> str:
    """How a workflow stores the folder, as Orange's own save widgets do: relative to
    the workflow's folder ``basedir`` when inside it (so the workflow and its images
    move together, to another computer too), else absolute."""
    if not folder or not basedir:
        return folder
    try:
        relative = os.path.relpath(folder, basedir)
    except ValueError:  # on Windows, another drive
        return folder
    return folder if relative == ".." or relative.startswith(".." + os.sep) else relative


def folder_from_stored(stored: str, basedir: "str | None") -> str:
    """The absolute folder for a stored one (``stored_folder``): a relative one is joined
    to the workflow's folder. Whether it exists is for the caller to check: a folder
    from a workflow made elsewhere is never created (it may be C:\\Users\\... there)."""
    if not stored or os.path.isabs(stored) or not basedir:
        return stored
    return os.path.normpath(os.path.join(basedir, stored))


def run_save(table: Table, image_var: StringVariable, group_var: Optional[DiscreteVariable],
             options: SaveOptions, state: State,
             stop: Callable[[], bool] = lambda: False) -> SaveReport:
    """Write the images of ``table`` as ``options`` say, with progress. On interruption,
    or when ``stop()`` turns true (a Stop that still wants the report), the images
    written so far stay and the report says ``cancelled``."""
    items = save_items(table, image_var, group_var)
    state.set_status(f"Saving {len(items):,} images to {options.folder}…")

    def progress(done: int, total: int) -> None:
        state.set_progress_value(100 * done / max(total, 1))

    return save_images(items, options,
                       lambda: stop() or state.is_interruption_requested(), progress)


def summary(report: SaveReport, folder: str) -> str:
    """One or two lines for people: what was written where, and what was not."""
    text = f"Wrote {len(report.written):,} of {report.total:,} images to {folder}"
    subfolders = {os.path.dirname(target) for _, target in report.written} - {folder}
    if subfolders:
        text += f", in {len(subfolders):,} subfolder" + "s" * (len(subfolders) > 1)
    if report.cancelled:
        text = "Cancelled. " + text
    notes = []
    if report.renamed:
        notes.append(f"{report.renamed:,} under new names (name-2, …) to keep existing files")
    if report.replaced:
        notes.append(f"{report.replaced:,} replaced files of the same name")
    if report.already_there:
        notes.append(f"{report.already_there:,} not written: a file of that name is already "
                     "there and was kept")
    others = len(report.skipped) - report.already_there
    if others:
        notes.append(f"{others:,} could not be saved (see the list)")
    return text + (":\n" + ";\n".join(notes) + "." if notes else ".")
