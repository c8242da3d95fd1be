"""One phase of training epochs: the loop (:class:`PhaseTrainer`: batches, mixed
precision, the gradient cap, the learning-rate schedules), the validation pass, and the
early-stopping bookkeeping (:class:`EarlyStopping`: the best epoch's weights, patience).
core.train decides the phases; core.trainplan counts their progress.
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

import numpy as np

from .presets import TrainConfig
from .schedule import gradient_cap, warmup_cosine, warmup_steps
from .trainplan import RunProgress

__all__ = ["EpochRecord", "Stop", "EarlyStopping", "PhaseTrainer", "augment"]


@dataclass(frozen=True)
class EpochRecord:
    """One epoch, for the widget's live plot. Validation values are NaN without a split."""

    epoch: int  # 1-based, counted across phases
    phase: str  # "head" (last layer only) or "network"
    train_loss: float
    train_accuracy: float
    val_loss: float  # the training loss's own measure (label smoothing and all)
    val_accuracy: float
    seconds: float
    val_nll: float = math.nan  # validation cross-entropy without label smoothing


class Stop(Exception):
    """should_stop() turned true inside an epoch."""


def augment(x, config: TrainConfig, generator):
    """Random flips and scale jitter on a float N x H x W x 3 batch (pixel scale)."""
    import torch
    import torch.nn.functional as F
    if config.flip:
        mask = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(2), x)
    if config.scale_jitter > 0:
        size = x.shape[1]
        scale = 1 + float(torch.rand(1, generator=generator)) * config.scale_jitter
        big = max(size, int(round(size * scale)))
        if big > size:
            y = F.interpolate(x.permute(0, 3, 1, 2), size=(big, big), mode="bilinear",
                              align_corners=False)
            top, left = (int(v) for v in torch.randint(0, big - size + 1, (2,),
                                                        generator=generator))
            x = y[:, :, top:top + size, left:left + size].permute(0, 2, 3, 1)
    return x


