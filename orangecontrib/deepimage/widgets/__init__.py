"""Deep Image: import, embed, train and view images in Orange."""
import os

NAME = "Deep Image"
DESCRIPTION = "Embed images with deep networks, fine-tune them, view the images."
ICON = "icons/category.svg"
BACKGROUND = "#C3E6F5"
PRIORITY = 1010

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _help_index(*parts: str) -> str:
    # Orange Canvas formats these paths with str.format ({DEVELOP_ROOT}, ...)
    return os.path.normpath(os.path.join(*parts)).replace("{", "{{").replace("}", "}}")


WIDGET_HELP_PATH = (
    # installed from a wheel: the documentation site built into the package (setup.py)
    (_help_index(_PACKAGE, "help", "index.html"), None),
    # a development checkout with the docs built (`make docs`)
    (_help_index(_PACKAGE, "..", "..", "doc", "_build", "html", "index.html"), None),
)
