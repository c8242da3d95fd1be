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

Here: the phases a mode runs and the network they train. The epochs themselves (the
loop, validation, early stopping) are core.epochs'; the split and the progress units
are planned in core.trainplan.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from . import distributed
from .cancel import ProgressCallback, StopCallback
from .embed import Cancelled, resolve_device
from .epochs import EpochRecord, PhaseTrainer, Stop
from .images import Skipped
from .models import get_spec
from .predict import predict_proba
from .presets import (MIN_IMAGE_SIZE, MODES, OPTIMIZERS, TrainConfig, auto_image_size,
                      preset, size_for_images)
from .schedule import head_optimizer, network_optimizers
from .trainplan import RunProgress, phase_epochs, stratified_split

__all__ = ["MODES", "OPTIMIZERS", "MIN_IMAGE_SIZE", "TrainConfig", "EpochRecord",
           "TrainResult", "preset", "auto_image_size", "size_for_images", "train_classifier",
           "predict_proba", "weights_fingerprint", "stratified_split"]


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


def weights_fingerprint(net) -> str:
    """A stable short digest of a network's weights (names, shapes and values)."""
    import hashlib
    digest = hashlib.blake2b(digest_size=12)
    for name, tensor in sorted(net.state_dict().items()):
        digest.update(name.encode())
        array = tensor.detach().cpu().contiguous().numpy()
        digest.update(str(array.shape).encode() + array.tobytes())
    return digest.hexdigest()


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
    # the total is planned from all labels and stays (core.trainplan.RunProgress)
    counter = RunProgress(progress, labels, config)
    data, kept, skipped = _training_data(net, config, sources, device_name, parallel,
                                         location, counter, should_stop)
    y = labels[kept]
    if len(np.unique(y)) < 2:
        raise ValueError(f"Only {len(y)} of {len(sources)} images could be read, not enough "
                         f"for two classes; see the skipped images.")
    history: list[EpochRecord] = []
    trainer = PhaseTrainer(net, config, device, _criterion(config, y, n_classes, device),
                           counter, should_stop, on_epoch, history,
                           torch.Generator().manual_seed(config.seed), parallel)
    cancelled = False
    try:
        _run_phases(trainer, data, y, device_name)
    except Stop:
        cancelled = True
        if trainer.stopping.best_state is None:
            raise Cancelled() from None
    trainer.stopping.restore()
    counter.finish()
    net = net.to("cpu", memory_format=torch.contiguous_format).eval()
    return TrainResult(net, config, n_classes, tuple(history), trainer.stopping.best_epoch,
                       trainer.stopping.stopped_early, cancelled, tuple(skipped),
                       tuple(int(c) for c in np.bincount(y, minlength=n_classes)),
                       time.perf_counter() - started, device_name)


def _training_data(net, config: TrainConfig, sources: "list[str]", device_name: str,
                   parallel, location, counter: RunProgress, should_stop):
    """(embeddings for "last-layer", else decoded images; the rows kept; skipped), with
    progress as images are read. Raises Cancelled on should_stop()."""
    if config.mode == "last-layer":
        # torchrun: rank 0 fills the embedding cache first, the others read it
        with parallel.main_first() if parallel else contextlib.nullcontext():
            return _embed_for_head(net, config, device_name, sources,
                                   weights_id=location and location.identity,
                                   progress=counter.loaded, should_stop=should_stop)
    from .imagecache import load_images
    loaded = load_images(sources, config.size, progress=counter.loaded,
                         should_stop=should_stop)
    return loaded.images, loaded.indices, loaded.skipped


def _criterion(config: TrainConfig, y: np.ndarray, n_classes: int, device):
    """Cross-entropy with the label smoothing of the config, and classes weighted
    inversely to their frequency among the training rows (``class_weighting``)."""
    import torch
    train_rows, _ = stratified_split(y, config.validation_fraction, config.seed)
    counts = np.bincount(y[train_rows], minlength=n_classes)
    weight = None
    if config.class_weighting:
        weight = torch.tensor(np.where(counts > 0, len(train_rows) / np.maximum(
            n_classes * counts, 1), 0.0), dtype=torch.float32, device=device)
    return torch.nn.CrossEntropyLoss(weight=weight, label_smoothing=config.label_smoothing)


def _run_phases(trainer: PhaseTrainer, data: np.ndarray, y: np.ndarray,
                device_name: str) -> None:
    """The last layer alone on embeddings, then the whole network on the images, as the
    mode says (``data``: embeddings for "last-layer", decoded images otherwise)."""
    import torch
    net, config, counter = trainer.net, trainer.config, trainer.progress
    head_epochs, net_epochs = phase_epochs(config)
    train_rows, val_rows = stratified_split(y, config.validation_fraction, config.seed)
    n_embed, head_units, _ = counter.usable(y)
    head_opt = None
    if head_epochs:
        embeddings = data
        if config.mode == "fine-tune":
            embeddings = _embed_for_head(net, config, device_name, images=data)[0]
            counter.step(n_embed)
        net.to(trainer.device)
        head_opt = head_optimizer(net, config)  # goes on, moments and all, below
        trainer.run(lambda x, train: (net.backbone.head_from_embedding(x), None),
                    [head_opt], embeddings[train_rows], y[train_rows],
                    embeddings[val_rows], y[val_rows], head_epochs, "head",
                    keep=net.backbone.get_classifier(), augment_images=False,
                    units_per_epoch=head_units // head_epochs)
        trainer.stopping.restore()
        if net_epochs:
            trainer.stopping.snapshot(net)  # the network phase must beat the best head
    if net_epochs:
        net.to(trainer.device, memory_format=torch.channels_last
               if trainer.device.type == "cuda" else torch.preserve_format)
        backbone = net.backbone

        def forward(x, train):
            x = net.preprocess(x)
            if hasattr(backbone, "forward_with_aux"):
                return backbone.forward_with_aux(x)
            return backbone(x), None

        trainer.run(forward, network_optimizers(net, config, head_opt),
                    data[train_rows], y[train_rows], data[val_rows], y[val_rows],
                    net_epochs, "network", keep=net, augment_images=True,
                    warmup_epochs=config.warmup_epochs if config.mode == "fine-tune" else 0,
                    units_per_epoch=len(y))
