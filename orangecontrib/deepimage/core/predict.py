"""Class probabilities of images from a trained network (core.train's result); no Qt."""
from __future__ import annotations

import contextlib
import copy
import dataclasses
from typing import Sequence

import numpy as np

from .cancel import ProgressCallback, StopCallback
from .cancel import Cancelled
from .devices import resolve_device
from .images import Skipped

__all__ = ["predict_proba"]



def predict_proba(net, sources: Sequence[str], image_size: int, *, device: str = "auto",
                  batch_size: int = 64, progress: "ProgressCallback | None" = None,
                  should_stop: "StopCallback | None" = None,
                  chunk: int = 512,
                  tta: int = 1) -> "tuple[np.ndarray, np.ndarray, tuple[Skipped, ...]]":
    """Class probabilities of the images that could be read: (probabilities, their
    positions in ``sources``, skipped). Images are decoded ``chunk`` at a time; raises
    core.cancel.Cancelled when ``should_stop()`` turns true (checked per batch). With
    ``tta`` 5, each image's probabilities are the mean of five views (as is and shifted
    each way: core.train.augment.tta_views), at five times the cost."""
    import torch
    from .imagecache import load_images
    from .train.augment import tta_views
    device = torch.device(resolve_device(device))
    amp = device.type == "cuda"
    # on the CPU the caller's network is used as it is; elsewhere a copy goes to the device
    model = net.eval() if device.type == "cpu" else copy.deepcopy(net).eval().to(device)
    sources = [str(s) for s in sources]
    parts, indices, skipped = [], [], []
    for start in range(0, len(sources), chunk):
        loaded = load_images(sources[start:start + chunk], image_size, should_stop=should_stop)
        skipped += [dataclasses.replace(s, index=s.index + start) for s in loaded.skipped]
        indices.append(loaded.indices + start)
        with torch.inference_mode():
            for b in range(0, len(loaded.images), batch_size):
                if should_stop is not None and should_stop():
                    raise Cancelled()
                x = torch.from_numpy(loaded.images[b:b + batch_size]).to(device)
                with (torch.autocast("cuda", dtype=torch.float16) if amp
                      else contextlib.nullcontext()):
                    # softmax in float64: float32 rows miss 1 by ~1e-7, which scikit-learn's
                    # metrics (Test & Score's AUC) warn about
                    probs = torch.stack([torch.softmax(model.logits(view).double(), 1)
                                         for view in tta_views(x, tta)]).mean(0)
                parts.append(probs.cpu().numpy())
        if progress is not None:
            progress(min(start + chunk, len(sources)), len(sources))
    classifier = net.backbone.get_classifier()
    n_classes = getattr(classifier, "out_features", None) or classifier.out_channels
    probs = np.concatenate(parts) if parts else np.zeros((0, n_classes))
    return (probs, np.concatenate(indices) if indices
            else np.zeros(0, np.int64), tuple(skipped))
