import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from mmocc import MultimodalOCC
from mmocc.data.inputs import ViewSpec
from mmocc.model import losses
from mmocc.model.losses import JointLoss
from mmocc.model.nn import ArchConfig, JointAutoencoder

FAST = {"filters": (8, 4), "epochs": 2, "batch_size": 16}


def _images(rng, n, c=1, size=16):
    return (rng.random((n, c, size, size)) * 255).astype(np.uint8)


def _stripes(n, horizontal, rng, size=16):
    """Easy task: normal = horizontal stripes, anomaly = vertical stripes."""
    grid = np.arange(size)
    phase = rng.integers(0, 4, size=(n, 1, 1))
    base = np.sin((grid[None, :, None] if horizontal else grid[None, None, :]) + phase) > 0
    img = np.broadcast_to(base, (n, size, size)).astype(np.float32)
    img = img + 0.1 * rng.standard_normal((n, size, size))
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)[:, None]


@pytest.mark.parametrize("views", [["a"], ["a", "b"], ["a", "b", "c"]])
def test_latent_shapes_for_one_to_three_views(views):
    rng = np.random.default_rng(0)
    X = {v: _images(rng, 24) for v in ["a", "b", "c"]}
    clf = MultimodalOCC(preset="paper", views=views, random_state=0, **FAST).fit(X)
    assert clf.transform(X).shape == (24, 4 * 4 * 4 * len(views))
    assert clf.decision_function(X).shape == (24,)
    assert [s.name for s in clf.view_specs_] == views


def test_mixed_image_and_vector_views():
    rng = np.random.default_rng(0)
    X = {"img": _images(rng, 30, c=3), "vec": rng.normal(size=(30, 7)).astype(np.float32)}
    clf = MultimodalOCC(preset="default", vector_latent=5, random_state=0, **FAST).fit(X)
    assert clf.transform(X).shape == (30, 4 * 4 * 4 + 5)
    assert np.isfinite(clf.decision_function(X)).all()


def test_channels_last_input_equals_channels_first():
    rng = np.random.default_rng(1)
    X = {"a": _images(rng, 20, c=3), "b": _images(rng, 20, c=3)}
    X_last = {k: np.moveaxis(v, 1, 3) for k, v in X.items()}
    clf = MultimodalOCC(preset="paper", random_state=0, **FAST).fit(X)
    np.testing.assert_array_equal(clf.decision_function(X), clf.decision_function(X_last))


def test_shared_weights_share_one_encoder_and_reject_mixed_shapes():
    specs = [ViewSpec("a", "image", (1, 16, 16)), ViewSpec("b", "image", (1, 16, 16))]
    shared = JointAutoencoder(specs, ArchConfig(filters=(4,), shared_weights=True))
    separate = JointAutoencoder(specs, ArchConfig(filters=(4,), shared_weights=False))
    assert len(shared.encoders) == 1 and len(separate.encoders) == 2
    assert shared.encoder_of("a") is shared.encoder_of("b")
    mixed = [ViewSpec("a", "image", (1, 16, 16)), ViewSpec("v", "vector", (5,))]
    with pytest.raises(ValueError, match="shared_weights=True needs views of identical shape.*'v'"):
        JointAutoencoder(mixed, ArchConfig(shared_weights=True))
    assert len(JointAutoencoder(mixed, ArchConfig(shared_weights="auto")).encoders) == 2


def test_odd_image_sizes_reconstruct_to_the_input_shape():
    specs = [ViewSpec("pix", "image", (1, 16, 15))]
    model = JointAutoencoder(specs, ArchConfig(filters=(8, 4, 2)))
    out = model({"pix": torch.zeros(3, 1, 16, 15)})
    assert out.recons["pix"].shape == (3, 1, 16, 15)


