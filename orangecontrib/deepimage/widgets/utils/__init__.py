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