class EarlyStopping:
    """The best validation loss so far, the weights of its epoch (of the module ``keep``),
    and the epochs waited since; with no validation split every epoch is the best."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best_loss = math.inf
        self.best_state = None
        self.best_epoch = 0
        self.waited = 0
        self.stopped_early = False

    def snapshot(self, keep) -> None:
        self.best_state = (keep, {k: v.detach().to("cpu", copy=True)
                                  for k, v in keep.state_dict().items()})

    def restore(self) -> None:
        if self.best_state is not None:
            module, state = self.best_state
            module.load_state_dict(state)

    def new_phase(self) -> None:
        """A new phase starts: patience starts over."""
        self.waited, self.stopped_early = 0, False

    def update(self, record: EpochRecord, validated: bool, keep) -> bool:
        """After an epoch: keep its weights if it is the best; True when patience ran out."""
        if not validated or record.val_loss < self.best_loss - 1e-6:
            self.best_loss = record.val_loss if validated else math.inf
            self.best_epoch = record.epoch
            self.snapshot(keep)
            self.waited = 0
            return False
        self.waited += 1
        self.stopped_early = self.waited >= self.patience
        return self.stopped_early


class PhaseTrainer:
    """Runs phases of epochs on one network; ``stopping`` keeps the best weights."""

    def __init__(self, net, config: TrainConfig, device, criterion, progress: RunProgress,
                 should_stop, on_epoch, history: list, generator, parallel=None):
        import torch
        self.torch = torch
        self.net, self.config, self.device = net, config, device
        self.criterion, self.progress = criterion, progress
        self.should_stop, self.on_epoch, self.history = should_stop, on_epoch, history
        self.generator = generator
        self.parallel = parallel  # core.distributed.Parallel under torchrun, else None
        self.amp = device.type == "cuda"
        self.stopping = EarlyStopping(config.patience)

    def _batches(self, n: int, shuffle: bool, epoch: int = 0):
        torch = self.torch
        if shuffle and self.parallel is not None:  # this process's shard of the epoch
            return self.parallel.batches(n, self.config.batch_size, epoch, self.config.seed)
        order = (torch.randperm(n, generator=self.generator).numpy() if shuffle
                 else np.arange(n))
        size = self.config.batch_size
        batches = [order[i:i + size] for i in range(0, n, size)]
        if shuffle and len(batches) > 1 and len(batches[-1]) == 1:
            # batch normalisation cannot train on one image: join it to the one before
            batches[-2:] = [np.concatenate(batches[-2:])]
        return batches

    def _loss(self, output, target):
        logits, aux = output
        loss = self.criterion(logits, target)
        if aux is not None and self.config.aux_loss_weight:
            loss = loss + self.config.aux_loss_weight * self.criterion(aux, target)
        return loss, logits

    def _autocast(self):
        torch = self.torch
        return torch.autocast("cuda", dtype=torch.float16) if self.amp \
            else contextlib.nullcontext()

    def run(self, forward, optimizers: list, X_train, y_train, X_val, y_val, epochs: int,
            phase: str, keep, augment_images: bool, warmup_epochs: float = 0,
            units_per_epoch: int = 0) -> None:
        """Train ``epochs`` epochs (fewer with early stopping); raises Stop on cancel.
        Every rate rises over ``warmup_epochs``, then decays along a cosine to 1%.
        Progress counts images in the network phase, batches on embeddings; each epoch
        ends at its planned ``units_per_epoch``."""
        torch = self.torch
        self.progress.start_phase(units_per_epoch, per_image=phase == "network")
        self.stopping.new_phase()
        per_epoch = len(self._batches(len(X_train), self.parallel is not None))
        steps = max(1, epochs * per_epoch)
        warmup = warmup_steps(warmup_epochs, per_epoch, epochs)
        schedules = [torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, steps, warmup))
            for optimizer in optimizers]
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        y_train_t = torch.as_tensor(y_train, dtype=torch.long)
        # the whole network's gradients (not the last layer's on its own Adam) are capped,
        # the cap growing from max_grad_norm by cap_growth per epoch (gradient_cap)
        clipped = [p for group in optimizers[-1].param_groups for p in group["params"]] \
            if phase == "network" and self.config.max_grad_norm else []
        # under torchrun the step goes through DistributedDataParallel (averaged gradients)
        step = forward if self.parallel is None else self.parallel.wrap(keep, forward)
        steps_done = 0
        for epoch in range(epochs):
            start = time.perf_counter()
            self.net.train()
            total_loss, correct, seen = 0.0, 0, 0
            for batch in self._batches(len(X_train), True, len(self.history)):
                if self.should_stop is not None and self.should_stop():
                    raise Stop()
                x = torch.from_numpy(X_train[batch]).to(self.device, non_blocking=True)
                target = y_train_t[batch].to(self.device)
                if augment_images:
                    x = augment(x.float(), self.config, self.generator)
                with self._autocast():
                    loss, logits = self._loss(step(x, True), target)
                for optimizer in optimizers:
                    optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if clipped:
                    for optimizer in optimizers:
                        scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(clipped, gradient_cap(
                        self.config.max_grad_norm, self.config.cap_growth, steps_done,
                        per_epoch))
                for optimizer in optimizers:
                    scaler.step(optimizer)
                scaler.update()
                for schedule in schedules:
                    schedule.step()
                steps_done += 1
                total_loss += float(loss.detach()) * len(batch)
                correct += int((logits.argmax(1) == target).sum())
                seen += len(batch)
                self.progress.batch(len(batch))
            if self.parallel is not None:  # the whole epoch's figures, the same everywhere
                total_loss, correct, seen = self.parallel.sum(total_loss, correct, seen)
            if self._epoch_done(epoch, epochs, phase, start, keep, len(X_val) > 0,
                                (total_loss, correct, seen),
                                self.evaluate(forward, X_val, y_val)):
                return

    def _epoch_done(self, epoch: int, epochs: int, phase: str, start: float, keep,
                    validated: bool, trained: tuple, validation: tuple) -> bool:
        """Record the epoch, tell on_epoch, keep the best weights; True to stop early."""
        total_loss, correct, seen = trained
        val_loss, val_acc, val_nll = validation
        self.progress.end_epochs(epoch + 1)
        record = EpochRecord(len(self.history) + 1, phase, total_loss / max(seen, 1),
                             correct / max(seen, 1), val_loss, val_acc,
                             time.perf_counter() - start, val_nll)
        self.history.append(record)
        if self.on_epoch is not None:
            self.on_epoch(record)
        if self.stopping.update(record, validated, keep):
            self.progress.end_epochs(epochs)
            return True
        return False

    def _summed_loss(self, logits, target, smoothing: float) -> float:
        """The batch's cross-entropy, summed, with the training's class weights."""
        return float(self.torch.nn.functional.cross_entropy(
            logits.float(), target, weight=self.criterion.weight, reduction="sum",
            label_smoothing=smoothing))

    def evaluate(self, forward, X, y) -> "tuple[float, float, float]":
        """(loss, accuracy, cross-entropy) on the validation split. The loss is the
        training's own (with its label smoothing), so the two curves the Trainer draws
        measure the same thing and early stopping follows what training minimises; the
        plain cross-entropy is kept beside it."""
        torch = self.torch
        if len(X) == 0:
            return math.nan, math.nan, math.nan
        n = len(X)
        if self.parallel is not None:  # a shard per process; the totals are summed below
            rows = self.parallel.shard(n)
            X, y = X[rows], y[rows]
        self.net.eval()
        total, nll, correct = 0.0, 0.0, 0
        smoothing = self.criterion.label_smoothing
        target_all = torch.as_tensor(y, dtype=torch.long)
        with torch.no_grad():
            for batch in self._batches(len(X), False):
                if self.should_stop is not None and self.should_stop():
                    raise Stop()
                x = torch.from_numpy(X[batch]).to(self.device)
                target = target_all[batch].to(self.device)
                with self._autocast():
                    logits = forward(x, False)[0]
                plain = self._summed_loss(logits, target, 0.0)
                nll += plain
                total += self._summed_loss(logits, target, smoothing) if smoothing else plain
                correct += int((logits.argmax(1) == target).sum())
                self.progress.batch(len(batch))
        weights = (self.criterion.weight.cpu()[torch.as_tensor(y)].sum().item()
                   if self.criterion.weight is not None else len(X))
        if self.parallel is not None:  # every process: the same metrics, the same stopping
            total, nll, correct, weights = self.parallel.sum(total, nll, correct, weights)
        return total / max(weights, 1e-12), correct / n, nll / max(weights, 1e-12)
