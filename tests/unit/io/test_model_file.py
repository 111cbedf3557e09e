import json

import numpy as np
import pytest
from safetensors.numpy import save_file
from safetensors.torch import save_file as save_torch_file

import mmocc
import mmocc.io.format
import mmocc.io.header
from mmocc import MultimodalOCC

FAST = {"filters": (8, 4), "epochs": 2, "batch_size": 16}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return {
        "a": (rng.random((40, 3, 16, 16)) * 255).astype(np.uint8),
        "v": rng.normal(size=(40, 6)).astype(np.float32),
    }


@pytest.mark.parametrize("score", ["norm", "center", "knn", "mahalanobis", "recon", "ensemble"])
def test_round_trip_gives_identical_scores(tmp_path, data, score):
    clf = MultimodalOCC(preset="default", score=score, random_state=0, **FAST).fit(data)
    path = tmp_path / "model.mmocc"
    clf.save(path)
    loaded = mmocc.load(path)
    np.testing.assert_array_equal(loaded.decision_function(data), clf.decision_function(data))
    assert loaded.threshold_ == clf.threshold_
    np.testing.assert_array_equal(loaded.predict(data), clf.predict(data))
    assert loaded.get_params() == clf.get_params()
    assert [s.name for s in loaded.view_specs_] == ["a", "v"]
    assert not list(tmp_path.glob("*.tmp"))


def test_not_a_model_file(tmp_path):
    path = tmp_path / "junk.mmocc"
    path.write_bytes(b"definitely not safetensors")
    with pytest.raises(ValueError, match="junk.mmocc.*not a readable mmocc model file"):
        mmocc.load(path)


def test_safetensors_without_mmocc_metadata(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"x": np.zeros(3, dtype=np.float32)}, str(path))
    with pytest.raises(ValueError, match="not an mmocc model"):
        mmocc.load(path)


def test_truncated_file(tmp_path, data):
    clf = MultimodalOCC(preset="paper", random_state=0, **FAST).fit({"a": data["a"]})
    path = tmp_path / "model.mmocc"
    clf.save(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        mmocc.load(path)


def test_incompatible_format_version(tmp_path):
    config = {"format": "mmocc-model", "format_version": 99, "mmocc_version": "9.0.0"}
    path = tmp_path / "future.mmocc"
    save_file({"x": np.zeros(1, dtype=np.float32)}, str(path), metadata={"mmocc": json.dumps(config)})
    with pytest.raises(ValueError, match="format version 99 .*mmocc 9.0.0"):
        mmocc.load(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        mmocc.load(tmp_path / "nope.mmocc")


def test_save_before_fit(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MultimodalOCC().save(tmp_path / "m.mmocc")


def _round_trip(tmp_path, clf, data):
    path = tmp_path / "model.mmocc"
    clf.save(path)
    loaded = mmocc.load(path)
    np.testing.assert_array_equal(loaded.decision_function(data), clf.decision_function(data))
    assert loaded.threshold_ == clf.threshold_ and loaded.threshold_source_ == clf.threshold_source_
    return loaded


@pytest.mark.parametrize("bank", ["joint", "view", "pooled"])
@pytest.mark.parametrize("space", ["latent", "input"])
def test_round_trip_of_each_knn_bank_and_space(tmp_path, data, bank, space):
    clf = MultimodalOCC(score="knn", knn_bank=bank, knn_space=space, random_state=0, **FAST).fit(data)
    _round_trip(tmp_path, clf, data)


def test_round_trip_of_patch_banks_with_two_cameras_and_a_vector_view(tmp_path, data):
    views = {"left": data["a"], "right": data["a"][::-1].copy(), "v": data["v"]}
    clf = MultimodalOCC(preset="patch", random_state=0, **FAST).fit(views)
    loaded = _round_trip(tmp_path, clf, views)
    for view, scores in clf.view_scores(views).items():
        np.testing.assert_array_equal(loaded.view_scores(views)[view], scores)


def test_round_trip_of_a_calibrated_ensemble_with_per_view_banks(tmp_path, data):
    clf = MultimodalOCC(score="ensemble", knn_bank="view", random_state=0, **FAST).fit(data)
    rng = np.random.default_rng(1)
    clf.calibrate({"a": (rng.random((20, 3, 16, 16)) * 255).astype(np.uint8), "v": rng.normal(size=(20, 6))})
    loaded = _round_trip(tmp_path, clf, data)
    np.testing.assert_array_equal(loaded.calibration_scores_, clf.calibration_scores_)


def test_file_of_an_older_writer_loads_with_defaults(tmp_path, data):
    """A file without the keys and tensors added after format 1 loads, with their former meaning."""
    clf = MultimodalOCC(score="recon", random_state=0, **FAST).fit(data)
    clf.save(tmp_path / "new.mmocc")
    header, tensors = mmocc.io.format.read_config(tmp_path / "new.mmocc")
    for key in ("created", "threshold_source", "training", "metadata", "backbone"):
        header.pop(key)
    later = ("knn_bank", "knn_space", "stop_tol", "patch_backbone", "coreset_ratio", "view_combine",
             "knn_search")
    for key in later:
        header["params"].pop(key)
    old = {k: v for k, v in tensors.items() if k != "train_fingerprints" and not k.startswith("rule.stats")}
    path = tmp_path / "old.mmocc"
    save_torch_file(old, str(path), metadata={"mmocc": json.dumps(header)})
    loaded = mmocc.load(path)
    np.testing.assert_array_equal(loaded.decision_function(data), clf.decision_function(data))
    assert loaded.metadata_ == {} and loaded.train_fingerprints_ is None


def test_save_refuses_a_model_that_load_would_refuse(tmp_path, monkeypatch, data):
    clf = MultimodalOCC(random_state=0, **FAST).fit(data)
    monkeypatch.setattr("mmocc.io.header.LIMITS", {**mmocc.io.header.LIMITS, "view_elements": 100})
    with pytest.raises(ValueError, match=r"model\.mmocc.*views\[0\]\.shape .* more elements per sample"):
        clf.save(tmp_path / "model.mmocc")
    assert not list(tmp_path.iterdir())