def test_loss_decreases_and_history_records_each_term():
    rng = np.random.default_rng(0)
    X = {"a": _stripes(64, True, rng), "b": _stripes(64, True, rng)}
    clf = MultimodalOCC(preset="paper", filters=(8, 4), epochs=8, batch_size=16, random_state=0).fit(X)
    losses_ = [h["loss"] for h in clf.history_]
    assert len(clf.history_) == 8
    assert losses_[-1] < losses_[0]
    for entry in clf.history_:
        assert {"epoch", "loss", "compactness", "reconstruction", "diversity", "lr", "seconds"} <= set(entry)
        assert entry["loss"] == pytest.approx(entry["compactness"] + entry["reconstruction"], rel=1e-5)


def test_paper_loss_equals_eq3_by_hand():
    rng = np.random.default_rng(0)
    specs = [ViewSpec("a", "image", (1, 8, 8)), ViewSpec("b", "image", (1, 8, 8))]
    model = JointAutoencoder(specs, ArchConfig(filters=(4,))).eval()
    batch = {k: torch.from_numpy(rng.random((5, 1, 8, 8)).astype(np.float32)) for k in ("a", "b")}
    out = model(batch)
    loss = JointLoss(center=None, units=model.bottleneck_units())
    total = loss.total(loss.terms(out.phi, out.latents, out.inputs, out.recons))
    by_hand = 0.0
    for i in range(5):
        phi = torch.cat([model.encoders["shared"](batch[k][i : i + 1]).flatten() for k in ("a", "b")])
        by_hand += float((phi**2).sum().detach())
        for k in ("a", "b"):
            recon = model.decoders["shared"](model.encoders["shared"](batch[k][i : i + 1]))
            by_hand += float(((recon - batch[k][i : i + 1]) ** 2).sum().detach())
    assert float(total.detach()) == pytest.approx(by_hand / 5, rel=1e-5)


@pytest.mark.parametrize("preset", ["paper", "default"])
def test_same_seed_gives_identical_scores(preset):
    rng = np.random.default_rng(0)
    X = {"a": _images(rng, 40), "b": _images(rng, 40)}
    first = MultimodalOCC(preset=preset, random_state=3, **FAST).fit(X).decision_function(X)
    second = MultimodalOCC(preset=preset, random_state=3, **FAST).fit(X).decision_function(X)
    other = MultimodalOCC(preset=preset, random_state=4, **FAST).fit(X).decision_function(X)
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_fit_does_not_touch_the_global_torch_rng():
    rng = np.random.default_rng(0)
    X = {"a": _images(rng, 20)}
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    MultimodalOCC(preset="paper", random_state=0, **FAST).fit(X)
    assert torch.equal(torch.rand(3), expected)


def test_clone_get_params_set_params():
    clf = MultimodalOCC(preset="paper", epochs=3, views=("a",), random_state=1)
    params = clf.get_params()
    assert params["epochs"] == 3 and params["preset"] == "paper" and params["filters"] is None
    twin = clone(clf)
    assert twin.get_params() == params and twin is not clf
    twin.set_params(epochs=5, score="knn")
    assert twin.epochs == 5 and twin.resolved_params().score == "knn"
    assert clf.epochs == 3


def test_threshold_matches_contamination():
    rng = np.random.default_rng(0)
    X = {"a": _images(rng, 200)}
    clf = MultimodalOCC(preset="paper", contamination=0.1, random_state=0, **FAST).fit(X)
    assert clf.labels_.mean() == pytest.approx(0.1, abs=0.01)
    np.testing.assert_array_equal(clf.predict(X), clf.labels_)
    proba = clf.predict_proba(X)
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert ((proba >= 0) & (proba <= 1)).all()


def _easy_task(rng, anomaly_gain):
    train = {"a": _stripes(80, True, rng), "b": _stripes(80, True, rng)}
    test = {
        v: np.concatenate(
            [_stripes(40, True, rng), (_stripes(40, False, rng) * anomaly_gain).astype(np.uint8)]
        )
        for v in ("a", "b")
    }
    return train, test, np.r_[np.zeros(40), np.ones(40)]


