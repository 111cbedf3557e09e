"""The combined score: global evidence ("another object") and local evidence ("a defect on this one").

A global rule (the default preset's k-NN) and a local rule (patch memory
banks) are fitted on the same training features. Each part's leave-one-out
training scores give its mean and standard deviation; a sample's score is
the mean of its two standardized part scores, and the part with the larger
one is reported as the part that fired (:func:`fired_part`). Per-view scores
and anomaly maps are the local part's: they say which camera saw a defect,
and where.

The mean, not the maximum: on painted defects and other classes, synthetic
and COIL-20 (``benchmarks/combined.py``, COMBINED.md "Mean or maximum"),
the mean of the two standardized parts ranked both kinds of anomaly at least
as well as their maximum, whose normals carry the upper tail of two noisy
scores.
"""

from __future__ import annotations

import numpy as np

from mmocc.detectors.parts import PART_NAMES
from mmocc.scoring.base import Features, ScoringRule
from mmocc.scoring.ensemble import EnsembleScore


class CombinedScore(EnsembleScore):
    """The mean of a global and a local score, each standardized by its leave-one-out training scores.

    The standardization, the mean and the saved state are :class:`EnsembleScore`'s
    (statistics ``mean``, ``std``; each part's state under ``global.`` and ``local.``);
    this rule adds the part scores and keeps the local part's view scores and maps.

    Parameters
    ----------
    global_part : ScoringRule
        Scores the sample as a whole (the default preset's k-NN): high for another object.
    local_part : ScoringRule
        Scores positions of image views, with per-view scores and maps (the
        patch rule): high for a local defect.

    Notes
    -----
    The per-view scores are the local part's, so a subset of views cannot be
    scored alone: the global part's views are scored together
    (:attr:`allows_missing_views` is False).
    """

    name = "combined"
    supports_views = True
    has_maps = True
    part_names = PART_NAMES

    def __init__(self, global_part: ScoringRule, local_part: ScoringRule) -> None:
        if not (local_part.supports_views and local_part.has_maps):
            raise ValueError(
                f"the local part of score='combined' needs per-view scores and maps, "
                f"which score={local_part.name!r} does not give"
            )
        super().__init__(dict(zip(PART_NAMES, (global_part, local_part), strict=True)))
        self.train_view_scores: dict[str, np.ndarray] = {}

    @property
    def allows_missing_views(self) -> bool:
        """False: the global part scores the views together."""
        return False

    @property
    def map_needs(self) -> frozenset[str]:
        """What the local part's maps read."""
        return self.parts["local"].map_needs

    def fit(self, train: Features) -> np.ndarray:
        """Fit both parts; standardize each by its leave-one-out training scores; return their mean."""
        scores = super().fit(train)
        self.train_view_scores = self.parts["local"].train_view_scores
        return scores

    def score_details(
        self, feats: Features
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Return the scores, the local part's view scores and both standardized part scores, in one pass."""
        raw_local, views = self.parts["local"].score_with_views(feats)
        z = (np.column_stack([self.parts["global"].score(feats), raw_local]) - self.mean) / self.std
        return z.mean(axis=1), views, {name: z[:, i] for i, name in enumerate(PART_NAMES)}

    def score(self, feats: Features) -> np.ndarray:
        """Return the mean of the two standardized part scores."""
        return self.score_details(feats)[0]

    def score_with_views(self, feats: Features) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Return the scores and the local part's view scores from one pass."""
        scores, views, _ = self.score_details(feats)
        return scores, views

    def view_scores(self, feats: Features) -> dict[str, np.ndarray]:
        """Return the local part's standardized score of each view present: which camera saw a defect."""
        return self.parts["local"].view_scores(feats)

    def combine(self, view_scores: dict[str, np.ndarray]) -> np.ndarray:
        """Refuse: the global part scores the views together, so view scores alone do not give the score."""
        raise ValueError(
            "score='combined' cannot score a subset of the views: its global part scores them together; "
            "pass every view, or use score='patch'"
        )

    def anomaly_maps(self, feats: Features) -> dict[str, np.ndarray]:
        """Return the local part's position scores of each image view."""
        return self.parts["local"].anomaly_maps(feats)

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore the statistics and both parts."""
        super().load_state(state)
        self.train_view_scores = self.parts["local"].train_view_scores
