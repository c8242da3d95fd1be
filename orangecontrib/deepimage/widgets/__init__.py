"""Deep Image: import, embed, train and view images in Orange."""
import os
import sysconfig

NAME = "Deep Image"
DESCRIPTION = "Embed images with deep networks, fine-tune them, view the images."
ICON = "icons/category.svg"
BACKGROUND = "#C3E6F5"
PRIORITY = 1010

_DOC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "doc", "_build", "html",
                    "index.html")
WIDGET_HELP_PATH = (
    # a development checkout with the docs built (`make docs`)
    (os.path.abspath(_DOC), None),
    # documentation installed with a wheel
    (os.path.join(sysconfig.get_path("data"), "share", "help", "orange3-deepimage",
                  "index.html"), None),
)
