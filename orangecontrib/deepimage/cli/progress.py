"""How far training has got, on stderr: a tqdm bar on a terminal, a line per epoch and
per fold elsewhere (`deepimage train` and `deepimage evaluate`)."""
from __future__ import annotations

import time
from typing import TextIO

__all__ = ["TrainingProgress", "epoch_line"]


def epoch_line(record) -> str:
    val = (f"val loss {record.val_loss:.4f} acc {record.val_accuracy:.3f}"
           if record.val_loss == record.val_loss else "no validation")
    return (f"epoch {record.epoch:3d} ({record.phase}): train loss {record.train_loss:.4f} "
            f"acc {record.train_accuracy:.3f}, {val}, {record.seconds:.1f} s")


class TrainingProgress:
    """How far training has got, on ``stream`` (stderr): on a terminal a tqdm bar (the
    run's share done, the fold, the last epoch, the time) with a line per finished fold
    (and, with ``epoch_lines``, per epoch) above it; elsewhere (a log file, a pipe) a line
    per epoch and per fold; nothing when ``quiet``. Give ``progress`` and ``epoch`` to the
    learner as its callbacks; ``folds`` > 0 for cross-validation (``start_fold``)."""

    def __init__(self, stream: TextIO, quiet: bool = False, folds: int = 0,
                 epoch_lines: bool = True, bar: "bool | None" = None):
        self.stream, self.quiet, self.folds = stream, quiet, folds
        self.use_bar = (not quiet) and (stream.isatty() if bar is None else bar)
        self.epoch_lines = epoch_lines or not self.use_bar
        self.fold, self.last, self.records = 0, None, []
        self.fold_start = time.perf_counter()
        self.bar = None  # the tqdm bar, from the first thing to show until close()

    def _write_line(self, text: str) -> None:
        if self.quiet:
            return
        if self.bar is not None:  # tqdm clears the bar, writes the line and redraws it
            self.bar.write(text, file=self.stream)
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    def _draw(self, share: "float | None" = None, now: bool = True) -> None:
        """Redraw the bar; ``share``: how much of this fold (or run) is done; ``now``
        False: only if tqdm's interval since the last drawing has passed."""
        if not self.use_bar:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=max(self.folds, 1), file=self.stream, dynamic_ncols=True,
                            bar_format="{percentage:3.0f}%|{bar}| {desc}  {elapsed}")
        if share is not None:
            self.bar.n = max(self.fold - 1, 0) + min(share, 1.0)
        parts = [f"fold {max(self.fold, 1)}/{self.folds}"] if self.folds else []
        if self.last is not None:
            parts.append(f"epoch {self.last.epoch} ({self.last.phase})")
            if self.last.val_accuracy == self.last.val_accuracy:
                parts.append(f"val acc {self.last.val_accuracy:.3f}")
        self.bar.set_description_str("  ".join(parts), refresh=False)
        if now:
            self.bar.refresh()
        else:
            self.bar.update(0)  # draws when tqdm's mininterval has passed

    def start_fold(self, fold: int) -> None:
        """Fold ``fold`` (1-based) of ``folds`` starts."""
        self.fold, self.last, self.records = fold, None, []
        self.fold_start = time.perf_counter()
        self._draw(0.0)

    def end_fold(self) -> None:
        """The fold has finished: a line with its time and its best epoch."""
        seconds = time.perf_counter() - self.fold_start
        self._draw(1.0)
        scored = [r for r in self.records if r.val_loss == r.val_loss]
        best = min(scored, key=lambda r: r.val_loss) if scored else None
        summary = (f": best epoch {best.epoch} of {len(self.records)}, validation accuracy "
                   f"{best.val_accuracy:.3f}" if best is not None else "")
        self._write_line(f"fold {self.fold}/{self.folds} trained in {seconds:.0f} s{summary}")

    def progress(self, done: int, total: int) -> None:
        if self.quiet or total <= 0:
            return
        self._draw(done / total, now=False)

    def epoch(self, record) -> None:
        self.last = record
        self.records.append(record)
        if self.epoch_lines:
            prefix = f"fold {self.fold}/{self.folds}, " if self.folds else ""
            self._write_line(prefix + epoch_line(record))
        else:
            self._draw()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
