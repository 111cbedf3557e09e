"""scikit-learn's estimator checks, run on both detectors with tiny settings.

The estimators take a dict ``{view_name: array}``, a dataset, or a plain 2-D
array ``(n_samples, n_features)`` read as one vector view named ``"X"``; the
checks feed plain arrays, so they exercise that path. The checks that cannot
hold by design are expected failures, each with its reason.
"""

from __future__ import annotations

from sklearn.utils.estimator_checks import parametrize_with_checks

from mmocc import MultimodalOCC
from mmocc.detectors.baselines import BaselineOCC

_BOTH = {
    "check_outliers_fit_predict": "labels follow PyOD (0 normal, 1 anomaly), not scikit-learn's -1/+1",
    "check_outliers_train": "labels are 0/1 and higher scores more anomalous (PyOD), the reverse of sklearn",
    "check_n_features_in": "a multiview model has views (view_specs_), not one n_features_in_",
    "check_n_features_in_after_fitting": "a multiview model has views (view_specs_), not one n_features_in_",
    "check_complex_data": "complex input is refused with a TypeError naming the view, not a ValueError",
    "check_dtype_object": "object arrays are refused (TypeError naming the view), not converted to float",
}

_MULTIMODAL = {
    **_BOTH,
    "check_transformer_data_not_an_array": "transform gives the joint latent; there is no fit_transform",
    "check_transformer_general": "transform gives the joint latent; there is no fit_transform",
}


def _expected_failures(estimator: object) -> dict[str, str]:
    return _MULTIMODAL if isinstance(estimator, MultimodalOCC) else _BOTH


@parametrize_with_checks(
    [
        MultimodalOCC(filters=(4,), hidden=(4,), vector_latent=2, epochs=1, verbose=False),
        BaselineOCC(),
    ],
    expected_failed_checks=_expected_failures,
)
def test_sklearn_estimator_checks(estimator, check, one_torch_thread):
    check(estimator)
