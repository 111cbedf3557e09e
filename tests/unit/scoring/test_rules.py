import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from mmocc import MultimodalOCC
from mmocc.scoring import SCORE_RULES, Features, KNNScore, make_rule

FAST = {"filters": (8, 4), "epochs": 3, "batch_size": 16}


def _blobs(n, bright, rng):
    """Normal: a dark square in the centre; anomaly: a bright ring."""
    img = np.full((n, 1, 16, 16), 40.0)
    if bright:
        img[:, :, 2:14, 2:14] = 230.0
        img[:, :, 5:11, 5:11] = 40.0
    else:
        img[:, :, 5:11, 5:11] = 120.0
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def task():
    rng = np.random.default_rng(0)
    train = {v: _blobs(60, False, rng) for v in ("a", "b")}
    test = {v: np.concatenate([_blobs(30, False, rng), _blobs(30, True, rng)]) for v in ("a", "b")}
    return train, test, np.r_[np.zeros(30), np.ones(30)]


@pytest.mark.parametrize("score", [s for s in SCORE_RULES if s != "norm"])
def test_each_rule_is_finite_and_points_the_right_way(task, score):
    train, test, y = task
    clf = MultimodalOCC(preset="default", score=score, random_state=0, **FAST).fit(train)
    scores = clf.decision_function(test)
    assert np.isfinite(scores).all() and np.isfinite(clf.decision_scores_).all()
    assert roc_auc_score(y, scores) > 0.9
    assert clf.labels_.mean() == pytest.approx(0.05, abs=0.02)


def test_norm_rule_is_the_latent_norm(task):
    train, test, _ = task
    clf = MultimodalOCC(preset="paper", random_state=0, **FAST).fit(train)
    np.testing.assert_allclose(
        clf.decision_function(test), np.linalg.norm(clf.transform(test), axis=1), rtol=1e-6
    )


@pytest.mark.parametrize("bank", ["joint", "view", "pooled"])
@pytest.mark.parametrize("space", ["latent", "input", "both"])
def test_knn_banks_and_spaces(task, bank, space):
    train, test, y = task
    clf = MultimodalOCC(preset="default", knn_bank=bank, knn_space=space, random_state=0, **FAST).fit(train)
    assert roc_auc_score(y, clf.decision_function(test)) > 0.9


def test_knn_training_scores_leave_each_sample_out():
    rng = np.random.default_rng(0)
    latents = {"a": rng.normal(size=(20, 3)).astype(np.float32)}
    rule = KNNScore(1, "view", "latent", {"a": "g"})
    train_scores = rule.fit(Features(latents=latents))
    # scored against itself with the self-match removed: never the zero distance
    raw = train_scores * rule.std + rule.mean
    assert (raw > 0).all()
    assert rule.score(Features(latents=latents)).max() < train_scores.min()


def test_pooled_bank_counts_the_other_view_as_normal():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 4)).astype(np.float32)
    b = a + 10.0  # the other camera sees something else
    feats = Features(latents={"a": a, "b": b})
    swapped = Features(latents={"a": b[:5], "b": a[:5]})
    groups = {"a": "g", "b": "g"}
    pooled = make_rule("knn", center=None, n_neighbors=3, knn_bank="pooled", view_groups=groups)
    per_view = make_rule("knn", center=None, n_neighbors=3, knn_bank="view", view_groups=groups)
    pooled.fit(feats)
    per_view.fit(feats)
    assert pooled.score(swapped).max() < per_view.score(swapped).min()


def test_unknown_rule_and_center_without_centre():
    with pytest.raises(ValueError, match="unknown score 'nope'"):
        make_rule("nope", center=None, n_neighbors=5)
    with pytest.raises(ValueError, match="score='center' needs a training centre"):
        MultimodalOCC(preset="paper", score="center", **FAST).fit({"a": np.zeros((10, 1, 16, 16), np.uint8)})


def test_default_preset_roc_floor_on_synthetic_data():
    from mmocc.data.tasks import one_class_split
    from mmocc.datasets import make_synthetic

    data = make_synthetic(n_per_class=60, n_classes=3, size=32, seed=0)
    split = one_class_split(data, 0, seed=0)
    clf = MultimodalOCC(random_state=0, epochs=5).fit(split.train)
    assert roc_auc_score(split.y_test, clf.decision_function(split.test)) > 0.75


def test_each_rule_declares_the_features_it_needs():
    def needs(name, **kw):
        return make_rule(name, center=np.zeros(2), n_neighbors=3, **kw).needs

    assert needs("norm") == needs("center") == needs("mahalanobis") == {"latent"}
    assert needs("recon") == {"recon"}
    assert needs("knn", knn_space="latent") == {"latent"}
    assert needs("knn", knn_space="input") == {"input"}
    assert needs("knn", knn_space="both") == {"latent", "input"}
    assert needs("ensemble", knn_space="input") == {"latent", "input", "recon"}


def test_ensemble_passes_knn_space_to_its_knn_part():
    rule = make_rule("ensemble", center=None, n_neighbors=3, knn_bank="view", knn_space="both")
    assert rule.parts["knn"].space == "both" and rule.parts["knn"].bank == "view"


def test_detector_computes_exactly_the_features_the_rule_needs(monkeypatch):
    from mmocc import MultimodalOCC
    from mmocc.scoring import EnsembleScore

    rng = np.random.default_rng(0)
    X = {"a": rng.random((24, 1, 8, 8)).astype(np.float32), "b": rng.random((24, 1, 8, 8)).astype(np.float32)}
    seen: list[Features] = []
    fast = {"epochs": 1, "filters": (4,), "random_state": 0}
    for score, space, expected in [
        ("norm", "both", ({"a", "b"}, set(), False)),
        ("knn", "input", (set(), {"a", "b"}, False)),
        ("ensemble", "latent", ({"a", "b"}, set(), True)),
        ("ensemble", "input", ({"a", "b"}, {"a", "b"}, True)),
    ]:
        clf = MultimodalOCC(preset="paper", score=score, knn_space=space, **fast).fit(X)

        def spy(self, feats):
            seen.append(feats)
            return np.zeros(feats.n)

        monkeypatch.setattr(type(clf.rule_), "score", spy)
        clf.decision_function(X)
        feats = seen.pop()
        assert (set(feats.latents), set(feats.inputs), bool(feats.recons)) == expected, (score, space)
        monkeypatch.undo()
    latent = MultimodalOCC(preset="paper", score="ensemble", knn_space="latent", **fast)
    both = MultimodalOCC(preset="paper", score="ensemble", knn_space="both", **fast)
    assert isinstance(latent.fit(X).rule_, EnsembleScore)
    assert not np.allclose(latent.decision_function(X), both.fit(X).decision_function(X))
