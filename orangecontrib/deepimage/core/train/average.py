"""An exponential moving average of a network's weights (timm's ModelEma; Polyak
averaging), validated and kept in place of the weights as they are; no Qt, no Orange.

Fine-tuning's whole-network phase (``TrainConfig.ema_epochs``) averages the weights over
about that many epochs' steps: the average starts at the weights the phase starts from
(the last layer trained, the backbone pretrained), so at the switch it moves away from
them gradually, and at the end it smooths the last steps' noise.
"""
from __future__ import annotations

import contextlib

__all__ = ["WeightAverage", "ema_decay"]


def ema_decay(horizon_epochs: float, steps_per_epoch: int) -> float:
    """The per-step decay that averages over about ``horizon_epochs`` epochs of steps
    (1 - 1 / steps); 0 for no average."""
    steps = float(horizon_epochs) * max(int(steps_per_epoch), 1)
    return 0.0 if steps <= 1 else 1.0 - 1.0 / steps


class WeightAverage:
    """``decay`` x average + (1 - decay) x weights after every optimizer step, over the
    floating-point entries of ``module``'s state (its parameters and such buffers)."""

    def __init__(self, module, decay: float):
        self.module, self.decay = module, float(decay)
        self.average = {k: v.detach().clone() for k, v in module.state_dict().items()
                        if v.dtype.is_floating_point}

    def update(self) -> None:
        """Move the average towards the module's weights now."""
        import torch
        with torch.no_grad():
            for key, value in self.module.state_dict().items():
                if key in self.average:
                    self.average[key].lerp_(value.detach(), 1.0 - self.decay)

    @contextlib.contextmanager
    def applied(self):
        """The module with the averaged weights inside the block, its own after it."""
        own = {k: v.detach().clone() for k, v in self.module.state_dict().items()
               if k in self.average}
        self.module.load_state_dict(self.average, strict=False)
        try:
            yield self.module
        finally:
            self.module.load_state_dict(own, strict=False)
