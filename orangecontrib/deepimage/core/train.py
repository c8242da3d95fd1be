"""Training a classifier on images: last layer only, fine-tuning, or from scratch.

No Qt and no Orange here: the learner (learner.py), the CLI and the Trainer widget
all call :func:`train_classifier` (here: the loop) and :func:`predict_proba`
(core.predict). What decides a run, ``TrainConfig`` and the presets, is in
core.presets; both are importable from here as well.

- ``"last-layer"``: the backbone stays as it is; images are embedded once through
  core.embed.Embedder (its persistent cache makes reruns and Test & Score folds
  nearly free) and only the last layer is trained, on the embeddings: seconds on a CPU.
- ``"fine-tune"``: the same, for ``head_epochs``, then the whole network trains,
  the early layers at lower learning rates than the late ones, after a warm-up
  (core.schedule says why and how).
- ``"scratch"``: random initialisation, every layer at the same rate.

A stratified validation split drives early stopping; the best epoch's weights are
restored at the end. ``should_stop()`` is checked per batch: the run stops cleanly
and keeps the best model so far (Cancelled is raised only when there is none yet).
Decoded images are kept in memory between epochs and between Test & Score folds
(core.imagecache). ``progress(done, total)`` has one total for the whole run.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from . import distributed
from .cancel import ProgressCallback, StopCallback
from .embed import Cancelled, resolve_device
from .images import Skipped
from .models import get_spec
from .predict import predict_proba
from .presets import (MIN_IMAGE_SIZE, MODES, OPTIMIZERS, TrainConfig, auto_image_size,
                      preset, size_for_images)
from .schedule import (gradient_cap, head_optimizer, network_optimizers, warmup_cosine,
                       warmup_steps)

__all__ = ["MODES", "OPTIMIZERS", "MIN_IMAGE_SIZE", "TrainConfig", "EpochRecord",
           "TrainResult", "preset", "auto_image_size", "size_for_images", "train_classifier",
           "predict_proba", "weights_fingerprint"]



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


@dataclass(frozen=True)
class TrainResult:
    """A trained network (an EmbeddingNet on the CPU, in eval mode) and how it got there."""

    net: object
    config: TrainConfig
    n_classes: int
    history: "tuple[EpochRecord, ...]"
    best_epoch: int  # the epoch whose weights ``net`` has
    stopped_early: bool
    cancelled: bool
    skipped: "tuple[Skipped, ...]"  # training images that could not be read
    class_counts: "tuple[int, ...]"  # usable training rows per class (the prior)
    seconds: float
    device: str

    @property
    def image_size(self) -> int:
        return self.config.size

    @property
    def best(self) -> "EpochRecord | None":
        return next((r for r in self.history if r.epoch == self.best_epoch), None)


class _Stop(Exception):
    """should_stop() turned true inside an epoch."""


class _Progress:
    """``(done, total)`` for the progress callback. The total is planned when the run
    starts and never changes; ``done`` only rises. Work that turns out not to be needed
    (unreadable images, epochs after an early stop, a merged last batch) is counted as
    done as soon as that is known."""

    def __init__(self, callback: "ProgressCallback | None", total: int):
        self.callback, self.total, self.done = callback, max(int(total), 1), 0

    def step(self, n: int = 1) -> None:
        if n <= 0:
            return
        self.done = min(self.done + int(n), self.total)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def advance_to(self, position: int) -> None:
        self.step(int(position) - self.done)

    def finish(self) -> None:
        self.advance_to(self.total)


def weights_fingerprint(net) -> str:
    """A stable short digest of a network's weights (names, shapes and values)."""
    import hashlib
    digest = hashlib.blake2b(digest_size=12)
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode())
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(str(array.shape).encode() + array.tobytes())
    return digest.hexdigest()


