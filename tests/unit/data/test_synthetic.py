import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors

from mmocc.data.synthetic import MAX_CLASSES
from mmocc.datasets import make_synthetic


def test_shapes_labels_groups():
    ds = make_synthetic(n_per_class=6, n_classes=3, size=16, seed=1)
    assert len(ds) == 18 and ds.view_names == ["dorsal", "lateral"]
    for view in ds.view_names:
        assert ds.views[view].shape == (18, 3, 16, 16) and ds.views[view].dtype == np.uint8
    assert ds.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6 and ds.labels.dtype.kind == "i"
    assert len(np.unique(ds.groups)) == 18
    assert ds.metadata["yaw"].shape == (18,)
    # something was drawn in both views: not just background
    assert (ds.views["dorsal"].std(axis=(1, 2, 3)) > 10).all()
    assert (ds.views["lateral"].std(axis=(1, 2, 3)) > 10).all()


def test_poses_per_individual_share_a_group():
    ds = make_synthetic(n_per_class=6, n_classes=2, size=8, poses_per_individual=3)
    assert np.bincount(ds.groups).tolist() == [3] * 4
    for group in np.unique(ds.groups):
        assert len(set(ds.labels[ds.groups == group].tolist())) == 1
    first = np.flatnonzero(ds.groups == 0)
    assert not np.array_equal(ds.views["dorsal"][first[0]], ds.views["dorsal"][first[1]])


def test_deterministic_given_seed():
    a = make_synthetic(n_per_class=5, n_classes=MAX_CLASSES, size=12, seed=3)
    b = make_synthetic(n_per_class=5, n_classes=MAX_CLASSES, size=12, seed=3)
    c = make_synthetic(n_per_class=5, n_classes=MAX_CLASSES, size=12, seed=4)
    for view in a.view_names:
        assert np.array_equal(a.views[view], b.views[view])
        assert not np.array_equal(a.views[view], c.views[view])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_per_class": 0},
        {"n_classes": 1},
        {"n_classes": MAX_CLASSES + 1},
        {"size": 2},
        {"seed": 0, "poses_per_individual": 4},
        {"n_per_class": 2.5},
    ],
)
def test_bad_parameters(kwargs):
    with pytest.raises(ValueError):
        make_synthetic(**{"n_per_class": 6, **kwargs})


def knn_auc(ds, views, normal, rng):
    features = np.concatenate([ds.views[v].reshape(len(ds), -1) / 255.0 for v in views], axis=1)
    index = rng.permutation(np.flatnonzero(ds.labels == normal))
    n_train = int(0.66 * len(index))
    test = np.concatenate([index[n_train:], np.flatnonzero(ds.labels != normal)])
    distances, _ = NearestNeighbors(n_neighbors=5).fit(features[index[:n_train]]).kneighbors(features[test])
    return roc_auc_score(ds.labels[test] != normal, distances.mean(axis=1))


def test_classes_are_learnable_and_both_views_matter():
    ds = make_synthetic(n_per_class=80, n_classes=4, size=24, seed=0)
    rng = np.random.default_rng(0)
    both = np.mean([knn_auc(ds, ["dorsal", "lateral"], c, rng) for c in range(4)])
    assert 0.75 < both < 0.99
    # class 1 differs from class 0 only in height (side view), class 2 only in width (top view)
    pair = ds[np.isin(ds.labels, [0, 1])]
    assert knn_auc(pair, ["lateral"], 0, rng) > knn_auc(pair, ["dorsal"], 0, rng) + 0.1
    pair = ds[np.isin(ds.labels, [0, 2])]
    assert knn_auc(pair, ["dorsal"], 0, rng) > knn_auc(pair, ["lateral"], 0, rng) + 0.1
