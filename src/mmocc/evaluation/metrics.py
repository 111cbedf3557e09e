"""Evaluation metrics for anomaly scores.

Conventions follow PyOD: label 0 is normal, label 1 is an anomaly, and a higher
score means more anomalous. Every function validates its input (same length,
labels in ``{0, 1}``, finite scores) and delegates the arithmetic to
scikit-learn, so the numbers match what PyOD and scikit-learn report.

Examples
--------
>>> import numpy as np
>>> from mmocc.evaluation.metrics import evaluate
>>> y = np.array([0, 0, 0, 1, 1])
>>> scores = np.array([0.1, 0.2, 0.6, 0.5, 0.9])
>>> result = evaluate(y, scores, threshold=0.4)
>>> result["roc_auc"], result["anomaly_recall"], result["normal_recall"]
(0.8333333333333334, 1.0, 0.6666666666666666)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

METRIC_NAMES: tuple[str, ...] = (
    "roc_auc",
    "p_at_n",
    "anomaly_recall",
    "normal_recall",
    "average_precision",
    "f1",
)
"""Keys of the dictionary returned by :func:`evaluate`, in order."""


def _check_labels_scores(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate labels and scores and return them as 1-D arrays.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground truth, 0 normal and 1 anomaly.
    scores : array-like of shape (n_samples,)
        Anomaly scores, higher is more anomalous.

    Returns
    -------
    y : numpy.ndarray of int64
        The labels.
    s : numpy.ndarray of float64
        The scores.

    Raises
    ------
    ValueError
        For arrays that are not 1-D, differ in length or are empty, labels
        outside ``{0, 1}``, or NaN or infinite scores.
    """
    y = np.asarray(y_true)
    s = np.asarray(scores)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if s.ndim == 2 and s.shape[1] == 1:
        s = s.ravel()
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if s.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {s.shape}")
    if len(y) != len(s):
        raise ValueError(f"y_true and scores have different lengths: {len(y)} and {len(s)}")
    if len(y) == 0:
        raise ValueError("y_true and scores are empty")
    if y.dtype == object or not (np.issubdtype(y.dtype, np.number) or y.dtype == np.bool_):
        raise ValueError(f"y_true must be numeric labels 0 (normal) / 1 (anomaly), got dtype {y.dtype}")
    if s.dtype == object or not (np.issubdtype(s.dtype, np.number) or s.dtype == np.bool_):
        raise ValueError(f"scores must be numeric, got dtype {s.dtype}")
    bad_labels = sorted({v.item() for v in np.unique(y)} - {0, 1})
    if bad_labels:
        raise ValueError(
            f"y_true must contain only 0 (normal) and 1 (anomaly), got other values {bad_labels[:5]}"
        )
    s = s.astype(np.float64)
    finite = np.isfinite(s)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"scores contain NaN or infinite values (first at index {int(bad[0])}, {len(bad)} in all)"
        )
    return y.astype(np.int64), s


def _require_classes(y: np.ndarray, metric: str, *, normal: bool, anomaly: bool) -> None:
    """Raise a ValueError if a class the metric needs is absent from ``y``."""
    n_anomalies = int(y.sum())
    if anomaly and n_anomalies == 0:
        raise ValueError(f"{metric} needs at least one anomaly (label 1) in y_true; it has none")
    if normal and n_anomalies == len(y):
        raise ValueError(f"{metric} needs at least one normal sample (label 0) in y_true; it has none")


def _check_threshold(threshold: Any) -> float:
    """Return the threshold as a float, rejecting NaN and non-numbers."""
    try:
        value = float(threshold)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"threshold must be a real number, got {threshold!r}") from exc
    if math.isnan(value):
        raise ValueError("threshold must be a real number, got NaN")
    return value


