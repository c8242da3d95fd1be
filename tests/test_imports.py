"""The engine must run without Qt or Orange's GUI (the CLI and the server need that).

data.py is not checked: Orange.data itself imports AnyQt (for its translations) in
Orange 3.40, so only code that avoids Orange tables can be Qt-free.
"""
import pytest
from fresh_python import run_python

GUI = ("AnyQt", "PyQt5", "PyQt6", "PySide2", "PySide6")


@pytest.mark.parametrize("module", ["orangecontrib.deepimage.core",
                                    "orangecontrib.deepimage.core.local_embedder",
                                    "orangecontrib.deepimage.cli",
                                    "orangecontrib.deepimage.client",
                                    "orangecontrib.deepimage.server.app",
                                    "orangecontrib.deepimage.cli.serve",
                                    "orangecontrib.deepimage.server.launch",
                                    "orangecontrib.deepimage.server.routes.orange",
                                    "orangecontrib.deepimage.server.routes.v1",
                                    "orangecontrib.deepimage.server.routes.health",
                                    "orangecontrib.deepimage.core.train",
                                    "orangecontrib.deepimage.core.save",
                                    "orangecontrib.deepimage.grid",
                                    "orangecontrib.deepimage.core.explain",
                                    "orangecontrib.deepimage.cli.explain"])
def test_no_gui_modules_are_imported(module):
    code = (f"import sys, {module}\n"
            f"from orangecontrib.deepimage.core import Embedder\n"
            f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {GUI!r} "
            f"or m.startswith(('Orange.widgets', 'Orange.canvas', 'orangewidget', "
            f"'orangecanvas')))\n"
            f"print(' '.join(bad))")
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_listing_models_does_not_import_torch():
    code = ("import sys\nfrom orangecontrib.deepimage.core.models import MODELS\n"
            "print('torch' in sys.modules)")
    proc = run_python(code)
    assert proc.stdout.strip() == "False"
