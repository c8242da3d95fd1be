"""Classroom lessons: Orange workflows (.ows), their lesson notes (.md) and the same
lessons as scripts that run without a screen.

Installed as ``orangecontrib.deepimage.tutorials``: the ``orange.widgets.tutorials``
entry point names this package, so Orange Canvas lists the workflows in
Help > Example Workflows. The workflows read their images from folders next to them
(``digits/``), which ``python -m orangecontrib.deepimage.tutorials.make_digits``
(or ``make tutorials``) writes from scikit-learn's digits, with no download.
"""
import os

TUTORIALS_DIR = os.path.dirname(os.path.abspath(__file__))
DIGITS_DIR = os.path.join(TUTORIALS_DIR, "digits")
