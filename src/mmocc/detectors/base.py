"""The base class shared by every mmocc detector.

It owns what PyOD's ``BaseDetector`` owns: the threshold from the
``contamination`` rate, binary labels and probabilities. A concrete detector
supplies only two hooks, :meth:`BaseMultiviewDetector._fit_views` (learn from
normal training views, return the training scores) and
:meth:`BaseMultiviewDetector._score_views` (score new views).

It also owns where the threshold comes from. ``threshold="train"`` takes the
quantile of the training scores, which the scoring rules compute honestly
where they can (the k-NN rules leave each sample out); under a shift between
training and new normals (new poses, new specimens) those scores are too low
and so is the threshold. ``threshold="holdout"`` fits on part of the normals
and takes the quantile of the scores of the rest, which the model never saw;
:meth:`BaseMultiviewDetector.calibrate` does the same with normals you pass.
The detector also fingerprints its training samples, so that an evaluation
can leave them out (:meth:`BaseMultiviewDetector.seen_in_training`).
"""

from __future__ import annotations

import warnings
from abc import ABCMeta, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils import Tags, check_random_state
from sklearn.utils.validation import check_is_fitted

from mmocc.data.fingerprints import sample_fingerprints
from mmocc.data.inputs import ViewSpec, check_views, match_specs, select_views, view_specs
from mmocc.detectors.finite import check_finite_scores
from mmocc.model.params import Constraint, check_values


def conformal_threshold(scores: np.ndarray, contamination: float) -> float:
    """Return the split-conformal threshold of held-out normal scores.

    The ``k``-th smallest score with ``k = ceil((n + 1) (1 - contamination))``:
    a new normal exchangeable with the ``n`` held-out ones scores at most this
    with probability at least ``1 - contamination``. A plain percentile of a
    few scores lands lower (it interpolates), so it flags more new normals
    than promised. With fewer than ``1 / contamination - 1`` scores ``k``
    exceeds ``n`` and the largest score is returned.

    Parameters
    ----------
    scores : numpy.ndarray of shape (n,)
        Scores of normal samples the detector was not fitted on.
    contamination : float
        The share of normals the threshold may flag.

    Returns
    -------
    float
        The threshold.

    Examples
    --------
    >>> conformal_threshold(np.arange(1.0, 40.0), 0.05)  # k = ceil(40 * 0.95) = 38
    38.0
    >>> conformal_threshold(np.array([1.0, 5.0, 2.0]), 0.05)  # too few: the largest
    5.0
    """
    ordered = np.sort(np.asarray(scores, dtype=np.float64))
    k = int(np.ceil((len(ordered) + 1) * (1.0 - contamination) - 1e-9))
    return float(ordered[min(max(k, 1), len(ordered)) - 1])


