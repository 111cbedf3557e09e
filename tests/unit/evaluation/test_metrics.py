import numpy as np
import pytest
from pyod.utils.utility import precision_n_scores
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from mmocc.evaluation import metrics
from mmocc.evaluation.metrics import (
    METRIC_NAMES,
    anomaly_recall,
    average_precision,
    evaluate,
    f1_at_threshold,
    normal_recall,
    precision_at_n,
    roc_auc,
)

Y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 1, 0])
S = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.3, 0.9, 0.5, 0.7, 0.05, 0.3, 0.6])
# Heavy ties, including ties across classes and at the P@n cut.
Y_TIES = np.array([0, 0, 0, 0, 1, 1, 1, 0, 1, 0])
S_TIES = np.array([1.0, 2.0, 2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 1.0, 0.0])

CASES = [
    (Y, S),
    (Y_TIES, S_TIES),
    (np.array([0, 1, 1, 0, 0]), np.array([0.1, 0.5, 0.3, 0.2, 0.7])),
    (np.array([1, 1, 0, 1]), np.array([5.0, 5.0, 5.0, 1.0])),
]


@pytest.mark.parametrize(("y", "s"), CASES)
def test_matches_sklearn_and_pyod(y, s):
    assert roc_auc(y, s) == roc_auc_score(y, s)
    assert average_precision(y, s) == average_precision_score(y, s)
    assert precision_at_n(y, s) == precision_n_scores(y, s)
    tau = float(np.median(s))
    assert f1_at_threshold(y, s, tau) == f1_score(y, (s > tau).astype(int), zero_division=0.0)


@pytest.mark.parametrize(("y", "s"), CASES)
def test_recalls_by_hand(y, s):
    for tau in (-np.inf, float(s.min()), float(np.median(s)), float(s.max()), 1e9):
        assert anomaly_recall(y, s, tau) == pytest.approx(np.mean(s[y == 1] > tau))
        assert normal_recall(y, s, tau) == pytest.approx(np.mean(s[y == 0] <= tau))


def test_precision_at_n_ties_hand_value():
    # n = 4 anomalies of 10 -> cut at the 60th percentile = 2.4; scores > 2.4 are the
    # three 3.0s, two of which are anomalies.
    assert precision_at_n(Y_TIES, S_TIES) == pytest.approx(2 / 3)


def test_precision_at_n_all_tied_is_zero_like_pyod():
    y = np.array([0, 1, 0, 1])
    s = np.ones(4)
    with pytest.warns(Warning):  # PyOD lets scikit-learn warn about 0/0
        expected = precision_n_scores(y, s)
    assert precision_at_n(y, s) == expected == 0.0


def test_threshold_is_strict_for_anomalies():
    y = np.array([0, 1])
    s = np.array([0.5, 0.5])
    assert anomaly_recall(y, s, 0.5) == 0.0
    assert normal_recall(y, s, 0.5) == 1.0


def test_evaluate_keys_and_values():
    tau = 0.45
    result = evaluate(Y, S, tau)
    assert tuple(result) == METRIC_NAMES
    assert METRIC_NAMES == (
        "roc_auc",
        "p_at_n",
        "anomaly_recall",
        "normal_recall",
        "average_precision",
        "f1",
    )
    assert all(type(v) is float for v in result.values())
    assert result["roc_auc"] == roc_auc(Y, S)
    assert result["p_at_n"] == precision_at_n(Y, S)
    assert result["anomaly_recall"] == anomaly_recall(Y, S, tau)
    assert result["normal_recall"] == normal_recall(Y, S, tau)
    assert result["average_precision"] == average_precision(Y, S)
    assert result["f1"] == f1_at_threshold(Y, S, tau)


def test_accepts_lists_bools_and_column_vectors():
    assert roc_auc([False, True, True], [0.1, 0.2, 0.3]) == 1.0
    assert roc_auc(np.array([[0], [1]]), np.array([[0.1], [0.9]])) == 1.0
    assert evaluate([0.0, 1.0], [1, 2], 1.5)["f1"] == 1.0


@pytest.mark.parametrize(
    ("y", "s", "message"),
    [
        ([0, 1, 1], [0.1, 0.2], "different lengths: 3 and 2"),
        ([], [], "empty"),
        ([0, 1, 2], [0.1, 0.2, 0.3], r"only 0 \(normal\) and 1 \(anomaly\).*\[2\]"),
        ([-1, 1], [0.1, 0.2], r"other values \[-1\]"),
        (["a", "b"], [0.1, 0.2], "numeric labels"),
        ([0, 1], [0.1, np.nan], "NaN or infinite values \\(first at index 1, 1 in all\\)"),
        ([0, 1], [np.inf, 0.2], "first at index 0"),
        ([0, 1], [[0.1, 0.2], [0.3, 0.4]], "scores must be 1-D"),
    ],
)
def test_invalid_input(y, s, message):
    with pytest.raises(ValueError, match=message):
        evaluate(y, s, 0.5)


@pytest.mark.parametrize(
    ("func", "y", "message"),
    [
        (roc_auc, [0, 0], "roc_auc needs at least one anomaly"),
        (roc_auc, [1, 1], "roc_auc needs at least one normal"),
        (average_precision, [0, 0], "average_precision needs at least one anomaly"),
        (average_precision, [1, 1], "average_precision needs at least one normal"),
        (precision_at_n, [0, 0], "precision_at_n needs at least one anomaly"),
        (evaluate, [1, 1], "evaluate needs at least one normal"),
    ],
)
def test_missing_class(func, y, message):
    args = (y, [0.1, 0.2]) if func is not evaluate else (y, [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match=message):
        func(*args)


@pytest.mark.parametrize(
    ("func", "y", "message"),
    [
        (anomaly_recall, [0, 0], "anomaly_recall needs at least one anomaly"),
        (f1_at_threshold, [0, 0], "f1_at_threshold needs at least one anomaly"),
        (normal_recall, [1, 1], "normal_recall needs at least one normal"),
    ],
)
def test_missing_class_threshold_metrics(func, y, message):
    with pytest.raises(ValueError, match=message):
        func(y, [0.1, 0.2], 0.5)


def test_one_class_is_enough_where_defined():
    assert precision_at_n([1, 1], [0.1, 0.2]) == 1.0
    assert anomaly_recall([1, 1], [0.1, 0.9], 0.5) == 0.5
    assert normal_recall([0, 0], [0.1, 0.9], 0.5) == 0.5


@pytest.mark.parametrize("threshold", [np.nan, "high", None])
def test_bad_threshold(threshold):
    with pytest.raises(ValueError, match="threshold must be a real number"):
        metrics.anomaly_recall([0, 1], [0.1, 0.2], threshold)
