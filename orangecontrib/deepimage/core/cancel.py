"""The exception every long job raises when its caller asks it to stop, and the two
callback types every long job takes: ``progress(done, total)`` and ``should_stop()``.

They live on their own so that jobs which do not embed (importing images, saving
them, training) need not import the embedding pipeline to use them.
"""
from typing import Callable

__all__ = ["Cancelled", "ProgressCallback", "StopCallback"]

#: ``progress(done, total)``: called as work is done; ``total`` stays the same
ProgressCallback = Callable[[int, int], None]
#: ``should_stop()``: checked between steps; True makes the job stop (Cancelled)
StopCallback = Callable[[], bool]


class Cancelled(Exception):
    """The caller asked to stop; everything finished before that is kept."""
