"""The combined rule: a global k-NN part and a local patch part, standardized, combined by their mean."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from mmocc import MultimodalOCC, one_class_split
from mmocc.data.defects import defect_dataset
from mmocc.datasets import make_synthetic
from mmocc.model.hyperparams import HyperParams
from mmocc.model.params import ParameterError
from mmocc.scoring import CombinedScore, Features, KNNScore, PatchScore, fired_part, make_rule

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"epochs": 3, "filters": (16, 8, 8), "random_state": 0, "device": "cpu"}
OTHER = 5
"""The other class: make_synthetic's classes from 5 on differ from class 0 in both views."""


@pytest.fixture(scope="module")
def fitted():
    """The combined preset on class 0; held-out normals, painted copies, another class, upside-down copies.

    The upside-down copies are another object made of normal-looking patches (a part mounted
    the wrong way round): the global part must see them. make_synthetic's other classes differ
    from class 0 in body parts (spots, a tail, a hump), which the local part sees as well.
    """
    data = make_synthetic(n_per_class=60, n_classes=6, size=32, seed=0)
    task = one_class_split(data, normal=data.classes[0], train_fraction=0.66, seed=0)
    clean = task.test.subset(np.flatnonzero(task.y_test == 0))
    painted, _ = defect_dataset(clean, seed=0, area=(0.03, 0.08), kinds=("blob", "scratch"))
    other = data.subset(np.flatnonzero(data.labels == data.classes[OTHER]))
    flipped = {view: values[..., ::-1, :].copy() for view, values in clean.views.items()}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a module fixture runs before the one_torch_thread fixture: the same scores
    try:
        clf = MultimodalOCC(preset="combined", **SMALL).fit(task.train)
    finally:
        torch.set_num_threads(threads)
    return clf, clean, painted, other, flipped


def _roc(clf, clean, anomalies) -> float:
    normal, odd = clf.decision_function(clean), clf.decision_function(anomalies)
    return float(roc_auc_score(np.r_[np.zeros(len(normal)), np.ones(len(odd))], np.r_[normal, odd]))


def test_flags_a_painted_defect_another_class_and_an_upside_down_object(fitted):
    clf, clean, painted, other, flipped = fitted
    assert _roc(clf, clean, painted) >= 0.85
    assert _roc(clf, clean, other) >= 0.8
    assert _roc(clf, clean, flipped) >= 0.8


def test_the_local_part_fires_for_a_defect_and_the_global_part_for_another_object(fitted):
    clf, _, painted, _, flipped = fitted
    assert np.mean(clf.score_parts(painted)["fired"] == "local") >= 0.7
    assert np.mean(clf.score_parts(flipped)["fired"] == "global") >= 0.7


def test_the_score_is_the_mean_of_the_standardized_parts(fitted):
    clf, clean, painted, _, _ = fitted
    parts = clf.score_parts(painted)
    assert set(parts) == {"global", "local", "fired"}
    np.testing.assert_allclose(clf.decision_function(painted), (parts["global"] + parts["local"]) / 2)
    scores, by_view, same = clf.decision_function_details(painted)
    np.testing.assert_array_equal(same["global"], parts["global"])
    assert set(by_view) == set(clean.view_names)
    # view scores and maps are the local part's
    local = clf.rule_.parts["local"]
    assert isinstance(local, PatchScore) and isinstance(clf.rule_.parts["global"], KNNScore)
    assert clf.has_anomaly_maps and set(clf.anomaly_maps(painted)) == set(clean.view_names)
    np.testing.assert_allclose(scores, clf.decision_function(painted))


def test_each_part_is_standardized_on_its_leave_one_out_training_scores():
    rng = np.random.default_rng(0)
    train = Features(
        latents={"a": rng.normal(size=(30, 4)).astype(np.float32)},
        patches={"a": rng.normal(size=(30, 3, 4, 4)).astype(np.float32)},
    )
    knn, patch = KNNScore(3, "view", "latent", {"a": "g"}), PatchScore({"a": "g"}, coreset_ratio=0.5)
    rule = CombinedScore(knn, patch)
    assert rule.needs == {"latent", "patch"}
    combined = rule.fit(train)
    loo = np.column_stack([KNNScore(3, "view", "latent", {"a": "g"}).fit(train),
                           PatchScore({"a": "g"}, coreset_ratio=0.5).fit(train)])
    z = (loo - loo.mean(axis=0)) / loo.std(axis=0)
    np.testing.assert_allclose(combined, z.mean(axis=1))
    parts = rule.score_details(train)[2]  # scored against the full banks, not left out: lower
    assert (parts["global"] <= z[:, 0] + 1e-9).all()


def test_fired_part_names_the_larger_part():
    parts = {"global": np.array([1.0, -2.0, 0.5]), "local": np.array([0.0, 3.0, 0.5])}
    assert fired_part(parts).tolist() == ["global", "local", "global"]


def test_a_subset_of_views_is_refused_naming_the_view(fitted):
    clf, clean, _, _, _ = fitted
    one = {clean.view_names[0]: clean.views[clean.view_names[0]]}
    with pytest.raises(ValueError, match=clean.view_names[1]):
        clf.decision_function(one)
    assert set(clf.view_scores(one)) == {clean.view_names[0]}  # the local part scores views alone
    with pytest.raises(ValueError, match="cannot score a subset"):
        clf.rule_.combine(clf.rule_.train_view_scores)


def test_other_rules_have_no_parts():
    rng = np.random.default_rng(0)
    X = {"a": rng.random((20, 1, 8, 8)), "b": rng.random((20, 1, 8, 8))}
    clf = MultimodalOCC(epochs=1, filters=(4, 4), random_state=0).fit(X)
    with pytest.raises(ValueError, match="score='knn' has no global and local parts; use score='combined'"):
        clf.score_parts(X)
    assert clf.decision_function_details(X)[2] == {}


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"score": "combind"}, "did you mean 'combined'"),
        ({"preset": "combnied"}, "did you mean 'combined'"),
        ({"preset": "combined", "view_combine": "maxi"}, "view_combine"),
        ({"preset": "combined", "knn_bank": "pool"}, "knn_bank"),
    ],
)
def test_config_typos_are_refused_naming_the_parameter(params, message):
    with pytest.raises(ParameterError, match=message):
        MultimodalOCC(**params).resolved_params()


def test_the_preset_is_the_default_autoencoder_with_the_combined_score():
    combined, default = HyperParams.from_preset("combined"), HyperParams.from_preset("default")
    assert combined.score == "combined" and combined.patch_backbone == "autoencoder"
    assert combined.arch() == default.arch() and combined.epochs == default.epochs
    rule = make_rule("combined", center=None, n_neighbors=5, view_groups={"a": "g"})
    assert isinstance(rule, CombinedScore) and rule.needs == {"latent", "patch"}
