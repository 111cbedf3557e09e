"""The base class shared by every mmocc detector.

It owns what PyOD's ``BaseDetector`` owns: the threshold from the
``contamination`` rate, binary labels and probabilities. A concrete detector
supplies only two hooks, :meth:`BaseMultiviewDetector._fit_views` (learn from
normal training views, return the training scores) and
:meth:`BaseMultiviewDetector._score_views` (score new views).
"""

from __future__ import annotations

import warnings
from abc import ABCMeta, abstractmethod
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted

from mmocc.data.inputs import ViewSpec, check_views, match_specs, select_views, view_specs


def check_contamination(contamination: float) -> float:
    """Validate the expected outlier fraction.

    Parameters
    ----------
    contamination : float
        Fraction of training samples allowed above the threshold.

    Returns
    -------
    float
        The value, as a float.

    Raises
    ------
    ValueError
        If it is not in ``(0, 0.5]``.
    """
    value = float(contamination)
    if not 0.0 < value <= 0.5:
        raise ValueError(f"contamination must be in (0, 0.5], got {contamination!r}")
    return value


class BaseMultiviewDetector(OutlierMixin, BaseEstimator, metaclass=ABCMeta):
    """Threshold, label and probability logic for multiview detectors.

    Labels follow PyOD: 0 = normal, 1 = anomaly; higher scores are more
    anomalous. Subclasses must define ``views`` and ``contamination``
    parameters and implement :meth:`_fit_views` and :meth:`_score_views`.
    """

    views: Any
    contamination: float

    @abstractmethod
    def check_params(self) -> Any:
        """Validate the parameter values that can be checked without data.

        Returns
        -------
        Any
            The validated (resolved) parameters.

        Raises
        ------
        ValueError
            Naming the first invalid parameter.
        """

    @abstractmethod
    def _fit_views(self, views: dict[str, np.ndarray]) -> np.ndarray:
        """Fit on canonical training views and return their anomaly scores."""

    @abstractmethod
    def _score_views(self, views: dict[str, np.ndarray]) -> np.ndarray:
        """Return anomaly scores for canonical views matching ``view_specs_``."""

    def fit(self, X: Any, y: Any = None) -> BaseMultiviewDetector:
        """Fit the detector on normal samples.

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
        check_contamination(self.contamination)
        views = select_views(check_views(X), self.views)
        self.view_specs_: list[ViewSpec] = view_specs(views)
        self.n_samples_in_ = len(next(iter(views.values())))
        scores = np.asarray(self._fit_views(views), dtype=np.float64)
        self._set_threshold(scores)
        return self

    def _set_threshold(self, scores: np.ndarray) -> None:
        """Store training scores, the contamination threshold and labels."""
        self.decision_scores_ = scores
        self.threshold_ = float(np.percentile(scores, 100.0 * (1.0 - self.contamination)))
        self.labels_ = (scores > self.threshold_).astype(np.int64)

    def _allows_missing_views(self) -> bool:
        """Whether the fitted detector can score a subset of its views (a hook; False here)."""
        return False

    def _training_scores_for(self, views: list[str]) -> np.ndarray:
        """Training scores as they would be from ``views`` alone (a hook; all views here)."""
        return self.decision_scores_

    def _threshold_for(self, views: list[str]) -> float:
        """Return the contamination threshold of scores computed from ``views``."""
        if len(views) == len(self.view_specs_):
            return self.threshold_
        train = self._training_scores_for(views)
        return float(np.percentile(train, 100.0 * (1.0 - self.contamination)))

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
        return np.asarray(self._score_views(views), dtype=np.float64), list(views)

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
