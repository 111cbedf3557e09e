import numpy as np
import pytest

from mmocc.data.dataset import labels_from_strings
from mmocc.datasets import MultiViewDataset


def make(n: int = 6, **kwargs) -> MultiViewDataset:
    views = {
        "left": np.arange(n * 3 * 4 * 4, dtype=np.uint8).reshape(n, 3, 4, 4),
        "size": np.arange(n * 2, dtype=np.float32).reshape(n, 2),
    }
    kwargs.setdefault("labels", np.array(["a", "b"] * (n // 2)))
    return MultiViewDataset(views, **kwargs)


def test_attributes_and_defaults():
    ds = make(groups=[0, 0, 1, 1, 2, 2], metadata={"angle": np.arange(6) * 5})
    assert len(ds) == 6
    assert ds.view_names == ["left", "size"]
    assert ds.ids.tolist() == ["0", "1", "2", "3", "4", "5"]
    assert ds.classes.tolist() == ["a", "b"]
    assert ds.labels.dtype.kind == "U"
    assert ds.groups.tolist() == [0, 0, 1, 1, 2, 2]
    assert ds.views["left"].dtype == np.uint8 and ds.views["size"].dtype == np.float32
    assert ds.metadata["angle"].tolist() == [0, 5, 10, 15, 20, 25]


def test_int_labels_and_string_ids_kept():
    ds = make(labels=[3, 1, 3, 1, 2, 2], ids=[10, 11, 12, 13, 14, 15])
    assert ds.labels.dtype.kind == "i"
    assert ds.classes.tolist() == [1, 2, 3]
    assert ds.ids.tolist() == ["10", "11", "12", "13", "14", "15"]


def test_three_dimensional_view_gets_a_channel_axis():
    ds = MultiViewDataset({"gray": np.zeros((2, 5, 4), np.uint8)}, labels=[0, 1])
    assert ds.views["gray"].shape == (2, 1, 5, 4)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"labels": [0] * 5}, "labels"),
        ({"ids": ["x"] * 2}, "ids"),
        ({"groups": [1, 2, 3]}, "groups"),
        ({"metadata": {"angle": [1]}}, "angle"),
    ],
)
def test_length_mismatch_names_the_field(kwargs, match):
    kwargs.setdefault("labels", [0] * 6)
    with pytest.raises(ValueError, match=match):
        make(**kwargs)


def test_view_length_mismatch_names_the_view():
    with pytest.raises(ValueError, match="'right' has 3 samples"):
        MultiViewDataset({"left": np.zeros((4, 2)), "right": np.zeros((3, 2))}, labels=[0] * 4)


def test_duplicate_id_is_named():
    with pytest.raises(ValueError, match="'b' occurs at rows 1 and 3"):
        make(ids=["a", "b", "c", "b", "d", "e"])


@pytest.mark.parametrize(
    ("views", "error"),
    [
        ({}, ValueError),
        ({"x": np.zeros((2, 3, 4, 5, 6))}, ValueError),
        ({"x": np.array([["a"], ["b"]])}, TypeError),
        ({1: np.zeros((2, 3))}, TypeError),
    ],
)
def test_bad_views(views, error):
    with pytest.raises(error):
        MultiViewDataset(views, labels=[0, 1])


def test_indexing_returns_datasets():
    ds = make(groups=np.arange(6), metadata={"angle": np.arange(6)})
    for index in (np.array([4, 1]), ds.labels == "b", slice(1, 5, 2)):
        sub = ds[index]
        assert isinstance(sub, MultiViewDataset)
        expected = np.arange(6)[index]
        assert sub.ids.tolist() == [str(i) for i in expected]
        assert np.array_equal(sub.views["size"], ds.views["size"][expected])
        assert np.array_equal(sub.groups, expected)
        assert np.array_equal(sub.metadata["angle"], expected)
    assert len(ds.subset([])) == 0
    assert ds.subset([5]).ids.tolist() == ["5"]


def test_bad_indices():
    ds = make()
    with pytest.raises(TypeError, match="single integer"):
        ds[0]
    with pytest.raises(IndexError, match="boolean mask"):
        ds[np.ones(3, dtype=bool)]
    with pytest.raises(IndexError):
        ds[[0, 9]]
    with pytest.raises(IndexError, match="integer array"):
        ds[np.array([0.5])]


def test_select_views_and_repr():
    ds = make(metadata={"angle": np.arange(6)}, groups=np.arange(6))
    only = ds.select_views("size")
    assert only.view_names == ["size"] and len(only) == 6
    with pytest.raises(ValueError, match="available views"):
        ds.select_views(["nope"])
    text = repr(ds)
    assert "n=6" in text and "'left': (3, 4, 4) uint8" in text and "2 classes ['a', 'b']" in text
    assert "groups" in text and "angle" in text


def test_labels_from_strings():
    assert labels_from_strings(["1", "-2", "1"]).dtype == np.int64
    assert labels_from_strings(["1", "x"]).tolist() == ["1", "x"]
    assert labels_from_strings(["7", "07"]).tolist() == ["7", "07"]
