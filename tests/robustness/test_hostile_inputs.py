"""Hostile API input: each case an audit found silently wrong or failing with an unhelpful error.

Each test is named after its case and failed before the fix.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.sparse import csr_matrix, dok_matrix
from sklearn.metrics import roc_auc_score

from mmocc import MultimodalOCC, load
from mmocc.data.inputs import ViewSpec
from mmocc.detectors.baselines import BaselineOCC

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(**kwargs) -> MultimodalOCC:
    settings = {"filters": (4,), "hidden": (8,), "vector_latent": 4, "epochs": 1, "random_state": 0}
    return MultimodalOCC(**{**settings, "verbose": False, **kwargs})


def _uint8_images(n: int = 24, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


def test_scoring_float_images_after_fitting_uint8_is_refused_and_the_reverse(tmp_path):
    images = _uint8_images()
    as_float = images.astype(np.float32) / 255
    on_uint8 = _tiny().fit({"left": images})
    with pytest.raises(TypeError, match=r"view 'left' was fitted on uint8 images \(0-255\); got float32"):
        on_uint8.decision_function({"left": as_float})
    on_float = _tiny().fit({"left": as_float})
    with pytest.raises(TypeError, match=r"view 'left' was fitted on float32 images in \[0, 1\].*got uint8"):
        on_float.decision_function({"left": images})
    on_float.save(tmp_path / "model.safetensors")
    with pytest.raises(TypeError, match="view 'left' was fitted on float32 images"):
        load(tmp_path / "model.safetensors", device="cpu").decision_function({"left": images})


def test_view_names_a_csv_header_can_hold_fit_score_and_reload(tmp_path):
    rng = np.random.default_rng(0)
    names = ["cam.left", "keys", "view#0", "type", "a b", "é"]
    X = {name: rng.integers(0, 256, (16, 8, 8), dtype=np.uint8) for name in names}
    clf = _tiny(shared_weights=False).fit(X)
    scores = clf.decision_function(X)
    clf.save(tmp_path / "model.safetensors")
    again = load(tmp_path / "model.safetensors", device="cpu")
    np.testing.assert_allclose(again.decision_function(X), scores, rtol=1e-6)
    assert [spec.name for spec in again.view_specs_] == names


def test_empty_view_name_is_refused_in_the_api_and_in_a_stored_spec():
    with pytest.raises(TypeError, match="view names must be non-empty strings, got ''"):
        _tiny().fit({"": np.zeros((4, 3))})
    with pytest.raises(ValueError, match="view names must be non-empty strings, got ''"):
        ViewSpec.from_dict({"name": "", "kind": "vector", "shape": [3]})


def test_large_offset_float_vectors_keep_their_information():
    rng = np.random.default_rng(0)
    train = 1e8 + rng.normal(0.0, 0.1, (120, 4))
    test = 1e8 + np.concatenate([rng.normal(0.0, 0.1, (40, 4)), rng.normal(0.0, 0.1, (40, 4)) + 0.6])
    labels = np.r_[np.zeros(40), np.ones(40)]
    clf = _tiny(epochs=2).fit({"v": train})
    assert roc_auc_score(labels, clf.decision_function({"v": test})) > 0.9


NOT_A_RATE = r"contamination must be a number in \(0, 0.5\], got 'abc'"


@pytest.mark.parametrize(
    ("estimator", "message"),
    [
        (lambda: _tiny(contamination="abc"), NOT_A_RATE),
        (lambda: BaselineOCC(contamination="abc"), NOT_A_RATE),
        (lambda: _tiny(preset=["paper"]), r"preset must be one of \[.*\], got \['paper'\]"),
        (lambda: _tiny(random_state="x"), "random_state must be None, an integer .* got 'x'"),
        (lambda: _tiny(amp="x"), "amp must be 'auto', True or False, got 'x'"),
        (lambda: _tiny(verbose="x"), "verbose must be None, True or False, got 'x'"),
    ],
)
def test_non_numeric_parameters_are_refused_naming_the_parameter(estimator, message):
    with pytest.raises(ValueError, match=message):
        estimator().fit({"v": np.zeros((8, 3))})


def test_views_parameter_of_the_wrong_type_is_refused_naming_it():
    with pytest.raises(TypeError, match="views must be None, a view name or a list of view names, got nan"):
        _tiny(views=float("nan")).fit({"v": np.zeros((8, 3))})


def test_complex_view_is_refused_naming_the_view():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's ComplexWarning must not be the only sign
        with pytest.raises(TypeError, match="view 'v': .*complex values are not supported"):
            _tiny().fit({"v": np.ones((8, 3)) + 1j})


def test_ambiguous_channels_last_image_warns_how_it_was_read():
    images = np.zeros((8, 3, 32, 3), np.uint8)
    ambiguous = r"view 'left': shape \(8, 3, 32, 3\) is ambiguous; read as channels-first"
    with pytest.warns(UserWarning, match=ambiguous):
        _tiny().fit({"left": images})


def test_fitting_one_sample_names_the_sample_count():
    with pytest.raises(ValueError, match="training needs at least 2 samples .* n_samples = 1"):
        _tiny().fit({"v": np.zeros((1, 3))})


def test_view_with_zero_features_is_refused_naming_the_view():
    with pytest.raises(ValueError, match=r"view 'v': each sample has 0 feature\(s\)"):
        _tiny().fit({"v": np.zeros((8, 0))})


@pytest.mark.parametrize("matrix", [csr_matrix, dok_matrix])
def test_sparse_input_is_refused_saying_sparse_is_not_supported(matrix):
    with pytest.raises(TypeError, match="sparse input is not supported"):
        _tiny().fit(matrix(np.eye(8)))
