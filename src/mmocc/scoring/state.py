"""What a scoring rule's saved state must look like: :class:`Expect` per array, given :class:`FeatureDims`.

Each rule describes its own state once, in :meth:`ScoringRule.state_spec
<mmocc.scoring.base.ScoringRule.state_spec>`: saving checks the state against
it before writing, and loading checks a file's tensors against it before
restoring anything (:mod:`mmocc.io.model_file`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch

FLOATS: tuple[torch.dtype, ...] = (torch.float32, torch.float64)
"""The dtypes of stored scores and scoring-rule state."""


class Expect(NamedTuple):
    """What one stored tensor must be.

    Attributes
    ----------
    shape : tuple of int or None
        The shape; ``None`` is an axis of any length >= 1.
    dtypes : tuple of torch.dtype
        The dtypes accepted.
    required : bool
        Whether the tensor must be present (False for state older files lack).
    values : {"finite", "positive", "nonnegative", "mean_std"}
        What floating values must be: finite, and for scales all > 0, for
        variances all >= 0, for a ``[mean, std]`` pair std > 0.
    """

    shape: tuple[int | None, ...]
    dtypes: tuple[torch.dtype, ...] = FLOATS
    required: bool = True
    values: str = "finite"


@dataclass(frozen=True)
class FeatureDims:
    """The widths of the features a scoring rule reads, and the training-set size.

    Attributes
    ----------
    latent : dict of str to int
        Flattened latent width of each view, in view order.
    input : dict of str to int
        Flattened input width of each view.
    patch : dict of str to int
        Patch feature channels of each image view.
    n_train : int
        Training samples the rule was fitted on.
    """

    latent: dict[str, int]
    input: dict[str, int]
    patch: dict[str, int]
    n_train: int


def mean_std_spec(width: int) -> dict[str, Expect]:
    """Expect standardization statistics ``mean`` and ``std`` (> 0) of ``width`` columns.

    Parameters
    ----------
    width : int
        Number of standardized columns.

    Returns
    -------
    dict of str to Expect
        ``mean`` and ``std``.
    """
    return {"mean": Expect((width,)), "std": Expect((width,), values="positive")}