def _held_out(n: int, groups: np.ndarray | None, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the samples to hold out: whole groups when there are several, else samples."""
    if groups is not None and len(np.unique(groups)) >= 2:
        unique = np.unique(groups)
        n_held = min(max(round(fraction * len(unique)), 1), len(unique) - 1)
        return np.isin(groups, rng.permutation(unique)[:n_held])
    if n < 3:
        raise ValueError(f'threshold="holdout" needs at least 3 training samples, got {n}')
    n_held = min(max(round(fraction * n), 1), n - 2)
    mask = np.zeros(n, dtype=bool)
    mask[rng.permutation(n)[:n_held]] = True
    return mask


def sample_groups(groups: Any) -> np.ndarray | None:
    """Integer group codes of the training samples, when they come from several objects.

    Parameters
    ----------
    groups : array-like of shape (n,) or None
        The dataset's groups (a tile, a specimen), or None.

    Returns
    -------
    numpy.ndarray of int64 or None
        One code per sample, or None when there are no groups, only one, or
        as many as samples (then leave-one-group-out is leave-one-out).

    Examples
    --------
    >>> sample_groups(["t1", "t1", "t2"]).tolist(), sample_groups(["a", "b"]), sample_groups(None)
    ([0, 0, 1], None, None)
    """
    if groups is None:
        return None
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    if n_groups < 2 or n_groups == len(codes):
        return None
    return codes.astype(np.int64)


class BaseMultiviewDetector(OutlierMixin, BaseEstimator, metaclass=ABCMeta):
    """Threshold, label and probability logic for multiview detectors.

    Labels follow PyOD: 0 = normal, 1 = anomaly; higher scores are more
    anomalous. Subclasses declare every ``__init__`` parameter with its
    constraint in ``_param_constraints`` (their table in
    :mod:`mmocc.model.params`, which includes
    :data:`~mmocc.model.params.DETECTOR_CONSTRAINTS`: ``views``,
    ``contamination``, ``threshold``, ``validation_fraction``,
    ``random_state``) and implement :meth:`_fit_views` and
    :meth:`_score_views`.

    ``X`` is a dict ``{view_name: array}``, a dataset with a ``views``
    mapping, or a plain 2-D array, read as one vector view named ``"X"``
    (see :mod:`mmocc.data.inputs` for the layouts, dtypes and view names
    accepted). Scoring input must have the views, per-sample shapes and value
    scale seen at fit time: a view fitted on uint8 (0-255) is not scored from
    floats, nor the reverse (a TypeError that says how to convert).
    """

    # Not ``_parameter_constraints``: scikit-learn's estimator checks read that name in sklearn's format.
    _param_constraints: ClassVar[Mapping[str, Constraint]]
    views: Any
    contamination: float
    threshold: str
    validation_fraction: float
    random_state: Any

    def __sklearn_tags__(self) -> Tags:
        """Tags of an outlier detector that also takes a dict ``{view_name: array}`` as ``X``."""
        tags = super().__sklearn_tags__()
        tags.input_tags.dict = True
        return tags

    def check_params(self) -> Any:
        """Validate the parameter values that can be checked without data.

        Every parameter is checked against its constraint in ``_param_constraints``.

        Returns
        -------
        Any
            The validated parameters: here a dict of the normalised values;
            a subclass returns what it resolves them into.

        Raises
        ------
        ValueError
            Naming the first invalid parameter
            (:class:`~mmocc.model.params.ParameterError`).
        """
        return check_values(self._param_constraints, self.get_params(deep=False))

    @abstractmethod
    def _fit_views(self, views: dict[str, np.ndarray], groups: np.ndarray | None = None) -> np.ndarray:
        """Fit on canonical training views and return their (leave-one-out, where it applies) scores.

        ``groups`` is an integer code per sample when the samples come from
        several objects (:func:`sample_groups`), for leave-one-group-out
        training scores; None when every sample is its own object.
        """

    @abstractmethod
    def _score_views(self, views: dict[str, np.ndarray]) -> np.ndarray:
        """Return anomaly scores for canonical views matching ``view_specs_``."""

    def fit(self, X: Any, y: Any = None) -> BaseMultiviewDetector:
        """Fit the detector on normal samples.

        With ``threshold="holdout"``, ``validation_fraction`` of the samples
        (of the groups, when ``X`` is a dataset with several groups) is held
        out, the detector is fitted on the rest, and the threshold is the
        quantile of the held-out scores (as :meth:`calibrate`).

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Training views in the same sample order; ``self.views`` selects
            and orders them.
        y : ignored
            Present for scikit-learn API compatibility.

        Returns
        -------
        self
            The fitted detector.
        """
        self.check_params()
        views = select_views(check_views(X), self.views)
        self.view_specs_: list[ViewSpec] = view_specs(views)
        self.n_samples_in_ = len(next(iter(views.values())))
        self.train_fingerprints_: np.ndarray | None = sample_fingerprints(views)
        groups = getattr(X, "groups", None)
        held = self._holdout_mask(groups)
        fit_views = views if held is None else {name: array[~held] for name, array in views.items()}
        fit_groups = groups if groups is None or held is None else np.asarray(groups)[~held]
        scores = np.asarray(self._fit_views(fit_views, sample_groups(fit_groups)), dtype=np.float64)
        check_finite_scores(scores, {}, list(views), "fit")
        self._set_threshold(scores)
        if held is not None:
            self._calibrate_views({name: array[held] for name, array in views.items()}, "holdout")
        return self

    def _holdout_mask(self, groups: Any) -> np.ndarray | None:
        """Return the samples ``threshold="holdout"`` keeps out of fitting (None for ``"train"``)."""
        if self.threshold == "train":
            return None
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        rng = np.random.default_rng(seed)
        groups = None if groups is None else np.asarray(groups)
        return _held_out(self.n_samples_in_, groups, float(self.validation_fraction), rng)

    def _set_threshold(self, scores: np.ndarray) -> None:
        """Store training scores, the contamination threshold (from them) and labels."""
        self.decision_scores_ = scores
        self.calibration_scores_: np.ndarray | None = None
        self.calibration_view_scores_: dict[str, np.ndarray] = {}
        self.threshold_source_ = "train"
        self.threshold_ = self._quantile(scores)
        self.labels_ = (scores > self.threshold_).astype(np.int64)

    def _quantile(self, scores: np.ndarray) -> float:
        """Return the threshold of reference scores: percentile, or conformal rank once calibrated."""
        if self.calibration_scores_ is not None:
            return conformal_threshold(scores, self.contamination)
        return float(np.percentile(scores, 100.0 * (1.0 - self.contamination)))

    def _score_views_and_each(self, views: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Scores and, where the detector has them, per-view scores (a hook; none here)."""
        return np.asarray(self._score_views(views), dtype=np.float64), {}

    def _calibrate_views(self, views: dict[str, np.ndarray], source: str) -> None:
        """Set the threshold from the scores of held-out normal views."""
        scores, by_view = self._score_views_and_each(views)
        check_finite_scores(scores, by_view, list(views), source)
        needed = int(np.ceil(1.0 / self.contamination - 1.0 - 1e-9))
        promised = f"needed for the promised {1.0 - self.contamination:.0%} normal recall"
        distinct = len(np.unique(scores))
        if len(scores) < needed:
            warnings.warn(
                f"only {len(scores)} {source} scores: the threshold is their largest; {needed} or more are "
                f"{promised}",
                UserWarning,
                stacklevel=3,
            )
        elif distinct < needed:
            warnings.warn(
                f"the {len(scores)} {'calibration' if source == 'calibrate' else 'held-out'} samples give "
                f"only {distinct} distinct scores (repeated "
                f"samples?): {needed} or more distinct normals are {promised}, and repeats do not count",
                UserWarning,
                stacklevel=3,
            )
        self._set_calibration(scores, by_view, source)

    def _set_calibration(self, scores: np.ndarray, by_view: dict[str, np.ndarray], source: str) -> None:
        """Store calibration scores and the threshold they give (also when a model file is loaded)."""
        self.calibration_scores_ = scores
        self.calibration_view_scores_ = by_view
        self.threshold_source_ = source
        self.threshold_ = self._quantile(scores)
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int64)

    def _seen_mask(self, views: dict[str, np.ndarray]) -> np.ndarray | None:
        """Return which samples of checked ``views`` were given to fit (None without fingerprints)."""
        if self.train_fingerprints_ is None:
            return None
        return np.isin(sample_fingerprints(views), self.train_fingerprints_)

    def calibrate(self, X: Any) -> BaseMultiviewDetector:
        """Set ``threshold_`` from normal samples the detector was not fitted on.

        The threshold becomes the split-conformal quantile of their scores
        (:func:`conformal_threshold`), so that at most ``contamination`` of
        new normals like them is flagged, on average. Use it when the normals
        to come differ from the training ones (new poses, specimens or
        sessions) and you have some of them; ``1 / contamination - 1`` or
        more (19 at 0.05) are needed for the guarantee, fewer give the largest
        score, with a warning.

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Normal samples with all the views seen at fit time.

        Returns
        -------
        self
            The detector, with ``threshold_``, ``calibration_scores_`` and
            ``threshold_source_ = "calibrate"`` set.

        Warns
        -----
        UserWarning
            If some samples were used in fitting: their scores are too low.
        """
        views = self._checked_views(X, allow_missing=False)
        seen_mask = self._seen_mask(views)
        if seen_mask is not None:
            seen = int(seen_mask.sum())
            if seen:
                warnings.warn(
                    f"{seen} of the {len(next(iter(views.values())))} calibration samples were used in fit; "
                    "their scores are optimistic, so the threshold comes out too low",
                    UserWarning,
                    stacklevel=2,
                )
        self._calibrate_views(views, "calibrate")
        return self

    def seen_in_training(self, X: Any) -> np.ndarray:
        """Which samples of ``X`` the detector was fitted on, by content.

        Samples are matched by a fingerprint of their view arrays (see
        :func:`mmocc.data.fingerprints.sample_fingerprints`), not by id. With
        ``threshold="holdout"``, the held-out samples count as seen.

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Samples with the views seen at fit time.

        Returns
        -------
        numpy.ndarray of bool, shape (n_samples,)
            True for a sample given to :meth:`fit`.

        Raises
        ------
        ValueError
            If the detector was loaded from a file that records no fingerprints.
        """
        seen = self._seen_mask(self._checked_views(X, allow_missing=False))
        if seen is None:
            raise ValueError("this model records no training-sample fingerprints (saved by an older mmocc)")
        return seen

    def _allows_missing_views(self) -> bool:
        """Whether the fitted detector can score a subset of its views (a hook; False here)."""
        return False

    def _training_view_scores(self) -> dict[str, np.ndarray]:
        """Per-view training scores, as :meth:`_score_views_and_each` gives them (a hook; none here)."""
        return {}

    def _combine_view_scores(self, by_view: dict[str, np.ndarray], views: list[str]) -> np.ndarray:
        """Combine the per-view scores of the ``views`` scored into one score per sample (a hook).

        Only called for a detector that has per-view scores and scores some views alone.
        """
        raise NotImplementedError(f"{type(self).__name__} gives per-view scores but cannot combine them")

    def _subset_scores(
        self, by_view: dict[str, np.ndarray], scores: np.ndarray, views: list[str]
    ) -> np.ndarray:
        """Return ``scores`` as they would be from ``views`` alone, combining per-view scores where needed."""
        if len(views) == len(self.view_specs_):
            return scores
        present = {view: by_view[view] for view in views if view in by_view}
        return scores if len(present) == len(by_view) else self._combine_view_scores(present, views)

    def _training_scores_for(self, views: list[str]) -> np.ndarray:
        """Return the training scores as they would be from ``views`` alone."""
        if len(views) == len(self.view_specs_):
            return self.decision_scores_
        return self._subset_scores(self._training_view_scores(), self.decision_scores_, views)

    def _reference_scores_for(self, views: list[str]) -> np.ndarray:
        """Return the scores ``threshold_`` is a quantile of, as they would be from ``views`` alone."""
        if self.calibration_scores_ is None:
            return self._training_scores_for(views)
        return self._subset_scores(self.calibration_view_scores_, self.calibration_scores_, views)

    def _threshold_for(self, views: list[str]) -> float:
        """Return the contamination threshold of scores computed from ``views``."""
        if len(views) == len(self.view_specs_):
            return self.threshold_
        return self._quantile(self._reference_scores_for(views))

    def _checked_views(
        self, X: Any, *, allow_missing: bool | None = None, stacklevel: int = 3
    ) -> dict[str, np.ndarray]:
        """Validate scoring input against the views seen at fit time; warn about missing views."""
        check_is_fitted(self, "threshold_")
        if allow_missing is None:
            allow_missing = self._allows_missing_views()
        views = match_specs(check_views(X), self.view_specs_, allow_missing=allow_missing)
        missing = [spec.name for spec in self.view_specs_ if spec.name not in views]
        if missing:
            warnings.warn(
                f"view(s) {missing} missing: scoring with {list(views)} only, each standardized as in "
                "training; predict() uses the threshold of the training scores of these views",
                UserWarning,
                stacklevel=stacklevel,
            )
        return views

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly score of each sample; higher means more anomalous.

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Views with the names and per-sample shapes seen at fit time.

        Returns
        -------
        numpy.ndarray of shape (n_samples,)
            The anomaly scores.
        """
        return self._scores(X)[0]

    def _scores(self, X: Any) -> tuple[np.ndarray, list[str]]:
        """Validate ``X``, score it, and return the scores with the names of the views used."""
        views = self._checked_views(X, stacklevel=4)  # the warning points at the caller's call
        scores = np.asarray(self._score_views(views), dtype=np.float64)
        check_finite_scores(scores, {}, list(views), "scoring")
        return scores, list(views)

    def predict(self, X: Any) -> np.ndarray:
        """Binary label of each sample: 0 normal, 1 anomaly.

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Views as for :meth:`decision_function`.

        Returns
        -------
        numpy.ndarray of shape (n_samples,)
            1 where the score is above ``threshold_``.
        """
        scores, views = self._scores(X)
        return (scores > self._threshold_for(views)).astype(np.int64)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit on ``X`` and return the training labels ``labels_``.

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Training views.
        y : ignored
            Present for scikit-learn API compatibility.

        Returns
        -------
        numpy.ndarray of shape (n_samples,)
            Training labels, 0 normal and 1 anomaly.
        """
        return self.fit(X).labels_

    def predict_proba(self, X: Any, method: str = "linear") -> np.ndarray:
        """Probability of each class, as PyOD computes it.

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Views as for :meth:`decision_function`.
        method : {"linear", "unify"}, default "linear"
            ``"linear"`` min-max scales scores by the training scores and clips
            to [0, 1]; ``"unify"`` applies the Gaussian error function to the
            standardized score (Kriegel et al., 2011).

        Returns
        -------
        numpy.ndarray of shape (n_samples, 2)
            Column 0 is P(normal), column 1 is P(anomaly).

        Raises
        ------
        ValueError
            For an unknown ``method``.
        """
        scores, views = self._scores(X)
        train = self._training_scores_for(views)
        if method == "linear":
            low, high = float(train.min()), float(train.max())
            span = high - low if high > low else 1.0
            anomaly = np.clip((scores - low) / span, 0.0, 1.0)
        elif method == "unify":
            from scipy.special import erf

            std = float(train.std()) or 1.0
            anomaly = np.clip(erf((scores - float(train.mean())) / (std * np.sqrt(2.0))), 0.0, 1.0)
        else:
            raise ValueError(f"predict_proba method must be 'linear' or 'unify', got {method!r}")
        return np.column_stack([1.0 - anomaly, anomaly])
