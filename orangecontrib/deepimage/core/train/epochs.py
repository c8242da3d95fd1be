"""The epochs of one phase of training, validation and early stopping; no Qt, no Orange.

``EpochRunner.run`` trains a phase (the last layer on embeddings, or the whole network on
images), validates after every epoch, keeps the best weights and stops early; with a
deadline (the time budget) it shortens the phase's schedule to the epochs that still fit,
so the one-cycle rate still ends low, and stops at the deadline with the best model.
"""
from __future__ import annotations

import contextlib
import math
import time

import numpy as np

from ..schedule import gradient_cap, warmup_cosine, warmup_steps
from .augment import augment as augment_batch
from .average import WeightAverage, ema_decay
from .progress import Progress
from .records import EpochRecord

__all__ = ["EpochRunner", "Stop"]


class Stop(Exception):
    """should_stop() turned true inside an epoch, or the deadline passed (``budget``)."""

    def __init__(self, budget: bool = False):
        super().__init__("time budget" if budget else "stopped")
        self.budget = budget


class EpochRunner:
    """Epochs over one phase at a time; keeps the best weights of ``keep``."""

    def __init__(self, net, config, device, criterion, progress: Progress,
                 should_stop, on_epoch, history: list, generator, parallel=None,
                 deadline: "float | None" = None, baseline: float = math.nan):
        import torch
        self.torch = torch
        self.net, self.config, self.device = net, config, device
        self.criterion, self.progress = criterion, progress
        self.should_stop, self.on_epoch, self.history = should_stop, on_epoch, history
        self.generator = generator
        self.parallel = parallel  # core.distributed.Parallel under torchrun, else None
        self.deadline = deadline  # time.perf_counter() value, or None
        self.baseline = baseline  # logistic regression's validation accuracy (records)
        self.per_image = False  # progress: one unit per image (network) or per batch (head)
        self.amp = device.type == "cuda"
        self.best_loss = math.inf
        self.best_state = None
        self.best_epoch = 0
        self.stopped_early = False
        self.shortened: "tuple[int, int] | None" = None  # (planned, run) network epochs

    def snapshot(self, keep) -> None:
        self.best_state = (keep, {k: v.detach().to("cpu", copy=True)
                                  for k, v in keep.state_dict().items()})

    def restore(self) -> None:
        if self.best_state is not None:
            module, state = self.best_state
            module.load_state_dict(state)

    def _check_stop(self) -> None:
        if self.should_stop is not None and self.should_stop():
            raise Stop()
        if self.deadline is not None and self.best_state is not None \
                and time.perf_counter() > self.deadline:
            raise Stop(budget=True)

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

    def _affordable(self, epochs: int, done: int, started: float) -> int:
        """Epochs of this phase that fit before the deadline, at the pace so far."""
        if self.deadline is None or done == 0:
            return epochs
        per_epoch = (time.perf_counter() - started) / done
        left = self.deadline - time.perf_counter()
        return int(min(epochs, done + max(0, math.floor(left / per_epoch))))

    def run(self, forward, optimizers: list, X_train, y_train, X_val, y_val, epochs: int,
            phase: str, keep, augment: bool, warmup_epochs: float = 0,
            units_per_epoch: int = 0) -> None:
        """Train ``epochs`` epochs (fewer with early stopping or the deadline); raises Stop
        on cancel. Every rate rises over ``warmup_epochs``, then decays along a cosine to
        1%. Progress counts images in the network phase, batches on embeddings; each epoch
        ends at its planned ``units_per_epoch``."""
        torch = self.torch
        self.per_image = phase == "network"
        per_epoch = len(self._batches(len(X_train), self.parallel is not None))
        plan = {"steps": max(1, epochs * per_epoch),
                "warmup": warmup_steps(warmup_epochs, per_epoch, epochs)}
        schedules = [torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, plan["steps"], plan["warmup"]))
            for optimizer in optimizers]
        phase_start, started = self.progress.done, time.perf_counter()
        scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        autocast = (lambda: torch.autocast("cuda", dtype=torch.float16)) if self.amp \
            else contextlib.nullcontext
        y_train_t = torch.as_tensor(y_train, dtype=torch.long)
        # the whole network's gradients (not the last layer's on its own Adam) are capped,
        # the cap growing from max_grad_norm by cap_growth per epoch (gradient_cap)
        clipped = [p for group in optimizers[-1].param_groups for p in group["params"]] \
            if phase == "network" and self.config.max_grad_norm else []
        # under torchrun the step goes through DistributedDataParallel (averaged gradients)
        step = forward if self.parallel is None else self.parallel.wrap(keep, forward)
        # the whole network validates and keeps an average of its weights (ema_epochs)
        decay = ema_decay(self.config.ema_epochs, per_epoch) if phase == "network" else 0.0
        average = WeightAverage(keep, decay) if decay > 0 else None
        waited, steps_done, planned, epoch = 0, 0, epochs, 0
        while epoch < epochs:
            start = time.perf_counter()
            self.net.train()
            total_loss, correct, seen = 0.0, 0, 0
            for batch in self._batches(len(X_train), True, len(self.history)):
                self._check_stop()
                x = torch.from_numpy(X_train[batch]).to(self.device, non_blocking=True)
                target = y_train_t[batch].to(self.device)
                if augment:
                    # with ramp_augment the crops and shifts grow with the warm-up's rates
                    strength = (min(1.0, (steps_done + 1) / (plan["warmup"] + 1))
                                if self.config.ramp_augment else 1.0)
                    x = augment_batch(x.float(), self.config, self.generator, strength)
                with autocast():
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
                if average is not None:
                    average.update()
                steps_done += 1
                total_loss += float(loss.detach()) * len(batch)
                correct += int((logits.argmax(1) == target).sum())
                seen += len(batch)
                self.progress.step(len(batch) if self.per_image else 1)
            if self.parallel is not None:  # the whole epoch's figures, the same everywhere
                total_loss, correct, seen = self.parallel.sum(total_loss, correct, seen)
            with average.applied() if average is not None else contextlib.nullcontext():
                val_loss, val_acc, val_nll = self.evaluate(forward, X_val, y_val, autocast)
                better = len(X_val) == 0 or val_loss < self.best_loss - 1e-6
                if better:
                    self.snapshot(keep)  # the averaged weights, where they are validated
            epoch += 1
            self.progress.advance_to(phase_start + epoch * units_per_epoch)
            record = EpochRecord(len(self.history) + 1, phase, total_loss / max(seen, 1),
                                 correct / max(seen, 1), val_loss, val_acc,
                                 time.perf_counter() - start, val_nll, self.baseline)
            self.history.append(record)
            if self.on_epoch is not None:
                self.on_epoch(record)
            if better:
                self.best_loss = val_loss if len(X_val) else math.inf
                self.best_epoch = record.epoch
                waited = 0
            else:
                waited += 1
                if waited >= self.config.patience:
                    self.stopped_early = True
                    break
            fits = self._affordable(epochs, epoch, started)
            if fits < epochs:  # the budget: the schedule ends where the time does
                epochs = fits
                plan["steps"] = max(plan["warmup"] + 1, epochs * per_epoch)
                if phase == "network":
                    self.shortened = (planned, epochs)
        self.progress.advance_to(phase_start + planned * units_per_epoch)

    def _summed_loss(self, logits, target, smoothing: float) -> float:
        """The batch's cross-entropy, summed, with the training's class weights."""
        return float(self.torch.nn.functional.cross_entropy(
            logits.float(), target, weight=self.criterion.weight, reduction="sum",
            label_smoothing=smoothing))

    def evaluate(self, forward, X, y, autocast) -> "tuple[float, float, float]":
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
                with autocast():
                    logits = forward(x, False)[0]
                plain = self._summed_loss(logits, target, 0.0)
                nll += plain
                total += self._summed_loss(logits, target, smoothing) if smoothing else plain
                correct += int((logits.argmax(1) == target).sum())
                self.progress.step(len(batch) if self.per_image else 1)
        weights = (self.criterion.weight.cpu()[torch.as_tensor(y)].sum().item()
                   if self.criterion.weight is not None else len(X))
        if self.parallel is not None:  # every process: the same metrics, the same stopping
            total, nll, correct, weights = self.parallel.sum(total, nll, correct, weights)
        return total / max(weights, 1e-12), correct / n, nll / max(weights, 1e-12)
