"""Which view saw it, where, and what kind: per-view scores, anomaly maps and part scores of a fitted model.

:class:`ViewScoresMixin` gives the estimator :meth:`~ViewScoresMixin.view_scores`
(one standardized score per view: the highest names the camera or lighting
that saw the anomaly), :meth:`~ViewScoresMixin.anomaly_maps` (position
scores at input resolution), :meth:`~ViewScoresMixin.score_parts` (for
``score="combined"``: the global and local part scores and which part fired)
and :meth:`~ViewScoresMixin.decision_function_by_view` and
:meth:`~ViewScoresMixin.decision_function_details` (scores, view scores and
part scores from one pass), for the scoring rules that have them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from mmocc.detectors.finite import check_finite_scores
from mmocc.detectors.parts import fired_part
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

    def _score_details(
        self, views: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Scores, view scores and part scores of checked ``views``, batch by batch, in one pass."""
        batches = [self.rule_.score_details(feats) for feats in self._batches(views, self.rule_.needs)]
        if not batches:
            return np.zeros(0), {}, {}

        def joined(i: int) -> dict[str, np.ndarray]:
            return {key: np.concatenate([b[i][key] for b in batches]) for key in batches[0][i]}

        return np.concatenate([b[0] for b in batches]).astype(np.float64), joined(1), joined(2)

    def _score_views_and_each(self, views: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        scores, by_view, _ = self._score_details(views)
        return scores, by_view

    def decision_function_details(
        self, X: Any
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Anomaly scores, per-view scores and part scores, from one pass over ``X``.

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
        part_scores : dict of str to numpy.ndarray
            The standardized score of each part (``"global"``, ``"local"``)
            for ``score="combined"``; empty for the other rules.
        """
        return self._finite_details(self._checked_views(X))

    def _finite_details(
        self, views: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """:meth:`_score_details` of checked ``views``, refusing non-finite scores."""
        scores, by_view, parts = self._score_details(views)
        check_finite_scores(scores, by_view, list(views), "scoring")
        return scores, by_view, parts

    def score_parts(self, X: Any) -> dict[str, np.ndarray]:
        """Which kind of anomaly: the global and local part scores of ``score="combined"`` and which fired.

        The sample's score is the mean of the two standardized part scores;
        the larger one fired: ``"global"`` (the k-NN score of the whole
        sample) says "another object", ``"local"`` (the patch score) says "a
        defect on this object".

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Views as for :meth:`decision_function`.

        Returns
        -------
        dict of str to numpy.ndarray of shape (n_samples,)
            ``"global"`` and ``"local"`` (floats, each on the scale of its
            leave-one-out training scores: mean 0, standard deviation 1) and
            ``"fired"`` (strings, the part with the larger score).

        Raises
        ------
        ValueError
            For a rule without parts (every rule but ``combined``).
        """
        check_is_fitted(self, "threshold_")
        if not self.rule_.part_names:
            raise ValueError(
                f"score={self.rule_.name!r} has no global and local parts; use score='combined' "
                "(preset='combined')"
            )
        _, _, parts = self._finite_details(self._checked_views(X))
        return {**parts, "fired": fired_part(parts)}

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
        scores, by_view, _ = self._finite_details(self._checked_views(X))
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