def stratified_split(labels: np.ndarray, fraction: float,
                     seed: int) -> "tuple[np.ndarray, np.ndarray]":
    """(train, validation) positions; each class with 2+ rows gives at least one row
    to each side. Empty validation when ``fraction`` is 0 or too few rows."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        n_val = 0
        if fraction > 0 and len(rows) >= 2:
            n_val = min(max(1, int(round(len(rows) * fraction))), len(rows) - 1)
        val.append(rows[:n_val])
        train.append(rows[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


def _weights_location(config: TrainConfig):
    """The pretrained weights a run starts from (core.weights); None for untrained."""
    from .weights import locate_weights
    untrained = config.mode == "scratch" or config.random_weights
    return None if untrained else locate_weights(get_spec(config.model), config.weights_file)


def _build_net(config: TrainConfig, n_classes: int, location=None):
    import torch
    from .networks import EmbeddingNet, build_backbone
    spec = get_spec(config.model)
    torch.manual_seed(config.seed)
    backbone = build_backbone(spec)
    location = location or _weights_location(config)
    if location is not None:
        from .weights import load_pretrained
        load_pretrained(backbone, spec, location)
    backbone.reset_classifier(n_classes)
    if config.mode != "scratch":
        # a new last layer starts at zero: uniform probabilities, no random first guesses
        # amplified by the embeddings' scale (SqueezeNet's norms are in the hundreds)
        with torch.no_grad():
            for parameter in backbone.get_classifier().parameters():
                parameter.zero_()
    for module in backbone.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = config.dropout
    return EmbeddingNet(spec, backbone)


def _augment(x, config: TrainConfig, generator):
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


class _Trainer:
    """One run of epochs over one phase; keeps the best weights of ``keep``."""

    def __init__(self, net, config: TrainConfig, device, criterion, progress: _Progress,
                 should_stop, on_epoch, history: list, generator, parallel=None):
        import torch
        self.torch = torch
        self.net, self.config, self.device = net, config, device
        self.criterion, self.progress = criterion, progress
        self.should_stop, self.on_epoch, self.history = should_stop, on_epoch, history
        self.generator = generator
        self.parallel = parallel  # core.distributed.Parallel under torchrun, else None
        self.per_image = False  # progress: one unit per image (network) or per batch (head)
        self.amp = device.type == "cuda"
        self.best_loss = math.inf
        self.best_state = None
        self.best_epoch = 0
        self.stopped_early = False

    def snapshot(self, keep) -> None:
        self.best_state = (keep, {k: v.detach().to("cpu", copy=True)
                                  for k, v in keep.state_dict().items()})

    def restore(self) -> None:
        if self.best_state is not None:
            module, state = self.best_state
            module.load_state_dict(state)

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

    def run(self, forward, optimizers: list, X_train, y_train, X_val, y_val, epochs: int,
            phase: str, keep, augment: bool, warmup_epochs: float = 0,
            units_per_epoch: int = 0) -> None:
        """Train ``epochs`` epochs (fewer with early stopping); raises _Stop on cancel.
        Every rate rises over ``warmup_epochs``, then decays along a cosine to 1%.
        Progress counts images in the network phase, batches on embeddings; each epoch
        ends at its planned ``units_per_epoch``."""
        torch = self.torch
        self.per_image = phase == "network"
        per_epoch = len(self._batches(len(X_train), self.parallel is not None))
        steps = max(1, epochs * per_epoch)
        warmup = warmup_steps(warmup_epochs, per_epoch, epochs)
        schedules = [torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: warmup_cosine(step, steps, warmup))
            for optimizer in optimizers]
        phase_start = self.progress.done
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
        waited, steps_done = 0, 0
        for epoch in range(epochs):
            start = time.perf_counter()
            self.net.train()
            total_loss, correct, seen = 0.0, 0, 0
            for batch in self._batches(len(X_train), True, len(self.history)):
                if self.should_stop is not None and self.should_stop():
                    raise _Stop()
                x = torch.from_numpy(X_train[batch]).to(self.device, non_blocking=True)
                target = y_train_t[batch].to(self.device)
                if augment:
                    x = _augment(x.float(), self.config, self.generator)
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
                steps_done += 1
                total_loss += float(loss.detach()) * len(batch)
                correct += int((logits.argmax(1) == target).sum())
                seen += len(batch)
                self.progress.step(len(batch) if self.per_image else 1)
            if self.parallel is not None:  # the whole epoch's figures, the same everywhere
                total_loss, correct, seen = self.parallel.sum(total_loss, correct, seen)
            val_loss, val_acc, val_nll = self.evaluate(forward, X_val, y_val, autocast)
            self.progress.advance_to(phase_start + (epoch + 1) * units_per_epoch)
            record = EpochRecord(len(self.history) + 1, phase, total_loss / max(seen, 1),
                                 correct / max(seen, 1), val_loss, val_acc,
                                 time.perf_counter() - start, val_nll)
            self.history.append(record)
            if self.on_epoch is not None:
                self.on_epoch(record)
            if len(X_val) == 0 or val_loss < self.best_loss - 1e-6:
                self.best_loss = val_loss if len(X_val) else math.inf
                self.best_epoch = record.epoch
                self.snapshot(keep)
                waited = 0
            else:
                waited += 1
                if waited >= self.config.patience:
                    self.stopped_early = True
                    self.progress.advance_to(phase_start + epochs * units_per_epoch)
                    return

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
                    raise _Stop()
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


def _embed_for_head(net, config: TrainConfig, device: str, sources=None, images=None,
                    weights_id=None, progress=None, should_stop=None):
    """Embeddings for the last-layer phase, with ``net`` itself: of ``sources`` (through
    Embedder's persistent cache, shared with Image Embedder, when ``weights_id`` names
    the pretrained weights ``net`` has), or of the decoded ``images``."""
    from .embed import Embedder
    cached = images is None and weights_id is not None
    embedder = Embedder(config.model, device=device, backend="auto" if cached else "torch",
                        net=net, weights_id=weights_id if cached else None, cache=cached,
                        image_size=config.size, batch_size=None if cached else config.batch_size)
    if images is not None:
        return embedder.embed_arrays(images), None, ()
    result = embedder.embed(sources, progress, should_stop)
    return result.embeddings, result.indices, tuple(result.skipped)


def _epochs(config: TrainConfig) -> "tuple[int, int]":
    """(epochs of the last layer alone, epochs of the whole network)."""
    if config.mode == "last-layer":
        return config.epochs, 0
    return (config.head_epochs if config.mode == "fine-tune" else 0), config.epochs


def _planned_work(labels: np.ndarray, config: TrainConfig) -> "tuple[int, ...]":
    """Progress units of a run on these labels, roughly in proportion to the time each
    takes: (images loaded, images embedded for fine-tuning's last-layer epochs, all the
    last-layer epochs (a unit per batch of embeddings), all the network epochs (a unit
    per image, trained or validated))."""
    train, val = stratified_split(labels, config.validation_fraction, config.seed)
    head, network = _epochs(config)
    batches = sum(math.ceil(len(rows) / config.batch_size) for rows in (train, val))
    embedding = len(labels) if config.mode == "fine-tune" and head else 0
    return len(labels), embedding, batches * head, len(labels) * network


def train_classifier(sources: Sequence[str], labels: Sequence[int], n_classes: int,
                     config: TrainConfig, *, progress: "ProgressCallback | None" = None,
                     should_stop: "StopCallback | None" = None,
                     on_epoch: "Callable[[EpochRecord], None] | None" = None) -> TrainResult:
    """Train a classifier of ``n_classes`` on images (paths or URLs) with integer labels.

    ``progress(done, total)`` counts images loaded and batches trained or validated;
    ``on_epoch(record)`` is called after every epoch. Unreadable images are left out
    and listed in the result's ``skipped``. Without an ``image_size``, fine-tuning and
    training from scratch run at a size chosen from the images (core.presets.
    size_for_images: 64-px digits at 96 px, photos at the native size); the result's
    ``config`` has the size used.
    """
    import torch
    from .imagecache import load_images
    started = time.perf_counter()
    labels = np.asarray(labels, dtype=np.int64)
    sources = [str(s) for s in sources]
    if len(sources) != len(labels):
        raise ValueError("train_classifier: one label per image is needed")
    if n_classes < 2 or len(np.unique(labels)) < 2:
        raise ValueError("Training a classifier needs images of at least two classes.")
    if config.image_size is None and config.mode != "last-layer":
        # small images train small; the last layer alone trains on the embeddings Image
        # Embedder makes (and caches) at the network's native size
        config = dataclasses.replace(config, image_size=size_for_images(sources, config.model))
    parallel = distributed.current()  # torchrun: one process of several (core.distributed)
    device_name = parallel.device() if parallel else resolve_device(config.device)
    device = torch.device(device_name)
    location = _weights_location(config)  # located (and digested) once
    net = _build_net(config, n_classes, location)
    generator = torch.Generator().manual_seed(config.seed)

    # progress units (_planned_work): images loaded, embedded, trained and validated, and
    # batches of embeddings; the total is planned from all labels and stays (_Progress)
    head_epochs, net_epochs = _epochs(config)
    counter = _Progress(progress, sum(_planned_work(labels, config)))
    load_progress = (lambda done, total: counter.step(done - counter.done))
    if config.mode == "last-layer":  # both raise Cancelled on should_stop()
        images = None
        # torchrun: rank 0 fills the embedding cache first, the others read it
        with parallel.main_first() if parallel else contextlib.nullcontext():
            embeddings, kept, skipped = _embed_for_head(
                net, config, device_name, sources, weights_id=location and location.identity,
                progress=load_progress, should_stop=should_stop)
    else:
        loaded = load_images(sources, config.size, progress=load_progress,
                             should_stop=should_stop)
        images, kept, skipped = loaded.images, loaded.indices, loaded.skipped
    y = labels[kept]
    if len(np.unique(y)) < 2:
        raise ValueError(f"Only {len(y)} of {len(sources)} images could be read, not enough "
                         f"for two classes; see the skipped images.")
    train_rows, val_rows = stratified_split(y, config.validation_fraction, config.seed)
    counts = np.bincount(y[train_rows], minlength=n_classes)
    weight = None
    if config.class_weighting:
        weight = torch.tensor(np.where(counts > 0, len(train_rows) / np.maximum(
            n_classes * counts, 1), 0.0), dtype=torch.float32, device=device)
    criterion = torch.nn.CrossEntropyLoss(weight=weight,
                                          label_smoothing=config.label_smoothing)
    # what the unreadable images would have cost is done: the rest is planned on ``y``
    _, n_embed, head_units, net_units = _planned_work(y, config)
    counter.advance_to(counter.total - n_embed - head_units - net_units)

    history: list[EpochRecord] = []
    trainer = _Trainer(net, config, device, criterion, counter, should_stop, on_epoch,
                       history, generator, parallel)
    head_opt, fine_tune, cancelled = None, config.mode == "fine-tune", False
    try:
        if head_epochs:
            if config.mode == "fine-tune":
                embeddings = _embed_for_head(net, config, device_name, images=images)[0]
                counter.step(len(y))
            head = net.backbone.get_classifier()
            net.to(device)
            head_opt = head_optimizer(net, config)  # goes on, moments and all, below
            trainer.run(lambda x, train: (net.backbone.head_from_embedding(x), None),
                        [head_opt], embeddings[train_rows], y[train_rows],
                        embeddings[val_rows], y[val_rows], head_epochs, "head", keep=head,
                        augment=False, units_per_epoch=head_units // head_epochs)
            trainer.restore()
            if net_epochs:
                trainer.snapshot(net)  # the network phase must beat the best head
                trainer.stopped_early = False
        if net_epochs:
            net.to(device, memory_format=torch.channels_last if device.type == "cuda"
                   else torch.preserve_format)
            backbone = net.backbone

            def forward(x, train):
                x = net.preprocess(x)
                if hasattr(backbone, "forward_with_aux"):
                    return backbone.forward_with_aux(x)
                return backbone(x), None

            trainer.run(forward, network_optimizers(net, config, head_opt),
                        images[train_rows], y[train_rows], images[val_rows], y[val_rows],
                        net_epochs, "network", keep=net, augment=True,
                        warmup_epochs=config.warmup_epochs if fine_tune else 0,
                        units_per_epoch=len(y))
    except _Stop:
        cancelled = True
        if trainer.best_state is None:
            raise Cancelled() from None
    trainer.restore()
    counter.finish()
    net = net.to("cpu", memory_format=torch.contiguous_format).eval()
    return TrainResult(net, config, n_classes, tuple(history), trainer.best_epoch,
                       trainer.stopped_early, cancelled, tuple(skipped),
                       tuple(int(c) for c in np.bincount(y, minlength=n_classes)),
                       time.perf_counter() - started, device_name)
