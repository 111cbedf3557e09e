"""The parts of a combined score, and which one fired: kept free of torch, for the CSV and the report.

``score="combined"`` (:class:`mmocc.scoring.combined.CombinedScore`) scores a
global part ("another object") and a local part ("a defect on this
object"); :func:`fired_part` names the one with the larger standardized
score. ``mmocc score`` and ``mmocc report`` call it for every model, an
ONNX export included, so it imports nothing heavy.
"""

from __future__ import annotations

import numpy as np

PART_NAMES: tuple[str, ...] = ("global", "local")
"""The parts of :class:`CombinedScore`: ``"global"`` (another object), ``"local"`` (a defect on this one)."""


def fired_part(parts: dict[str, np.ndarray]) -> np.ndarray:
    """Name, per sample, the part with the larger standardized score (``"global"`` on a tie).

    Parameters
    ----------
    parts : dict of str to numpy.ndarray
        Standardized score of each part, as :meth:`CombinedScore.score_details` gives them.

    Returns
    -------
    numpy.ndarray of str, shape (n,)
        The name of the part that decided each sample's score.

    Examples
    --------
    >>> fired_part({"global": np.array([2.0, 0.1]), "local": np.array([1.0, 3.0])}).tolist()
    ['global', 'local']
    """
    names = list(parts)
    stacked = np.column_stack([parts[name] for name in names])
    return np.asarray(names)[np.argmax(stacked, axis=1)]
