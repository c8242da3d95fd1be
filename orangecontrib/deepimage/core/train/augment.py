"""Augmentation while training and the views of test-time augmentation; no Qt, no Orange.

Training (``augment``): per image, a random resized crop (``crop_scale`` of the area and
up, aspect 3/4 to 4/3) and a random shift (up to ``shift`` of the side, edges repeated),
as one affine resampling; flips and VGG's scale jitter where the preset asks for them.
Prediction (``tta_views``): the image as it is and shifted by 5% of its side left,
right, up and down, whole pixels, edges repeated; the caller averages the views'
probabilities. The same views are baked into the ONNX export (core.onnx).
"""
from __future__ import annotations

import math

__all__ = ["augment", "tta_views", "TTA_SHIFT"]

TTA_SHIFT = 0.05  # of the side: 3 px at 64 px, 5 px at 96 px


def _resized_crops(x, crop_scale: float, shift: float, generator):
    """A random crop of each image (NCHW float), resized back, and shifted."""
    import torch
    import torch.nn.functional as F
    n = len(x)
    area = crop_scale + (1 - crop_scale) * torch.rand(n, generator=generator)
    log_ratio = (torch.rand(n, generator=generator) * 2 - 1) * math.log(4 / 3)
    ratio = torch.exp(log_ratio)
    width = torch.sqrt(area * ratio).clamp(max=1.0)
    height = torch.sqrt(area / ratio).clamp(max=1.0)
    # the crop's centre: anywhere the crop stays inside, plus the shift (edges repeated)
    cx = (torch.rand(n, generator=generator) * 2 - 1) * (1 - width)
    cy = (torch.rand(n, generator=generator) * 2 - 1) * (1 - height)
    cx = cx + (torch.rand(n, generator=generator) * 2 - 1) * 2 * shift
    cy = cy + (torch.rand(n, generator=generator) * 2 - 1) * 2 * shift
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = width, cx
    theta[:, 1, 1], theta[:, 1, 2] = height, cy
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border",
                         align_corners=False)


def augment(x, config, generator, strength: float = 1.0):
    """Random crops, shifts, flips and scale jitter on a float N x H x W x 3 batch
    (pixel scale), as ``config`` (core.presets.TrainConfig) asks; the crops and shifts at
    ``strength`` (0: none, 1: the config's; the warm-up raises it with ``ramp_augment``)."""
    import torch
    import torch.nn.functional as F
    if config.flip:
        mask = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(2), x)
    crop_scale = 1 - strength * (1 - config.crop_scale)
    shift = strength * config.shift
    if crop_scale < 1 or shift > 0:
        x = _resized_crops(x.permute(0, 3, 1, 2), crop_scale, shift,
                           generator).permute(0, 2, 3, 1)
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


def tta_views(images, views: int = 5, size: "int | None" = None) -> list:
    """``views`` versions of a N x H x W x 3 batch of square images (any dtype; float32
    out): the images as they are and, for 5, shifted by TTA_SHIFT of the side (at least a
    pixel) left, right, up and down, the edge pixels repeated into the gap. ``size`` is
    the side, where it must be a number, not the batch's shape (the ONNX export)."""
    import torch.nn.functional as F
    x = images.float()
    if views <= 1:
        return [x]
    side = int(size) if size is not None else int(x.shape[1])
    d = max(1, int(round(TTA_SHIFT * side)))
    padded = F.pad(x.permute(0, 3, 1, 2), (d, d, d, d), mode="replicate")
    out = [x]
    for dy, dx in ((0, -d), (0, d), (-d, 0), (d, 0)):
        view = padded[:, :, d + dy:d + dy + side, d + dx:d + dx + side]
        out.append(view.permute(0, 2, 3, 1))
    return out
