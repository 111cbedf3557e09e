import os
import random

import numpy as np
import pytest
import torch
from pyod.models.knn import KNN
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import StandardScaler

from mmocc.detectors.baselines import BaselineOCC
from mmocc.model.params import BASELINE_DETECTORS, FUSIONS, SCALINGS

FAST = {"autoencoder": {"epoch_num": 2}, "deepsvdd": {"epochs": 2}}


def tiny_views(n, seed=0, shift=0.0):
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(100 + 40 * shift, 30, size=(n, 1, 6, 6)), 0, 255).astype(np.uint8)
    vec = rng.normal(shift, 1.0, size=(n, 4))
    return {"img": img, "vec": vec}


def blobs(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(shift, 1.0, size=(n, 6)), "b": rng.normal(shift, 1.0, size=(n, 3))}


def view_scale(train, test):
    mean = train.mean(axis=0)
    rms = np.sqrt(train.var(axis=0).mean())
    return (train - mean) / rms, (test - mean) / rms


def standardize_by_train(train_scores, scores):
    return (scores - train_scores.mean()) / train_scores.std()


def test_constants():
    assert BASELINE_DETECTORS == ("knn", "iforest", "ocsvm", "pca", "autoencoder", "deepsvdd")
    assert FUSIONS == ("early", "late", "single")
    assert SCALINGS == ("view", "feature")


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("detector", BASELINE_DETECTORS)
def test_every_detector_and_fusion_runs(detector, fusion):
    train, test = tiny_views(12, seed=0), tiny_views(7, seed=1)
    model = BaselineOCC(
        detector=detector,
        fusion=fusion,
        views=["vec"] if fusion == "single" else None,
        detector_params=FAST.get(detector),
        random_state=0,
    ).fit(train)
    scores = model.decision_function(test)
    assert scores.shape == (7,) and np.isfinite(scores).all()
    assert model.decision_scores_.shape == (12,) and np.isfinite(model.decision_scores_).all()
    assert np.isfinite(model.threshold_)
    assert set(model.scalers_) == ({"vec"} if fusion == "single" else {"img", "vec"})
    assert model.predict(test).shape == (7,)
    proba = model.predict_proba(test)
    assert proba.shape == (7, 2) and np.allclose(proba.sum(axis=1), 1.0)


def test_knn_early_roc_floor_on_shifted_blobs():
    train = blobs(60, seed=0)
    normal, anomalous = blobs(100, seed=1), blobs(100, seed=2, shift=1.5)
    test = {k: np.concatenate([normal[k], anomalous[k]]) for k in normal}
    y = np.r_[np.zeros(100), np.ones(100)]
    model = BaselineOCC(detector="knn", fusion="early").fit(train)
    assert roc_auc_score(y, model.decision_function(test)) > 0.95
    assert model.predict(anomalous).mean() > 0.8
    assert model.predict(normal).mean() < 0.2


def test_early_fusion_is_knn_on_concatenated_view_scaled_features():
    train, test = blobs(30, seed=0), blobs(10, seed=1, shift=0.5)
    model = BaselineOCC(detector="knn", fusion="early").fit(train)
    pairs = [view_scale(train[k], test[k]) for k in ("a", "b")]
    ref = KNN(n_neighbors=5).fit(np.hstack([p[0] for p in pairs]))
    np.testing.assert_allclose(model.decision_scores_, ref.decision_scores_)
    joint_test = np.hstack([p[1] for p in pairs])
    np.testing.assert_allclose(model.decision_function(test), ref.decision_function(joint_test))


def test_feature_scaling_is_a_standard_scaler_per_view():
    train, test = blobs(30, seed=0), blobs(10, seed=1, shift=0.5)
    model = BaselineOCC(detector="knn", fusion="early", scaling="feature").fit(train)
    scalers = {k: StandardScaler().fit(train[k]) for k in ("a", "b")}
    ref = KNN(n_neighbors=5).fit(np.hstack([scalers[k].transform(train[k]) for k in ("a", "b")]))
    joint_test = np.hstack([scalers[k].transform(test[k]) for k in ("a", "b")])
    np.testing.assert_allclose(model.decision_function(test), ref.decision_function(joint_test))


def test_late_fusion_is_mean_of_standardized_per_view_scores():
    train, test = blobs(30, seed=0), blobs(10, seed=1, shift=0.5)
    model = BaselineOCC(detector="knn", fusion="late").fit(train)
    train_z, test_z = [], []
    for k in ("a", "b"):
        x_train, x_test = view_scale(train[k], test[k])
        det = KNN(n_neighbors=5).fit(x_train)
        train_z.append(standardize_by_train(det.decision_scores_, det.decision_scores_))
        test_z.append(standardize_by_train(det.decision_scores_, det.decision_function(x_test)))
    np.testing.assert_allclose(model.decision_scores_, np.mean(train_z, axis=0))
    np.testing.assert_allclose(model.decision_function(test), np.mean(test_z, axis=0))
    assert model.threshold_ == pytest.approx(np.percentile(np.mean(train_z, axis=0), 95))


