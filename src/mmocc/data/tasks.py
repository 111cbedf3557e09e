"""One-class tasks: one or more classes are normal, every other class is an anomaly.

This is the protocol of Laakom et al. (2023): a fraction of the normal samples
trains the detector, and the remaining normal samples plus all samples of the
other classes test it. Labels follow PyOD: 0 = normal, 1 = anomaly.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmocc.data.dataset import MultiViewDataset

_MIN_TRAIN, _MIN_TEST = 2, 1

SPLIT_METADATA = "split"
"""The metadata column of a dataset that comes with its own protocol (MVTec AD): ``"train"`` or ``"test"``."""


def own_training_split(dataset: MultiViewDataset) -> np.ndarray | None:
    """Return which samples the data's own protocol trains on, or None when it has none.

    Parameters
    ----------
    dataset : MultiViewDataset
        Any dataset; a source such as ``mvtec:`` fills the
        :data:`SPLIT_METADATA` column with ``"train"`` or ``"test"``.

    Returns
    -------
    numpy.ndarray of bool, shape (len(dataset),), or None
        True for the samples of the data's training split.

    Examples
    --------
    >>> ds = MultiViewDataset({"a": np.zeros((3, 2))}, metadata={"split": ["train", "test", "train"]})
    >>> own_training_split(ds).tolist()
    [True, False, True]
    """
    split = dataset.metadata.get(SPLIT_METADATA)
    return None if split is None else np.asarray(split) == "train"


@dataclass(frozen=True, repr=False)
class OneClassSplit:
    """A one-class task: normal training samples and a labelled test set.

    Attributes
    ----------
    train : MultiViewDataset
        Normal samples only.
    test : MultiViewDataset
        The remaining normal samples and the samples of every other class,
        in dataset order. Both keep the dataset's masks (and mask paths)
        aligned with their samples.
    y_test : numpy.ndarray of int, shape (len(test),)
        0 for a normal test sample, 1 for an anomaly.
    normal : label or tuple of labels
        The normal class(es), as passed.
    train_index, test_index : numpy.ndarray of int
        Positions of ``train`` and ``test`` samples in the source dataset.
    """

    train: MultiViewDataset
    test: MultiViewDataset
    y_test: np.ndarray
    normal: Any
    train_index: np.ndarray
    test_index: np.ndarray

    def __repr__(self) -> str:
        """Return a one-line summary: normal class, sample counts and views, not the index arrays.

        Returns
        -------
        str
            For example ``OneClassSplit(normal=0, n_train=20, n_test=70 (10 normal, 60 anomalies),
            views=['dorsal', 'lateral'])``.
        """
        n_anomalies = int(np.sum(self.y_test))
        normal = self.normal.item() if isinstance(self.normal, np.generic) else self.normal
        return (
            f"OneClassSplit(normal={normal!r}, n_train={len(self.train)}, "
            f"n_test={len(self.test)} ({len(self.test) - n_anomalies} normal, {n_anomalies} anomalies), "
            f"views={self.train.view_names})"
        )


def _normal_mask(dataset: MultiViewDataset, normal: Any) -> np.ndarray:
    """Boolean mask of samples whose label is ``normal`` (one label or several)."""
    labels = dataset.require_labels("a one-class split")
    wanted = [normal] if isinstance(normal, (str, bytes)) or np.ndim(normal) == 0 else list(normal)
    if not wanted:
        raise ValueError("normal must name at least one label")
    available = dataset.classes.tolist()
    missing = [label for label in wanted if label not in set(available)]
    if missing:
        raise ValueError(f"normal label(s) {missing} not in the dataset; available labels: {available}")
    return np.isin(labels, np.asarray(wanted, dtype=labels.dtype))


def _random_train(normal_index: np.ndarray, train_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Draw ``round(train_fraction * n)`` normal samples, leaving at least one out."""
    n = len(normal_index)
    n_train = min(max(round(train_fraction * n), 1), n - 1)
    return np.sort(rng.permutation(normal_index)[:n_train])


def _group_train(
    normal_index: np.ndarray, groups: np.ndarray, train_fraction: float, rng: np.random.Generator
) -> np.ndarray:
    """Draw ``round(train_fraction * n_groups)`` whole groups of normal samples, leaving one out."""
    unique = np.unique(groups[normal_index])
    if len(unique) < 2:
        raise ValueError(
            f"split='group' needs at least 2 groups among the normal samples, got {len(unique)}; "
            "use split='random' or train_mask"
        )
    n_train = min(max(round(train_fraction * len(unique)), 1), len(unique) - 1)
    chosen = rng.permutation(unique)[:n_train]
    return normal_index[np.isin(groups[normal_index], chosen)]


