"""The exception every long job raises when its caller asks it to stop.

It lives on its own so that jobs which do not embed (importing images, saving
them, training) need not import the embedding pipeline to use it.
"""

__all__ = ["Cancelled"]


class Cancelled(Exception):
    """The caller asked to stop; everything finished before that is kept."""