def test_single_fusion_needs_exactly_one_view():
    train = blobs(20, seed=0)
    with pytest.raises(ValueError, match=r"fusion='single' needs exactly one view, got 2: \['a', 'b'\]"):
        BaselineOCC(fusion="single").fit(train)
    single = BaselineOCC(fusion="single", views=["b"]).fit(train)
    early = BaselineOCC(fusion="early", views="b").fit(train)
    test = blobs(5, seed=1)
    np.testing.assert_allclose(single.decision_function(test), early.decision_function(test))
    assert [s.name for s in single.view_specs_] == ["b"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"detector": "lof"},
            r"detector must be one of \['knn', 'iforest', 'ocsvm', 'pca', 'autoencoder', 'deepsvdd'\], "
            r"got 'lof'",
        ),
        ({"detector": "knm"}, r"detector='knm' is not valid \(unknown detector 'knm'; did you mean 'knn'"),
        ({"fusion": "middle"}, r"fusion must be one of \['early', 'late', 'single'\], got 'middle'"),
        ({"scaling": "minmax"}, r"scaling must be one of \['view', 'feature'\], got 'minmax'"),
        (
            {"detector_params": [("n_neighbors", 3)]},
            r"detector_params must be None or a dict, got \[\('n_neighbors', 3\)\]",
        ),
        ({"detector_params": {"contamination": 0.1}}, r"must not set \['contamination'\]"),
        (
            {"detector_params": {"n_neighbour": 3}},
            r"\['n_neighbour'\] are not parameters of pyod KNN; valid: .*n_neighbors",
        ),
    ],
)
def test_bad_parameters_raise_in_fit(params, message):
    model = BaselineOCC(**params)  # __init__ only stores
    with pytest.raises(ValueError, match=message):
        model.fit(blobs(10, seed=0))


def test_init_is_keyword_only():
    with pytest.raises(TypeError):
        BaselineOCC("knn")


def test_clone_and_params_round_trip():
    model = BaselineOCC(
        detector="iforest", fusion="late", detector_params={"n_estimators": 10}, random_state=3
    )
    params = model.get_params()
    assert params == {
        "detector": "iforest",
        "fusion": "late",
        "views": None,
        "contamination": 0.05,
        "threshold": "train",
        "validation_fraction": 0.2,
        "scaling": "view",
        "detector_params": {"n_estimators": 10},
        "random_state": 3,
    }
    copy = clone(model)
    assert copy.get_params() == params and copy is not model
    model.fit(blobs(20, seed=0))
    fresh = clone(model)
    assert not hasattr(fresh, "detector_")
    fresh.set_params(detector="knn", detector_params=None)
    assert fresh.fit(blobs(20, seed=0)).decision_scores_.shape == (20,)


@pytest.mark.parametrize("detector", ["iforest", "autoencoder", "deepsvdd"])
@pytest.mark.parametrize("fusion", ["early", "late"])
def test_same_random_state_same_scores(detector, fusion):
    train, test = tiny_views(16, seed=0), tiny_views(6, seed=1)

    def scores(seed):
        params = FAST.get(detector)
        model = BaselineOCC(detector=detector, fusion=fusion, detector_params=params, random_state=seed)
        return model.fit(train).decision_function(test)

    np.testing.assert_array_equal(scores(7), scores(7))
    assert not np.array_equal(scores(7), scores(8))


def test_torch_detectors_leave_global_rngs_alone():
    np.random.seed(123)
    random.seed(123)
    torch.manual_seed(123)
    before = (np.random.get_state()[1].copy(), random.getstate(), torch.get_rng_state().clone())
    hash_seed = os.environ.get("PYTHONHASHSEED")
    for detector in ("autoencoder", "deepsvdd"):
        BaselineOCC(detector=detector, detector_params=FAST[detector], random_state=0).fit(tiny_views(12))
    np.testing.assert_array_equal(np.random.get_state()[1], before[0])
    assert random.getstate() == before[1]
    assert torch.equal(torch.get_rng_state(), before[2])
    assert os.environ.get("PYTHONHASHSEED") == hash_seed


def test_uint8_images_equal_float_images_divided_by_255():
    train, test = tiny_views(12, seed=0), tiny_views(5, seed=1)
    as_float = {k: (v / 255.0 if v.dtype == np.uint8 else v) for k, v in train.items()}
    test_float = {k: (v / 255.0 if v.dtype == np.uint8 else v) for k, v in test.items()}
    a = BaselineOCC().fit(train).decision_function(test)
    b = BaselineOCC().fit(as_float).decision_function(test_float)
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_knn_with_fewer_samples_than_default_neighbours():
    model = BaselineOCC(detector="knn").fit(blobs(4, seed=0))
    assert model.detector_.n_neighbors == 3
    assert np.isfinite(model.decision_function(blobs(3, seed=1))).all()


def test_scoring_checks_views_against_fit():
    model = BaselineOCC().fit(blobs(10, seed=0))
    with pytest.raises(ValueError, match="missing from X"):
        model.decision_function({"a": blobs(3, seed=1)["a"]})


def test_missing_pyod_names_the_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "pyod" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ModuleNotFoundError, match=r'pip install "mmocc\[baselines\]"'):
        BaselineOCC(detector="knn").check_params()
    X = {"a": np.random.default_rng(0).random((20, 3))}
    with pytest.raises(ModuleNotFoundError, match=r'pip install "mmocc\[baselines\]"'):
        BaselineOCC(detector="knn", fusion="single").fit(X)