def test_roc_floor_default_preset_on_easy_task():
    train, test, y = _easy_task(np.random.default_rng(0), anomaly_gain=1.0)
    clf = MultimodalOCC(preset="default", filters=(8, 4), epochs=5, random_state=0).fit(train)
    assert roc_auc_score(y, clf.decision_function(test)) > 0.95


def test_roc_floor_paper_preset_when_anomalies_carry_less_content():
    # The norm score only works where anomalies move the latent energy, as dim ones do here.
    train, test, y = _easy_task(np.random.default_rng(0), anomaly_gain=0.2)
    clf = MultimodalOCC(preset="paper", filters=(8, 4), epochs=5, random_state=0).fit(train)
    auc = roc_auc_score(y, clf.decision_function(test))
    assert auc > 0.9


def test_dataset_like_objects_are_accepted():
    class Holder:
        def __init__(self, views):
            self.views = views

    rng = np.random.default_rng(0)
    X = {"a": _images(rng, 20)}
    clf = MultimodalOCC(preset="paper", random_state=0, **FAST).fit(Holder(X))
    np.testing.assert_array_equal(clf.decision_function(Holder(X)), clf.decision_function(X))


def test_float_inputs_are_scaled_from_training_statistics():
    rng = np.random.default_rng(0)
    X = {"a": rng.normal(100.0, 20.0, size=(40, 1, 16, 16)).astype(np.float32)}
    clf = MultimodalOCC(preset="default", random_state=0, **FAST).fit(X)
    scaled = clf.model_.scalers["a"](torch.from_numpy(X["a"]))
    assert float(scaled.mean()) == pytest.approx(0.0, abs=1e-3)
    assert float(scaled.std()) == pytest.approx(1.0, abs=1e-2)


def test_explicit_cpu_device_is_honoured():
    rng = np.random.default_rng(0)
    clf = MultimodalOCC(preset="paper", device="cpu", random_state=0, **FAST).fit({"a": _images(rng, 20)})
    assert clf.device_ == "cpu"
    assert next(clf.model_.parameters()).device.type == "cpu"


# ------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = {"a": _images(rng, 30), "b": _images(rng, 30)}
    return MultimodalOCC(preset="paper", random_state=0, **FAST).fit(X), X


def test_unknown_or_missing_view_at_scoring(fitted):
    clf, X = fitted
    with pytest.raises(ValueError, match=r"view\(s\) \['b'\] missing from X"):
        clf.decision_function({"a": X["a"], "c": X["b"]})


def test_wrong_shape_at_scoring(fitted):
    clf, X = fitted
    with pytest.raises(ValueError, match="view 'b': per-sample shape \\(1, 8, 8\\) does not match"):
        clf.decision_function({"a": X["a"], "b": X["b"][:, :, :8, :8]})


def test_different_sample_counts(fitted):
    clf, X = fitted
    with pytest.raises(ValueError, match="different numbers of samples: a=30, b=29"):
        clf.decision_function({"a": X["a"], "b": X["b"][:29]})


def test_wrong_number_of_dimensions():
    with pytest.raises(ValueError, match="view 'a': expected .* got an array with 5 dimensions"):
        MultimodalOCC().fit({"a": np.zeros((4, 1, 1, 8, 8))})


def test_nan_and_inf_are_rejected():
    X = {"a": np.zeros((10, 1, 16, 16), dtype=np.float32)}
    X["a"][3, 0, 2, 2] = np.nan
    with pytest.raises(ValueError, match="view 'a': contains NaN or infinite values \\(first bad row 3"):
        MultimodalOCC().fit(X)


def test_empty_training_set():
    with pytest.raises(ValueError, match="0 samples"):
        MultimodalOCC().fit({"a": np.zeros((0, 1, 16, 16), dtype=np.uint8)})


