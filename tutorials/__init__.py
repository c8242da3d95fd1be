"""Classroom lessons: Orange workflows (.ows), their lesson notes (.md) and the same
lessons as scripts that run without a screen.

Installed as ``orangecontrib.deepimage.tutorials``: the ``orange.widgets.tutorials``
entry point names this package, so Orange Canvas lists the workflows in
Help > Example Workflows. The workflows read their images from the folder next to them,
``digits/``: 50 of each of scikit-learn's handwritten digits, committed and installed
with the add-on (package data, under 1 MB), so a lesson opened from the example browser
runs with no command. ``make tutorials`` (tutorials/make_digits.py) writes them again.
"""
import os

TUTORIALS_DIR = os.path.dirname(os.path.abspath(__file__))
DIGITS_DIR = os.path.join(TUTORIALS_DIR, "digits")
