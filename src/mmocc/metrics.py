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
from mmocc.evaluation.pixel_metrics import (
    OVERALL,
    PIXEL_METRIC_NAMES,
    aupro,
    pixel_metrics,
    pixel_metrics_by_type,
    pixel_metrics_by_type_ragged,
    pixel_roc_auc,
)

__all__ = [
    "METRIC_NAMES",
    "OVERALL",
    "PIXEL_METRIC_NAMES",
    "anomaly_recall",
    "aupro",
    "average_precision",
    "evaluate",
    "f1_at_threshold",
    "normal_recall",
    "pixel_metrics",
    "pixel_metrics_by_type",
    "pixel_metrics_by_type_ragged",
    "pixel_roc_auc",
    "precision_at_n",
    "roc_auc",
]
