"""The contract every scoring rule keeps: fit -> save -> load gives the same scores, view scores, maps, parts.

One test per rule (and per k-NN bank layout), like anomalib's model integration
tests: whatever a rule stores, its ``state_spec`` must describe it, saving must
accept it, loading must restore it, and the loaded model must score bit for bit
as the fitted one, with the same per-view scores, anomaly maps and part scores
where the rule has them, and the same refusals where it does not.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmocc import MultimodalOCC, load
from mmocc.datasets import make_synthetic
from mmocc.scoring import SCORE_RULES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"epochs": 1, "filters": (8, 4, 4), "batch_size": 16, "random_state": 0}

CASES = {
    "norm": {"score": "norm"},
    "center": {"score": "center", "compactness": "center"},
    "knn/joint": {"score": "knn", "knn_bank": "joint"},
    "knn/view": {"score": "knn", "knn_bank": "view", "knn_space": "both"},
    "knn/pooled": {"score": "knn", "knn_bank": "pooled"},
    "mahalanobis": {"score": "mahalanobis"},
    "recon": {"score": "recon"},
    "ensemble": {"score": "ensemble"},
    "patch": {"score": "patch", "coreset_ratio": 0.5},
    "combined": {"score": "combined", "coreset_ratio": 0.5},
}


def test_every_rule_has_a_contract_case():
    assert {case["score"] for case in CASES.values()} == set(SCORE_RULES)


@pytest.fixture(scope="module")
def data():
    synthetic = make_synthetic(n_per_class=16, n_classes=2, size=16, seed=0)
    normal = synthetic.subset(np.flatnonzero(synthetic.labels == synthetic.classes[0]))
    return normal, synthetic


def _outputs(clf: MultimodalOCC, X) -> dict[str, np.ndarray | str]:
    """Everything a fitted model says about ``X``; a refusal is recorded by its message."""
    out: dict[str, np.ndarray | str] = {"scores": clf.decision_function(X), "labels": clf.predict(X)}
    for name, method in (("view", clf.view_scores), ("map", clf.anomaly_maps), ("part", clf.score_parts)):
        try:
            out.update({f"{name}/{view}": values for view, values in method(X).items()})
        except ValueError as exc:
            out[name] = str(exc)
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_fit_save_load_gives_the_same_outputs(case, data, tmp_path):
    train, test = data
    clf = MultimodalOCC(**TINY, **CASES[case]).fit(train)
    path = tmp_path / "model.mmocc"
    clf.save(path)
    loaded = load(path)
    assert loaded.threshold_ == clf.threshold_
    np.testing.assert_array_equal(loaded.decision_scores_, clf.decision_scores_)
    before, after = _outputs(clf, test), _outputs(loaded, test)
    assert sorted(before) == sorted(after)
    for key, value in before.items():
        if isinstance(value, str):
            assert after[key] == value, key
        else:
            np.testing.assert_array_equal(after[key], value, err_msg=f"{case}: {key}")
    assert clf.has_anomaly_maps == (case in ("patch", "recon", "combined"))
    assert ("view" in before) == (case in ("norm", "center", "knn/joint", "mahalanobis", "ensemble"))
    assert ("part" in before) == (case != "combined")  # only the combined rule has parts


@pytest.mark.parametrize("case", sorted(CASES))
def test_saved_state_is_what_the_rule_describes(case, data):
    """``state_spec`` names exactly the arrays ``state()`` holds, with matching shapes."""
    from mmocc.io.model_file import rule_spec

    clf = MultimodalOCC(**TINY, **CASES[case]).fit(data[0])
    spec = rule_spec(clf, clf.rule_, clf.backbone_, len(clf.decision_scores_))
    state = {f"rule.{key}": np.asarray(value) for key, value in clf.rule_.state().items()}
    assert set(state) <= set(spec)
    assert {key for key, expect in spec.items() if expect.required} <= set(state)
    for key, value in state.items():
        shape = spec[key].shape
        assert len(value.shape) == len(shape), key
        assert all(want in (None, size) for size, want in zip(value.shape, shape, strict=True)), key
