"""Fuzz the arrays given to ``fit`` and ``decision_function``.

Property: either a result (finite scores, one per sample) or a ValueError or
TypeError whose message names the view (or the input ``X`` as a whole, or
the sample count); never another exception type. Runs under the hypothesis
profile of ``tests/conftest.py`` (``ci`` by default).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import event, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mmocc import MultimodalOCC
from mmocc.detectors.baselines import BaselineOCC

DTYPES = [
    np.bool_, np.int8, np.int64, np.uint8, np.uint16, np.uint64,
    np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.complex128,
]  # fmt: skip
EXTREMES = [0.0, -0.0, 1.0, -1.0, 1e-30, 1e30, -1e30, 3e38, 1e300, np.nan, np.inf, -np.inf]
FLOATS = st.one_of(st.sampled_from(EXTREMES), st.floats(-1e6, 1e6))
N = 12


def _tiny() -> MultimodalOCC:
    return MultimodalOCC(filters=(4,), hidden=(4,), vector_latent=2, epochs=1, random_state=0, verbose=False)


@st.composite
def numeric_arrays(draw: st.DrawFn, shape: tuple[int, ...] | None = None, n: int | None = None) -> np.ndarray:
    """An array of any numeric dtype, of ``shape`` or of any shape (first axis ``n`` when given).

    A few drawn values are tiled over the array; floats mix in NaN, inf and
    extremes (cast to the dtype: 1e30 becomes inf in float16).
    """
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    if shape is None:
        ndim = draw(st.integers(0, 5))
        shape = tuple(draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim)))
        if n is not None and ndim:
            shape = (n, *shape[1:])
    values = st.lists(FLOATS if dtype.kind in "fc" else hnp.from_dtype(dtype), min_size=1, max_size=8)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = np.asarray(draw(values), dtype=np.float64 if dtype.kind in "fc" else dtype).astype(dtype)
    return np.resize(base, shape)


def odd_values() -> st.SearchStrategy:
    """Arrays, plus values that are not numeric arrays at all."""
    return st.one_of(
        numeric_arrays(),
        st.just(np.array([["a", "b"], ["c", "d"]])),
        st.just(np.array([[1, "x"], [2, None]], dtype=object)),
        st.just(np.zeros((3, 2), dtype="datetime64[s]")),
        st.just([[1.0, 2.0], [3.0]]),
        st.none(),
        st.text(max_size=5),
        st.integers(),
    )


def _check_error(exc: BaseException, view: str) -> None:
    event(f"refused: {type(exc).__name__}")
    assert isinstance(exc, (ValueError, TypeError)), f"{type(exc).__name__}: {exc}"
    message = str(exc)
    assert re.search(rf"'{re.escape(view)}'|^X |n_samples", message), f"unnamed culprit: {message}"


@pytest.fixture(scope="module")
def fitted() -> dict[str, object]:
    """One tiny model of each estimator on an uint8 image view and a float vector view."""
    rng = np.random.default_rng(0)
    X = {"img": rng.integers(0, 256, (24, 1, 8, 8), dtype=np.uint8), "vec": rng.normal(size=(24, 3))}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        models = {"multimodal": _tiny().fit(X), "baseline": BaselineOCC().fit(X)}
    finally:
        torch.set_num_threads(before)
    return {"X": X, **models}


def _score_or_refuse(model: object, X: object, view: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            scores = model.decision_function(X)
        except Exception as exc:  # the property is about which exceptions
            _check_error(exc, view)
            return
    event("scored")
    n = len(np.asarray(X[view] if isinstance(X, dict) else X))
    assert scores.shape == (n,) and np.isfinite(scores).all(), scores


FITTABLE = st.one_of(numeric_arrays(shape=(N, 3)), numeric_arrays(shape=(N, 1, 4, 4)), odd_values())


@given(value=FITTABLE, plain=st.booleans())
def test_fit_gives_a_model_or_names_the_view(value, plain, one_torch_thread):
    # As a view {"v": value}, or as X itself (a plain 2-D array is the view "X").
    X, view = (value, "X") if plain else ({"v": value}, "v")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = _tiny().fit(X)
        except Exception as exc:  # the property is about which exceptions
            _check_error(exc, view)
            return
    _score_or_refuse(model, X if plain else {"v": value}, view)


@pytest.mark.parametrize("estimator", ["multimodal", "baseline"])
@given(view=st.sampled_from(["img", "vec"]), data=st.data())
def test_scoring_gives_finite_scores_or_names_the_view(fitted, estimator, view, data, one_torch_thread):
    X = {name: array[:N] for name, array in fitted["X"].items()}
    right_shape = (N, *X[view].shape[1:])
    X[view] = data.draw(st.one_of(numeric_arrays(shape=right_shape), numeric_arrays(n=N), odd_values()))
    _score_or_refuse(fitted[estimator], X, view)
