import warnings

import numpy as np
import pytest

from mmocc.data.tasks import OneClassSplit, one_class_split, one_class_tasks
from mmocc.datasets import MultiViewDataset


def make(labels, groups=None) -> MultiViewDataset:
    n = len(labels)
    return MultiViewDataset(
        {"a": np.arange(n, dtype=np.float32)[:, None], "b": np.zeros((n, 1, 2, 2), np.uint8)},
        labels=labels,
        groups=groups,
        metadata={"angle": np.arange(n) * 5},
    )


@pytest.fixture
def ds():
    labels = np.repeat(["ant", "bee", "fly"], [30, 20, 10])
    return make(labels, groups=np.arange(60) // 2)


def test_sizes_and_labels(ds):
    task = one_class_split(ds, "ant")
    assert isinstance(task, OneClassSplit) and task.normal == "ant"
    assert len(task.train) == round(0.66 * 30) == 20
    assert len(task.test) == 60 - 20
    assert (task.train.labels == "ant").all()
    assert np.array_equal(task.y_test, (task.test.labels != "ant").astype(int))
    assert task.y_test.dtype.kind == "i" and task.y_test.sum() == 30
    assert not set(task.train.ids) & set(task.test.ids)
    assert set(task.train.ids) | set(task.test.ids) == set(ds.ids)
    assert np.array_equal(task.train.ids, ds.ids[task.train_index])
    assert np.array_equal(task.test.ids, ds.ids[task.test_index])
    assert np.array_equal(task.test.metadata["angle"], ds.metadata["angle"][task.test_index])


def test_seed_determinism(ds):
    a, b = one_class_split(ds, "bee", seed=7), one_class_split(ds, "bee", seed=7)
    c = one_class_split(ds, "bee", seed=8)
    assert np.array_equal(a.train.ids, b.train.ids)
    assert not np.array_equal(a.train.ids, c.train.ids)


def test_train_fraction(ds):
    assert len(one_class_split(ds, "ant", train_fraction=0.5).train) == 15
    assert len(one_class_split(ds, "ant", train_fraction=0.99).train) == 29  # one normal left to test


def test_group_split_respects_groups(ds):
    for seed in range(5):
        task = one_class_split(ds, "ant", split="group", seed=seed)
        assert not set(task.train.groups) & set(task.test.groups)
        assert (task.train.labels == "ant").all()
        assert len(np.unique(task.train.groups)) == round(0.66 * 15)


def test_group_split_leaves_out_anomalies_of_training_groups():
    ds = make(["n"] * 6 + ["x"] * 2, groups=[0, 0, 1, 1, 2, 2, 0, 3])
    warned = 0
    for seed in range(10):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            task = one_class_split(ds, "n", split="group", seed=seed, train_fraction=0.5)
        assert not set(task.train.groups) & set(task.test.groups)
        if 0 in task.train.groups:
            assert len(task.test) == 3 and "left 1 anomalies out" in str(record[0].message)
            warned += 1
        else:
            assert len(task.test) == 4 and not record
    assert 0 < warned < 10


def test_several_normal_labels(ds):
    task = one_class_split(ds, ["ant", "bee"])
    assert task.normal == ("ant", "bee")
    assert set(task.train.labels) <= {"ant", "bee"} and len(task.train) == round(0.66 * 50)
    assert task.y_test.sum() == 10


def test_train_mask_protocol(ds):
    seen = ds.metadata["angle"] % 10 == 0
    task = one_class_split(ds, "fly", train_mask=seen, split="group", train_fraction=0.1)
    normal = ds.labels == "fly"
    assert task.train_index.tolist() == np.flatnonzero(normal & seen).tolist()
    assert set(task.test_index) == set(np.flatnonzero(~(normal & seen)))
    assert task.y_test.sum() == 50


def test_int_labels():
    ds = make(np.repeat([1, 2], 5))
    assert one_class_split(ds, 2).train.labels.tolist() == [2] * 3


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"normal": "wasp"}, r"\['wasp'\] not in the dataset; available labels: \['ant', 'bee', 'fly'\]"),
        ({"normal": []}, "at least one label"),
        ({"normal": "ant", "train_fraction": 1.0}, "train_fraction"),
        ({"normal": "ant", "train_fraction": 0}, "train_fraction"),
        ({"normal": "ant", "split": "time"}, "split"),
        ({"normal": "ant", "train_mask": np.ones(3, bool)}, "train_mask"),
        ({"normal": "ant", "train_mask": np.ones(60)}, "train_mask"),
        ({"normal": "ant", "train_mask": np.ones(60, bool)}, "0 test normal"),
    ],
)
def test_errors(ds, kwargs, match):
    with pytest.raises(ValueError, match=match):
        one_class_split(ds, **kwargs)


def test_too_few_samples_and_groups():
    ds = make(["a", "a", "b", "b", "b"])
    with pytest.raises(ValueError, match="has 2 samples; at least 3"):
        one_class_split(ds, "a")
    with pytest.raises(ValueError, match="needs a dataset with groups"):
        one_class_split(ds, "b", split="group")
    ds = make(["a"] * 4, groups=[1, 1, 1, 1])
    with pytest.raises(ValueError, match="at least 2 groups"):
        one_class_split(ds, "a", split="group")
    ds = make(["a"] * 4, groups=[1, 2, 2, 2])
    errors = []
    for seed in range(10):
        try:
            one_class_split(ds, "a", split="group", train_fraction=0.3, seed=seed)
        except ValueError as exc:
            errors.append(str(exc))
    assert 0 < len(errors) < 10 and all("1 training and 3 test" in e for e in errors)


def test_empty_dataset(ds):
    with pytest.raises(ValueError, match="empty"):
        one_class_split(ds[[]], "ant")


def test_one_class_tasks(ds):
    tasks = list(one_class_tasks(ds, seed=3))
    assert [t.normal for t in tasks] == ["ant", "bee", "fly"]
    assert np.array_equal(tasks[1].train.ids, one_class_split(ds, "bee", seed=3).train.ids)
    assert [t.normal for t in one_class_tasks(ds, ["fly"], split="group")] == ["fly"]


def test_repr_is_one_short_line(ds):
    text = repr(one_class_split(ds, "ant"))
    assert (
        text
        == "OneClassSplit(normal='ant', n_train=20, n_test=40 (10 normal, 30 anomalies), views=['a', 'b'])"
    )
    assert str(one_class_split(ds, ["bee", "fly"])).startswith(
        "OneClassSplit(normal=('bee', 'fly'), n_train="
    )
    big = make(np.repeat([0, 1], 500))
    task = one_class_split(big, np.int64(1))
    assert repr(task) == (
        "OneClassSplit(normal=1, n_train=330, n_test=670 (170 normal, 500 anomalies), views=['a', 'b'])"
    )
