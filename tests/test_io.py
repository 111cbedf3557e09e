import json

import numpy as np
import pytest
from safetensors.numpy import save_file

import mmocc
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
