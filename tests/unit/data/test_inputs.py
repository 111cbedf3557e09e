"""Validation of multiview input, shared by the estimators and MultiViewDataset."""

import numpy as np
import pytest

from mmocc.data.inputs import (
    ViewSpec,
    check_scale,
    check_view,
    check_views,
    match_specs,
    select_views,
    view_specs,
)
from mmocc.datasets import MultiViewDataset


def test_canonical_layouts():
    rng = np.random.default_rng(0)
    first = rng.integers(0, 255, (5, 3, 8, 6), dtype=np.uint8)
    last = np.ascontiguousarray(np.moveaxis(first, 1, 3))
    vectors = rng.normal(size=(5, 4)).astype(np.float32)
    out = check_views({"first": first, "last": last, "gray": first[:, 0], "vec": vectors})
    assert list(out) == ["first", "last", "gray", "vec"]
    assert out["first"] is first and out["vec"] is vectors
    assert np.array_equal(out["last"], first) and out["last"].flags.c_contiguous
    assert out["gray"].shape == (5, 1, 8, 6) and np.shares_memory(out["gray"], first)


def test_ambiguous_channel_axis_stays_channels_first_with_a_warning():
    array = np.zeros((2, 3, 5, 3), np.uint8)
    ambiguous = r"view 'a': shape \(2, 3, 5, 3\) is ambiguous.*np.moveaxis\(x, -1, 1\)"
    with pytest.warns(UserWarning, match=ambiguous):
        assert check_views({"a": array})["a"] is array


def test_dataset_input_and_bool_views():
    ds = MultiViewDataset({"mask": np.ones((3, 2), bool)}, labels=[0, 1, 2])
    assert check_views(ds)["mask"].dtype == np.bool_


@pytest.mark.parametrize(
    ("views", "error", "match"),
    [
        ({}, ValueError, "X has no views"),
        ({1: np.zeros((2, 3))}, TypeError, "view names must be non-empty strings, got 1"),
        ({"": np.zeros((2, 3))}, TypeError, "view names must be non-empty strings, got ''"),
        ({"a": np.array([["x"], ["y"]])}, TypeError, "view 'a': expected a numeric array, got dtype <U1"),
        ({"a": np.zeros((2, 1), object)}, TypeError, "view 'a': expected a numeric array, got dtype object"),
        ({"a": np.zeros(3)}, ValueError, r"view 'a': expected .* got an array with 1 dimensions \(3,\)"),
        (
            {"a": np.zeros((2, 1, 1, 4, 4))},
            ValueError,
            "view 'a': expected .*/ \\(n, H, W, C\\) .*5 dimensions",
        ),
        ({"a": [[1.0, 2.0], [3.0]]}, ValueError, "view 'a': cannot be read as an array"),
        (
            {"a": np.zeros((3, 2)), "b": np.zeros((2, 2))},
            ValueError,
            "different numbers of samples: a=3, b=2",
        ),
        ({"a": np.zeros((0, 2))}, ValueError, "X has 0 samples"),
        ({"a": np.zeros((2, 0))}, ValueError, r"view 'a': each sample has 0 feature\(s\)"),
    ],
)
def test_bad_views_name_the_culprit(views, error, match):
    with pytest.raises(error, match=match):
        check_views(views)


def test_plain_input():
    array = np.zeros((2, 3))
    assert check_views(array)["X"] is array
    assert check_views([[1.0, 2.0], [3.0, 4.0]])["X"].shape == (2, 2)
    with pytest.raises(TypeError, match="X must be a dict"):
        check_views("abc")
    with pytest.raises(ValueError, match="Reshape your data"):
        check_views(np.zeros(3))
    with pytest.raises(ValueError, match=r"got a 3-D array of shape \(2, 3, 4\)"):
        check_views(np.zeros((2, 3, 4)))