def roc_auc(y_true: Any, scores: Any) -> float:
    """Area under the ROC curve.

    The probability that a randomly drawn anomaly scores higher than a randomly
    drawn normal sample, ties counting one half; computed by
    :func:`sklearn.metrics.roc_auc_score`. 0.5 is chance level.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground truth, 0 normal and 1 anomaly. Both classes must be present.
    scores : array-like of shape (n_samples,)
        Anomaly scores, higher is more anomalous.

    Returns
    -------
    float
        ROC AUC in [0, 1].

    Raises
    ------
    ValueError
        For invalid input or when one class is missing.

    Examples
    --------
    >>> roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    y, s = _check_labels_scores(y_true, scores)
    _require_classes(y, "roc_auc", normal=True, anomaly=True)
    return float(roc_auc_score(y, s))


def precision_at_n(y_true: Any, scores: Any) -> float:
    """Precision at rank n (P@n), exactly as PyOD's ``precision_n_scores``.

    With n the number of true anomalies in ``y_true``, the scores are cut at
    ``numpy.percentile(scores, 100 * (1 - n / len(y_true)))`` (linear
    interpolation); a sample is labelled an anomaly when its score is strictly
    greater than that cut, and the result is
    :func:`sklearn.metrics.precision_score` of those labels. With tied scores
    fewer than n samples may be labelled. When no sample is labelled (all
    scores tied) the precision is 0.0, the value PyOD returns.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground truth, 0 normal and 1 anomaly. At least one anomaly is needed.
    scores : array-like of shape (n_samples,)
        Anomaly scores, higher is more anomalous.

    Returns
    -------
    float
        P@n in [0, 1]. A random scorer gets about the anomaly fraction.

    Raises
    ------
    ValueError
        For invalid input or when ``y_true`` has no anomaly.

    Examples
    --------
    >>> precision_at_n([0, 1, 1, 0, 0], [0.1, 0.5, 0.3, 0.2, 0.7])
    0.5
    """
    y, s = _check_labels_scores(y_true, scores)
    _require_classes(y, "precision_at_n", normal=False, anomaly=True)
    cut = np.percentile(s, 100.0 * (1.0 - y.sum() / len(y)))
    labels = (s > cut).astype(np.int64)
    return float(precision_score(y, labels, zero_division=0.0))


def anomaly_recall(y_true: Any, scores: Any, threshold: float) -> float:
    """Recall of the anomaly class at a threshold (the paper's "Recall").

    The fraction of true anomalies whose score is strictly greater than
    ``threshold``, i.e. :func:`sklearn.metrics.recall_score` of the labels
    ``scores > threshold``.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground truth, 0 normal and 1 anomaly. At least one anomaly is needed.
    scores : array-like of shape (n_samples,)
        Anomaly scores, higher is more anomalous.
    threshold : float
        Decision threshold, e.g. a detector's ``threshold_``.

    Returns
    -------
    float
        Anomaly recall in [0, 1].

    Raises
    ------
    ValueError
        For invalid input, a NaN threshold, or no anomaly in ``y_true``.

    Examples
    --------
    >>> anomaly_recall([0, 1, 1, 1], [0.9, 0.2, 0.6, 0.8], threshold=0.5)
    0.6666666666666666
    """
    y, s = _check_labels_scores(y_true, scores)
    tau = _check_threshold(threshold)
    _require_classes(y, "anomaly_recall", normal=False, anomaly=True)
    return float(recall_score(y, (s > tau).astype(np.int64), pos_label=1))


def normal_recall(y_true: Any, scores: Any, threshold: float) -> float:
    """Recall of the normal class at a threshold.

    The fraction of true normal samples whose score is at most ``threshold``,
    i.e. :func:`sklearn.metrics.recall_score` with ``pos_label=0`` of the
    labels ``scores > threshold``. Report it beside :func:`anomaly_recall`: a
    detector that flags everything has anomaly recall 1 and normal recall 0.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground truth, 0 normal and 1 anomaly. At least one normal is needed.
    scores : array-like of shape (n_samples,)
        Anomaly scores, higher is more anomalous.
    threshold : float
        Decision threshold, e.g. a detector's ``threshold_``.

    Returns
    -------
    float
        Normal recall in [0, 1].

    Raises
    ------
    ValueError
        For invalid input, a NaN threshold, or no normal sample in ``y_true``.

    Examples
    --------
    >>> normal_recall([0, 0, 1, 1], [0.1, 0.7, 0.6, 0.8], threshold=0.5)
    0.5
    """
    y, s = _check_labels_scores(y_true, scores)
    tau = _check_threshold(threshold)
    _require_classes(y, "normal_recall", normal=True, anomaly=False)
    return float(recall_score(y, (s > tau).astype(np.int64), pos_label=0))


def average_precision(y_true: Any, scores: Any) -> float:
    """Average precision of the anomaly class.

    The area under the precision-recall curve as a step function,
    ``sum_k (R_k - R_{k-1}) P_k`` over the score thresholds; computed by
    :func:`sklearn.metrics.average_precision_score`. A random scorer gets about
    the anomaly fraction.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground truth, 0 normal and 1 anomaly. Both classes must be present.
    scores : array-like of shape (n_samples,)
        Anomaly scores, higher is more anomalous.

    Returns
    -------
    float
        Average precision in [0, 1].

    Raises
    ------
    ValueError
        For invalid input or when one class is missing.

    Examples
    --------
    >>> round(average_precision([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
    0.8333
    """
    y, s = _check_labels_scores(y_true, scores)
    _require_classes(y, "average_precision", normal=True, anomaly=True)
    return float(average_precision_score(y, s))


def f1_at_threshold(y_true: Any, scores: Any, threshold: float) -> float:
    """F1 score of the anomaly class at a threshold.

    The harmonic mean of precision and recall of the labels
    ``scores > threshold``, computed by :func:`sklearn.metrics.f1_score`; 0.0
    when no sample is labelled an anomaly.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground truth, 0 normal and 1 anomaly. At least one anomaly is needed.
    scores : array-like of shape (n_samples,)
        Anomaly scores, higher is more anomalous.
    threshold : float
        Decision threshold, e.g. a detector's ``threshold_``.

    Returns
    -------
    float
        F1 in [0, 1].

    Raises
    ------
    ValueError
        For invalid input, a NaN threshold, or no anomaly in ``y_true``.

    Examples
    --------
    >>> f1_at_threshold([0, 0, 1, 1], [0.1, 0.7, 0.6, 0.8], threshold=0.5)
    0.8
    """
    y, s = _check_labels_scores(y_true, scores)
    tau = _check_threshold(threshold)
    _require_classes(y, "f1_at_threshold", normal=False, anomaly=True)
    return float(f1_score(y, (s > tau).astype(np.int64), zero_division=0.0))


def evaluate(y_true: Any, scores: Any, threshold: float) -> dict[str, float]:
    """Compute every metric of this module at once.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        Ground truth, 0 normal and 1 anomaly. Both classes must be present.
    scores : array-like of shape (n_samples,)
        Anomaly scores, higher is more anomalous.
    threshold : float
        Decision threshold for the threshold-based metrics, e.g. a detector's
        ``threshold_``.

    Returns
    -------
    dict of str to float
        Keys, in this order (see :data:`METRIC_NAMES`): ``"roc_auc"``
        (:func:`roc_auc`), ``"p_at_n"`` (:func:`precision_at_n`),
        ``"anomaly_recall"`` (:func:`anomaly_recall`), ``"normal_recall"``
        (:func:`normal_recall`), ``"average_precision"``
        (:func:`average_precision`) and ``"f1"`` (:func:`f1_at_threshold`).

    Raises
    ------
    ValueError
        For invalid input, a NaN threshold, or when one class is missing.

    Examples
    --------
    >>> sorted(evaluate([0, 1], [0.2, 0.7], threshold=0.5).items())[0]
    ('anomaly_recall', 1.0)
    """
    y, s = _check_labels_scores(y_true, scores)
    tau = _check_threshold(threshold)
    _require_classes(y, "evaluate", normal=True, anomaly=True)
    return {
        "roc_auc": roc_auc(y, s),
        "p_at_n": precision_at_n(y, s),
        "anomaly_recall": anomaly_recall(y, s, tau),
        "normal_recall": normal_recall(y, s, tau),
        "average_precision": average_precision(y, s),
        "f1": f1_at_threshold(y, s, tau),
    }
