"""Label Images' class buttons: one per class, numbered for the keys 1-9, with counts."""
from __future__ import annotations

from typing import Optional, Sequence

from AnyQt.QtCore import Qt, pyqtSignal as Signal
from AnyQt.QtGui import QColor, QIcon, QPixmap
from AnyQt.QtWidgets import QGridLayout, QInputDialog, QPushButton, QSizePolicy, QWidget

__all__ = ["ClassButtons", "class_colors", "class_keys", "ask_new_class", "ask_rename",
           "ask_merge"]


def class_keys(classes: Sequence[str]) -> dict:
    """Which number key labels which class: when every class is named by one digit
    (the digits of a lesson), a key types its class ('3' labels 3); otherwise keys 1-9
    label the first nine classes in order. Key 0 is free (unlabel) in the second case."""
    if classes and all(len(c) == 1 and c.isdigit() for c in classes):
        return {int(c): c for c in classes}
    return {i + 1: c for i, c in enumerate(classes[:9])}


def class_colors(n: int) -> list:
    """Orange's colours for ``n`` classes (as its discrete palettes colour them)."""
    from Orange.widgets.utils.colorpalettes import LimitedDiscretePalette
    return [QColor(c) for c in LimitedDiscretePalette(max(n, 1)).qcolors[:n]]


def _swatch(color: QColor) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(color)
    return QIcon(pixmap)


class ClassButtons(QWidget):
    """A button per class, "1: cat (12)" (digit-named classes in their order, "3 (12)");
    ``clicked(name)`` when a class's button is pressed."""

    clicked = Signal(str)
    COLUMNS = 2

    def __init__(self, parent: Optional[QWidget] = None):
        super().__init__(parent)
        self.buttons: list[QPushButton] = []
        layout = QGridLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)

    def set_classes(self, names: Sequence[str], counts: Sequence[int],
                    colors: Sequence[QColor]) -> None:
        """Show these classes (rebuilding the buttons only when the names changed)."""
        keys = {name: key for key, name in class_keys(names).items()}
        order = sorted(range(len(names)), key=lambda i: keys.get(names[i], 99)) \
            if names and len(keys) == len(names) else range(len(names))
        names, counts, colors = ([seq[i] for i in order] for seq in (names, counts, colors))
        if [b.property("class_name") for b in self.buttons] != list(names):
            for button in self.buttons:
                self.layout().removeWidget(button)
                button.deleteLater()
            self.buttons = []
            for i, name in enumerate(names):
                button = QPushButton(self)
                button.setProperty("class_name", name)
                button.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
                button.clicked.connect(lambda _=False, n=name: self.clicked.emit(n))
                self.layout().addWidget(button, i // self.COLUMNS, i % self.COLUMNS)
                self.buttons.append(button)
        for button, name, count, color in zip(self.buttons, names, counts, colors):
            key = keys.get(name)
            shown = name if key is not None and str(key) == name else \
                (f"{key}: {name}" if key is not None else name)
            button.setText(f"{shown} ({count:,})")
            button.setIcon(_swatch(color))
            button.setToolTip(f"Label the selected images as '{name}'"
                              + (f" (key {key})" if key is not None else ""))
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # the keys stay with the grid


# --- the dialogs of Add, Rename and Merge: they only ask; the widget changes the session ---

def ask_new_class(parent: QWidget) -> Optional[str]:
    """The name of a new class, or None when cancelled."""
    name, ok = QInputDialog.getText(parent, "Add a class", "Name of the new class:")
    return name if ok else None


def _pick(parent: QWidget, title: str, prompt: str, names: Sequence[str],
          editable: bool = False) -> Optional[str]:
    if not names:
        return None
    name, ok = QInputDialog.getItem(parent, title, prompt, list(names), 0, editable)
    return name if ok else None


def ask_rename(parent: QWidget, classes: Sequence[str]) -> Optional[tuple]:
    """(old name, new name), or None when cancelled."""
    old = _pick(parent, "Rename a class", "Class to rename:", classes)
    if old is None:
        return None
    new, ok = QInputDialog.getText(parent, "Rename a class", f"New name of '{old}':",
                                   text=old)
    return (old, new) if ok else None


def ask_merge(parent: QWidget, classes: Sequence[str]) -> Optional[tuple]:
    """(the class to merge, the class it goes into; a new name is allowed), or None."""
    source = _pick(parent, "Merge classes", "Merge the class:", classes)
    if source is None:
        return None
    target = _pick(parent, "Merge classes", f"Into (the labels of '{source}' move "
                   "into this class):", [c for c in classes if c != source], True)
    return (source, target) if target else None
