"""Which view saw it and where: per-view scores and anomaly maps of a fitted :class:`~mmocc.MultimodalOCC`.

:class:`ViewScoresMixin` gives the estimator :meth:`~ViewScoresMixin.view_scores`
(one standardized score per view: the highest names the camera or lighting
that saw the anomaly), :meth:`~ViewScoresMixin.anomaly_maps` (position
scores at input resolution) and :meth:`~ViewScoresMixin.decision_function_by_view`
(scores and view scores from one pass), for the scoring rules that have them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from mmocc.detectors.finite import check_finite_scores
from mmocc.model.patches import input_size_maps

if TYPE_CHECKING:
    from mmocc.data.inputs import ViewSpec
    from mmocc.scoring import Features, ScoringRule


class ViewScoresMixin:
    """Per-view scores and anomaly maps, read from the fitted scoring rule ``rule_``.

    The estimator provides ``rule_``, ``view_specs_``, ``_checked_views`` (input
    checks, :class:`~mmocc.detectors.base.BaseMultiviewDetector`) and
    ``_batches`` (features batch by batch).
    """

    if TYPE_CHECKING:
        rule_: ScoringRule
        view_specs_: list[ViewSpec]

        def _checked_views(
            self, X: Any, *, allow_missing: bool | None = None, stacklevel: int = 3
        ) -> dict[str, np.ndarray]: ...

        def _batches(self, views: dict[str, np.ndarray], needs: frozenset[str]) -> Iterator[Features]: ...

    def _score_views_and_each(self, views: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        parts = [self.rule_.score_with_views(feats) for feats in self._batches(views, self.rule_.needs)]
        if not parts:
            return np.zeros(0), {}
        scores = np.concatenate([p[0] for p in parts]).astype(np.float64)
        return scores, {view: np.concatenate([p[1][view] for p in parts]) for view in parts[0][1]}

    def decision_function_by_view(self, X: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Anomaly scores and, where the rule has them, per-view scores, from one pass over ``X``.

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Views as for :meth:`decision_function`.

        Returns
        -------
        scores : numpy.ndarray of shape (n_samples,)
            As :meth:`decision_function`.
        view_scores : dict of str to numpy.ndarray
            As :meth:`view_scores`; empty for rules that score the views jointly.
        """
        views = self._checked_views(X)
        scores, by_view = self._score_views_and_each(views)
        check_finite_scores(scores, by_view, list(views), "scoring")
        return scores, by_view

    def view_scores(self, X: Any) -> dict[str, np.ndarray]:
        """Standardized anomaly score of each view, comparable across views.

        A high value in one view only says which camera saw the anomaly.
        Views may be missing from ``X``.

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Views as seen at fit time (a subset is allowed).

        Returns
        -------
        dict of str to numpy.ndarray of shape (n_samples,)
            One score per view present (image views only for ``score="patch"``).

        Raises
        ------
        ValueError
            For a rule that scores the views jointly (``norm``, ``center``,
            ``mahalanobis``, ``ensemble``, ``knn`` with ``knn_bank="joint"``).
        """
        views = self._checked_views(X, allow_missing=True)
        parts = [self.rule_.view_scores(feats) for feats in self._batches(views, self.rule_.needs)]
        return {view: np.concatenate([p[view] for p in parts]) for view in parts[0]} if parts else {}

    @property
    def has_anomaly_maps(self) -> bool:
        """bool: whether the fitted scoring rule gives :meth:`anomaly_maps` (``patch`` and ``recon`` do)."""
        check_is_fitted(self, "threshold_")
        return bool(self.rule_.has_maps)

    def anomaly_maps(self, X: Any) -> dict[str, np.ndarray]:
        """Anomaly map of each image view at input resolution, on the scale of its view score.

        Position scores are upsampled bilinearly and smoothed with a Gaussian
        (sigma 4 px at 224 px, scaled to the image size).

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Views as seen at fit time (a subset is allowed).

        Returns
        -------
        dict of str to numpy.ndarray of shape (n_samples, H, W)
            One map stack per image view present.

        Raises
        ------
        ValueError
            For a rule without spatial scores (only ``patch`` and ``recon`` have them).
        """
        views = self._checked_views(X, allow_missing=True)
        sizes = {s.name: (int(s.shape[-2]), int(s.shape[-1])) for s in self.view_specs_ if s.kind == "image"}
        batches = self._batches(views, self.rule_.map_needs)
        return input_size_maps((self.rule_.anomaly_maps(feats) for feats in batches), sizes)
