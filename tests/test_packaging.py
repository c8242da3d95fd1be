"""The installed distribution registers what Orange and the shell look for."""
import os
from importlib import import_module
from importlib.metadata import distribution

import pytest


def entry_points():
    return {(ep.group, ep.name): ep for ep in distribution("Orange3-DeepImage").entry_points}


def test_entry_points_resolve():
    points = entry_points()
    assert points[("orange3.addon", "Orange3-DeepImage")].value == "orangecontrib.deepimage"
    widgets = import_module(points[("orange.widgets", "Deep Image")].value)
    assert widgets.NAME == "Deep Image" and widgets.ICON.endswith(".svg")
    help_path = points[("orange.canvas.help", "html-index")].load()
    assert all(isinstance(path, str) for path, _ in help_path)
    # a wheel's help first: the site built into the package (setup.py BuildWithHelp)
    package = import_module("orangecontrib.deepimage").__path__[0]
    assert help_path[0] == (os.path.join(package, "help", "index.html"), None)
    assert help_path[1][0].endswith(os.path.join("doc", "_build", "html", "index.html"))
    assert points[("console_scripts", "deepimage")].load().__name__ == "main"


def test_dependencies_and_extras():
    requires = distribution("Orange3-DeepImage").requires
    names = {r.split(";")[0].split(">")[0].split("=")[0].strip().lower() for r in requires}
    for name in ("orange3", "orange-widget-base", "anyqt", "torch", "torchvision", "ndf",
                 "scikit-learn", "pillow", "numpy", "tifffile", "onnxruntime-gpu", "onnxruntime"):
        assert name in names, name
    gpu = next(r for r in requires if r.startswith("onnxruntime-gpu"))
    assert 'platform_machine == "x86_64"' in gpu
    extras = set(distribution("Orange3-DeepImage").metadata.get_all("Provides-Extra"))
    assert {"server", "test", "bench", "doc", "cluster"} <= extras


def test_a_wheel_built_beside_sphinx_carries_the_widget_help(tmp_path):
    """`pip wheel --no-build-isolation .` in an environment with Sphinx (a developer's
    .venv) builds the site inside build_py and ships it as F1 help; build_py has no
    build_temp of its own, which once made this path fail."""
    import shutil
    import subprocess
    import sys
    import zipfile
    pytest.importorskip("sphinx", reason="the path under test builds the site with Sphinx")
    pytest.importorskip("myst_parser", reason="the path under test builds the site with MyST")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    source = tmp_path / "src"
    shutil.copytree(root, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "dist", "_build", "__pycache__", "*.egg-info"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(tmp_path / "dist"), str(source)],
                   check=True, env={**os.environ, "DEEPIMAGE_REQUIRE_HELP": "1"})
    wheel, = (tmp_path / "dist").glob("orange3_deepimage-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "orangecontrib/deepimage/help/index.html" in names
    assert any(n.startswith("orangecontrib/deepimage/help/widgets/") for n in names)
