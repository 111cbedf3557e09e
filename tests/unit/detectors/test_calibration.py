"""Threshold sources (train, holdout, calibrate), training fingerprints and model metadata."""

import numpy as np
import pytest

import mmocc
import mmocc.io.format
from mmocc import MultimodalOCC
from mmocc.data.dataset import MultiViewDataset
from mmocc.data.fingerprints import sample_fingerprints, set_fingerprint
from mmocc.datasets import make_synthetic
from mmocc.detectors.base import conformal_threshold

FAST = {"filters": (8, 4), "epochs": 2, "batch_size": 16, "random_state": 0}


@pytest.fixture(scope="module")
def normals():
    data = make_synthetic(n_per_class=60, n_classes=2, size=16, seed=0)
    return data[data.labels == 0]


def _shifted(dataset, seed=1, noise=12.0):
    """The same normals seen under a shift: brighter, noisier images."""
    rng = np.random.default_rng(seed)
    views = {}
    for name, array in dataset.views.items():
        noisy = array.astype(np.float64) * 0.7 + 60 + rng.normal(0, noise, array.shape)
        views[name] = np.clip(noisy, 0, 255).astype(np.uint8)
    return MultiViewDataset(views, labels=dataset.labels, ids=np.char.add(dataset.ids, "_s"))


def test_holdout_threshold_is_above_the_training_one(normals):
    train = MultimodalOCC(**FAST).fit(normals)
    held = MultimodalOCC(threshold="holdout", validation_fraction=0.25, **FAST).fit(normals)
    assert train.threshold_source_ == "train" and train.calibration_scores_ is None
    assert held.threshold_source_ == "holdout" and len(held.calibration_scores_) == 15
    assert len(held.decision_scores_) == 45 and held.n_samples_in_ == 60
    assert held.threshold_ == conformal_threshold(held.calibration_scores_, 0.05)
    assert held.threshold_ == held.calibration_scores_.max()  # 15 < 19 scores: the largest
    assert (held.labels_ == (held.decision_scores_ > held.threshold_)).all()


def test_holdout_of_unseen_groups_raises_the_threshold(normals):
    """The documented direction: normals of unseen groups score above leave-one-out training ones."""
    shifted = [_shifted(normals[np.arange(10 * g, 10 * g + 10)], seed=g) for g in range(6)]
    views = {name: np.concatenate([d.views[name] for d in shifted]) for name in normals.view_names}
    grouped = MultiViewDataset(views, labels=normals.labels, groups=np.arange(60) // 10)
    train = MultimodalOCC(**FAST).fit(grouped)
    held = MultimodalOCC(threshold="holdout", validation_fraction=0.34, **FAST).fit(grouped)
    assert len(held.calibration_scores_) == 20  # 2 of 6 groups of 10
    assert held.threshold_ > train.threshold_


def test_calibrate_restores_normal_recall_under_shift(normals):
    calibration = _shifted(normals[np.arange(30, 45)], seed=1, noise=25.0)
    new_normals = _shifted(normals[np.arange(45, 60)], seed=2, noise=25.0)
    clf = MultimodalOCC(contamination=0.1, **FAST).fit(normals[np.arange(30)])
    before = float((clf.decision_function(new_normals) <= clf.threshold_).mean())
    old_threshold = clf.threshold_
    clf.calibrate(calibration)
    after = float((clf.decision_function(new_normals) <= clf.threshold_).mean())
    assert clf.threshold_source_ == "calibrate" and clf.threshold_ > old_threshold
    assert before < 0.5 and after >= 0.8


def test_calibrate_warns_about_training_samples(normals):
    clf = MultimodalOCC(**FAST).fit(normals[np.arange(30)])
    with pytest.warns(UserWarning, match="5 of the 5 calibration samples were used in fit"):
        clf.calibrate(normals[np.arange(5)])


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"threshold": "val"}, r"threshold must be one of \['train', 'holdout'\]"),
        ({"threshold": "holdout", "validation_fraction": 1.0}, r"validation_fraction must be in \(0, 1\)"),
        ({"validation_fraction": "x"}, "validation_fraction must be a number"),
    ],
)
def test_bad_threshold_options(params, match):
    with pytest.raises(ValueError, match=match):
        MultimodalOCC(**params).check_params()


def test_seen_in_training_matches_by_content_not_id(normals):
    clf = MultimodalOCC(**FAST).fit(normals[np.arange(30)])
    renamed = MultiViewDataset(normals.views, labels=normals.labels, ids=np.char.add(normals.ids, "_x"))
    assert clf.seen_in_training(renamed).tolist() == [True] * 30 + [False] * 30


def test_fingerprints_differ_for_other_decodings():
    a = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    base = sample_fingerprints({"v": a})
    assert not np.isin(sample_fingerprints({"v": a.astype(np.float32)}), base).any()
    assert not np.isin(sample_fingerprints({"w": a}), base).any()
    assert set_fingerprint(base) == set_fingerprint(base[::-1])


def test_round_trip_keeps_calibration_fingerprints_and_metadata(tmp_path, normals):
    clf = MultimodalOCC(threshold="holdout", **FAST).fit(normals)
    path = tmp_path / "m.mmocc"
    clf.save(path, metadata={"normal": [0], "source": "synthetic"})
    loaded = mmocc.load(path)
    assert loaded.threshold_ == clf.threshold_ and loaded.threshold_source_ == "holdout"
    np.testing.assert_array_equal(loaded.calibration_scores_, clf.calibration_scores_)
    np.testing.assert_array_equal(loaded.train_fingerprints_, clf.train_fingerprints_)
    assert loaded.metadata_ == {"normal": [0], "source": "synthetic"}
    config, _ = mmocc.io.format.read_config(path)
    assert config["training"]["fingerprint"] == set_fingerprint(clf.train_fingerprints_)
    assert config["training"]["n_calibration"] == 12 and config["created"].endswith("+00:00")
    np.testing.assert_array_equal(loaded.predict(normals), clf.predict(normals))


def test_few_calibration_scores_warn_and_give_the_largest(normals):
    clf = MultimodalOCC(**FAST).fit(normals[np.arange(30)])
    with pytest.warns(
        UserWarning, match="only 10 calibrate scores: the threshold is their largest; 19 or more"
    ):
        clf.calibrate(normals[np.arange(30, 40)])
    assert clf.threshold_ == clf.calibration_scores_.max()


def test_conformal_threshold_covers_the_promised_share():
    rng = np.random.default_rng(0)
    covered = []
    for _ in range(400):
        calibration, new = rng.normal(size=39), rng.normal(size=200)
        covered.append(float((new <= conformal_threshold(calibration, 0.05)).mean()))
    assert np.mean(covered) >= 0.95 - 0.005  # the finite-sample guarantee, up to simulation noise
