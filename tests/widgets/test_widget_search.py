"""With orange3-imageanalytics installed too, Orange Canvas lists two "Import Images"
and two "Image Viewer" (the names are kept so that habits carry over). Ours are told
apart: the search "deep image" finds every one of our widgets and none of theirs, the
tooltip names our distribution, and the category has its own colour."""
import importlib
import os
import pkgutil

import pytest
from orangecanvas.registry import WidgetDescription
from orangecanvas.registry.qt import tooltip_helper
from orangecanvas.registry.utils import search_filter_query_helper
from orangewidget.widget import OWBaseWidget

import orangecontrib.deepimage.widgets as ours


def descriptions(package) -> list:
    found = []
    for module in pkgutil.iter_modules(package.__path__):
        if not module.name.startswith("ow"):
            continue
        loaded = importlib.import_module(f"{package.__name__}.{module.name}")
        for value in vars(loaded).values():
            if (isinstance(value, type) and issubclass(value, OWBaseWidget)
                    and value.__module__ == loaded.__name__ and value.name):
                desc = WidgetDescription(**value.get_widget_description())
                desc.project_name = "Orange3-DeepImage" if package is ours else "theirs"
                found.append(desc)
    return found


def test_the_search_deep_image_finds_all_of_ours_and_none_of_theirs():
    mine = descriptions(ours)
    assert len(mine) >= 4
    assert all(search_filter_query_helper(d, "deep image") for d in mine), \
        [d.name for d in mine if not search_filter_query_helper(d, "deep image")]
    assert all("(from Orange3-DeepImage)" in tooltip_helper(d) for d in mine)
    theirs = pytest.importorskip("orangecontrib.imageanalytics.widgets")
    others = descriptions(theirs)
    assert others and not [d.name for d in others if search_filter_query_helper(d, "deep")]
    assert ours.BACKGROUND.lower() != theirs.BACKGROUND.lower()
    assert os.path.basename(ours.ICON) != os.path.basename(theirs.ICON)