@pytest.mark.parametrize("value", [0.0, 0.6, -0.1])
def test_contamination_out_of_range(value):
    with pytest.raises(ValueError, match="contamination must be in \\(0, 0.5\\]"):
        MultimodalOCC(contamination=value).fit({"a": np.zeros((10, 1, 16, 16), dtype=np.uint8)})


def test_image_too_small_for_pooling_blocks():
    with pytest.raises(ValueError, match="image of size 4x4 is too small for 3 pooling blocks"):
        MultimodalOCC(preset="paper").fit({"a": np.zeros((10, 1, 4, 4), dtype=np.uint8)})


def test_scoring_before_fit():
    with pytest.raises(NotFittedError):
        MultimodalOCC().decision_function({"a": np.zeros((2, 1, 16, 16))})


@pytest.mark.parametrize(
    ("param", "value", "message"),
    [
        ("score", "nrom", "score='nrom' is not valid"),
        ("preset", "papr", "preset='papr' is not valid"),
        ("epochs", 0, "epochs must be >= 1, got 0"),
        ("epochs", 2.5, "epochs must be None or an integer >= 1, got 2.5"),
        ("lr", float("nan"), "lr must be None or a finite number >= 0, got nan"),
        ("dropout", 1.5, "dropout must be in \\[0, 1\\)"),
        ("augment", "rotate", r"augment must be None or one of \['none', 'shift', 'shift_flip'\], got 'rot"),
        ("filters", (), r"filters must be None or a non-empty sequence of positive integers, got \(\)"),
    ],
)
def test_bad_hyperparameters_name_the_parameter(param, value, message):
    with pytest.raises(ValueError, match=message):
        MultimodalOCC(**{param: value}).fit({"a": np.zeros((10, 1, 16, 16), dtype=np.uint8)})


def test_bad_input_type():
    with pytest.raises(ValueError, match=r"X must be a dict .* or a 2-D array .* got a 3-D array"):
        MultimodalOCC().fit(np.zeros((10, 16, 16)))
    with pytest.raises(TypeError, match="X must be a dict .* got int"):
        MultimodalOCC().fit(3)


def test_plain_2d_array_is_one_vector_view_named_x():
    X = np.random.default_rng(0).normal(size=(20, 3))
    clf = MultimodalOCC(filters=(4,), hidden=(4,), vector_latent=2, epochs=1, random_state=0, verbose=False)
    scores = clf.fit(X).decision_function(X)
    assert [spec.name for spec in clf.view_specs_] == ["X"]
    np.testing.assert_array_equal(scores, clf.decision_function({"X": X}))


def test_diversity_term_is_recorded():
    rng = np.random.default_rng(0)
    X = {"a": _images(rng, 20)}
    clf = MultimodalOCC(preset="paper", diversity="logdet", diversity_weight=0.1, random_state=0, **FAST).fit(
        X
    )
    assert all(np.isfinite(h["diversity"]) and h["diversity"] != 0 for h in clf.history_)


def test_compactness_centre_is_away_from_zero():
    rng = np.random.default_rng(0)
    clf = MultimodalOCC(preset="default", random_state=0, **FAST).fit({"a": _images(rng, 20)})
    assert clf.center_ is not None and (np.abs(clf.center_) >= 0.1).all()
    phi = torch.from_numpy(clf.transform({"a": _images(rng, 5)}))
    assert losses.compactness(phi, torch.from_numpy(clf.center_)).shape == (5,)


def test_stop_tol_ends_training_once_the_loss_stalls():
    rng = np.random.default_rng(0)
    X = {"a": _stripes(40, True, rng)}
    clf = MultimodalOCC(preset="paper", filters=(8, 4), epochs=40, stop_tol=0.2, random_state=0).fit(X)
    assert 3 < len(clf.history_) < 40
    before, last = clf.history_[-4]["loss"], clf.history_[-1]["loss"]
    assert before - last <= 0.2 * abs(before)
    with pytest.raises(ValueError, match="stop_tol must be >= 0, got -1.0"):
        MultimodalOCC(stop_tol=-1.0).fit(X)
