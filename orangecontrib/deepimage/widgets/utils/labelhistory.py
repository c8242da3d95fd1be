"""The label editor's undo history: each stroke one step, kept as the rectangle it
changed, before and after (a stroke on a 4-megapixel image keeps a few kilobytes,
not two copies of the image)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

__all__ = ["History", "Change"]


@dataclass(frozen=True)
class Change:
    """The rectangle ``where`` of the labels, before and after a stroke."""

    where: tuple[slice, slice]
    before: np.ndarray
    after: np.ndarray


@dataclass
class History:
    """Strokes to undo and to redo (at most ``limit`` bytes kept, oldest dropped)."""

    limit: int = 64 << 20
    done: List[Change] = field(default_factory=list)
    undone: List[Change] = field(default_factory=list)

    @staticmethod
    def change(before: np.ndarray, after: np.ndarray) -> Optional[Change]:
        """What a stroke changed (None if nothing)."""
        if before.shape != after.shape:
            return None
        changed = before != after
        rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
        if rows.size == 0:
            return None
        where = np.s_[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        return Change(where, before[where].copy(), after[where].copy())

    def record(self, before: np.ndarray, after: np.ndarray) -> bool:
        """Add the stroke that made ``after`` of ``before``; whether it changed anything.
        A new stroke forgets what was undone."""
        step = self.change(before, after)
        if step is None:
            return False
        self.done.append(step)
        self.undone.clear()
        while len(self.done) > 1 and \
                sum(c.before.nbytes + c.after.nbytes for c in self.done) > self.limit:
            self.done.pop(0)
        return True

    def undo(self, labels: np.ndarray) -> bool:
        """Put back ``labels`` as they were before the last stroke (in place)."""
        if not self.done or self.done[-1].before.shape != labels[self.done[-1].where].shape:
            return False
        step = self.done.pop()
        labels[step.where] = step.before
        self.undone.append(step)
        return True

    def redo(self, labels: np.ndarray) -> bool:
        """Paint again the stroke last undone (in place)."""
        if not self.undone or self.undone[-1].after.shape != labels[self.undone[-1].where].shape:
            return False
        step = self.undone.pop()
        labels[step.where] = step.after
        self.done.append(step)
        return True

    @property
    def can_undo(self) -> bool:
        return bool(self.done)

    @property
    def can_redo(self) -> bool:
        return bool(self.undone)