def _train_index(
    dataset: MultiViewDataset,
    is_normal: np.ndarray,
    normal: Any,
    train_fraction: float,
    split: str,
    seed: int | None,
    train_mask: Any,
) -> np.ndarray:
    """Validate the split options and return the sorted positions of the training samples."""
    if train_mask is not None:
        mask = np.asarray(train_mask)
        if mask.dtype != np.bool_ or mask.shape != (len(dataset),):
            raise ValueError(
                f"train_mask must be a boolean array of shape ({len(dataset)},), "
                f"got {mask.dtype} array of shape {mask.shape}"
            )
        return np.flatnonzero(is_normal & mask)
    if not 0.0 < float(train_fraction) < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    if split not in ("random", "group"):
        raise ValueError(f"split must be 'random' or 'group', got {split!r}")
    normal_index = np.flatnonzero(is_normal)
    if len(normal_index) < _MIN_TRAIN + _MIN_TEST:
        raise ValueError(
            f"normal class {normal!r} has {len(normal_index)} samples; at least "
            f"{_MIN_TRAIN + _MIN_TEST} are needed ({_MIN_TRAIN} to train, {_MIN_TEST} to test)"
        )
    rng = np.random.default_rng(seed)
    if split == "random":
        return _random_train(normal_index, train_fraction, rng)
    if dataset.groups is None:
        raise ValueError("split='group' needs a dataset with groups")
    return _group_train(normal_index, dataset.groups, train_fraction, rng)


def one_class_split(
    dataset: MultiViewDataset,
    normal: Any,
    *,
    train_fraction: float = 0.66,
    split: str = "random",
    seed: int | None = 0,
    train_mask: Any = None,
) -> OneClassSplit:
    """Split a dataset into a one-class task.

    Parameters
    ----------
    dataset : MultiViewDataset
        The samples.
    normal : label or sequence of labels
        The normal class; with several labels, all of them are normal.
    train_fraction : float, default 0.66
        Fraction of the normal samples (``split="random"``, rounded) or of
        the normal groups (``split="group"``) used for training, in (0, 1).
        At least one normal sample or group always stays for testing.
    split : {"random", "group"}, default "random"
        ``"random"`` draws normal samples; ``"group"`` draws whole groups,
        so that no group (specimen, object) has samples in both train and
        test. Anomalies whose group also has training samples are then left
        out of the test set, with a warning.
    seed : int or None, default 0
        Seed of the draw; the same seed gives the same split.
    train_mask : array-like of bool, shape (len(dataset),), optional
        Fixed protocol (for example "train on some poses, test on unseen
        ones"): normal samples where it is True train, normal samples where
        it is False test; ``train_fraction``, ``split`` and ``seed`` are
        then ignored. Anomalies all go to the test set.

    Returns
    -------
    OneClassSplit
        ``train`` (normal samples), ``test``, ``y_test`` (0 normal, 1
        anomaly), ``normal`` and the sample positions.

    Raises
    ------
    ValueError
        For an empty or unlabelled dataset, a normal label not in the dataset
        (the message lists the labels), an invalid ``train_fraction``, ``split`` or
        ``train_mask``, a group split without groups or with fewer than two
        normal groups, or fewer than 2 training or 1 test normal samples.

    Examples
    --------
    >>> from mmocc.datasets import make_synthetic
    >>> ds = make_synthetic(n_per_class=30, n_classes=3, size=8)
    >>> task = one_class_split(ds, normal=0)
    >>> len(task.train), len(task.test), int(task.y_test.sum())
    (20, 70, 60)
    """
    if len(dataset) == 0:
        raise ValueError("the dataset is empty")
    is_normal = _normal_mask(dataset, normal)
    train_index = _train_index(dataset, is_normal, normal, train_fraction, split, seed, train_mask)
    in_test = np.ones(len(dataset), dtype=bool)
    in_test[train_index] = False
    shared = np.zeros(len(dataset), dtype=bool)
    if train_mask is None and split == "group" and dataset.groups is not None:  # _train_index checked groups
        shared = ~is_normal & np.isin(dataset.groups, dataset.groups[train_index])
        in_test &= ~shared
    n_test_normal = int((in_test & is_normal).sum())
    if len(train_index) < _MIN_TRAIN or n_test_normal < _MIN_TEST:
        raise ValueError(
            f"normal class {normal!r}: {len(train_index)} training and {n_test_normal} test normal "
            f"samples; at least {_MIN_TRAIN} and {_MIN_TEST} are needed"
        )
    if shared.any():
        warnings.warn(
            f"left {int(shared.sum())} anomalies out of the test set: their groups also have "
            "normal training samples",
            UserWarning,
            stacklevel=2,
        )
    test_index = np.flatnonzero(in_test)
    return OneClassSplit(
        train=dataset[train_index],
        test=dataset[test_index],
        y_test=(~is_normal[test_index]).astype(np.int64),
        normal=tuple(normal) if isinstance(normal, (list, np.ndarray)) else normal,
        train_index=train_index,
        test_index=test_index,
    )


def one_class_tasks(
    dataset: MultiViewDataset, normal_classes: Iterable[Any] | None = None, **split_kwargs: Any
) -> Iterator[OneClassSplit]:
    """Yield one one-class task per normal class.

    Parameters
    ----------
    dataset : MultiViewDataset
        The samples.
    normal_classes : iterable of labels, optional
        The classes to make normal in turn; default every class, sorted.
    **split_kwargs
        Passed to :func:`one_class_split` (``train_fraction``, ``split``,
        ``seed``, ``train_mask``).

    Yields
    ------
    OneClassSplit
        The task of each normal class, in order.

    Examples
    --------
    >>> from mmocc.datasets import make_synthetic
    >>> ds = make_synthetic(n_per_class=10, n_classes=3, size=8)
    >>> [task.normal for task in one_class_tasks(ds)]
    [0, 1, 2]
    """
    classes = dataset.classes.tolist() if normal_classes is None else list(normal_classes)
    for label in classes:
        yield one_class_split(dataset, label, **split_kwargs)
