"""Small Qt helpers shared by the Deep Image widgets."""
from AnyQt.QtCore import Qt
from AnyQt.QtGui import QStandardItem, QStandardItemModel


def fill_combo_items(model: QStandardItemModel, entries) -> None:
    """Replace ``model``'s rows with (key, label, enabled, tooltip) entries; the key is
    kept as the item's UserRole data, and a disabled entry shows why in its tooltip."""
    model.clear()
    for key, label, enabled, tooltip in entries:
        item = QStandardItem(label)
        item.setData(key, Qt.ItemDataRole.UserRole)
        item.setToolTip(tooltip)
        item.setEnabled(enabled)
        model.appendRow(item)


def fill_device_combo(combo, current: str, gpu: bool) -> None:
    """Fill a device combo from core.devices.DEVICE_LABELS, each item's data its key
    ("auto", "cpu", "cuda"), and select ``current``. Without a GPU (``gpu`` False: the
    widget's cuda_possible()) the "cuda" entry is disabled and says why."""
    from orangecontrib.deepimage.core.devices import DEVICE_LABELS
    combo.clear()
    for key, label in DEVICE_LABELS:
        combo.addItem(label, key)
    if not gpu:
        item = combo.model().item(combo.findData("cuda"))
        item.setEnabled(False)
        item.setToolTip("No NVIDIA GPU driver on this computer.")
    combo.setCurrentIndex(max(combo.findData(current), 0))
