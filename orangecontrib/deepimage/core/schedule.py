"""Optimizers, parameter groups and learning-rate schedules for core.train; no Qt, no Orange.

Fine-tuning trains in two stages (Kumar et al. 2022, "linear probing, then fine-tuning";
Howard & Ruder 2018, ULMFiT): the last layer alone on the embeddings, then the whole
network. Unfreezing is where it can go wrong: SqueezeNet's Caffe features have norms in
the hundreds (about 190 on the digits at 64 px, lambda_max(E[e e^T]) about 3e4), so
plain SGD on the last layer (a softmax regression on them, curvature at most half that)
is stable only below a rate of about 4 / 3e4 ~ 1e-4, while the network rate is 4e-3.
Switching the last layer from Adam to SGD at that rate threw the training loss from
below 1 to 4-40 within two epochs (the head alone does it: it happens with the backbone's
rates near zero too). So in the second stage

- the last layer keeps training with the Adam it trained with in the first stage
  (its moment estimates carried over, not reset), which adapts to the embeddings' scale
  whatever the network, at ``head_learning_rate x NETWORK_HEAD_FACTOR``;
- the backbone trains with the configured optimizer (the paper's: SGD with momentum for
  SqueezeNet and VGG, RMSProp for Inception), the earliest layers at ``learning_rate x
  backbone_lr_factor`` rising to ``learning_rate`` for the last ones (discriminative
  rates, ULMFiT), with SqueezeNet's gradients capped at the switch, the cap growing
  threefold every epoch (``gradient_cap``; ``max_grad_norm``, ``cap_growth``): its
  backbone's gradients have norms of 15-35 at the switch, and with SGD's steps at the
  full rate its embeddings' norms went from 200 to 265 and then fell to 105 within the
  first epoch, and the validation loss jumped (0.50 -> 1.30 on the tutorial's digits);
  a cap lifted at once after the first epoch moved the jump to the second in some runs;
- every rate rises linearly from near zero over the first ``warmup_epochs`` (Goyal et
  al. 2017; ULMFiT's slanted triangular rate), then decays along a cosine to 1% of its peak.

The fine-tuning recipe now (core.presets.FINE_TUNE_RECIPE) is AdamW on the backbone at a
tenth of the last layer's rate, on a one-cycle schedule (``warmup_epochs`` a quarter of
the stage); the SGD machinery above stays for presets that ask for it.

From scratch there is one optimizer for all layers, with the same warm-up and decay.
"""
from __future__ import annotations

import math

import numpy as np

__all__ = ["NETWORK_HEAD_FACTOR", "warmup_cosine", "gradient_cap", "make_optimizer",
           "head_optimizer", "backbone_groups", "network_optimizers", "set_peak_rates",
           "warmup_steps"]

# The last layer's Adam rate after unfreezing, as a share of its first-stage rate: the
# first stage has brought it near its optimum, and the features now move under it
# (TrainConfig.network_head_factor's default; the AdamW fine-tuning recipe keeps 1, with
# the backbone at a tenth of it).
NETWORK_HEAD_FACTOR = 0.1


def warmup_cosine(step: int, total: int, warmup: int = 0, floor: float = 0.01) -> float:
    """The share of the peak rate for 0-based optimizer step ``step`` of ``total``: a
    linear rise over the first ``warmup`` steps (1/(warmup+1), 2/(warmup+1), ... so the
    first step is small but not zero), then a cosine decay from 1 to ``floor``."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    done = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * done))


def gradient_cap(max_norm: float, growth: float, step: int, steps_per_epoch: int) -> float:
    """The cap on the whole network's gradient norm at 0-based optimizer step ``step`` of
    the whole-network stage: ``max_norm`` at the first step, growing smoothly by
    ``growth`` per epoch (``growth`` 1: the same cap all along). SqueezeNet's preset starts
    at 3 and triples every epoch, so after two or three epochs it no longer binds (its
    gradients' norms are 5-35): it loosens gradually, with no step where it lifts at once."""
    return float(max_norm) * float(growth) ** (step / max(int(steps_per_epoch), 1))


def warmup_steps(warmup_epochs: float, steps_per_epoch: int, epochs: int) -> int:
    """Optimizer steps of warm-up: ``warmup_epochs`` epochs' worth, at most a third of the
    stage's steps."""
    total = steps_per_epoch * epochs
    return int(min(round(warmup_epochs * steps_per_epoch), total // 3))


def make_optimizer(groups: list, config, adam: bool = False):
    """The configured optimizer (SGD with momentum, RMSProp as in Inception v3, or Adam)
    on ``groups``; with ``adam``, Adam at the head learning rate (for the last layer)."""
    import torch
    if adam:  # AdamW where the recipe is AdamW: decoupled decay, as the backbone's
        kind = torch.optim.AdamW if config.optimizer == "adamw" else torch.optim.Adam
        return kind(groups, lr=config.head_learning_rate, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.learning_rate, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    if config.optimizer == "rmsprop":  # Inception v3's: decay 0.9, epsilon 1.0
        return torch.optim.RMSprop(groups, lr=config.learning_rate, alpha=0.9, eps=1.0,
                                   momentum=config.momentum, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.learning_rate,
                                 weight_decay=config.weight_decay)
    return torch.optim.Adam(groups, lr=config.learning_rate, weight_decay=config.weight_decay)


def head_optimizer(net, config):
    """Adam on the last layer alone: a linear model on fixed embeddings whose scale
    differs from network to network (SqueezeNet's are in the hundreds), which Adam
    adapts to and plain SGD does not."""
    return make_optimizer([{"params": list(net.backbone.get_classifier().parameters())}],
                          config, adam=True)


def backbone_groups(net, config) -> list:
    """Every layer but the last, in four consecutive chunks at rising rates: the earliest
    at ``learning_rate x backbone_lr_factor``, the latest at ``learning_rate``."""
    head_ids = {id(p) for p in net.backbone.get_classifier().parameters()}
    rest = [p for p in net.backbone.parameters() if id(p) not in head_ids]
    chunks = [c for c in np.array_split(np.arange(len(rest)), 4) if len(c)]
    groups = []
    for i, chunk in enumerate(chunks):
        scale = config.backbone_lr_factor ** (1 - i / max(len(chunks) - 1, 1))
        groups.append({"params": [rest[j] for j in chunk],
                       "lr": config.learning_rate * scale})
    return groups


def set_peak_rates(optimizer, rates: "list[float]") -> None:
    """Give each parameter group a new peak rate (a schedule made after this starts from
    it); the optimizer's state, e.g. Adam's moment estimates, is kept."""
    for group, rate in zip(optimizer.param_groups, rates):
        group["lr"] = group["initial_lr"] = rate


def network_optimizers(net, config, head=None) -> list:
    """The optimizers of the whole-network stage. Fine-tuning: the last layer on Adam (the
    first stage's ``head``, state and all, when there was one) and the rest on the
    configured optimizer; from scratch: one configured optimizer on everything."""
    if config.mode == "scratch":
        return [make_optimizer([{"params": list(net.parameters())}], config)]
    head = head if head is not None else head_optimizer(net, config)
    set_peak_rates(head, [config.head_learning_rate * config.network_head_factor])
    return [head, make_optimizer(backbone_groups(net, config), config)]
