"""The add-on's version, the one place it is written: setup.py reads this file (without
importing the package), the package and the server import it."""

__version__ = "0.1.0"
