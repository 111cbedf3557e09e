"""The scored samples a report shows: ids, labels, source files and scores, without images."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class ScoredSamples:
    """Every sample of a report, without its images: ids, labels, source files and scores.

    Attributes
    ----------
    ids : numpy.ndarray of shape (n,)
        Sample ids.
    labels : numpy.ndarray of shape (n,) or None
        Labels; None for unlabelled data.
    paths : dict of str to numpy.ndarray
        Source file of each sample, per view read from files.
    total : numpy.ndarray of shape (n,), dtype float64
        Anomaly scores.
    by_view : dict of str to numpy.ndarray
        Per-view scores (empty when the model's rule scores views jointly).
    threshold : float
        The detector's threshold.
    n_seen : int or None
        How many samples the model was trained on; None when the model
        records no training fingerprints.
    parts : dict of str to numpy.ndarray
        Standardized part scores (``score="combined"``: ``"global"`` and
        ``"local"``); empty for the other rules.
    """

    ids: np.ndarray
    labels: np.ndarray | None
    paths: dict[str, np.ndarray]
    total: np.ndarray
    by_view: dict[str, np.ndarray]
    threshold: float
    n_seen: int | None
    parts: dict[str, np.ndarray] = field(default_factory=dict)


PART_MEANING = {"global": "another object", "local": "a defect on this object"}
"""What it means when a part of ``score="combined"`` fires."""
