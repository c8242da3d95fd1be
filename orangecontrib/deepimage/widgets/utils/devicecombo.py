"""The device chooser of Image Embedder and Trainer (one place for both)."""
from __future__ import annotations

from AnyQt.QtCore import Qt
from AnyQt.QtGui import QStandardItemModel
from AnyQt.QtWidgets import QComboBox

from orangecontrib.deepimage.core.devices import DEVICE_LABELS, device_choices, usable_or_auto
from orangecontrib.deepimage.widgets.utils import fill_combo_items

__all__ = ["DeviceCombo"]


class DeviceCombo(QComboBox):
    """Every device of core.devices; those that do not work on this computer (no CUDA
    GPU, not an Apple Silicon Mac) are disabled and say why.

    A saved choice that does not work here (a workflow saved on a computer with a GPU)
    shows Automatic and :attr:`warning` says so; the widget keeps its setting, so the
    workflow still asks for the GPU where there is one.
    """

    def __init__(self, device: str, tooltip: str, parent=None):
        super().__init__(parent)
        self.setToolTip(tooltip)
        self.items = QStandardItemModel(self)
        self.setModel(self.items)
        fill_combo_items(self.items, [(c.device, c.label, c.usable, c.why_not or tooltip)
                                      for c in device_choices()])
        self.warning = ""
        self.set_device(device)

    def keys(self) -> list[str]:
        return [self.items.item(i).data(Qt.ItemDataRole.UserRole)
                for i in range(self.items.rowCount())]

    def set_device(self, device: str) -> None:
        """Show ``device``, or Automatic (and set :attr:`warning`) when it does not work."""
        usable, self.warning = usable_or_auto(device)
        if usable not in self.keys():  # e.g. cuda:1 from a hand-written workflow
            usable = "auto"
        self.setCurrentIndex(self.keys().index(usable))

    def device(self) -> str:
        """The device the network runs on: the shown choice."""
        return self.keys()[max(self.currentIndex(), 0)]

    def label(self) -> str:
        return dict(DEVICE_LABELS)[self.device()]
