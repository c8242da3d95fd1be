"""The time budget's plans: the image size and the whole network's epochs that fit.

Before the images are loaded, one timed training step at the chosen size says what an
epoch will cost; a size chosen from the images (not one the user fixed) is lowered by
steps of 32 px until at least BUDGET_MIN_EPOCHS epochs of the whole network fit in
the budget (never below BUDGET_SIZE_FLOOR, 64 px). After the embedding pass, the epochs that fit
are planned from its time; the epoch runner re-plans after every epoch (epochs.py).
"""
from __future__ import annotations

import math
import time

from ..presets import AUTO_SIZE_STEP, MIN_IMAGE_SIZE, TrainConfig

__all__ = ["network_epochs_that_fit", "size_for_budget", "BACKWARD_FACTOR",
           "BUDGET_MIN_EPOCHS"]

# a network epoch (forward and backward on the training split, forward on the validation
# split) costs about this many times the forward pass of the training split alone
BACKWARD_FACTOR = 3.0
BUDGET_MIN_EPOCHS = 6  # lower the size until this many network epochs fit (or the floor)
BUDGET_SHARE = 0.8  # of the budget for the network's epochs (loading, the last layer: rest)
# the smallest size a budget lowers a chosen size to (below the 80-px floor of sizes chosen
# from the images: a short budget may ask for it)
BUDGET_SIZE_FLOOR = 64


def network_epochs_that_fit(planned: int, deadline: "float | None", embed_seconds: float,
                            n_train: int, n_all: int) -> "tuple[int, str]":
    """Whole-network epochs that fit before ``deadline``, estimated from the seconds the
    embedding pass over all ``n_all`` images took, and what that changed, in a sentence."""
    if deadline is None or not planned or not embed_seconds > 0:
        return planned, ""
    per_epoch = embed_seconds * (BACKWARD_FACTOR * n_train + (n_all - n_train)) / max(n_all, 1)
    fits = math.floor((deadline - time.perf_counter()) / per_epoch)
    if fits < 1:
        return 0, (f"The time budget was too short for one epoch of the whole network "
                   f"(about {per_epoch:.0f} s): only the last layer was trained.")
    if fits < planned:
        return fits, f"The time budget fitted {fits} of {planned} epochs of the whole network."
    return planned, ""


def _seconds_per_image(net, size: int, device) -> float:
    """One training step's seconds per image at ``size`` (the second of two steps of 8
    random images; the gradients are dropped, the weights are not changed)."""
    import torch
    x = torch.randint(0, 256, (8, size, size, 3), dtype=torch.uint8).to(device)
    net.to(device).train()
    seconds = 0.0
    for _ in range(2):
        start = time.perf_counter()
        net.backbone(net.preprocess(x)).float().sum().backward()
        seconds = time.perf_counter() - start
    net.zero_grad(set_to_none=True)
    return seconds / len(x)


def size_for_budget(net, config: TrainConfig, n_images: int, device) -> "tuple[int, str]":
    """The image size to train at within ``config.time_budget`` (see the module doc), and
    a sentence when it was lowered."""
    size = config.size
    floor = max(BUDGET_SIZE_FLOOR, MIN_IMAGE_SIZE[config.model])
    if not config.time_budget or config.mode == "last-layer" or size <= floor:
        return size, ""
    epochs = min(config.epochs, BUDGET_MIN_EPOCHS)
    n_train = n_images * (1 - config.validation_fraction)
    per_image = _seconds_per_image(net, size, device)
    chosen = size
    while chosen > floor:
        scale = (chosen / size) ** 2
        epoch = per_image * scale * (n_train + (n_images - n_train) / BACKWARD_FACTOR)
        if epoch * epochs <= BUDGET_SHARE * config.time_budget:
            break
        chosen = max(floor, chosen - AUTO_SIZE_STEP)
    if chosen == size:
        return size, ""
    return chosen, (f"The time budget lowered the image size from {size} to {chosen} px.")
