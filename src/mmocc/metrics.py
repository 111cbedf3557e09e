"""Public home of the evaluation metrics (implemented in :mod:`mmocc.evaluation.metrics`)."""

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

__all__ = [
    "METRIC_NAMES",
    "anomaly_recall",
    "average_precision",
    "evaluate",
    "f1_at_threshold",
    "normal_recall",
    "precision_at_n",
    "roc_auc",
]
