"""Orange3-DeepImage: embed, fine-tune and serve deep networks for images in Orange."""

from .version import __version__

__all__ = ["__version__"]
