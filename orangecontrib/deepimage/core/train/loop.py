"""train_classifier: a network's whole training run, from image paths to a TrainResult.

Loads the images (core.imagecache), embeds them for the last layer's epochs, fits the
logistic-regression baseline on the same split (baseline.py), runs the phases
(epochs.py), and keeps to the time budget. See the package's docstring for the modes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Callable, Sequence

import numpy as np

from .. import distributed
from ..cancel import ProgressCallback, StopCallback
from ..cancel import Cancelled
from ..devices import resolve_device
from ..models import get_spec
from ..presets import TrainConfig, fit_to_images
from ..schedule import head_optimizer, network_optimizers
from .baseline import logreg_accuracy
from .budget import network_epochs_that_fit, size_for_budget
from .epochs import EpochRunner, Stop
from .progress import Progress, phase_epochs, planned_work
from .records import EpochRecord, TrainResult, stratified_split

__all__ = ["train_classifier", "build_net"]



def _weights_location(config: TrainConfig):
    """The pretrained weights a run starts from (core.weights); None for untrained."""
    from ..weights import locate_weights
    untrained = config.mode == "scratch" or config.random_weights
    return None if untrained else locate_weights(get_spec(config.model), config.weights_file)


def build_net(config: TrainConfig, n_classes: int, location=None):
    """The network a run starts from: pretrained (unless untrained is asked for), a new
    last layer of ``n_classes`` (zeros, except from scratch), the configured dropout."""
    import torch
    from ..networks import EmbeddingNet, build_backbone
    spec = get_spec(config.model)
    torch.manual_seed(config.seed)
    backbone = build_backbone(spec)
    location = location or _weights_location(config)
    if location is not None:
        from ..weights import load_pretrained
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


def _embed_for_head(net, config: TrainConfig, device: str, sources=None, images=None,
                    weights_id=None, progress=None, should_stop=None):
    """Embeddings for the last-layer phase, with ``net`` itself: of ``sources`` (through
    Embedder's persistent cache, shared with Image Embedder, when ``weights_id`` names
    the pretrained weights ``net`` has), or of the decoded ``images``."""
    from ..local_embedder import Embedder
    cached = images is None and weights_id is not None
    embedder = Embedder(config.model, device=device, backend="auto" if cached else "torch",
                        net=net, weights_id=weights_id if cached else None, cache=cached,
                        image_size=config.size, batch_size=None if cached else config.batch_size)
    if images is not None:
        return embedder.embed_arrays(images), None, ()
    result = embedder.embed(sources, progress, should_stop)
    return result.embeddings, result.indices, tuple(result.skipped)


def _criterion(y_train: np.ndarray, n_classes: int, config: TrainConfig, device):
    import torch
    weight = None
    if config.class_weighting:
        counts = np.bincount(y_train, minlength=n_classes)
        weight = torch.tensor(np.where(counts > 0, len(y_train) / np.maximum(
            n_classes * counts, 1), 0.0), dtype=torch.float32, device=device)
    return torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)


def _prepare(sources, labels, n_classes, config):
    labels = np.asarray(labels, dtype=np.int64)
    sources = [str(s) for s in sources]
    if len(sources) != len(labels):
        raise ValueError("train_classifier: one label per image is needed")
    if n_classes < 2 or len(np.unique(labels)) < 2:
        raise ValueError("Training a classifier needs images of at least two classes.")
    # small images train small; the last layer alone trains on the embeddings Image
    # Embedder makes (and caches) at the network's native size
    config = fit_to_images(config, sources)
    return sources, labels, config


def train_classifier(sources: Sequence[str], labels: Sequence[int], n_classes: int,
                     config: TrainConfig, *, progress: "ProgressCallback | None" = None,
                     should_stop: "StopCallback | None" = None,
                     on_epoch: "Callable[[EpochRecord], None] | None" = None) -> TrainResult:
    """Train a classifier of ``n_classes`` on images (paths or URLs) with integer labels.

    ``progress(done, total)`` counts images loaded and batches trained or validated;
    ``on_epoch(record)`` is called after every epoch. Unreadable images are left out
    and listed in the result's ``skipped``. Without an ``image_size``, fine-tuning and
    training from scratch run at a size chosen from the images (core.presets.
    fit_to_images: small images at 80 px, for 10 of the recipe's 12 network epochs); the
    result's ``config`` has the size and epochs used. With a ``time_budget``
    the whole network trains for the epochs that fit (none: the last layer alone, and the
    result's ``budget_note`` says so) and the run stops at the deadline with the best model.
    """
    import torch
    from ..imagecache import load_images
    started = time.perf_counter()
    chosen_size, requested_epochs = config.image_size is None, config.epochs
    sources, labels, config = _prepare(sources, labels, n_classes, config)
    parallel = distributed.current()  # torchrun: one process of several (core.distributed)
    deadline = started + config.time_budget if config.time_budget and not parallel else None
    device_name = parallel.device() if parallel else resolve_device(config.device)
    device = torch.device(device_name)
    location = _weights_location(config)  # located (and digested) once
    net = build_net(config, n_classes, location)
    note = ""
    if deadline is not None and chosen_size:  # a size from the images may be lowered
        size, note = size_for_budget(net, config, len(sources), device)
        config = dataclasses.replace(config, image_size=size)
    if config.epochs != requested_epochs:  # core.presets.fit_to_images
        note = (f"Small images: trained at {config.size} px, for {config.epochs} of the "
                f"{requested_epochs} network epochs. {note}").strip()
    generator = torch.Generator().manual_seed(config.seed)

    # progress units (planned_work): images loaded, embedded, trained and validated, and
    # batches of embeddings; the total is planned from all labels and stays (Progress)
    head_epochs, net_epochs = phase_epochs(config)
    counter = Progress(progress, sum(planned_work(labels, config)))
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
    criterion = _criterion(y[train_rows], n_classes, config, device)
    # what the unreadable images would have cost is done: the rest is planned on ``y``
    _, n_embed, head_units, net_units = planned_work(y, config)
    counter.advance_to(counter.total - n_embed - head_units - net_units)

    history: list[EpochRecord] = []
    trainer = EpochRunner(net, config, device, criterion, counter, should_stop, on_epoch,
                          history, generator, parallel, deadline)
    head_opt, cancelled = None, False
    try:
        if head_epochs:
            if config.mode == "fine-tune":
                embed_start = time.perf_counter()
                embeddings = _embed_for_head(net, config, device_name, images=images)[0]
                embed_seconds = time.perf_counter() - embed_start
                counter.step(len(y))
                net_epochs, planned = network_epochs_that_fit(
                    net_epochs, deadline, embed_seconds, len(train_rows), len(y))
                note = " ".join(n for n in (note, planned) if n)
            if config.mode != "scratch" and not config.random_weights:
                trainer.baseline = logreg_accuracy(embeddings[train_rows], y[train_rows],
                                                   embeddings[val_rows], y[val_rows])
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
            _run_network(trainer, net, config, head_opt, images, y, train_rows, val_rows,
                         net_epochs, device)
    except Stop as stop:
        cancelled = not stop.budget
        if stop.budget and "only the last layer" not in note:
            note = f"{note} The time budget ran out: the best model so far is kept.".strip()
        if trainer.best_state is None:
            raise Cancelled() from None
    if trainer.shortened and "epochs of the whole network" not in note:
        note = (f"{note} The time budget fitted {trainer.shortened[1]} of "
                f"{trainer.shortened[0]} epochs of the whole network.").strip()
    trainer.restore()
    counter.finish()
    net = net.to("cpu", memory_format=torch.contiguous_format).eval()
    return TrainResult(net, config, n_classes, tuple(history), trainer.best_epoch,
                       trainer.stopped_early, cancelled, tuple(skipped),
                       tuple(int(c) for c in np.bincount(y, minlength=n_classes)),
                       time.perf_counter() - started, device_name, trainer.baseline, note)


def _run_network(trainer: EpochRunner, net, config: TrainConfig, head_opt, images, y,
                 train_rows, val_rows, epochs: int, device) -> None:
    """The whole network's phase: images in, augmented, the last layer's Adam kept."""
    import torch
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
                epochs, "network", keep=net, augment=True,
                warmup_epochs=config.warmup_epochs,
                units_per_epoch=len(y))
