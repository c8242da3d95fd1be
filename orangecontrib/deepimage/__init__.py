"""Orange3-DeepImage: embed, fine-tune and serve deep networks for images in Orange."""

__version__ = "0.1.0"
