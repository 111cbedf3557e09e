"""Training-time augmentation applied consistently to all image views.

Each sample draws one random translation (and, for ``"shift_flip"``, one
horizontal flip) that is applied to every image view of that sample, so the
views stay consistent with each other, as two cameras of one moved specimen
would. Vector views are left untouched. Translations are fractions of the
image size, so views of different resolutions move alike; borders are
replicated.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

AUGMENTATIONS = ("none", "shift", "shift_flip")


def augment_views(
    views: dict[str, Tensor], kind: str, shift: float, generator: torch.Generator
) -> dict[str, Tensor]:
    """Randomly shift (and flip) the image views of a scaled batch.

    Parameters
    ----------
    views : dict of str to Tensor
        Scaled batches; 4-D tensors are images ``(n, C, H, W)``.
    kind : {"none", "shift", "shift_flip"}
        The augmentation.
    shift : float
        Largest translation as a fraction of the image side.
    generator : torch.Generator
        CPU generator for the random draws, for reproducibility.

    Returns
    -------
    dict of str to Tensor
        Augmented batches (the input dict when ``kind == "none"``).
    """
    if kind == "none":
        return views
    first = next(iter(views.values()))
    n = first.shape[0]
    offsets = (torch.rand((n, 2), generator=generator) * 2.0 - 1.0) * (2.0 * shift)
    sign = torch.ones(n)
    if kind == "shift_flip":
        sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros((n, 2, 3))
    theta[:, 0, 0] = sign
    theta[:, 1, 1] = 1.0
    theta[:, :, 2] = offsets
    out = {}
    for name, x in views.items():
        if x.ndim != 4:
            out[name] = x
            continue
        grid = F.affine_grid(theta.to(device=x.device, dtype=x.dtype), list(x.shape), align_corners=False)
        out[name] = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out