def test_allow_empty():
    assert check_views({"a": np.zeros((0, 2))}, allow_empty=True)["a"].shape == (0, 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_name_the_first_row(bad):
    array = np.zeros((6, 1, 5, 5), np.float32)
    array[4, 0, 1, 1] = bad
    array[2, 0, 0, 0] = bad
    with pytest.raises(
        ValueError, match=r"view 'a': contains NaN or infinite values \(first bad row 2, 2 rows"
    ):
        check_views({"a": array})


def test_check_view_options_for_the_dataset():
    last = np.zeros((2, 8, 8, 3), np.float32)
    last[0, 0, 0, 0] = np.nan
    assert check_view("a", last, channels_last=False, finite=False) is last
    with pytest.raises(ValueError, match="NaN"):
        check_view("a", last, channels_last=False)
    with pytest.raises(ValueError, match=r"view 'a': expected .*\(n, C, H, W\) / \(n, H, W\), got"):
        check_view("a", np.zeros((2, 3, 4, 5, 6)), channels_last=False)


def test_dataset_keeps_arrays_as_given():
    last = np.zeros((2, 8, 8, 3), np.float32)
    last[1, 0, 0, 0] = np.nan
    ds = MultiViewDataset({"img": last}, labels=[0, 1])
    assert ds.views["img"] is last


@pytest.mark.parametrize(
    ("views", "error", "match"),
    [
        ({"": np.zeros((2, 3))}, TypeError, "non-empty strings"),
        ({"x": np.array([["a"], ["b"]])}, TypeError, "view 'x': expected a numeric array"),
        ({"x": np.zeros((2, 3, 4, 5, 6))}, ValueError, "view 'x': expected .* 5 dimensions"),
        ({"x": np.zeros((2, 3)), "y": np.zeros((3, 3))}, ValueError, "x=2, y=3"),
    ],
)
def test_dataset_view_errors_name_the_view(views, error, match):
    with pytest.raises(error, match=match):
        MultiViewDataset(views, labels=[0, 1])


def test_specs_select_and_match():
    views = check_views({"img": np.zeros((3, 1, 5, 5), np.uint8), "vec": np.zeros((3, 5))})
    specs = view_specs(views)
    assert specs == [
        ViewSpec("img", "image", (1, 5, 5), "uint8", (0.0, 0.0)),
        ViewSpec("vec", "vector", (5,), "float64", (0.0, 0.0)),
    ]
    assert [ViewSpec.from_dict(spec.to_dict()) for spec in specs] == specs
    assert list(select_views(views, ["vec", "img"])) == ["vec", "img"]
    assert list(select_views(views, "vec")) == ["vec"]
    with pytest.raises(ValueError, match=r"view\(s\) \['nope'\] not found in X"):
        select_views(views, ["nope"])
    assert list(match_specs({"extra": views["vec"], **views}, specs)) == ["img", "vec"]
    with pytest.raises(ValueError, match=r"view\(s\) \['vec'\] missing from X"):
        match_specs({"img": views["img"]}, specs)
    with pytest.raises(ValueError, match=r"view 'vec': per-sample shape \(4,\) does not match"):
        match_specs({"img": views["img"], "vec": np.zeros((3, 4))}, specs)


def test_specs_from_older_files_have_no_dtype_and_skip_the_scale_check():
    old = ViewSpec.from_dict({"name": "img", "kind": "image", "shape": [1, 4, 4]})
    assert (old.dtype, old.value_range) == (None, None)
    assert old.to_dict() == {"name": "img", "kind": "image", "shape": [1, 4, 4]}
    array = np.zeros((2, 1, 4, 4), np.float32)
    assert match_specs({"img": array}, [old])["img"] is array


def test_scale_check_refuses_a_uint8_switch_both_ways():
    uint8 = ViewSpec("img", "image", (1, 4, 4), "uint8", (0.0, 255.0))
    floats = ViewSpec("img", "image", (1, 4, 4), "float32", (0.0, 1.0))
    with pytest.raises(TypeError, match=r"view 'img' was fitted on uint8 images \(0-255\); got float64"):
        check_scale(uint8, np.zeros((2, 1, 4, 4)))
    with pytest.raises(TypeError, match=r"fitted on float32 images in \[0, 1\].*got uint8.*/ 255"):
        check_scale(floats, np.zeros((2, 1, 4, 4), np.uint8))
    check_scale(floats, np.ones((2, 1, 4, 4), np.float64))  # same scale convention, another float dtype


def test_float_images_far_outside_the_training_range_warn():
    spec = ViewSpec("img", "image", (1, 4, 4), "float32", (0.0, 1.0))
    with pytest.warns(UserWarning, match=r"view 'img': values reach \[255, 255\], far outside .*\[0, 1\]"):
        check_scale(spec, np.full((2, 1, 4, 4), 255.0, np.float32))


def test_views_parameter_must_be_names():
    with pytest.raises(TypeError, match="views must be None, a view name or a list of view names, got 3"):
        select_views({"a": np.zeros((2, 2))}, 3)
