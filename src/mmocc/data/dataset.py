"""The in-memory multi-view dataset every source returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmocc.data.inputs import check_sample_counts, check_view


def _check_length(kind: str, name: str, array: np.ndarray, n: int) -> np.ndarray:
    """Check that a per-sample array has ``n`` rows."""
    if array.ndim == 0 or len(array) != n:
        got = "a scalar" if array.ndim == 0 else f"{len(array)} samples"
        raise ValueError(f"{kind} {name!r} has {got}, but the views have {n} samples")
    return array


def _check_ids(ids: np.ndarray) -> None:
    """Raise if an id occurs twice, naming the first duplicate and its rows."""
    if len(np.unique(ids)) == len(ids):
        return
    seen: dict[str, int] = {}
    for row, value in enumerate(ids.tolist()):
        if value in seen:
            raise ValueError(f"ids must be unique: {value!r} occurs at rows {seen[value]} and {row}")
        seen[value] = row


def _check_masks(
    views: Mapping[str, np.ndarray], masks: Mapping[str, Any] | None, n: int
) -> dict[str, np.ndarray]:
    """Check that each view's masks are bool ``(n, H, W)`` at that view's resolution."""
    checked: dict[str, np.ndarray] = {}
    for name, value in (masks or {}).items():
        if value is None:
            continue
        if name not in views:
            raise ValueError(f"masks given for view {name!r}, which is not among the views {list(views)}")
        view = views[name]
        array = np.asarray(value)
        if array.dtype != np.bool_:
            raise TypeError(f"masks of view {name!r} must be bool (True = defect), got {array.dtype}")
        if view.ndim != 4:
            raise ValueError(
                f"masks given for view {name!r}, a vector view {view.shape}: only images have masks"
            )
        if array.shape != (n, *view.shape[2:]):
            raise ValueError(
                f"masks of view {name!r} have shape {array.shape}, but the view {view.shape} "
                f"needs masks of shape {(n, *view.shape[2:])}"
            )
        checked[name] = array
    return checked


class MultiViewDataset:
    """Samples seen through several named views, with labels and optional groups.

    Every estimator in mmocc accepts a dataset wherever it accepts a
    ``{view_name: array}`` mapping, through the :attr:`views` attribute.

    Parameters
    ----------
    views : dict of str to array-like
        One array per view, all with the same number of samples ``n`` in the
        same order, named by non-empty strings. Image views are
        ``(n, C, H, W)`` (conventionally uint8, ``(n, H, W)`` gets a channel
        axis; channels-last arrays are not reordered); vector views are
        ``(n, d)`` (conventionally float32). Arrays are kept as given, not
        copied, and not scanned for NaN (the estimators check that); see
        :func:`mmocc.data.inputs.check_view`.
    labels : array-like of shape (n,), optional
        Class of each sample, kept with the dtype given (ints or strings).
        None for unlabelled data (new samples to score).
    ids : array-like of shape (n,), optional
        Unique sample identifiers, stored as strings; default ``"0"`` ..
        ``"n-1"``.
    groups : array-like of shape (n,), optional
        Specimen, object or individual of each sample, used by group splits.
    metadata : dict of str to array-like, optional
        Free-form per-sample arrays (for example a pose angle).
    paths : dict of str to array-like, optional
        For views decoded from files: the source file of each sample, per
        view name.
    masks : dict of str to array-like, optional
        Ground-truth defect masks of image views: ``masks[view]`` is a bool
        array ``(n, H, W)`` at the view's resolution, True at defective
        pixels. A view that is absent (or None) has no known masks.
    mask_paths : dict of str to array-like, optional
        For masks read from files: the source file of each sample's mask,
        per view, so that an evaluation can read it at full resolution; an
        empty string where the mask has no file (a sample without defect).

    Attributes
    ----------
    views : dict of str to numpy.ndarray
        The view arrays, in the order given.
    view_names : list of str
        The view names, in order.
    labels : numpy.ndarray of shape (n,) or None
        Class labels; None when the data is unlabelled.
    ids : numpy.ndarray of shape (n,)
        Sample ids, as strings.
    groups : numpy.ndarray of shape (n,) or None
        Group of each sample.
    metadata : dict of str to numpy.ndarray
        Per-sample metadata arrays.
    paths : dict of str to numpy.ndarray
        Source file of each sample, per view decoded from files (strings).
    masks : dict of str to numpy.ndarray
        Bool ``(n, H, W)`` defect masks, for the views whose masks are known.
    mask_paths : dict of str to numpy.ndarray
        Source file of each mask (strings, empty for none), per view whose
        masks were read from files.

    Raises
    ------
    TypeError
        For an empty or non-string view name, a view whose dtype is not
        bool, integer or float16/32/64 (complex included), or masks that
        are not bool.
    ValueError
        For no views, a view of the wrong rank or with empty samples
        (``(n, 0)``), a view, label, id, group, metadata or path array
        whose length differs from the first view, a path or mask entry for
        an unknown view, masks of a vector view or of another shape than
        the view's ``(n, H, W)`` (naming the view and both shapes), mask
        paths for a view without masks, or a duplicate id.

    Examples
    --------
    >>> import numpy as np
    >>> ds = MultiViewDataset(
    ...     {"left": np.zeros((4, 3, 8, 8), np.uint8), "size": np.ones((4, 2), np.float32)},
    ...     labels=[0, 0, 1, 1],
    ... )
    >>> len(ds), ds.view_names, ds.classes.tolist()
    (4, ['left', 'size'], [0, 1])
    >>> ds[ds.labels == 1].ids.tolist()
    ['2', '3']
    """

    def __init__(
        self,
        views: Mapping[str, Any],
        labels: Any = None,
        ids: Any = None,
        groups: Any = None,
        metadata: Mapping[str, Any] | None = None,
        paths: Mapping[str, Any] | None = None,
        masks: Mapping[str, Any] | None = None,
        mask_paths: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(views, Mapping) or len(views) == 0:
            raise ValueError("views must be a non-empty dict {view_name: array}")
        self.views: dict[str, np.ndarray] = {
            name: check_view(name, value, channels_last=False, finite=False) for name, value in views.items()
        }
        n = check_sample_counts(self.views)
        self.labels: np.ndarray | None = (
            None if labels is None else _check_length("labels", "labels", np.asarray(labels), n)
        )
        if ids is None:
            self.ids: np.ndarray = np.arange(n).astype(str)
        else:
            self.ids = _check_length("ids", "ids", np.asarray(ids).astype(str), n)
            _check_ids(self.ids)
        self.groups: np.ndarray | None = (
            None if groups is None else _check_length("groups", "groups", np.asarray(groups), n)
        )
        self.metadata: dict[str, np.ndarray] = {
            str(key): _check_length("metadata", str(key), np.asarray(value), n)
            for key, value in (metadata or {}).items()
        }
        unknown = sorted(set(paths or {}) - set(self.views))
        if unknown:
            raise ValueError(f"paths given for view(s) {unknown} not in the views {self.view_names}")
        self.paths: dict[str, np.ndarray] = {
            name: _check_length("paths of view", name, np.asarray(value).astype(str), n)
            for name, value in (paths or {}).items()
        }
        self.masks: dict[str, np.ndarray] = _check_masks(self.views, masks, n)
        unknown = sorted(set(mask_paths or {}) - set(self.masks))
        if unknown:
            raise ValueError(f"mask paths given for view(s) {unknown} without masks")
        self.mask_paths: dict[str, np.ndarray] = {
            name: _check_length("mask paths of view", name, np.asarray(value).astype(str), n)
            for name, value in (mask_paths or {}).items()
        }

    @property
    def view_names(self) -> list[str]:
        """List of str: the view names, in order."""
        return list(self.views)

    @property
    def classes(self) -> np.ndarray:
        """numpy.ndarray: the sorted unique labels (empty for unlabelled data)."""
        return np.zeros(0) if self.labels is None else np.unique(self.labels)

    @property
    def is_labelled(self) -> bool:
        """bool: whether every sample has a label."""
        return self.labels is not None

    def require_labels(self, purpose: str) -> np.ndarray:
        """Return the labels, or raise naming what needed them.

        Parameters
        ----------
        purpose : str
            What needs labels, for the message (``"a one-class split"``).

        Returns
        -------
        numpy.ndarray
            The labels.

        Raises
        ------
        ValueError
            If the dataset is unlabelled.
        """
        return require_labels(self.labels, purpose)

    def __len__(self) -> int:
        return len(self.ids)

    def _normalise_index(self, index: Any) -> Any:
        """Turn a slice, boolean mask or integer sequence into a NumPy index."""
        if isinstance(index, slice):
            return index
        if isinstance(index, (int, np.integer)):
            raise TypeError(
                f"index a MultiViewDataset with a slice, boolean mask or integer array, "
                f"not a single integer; use dataset[[{int(index)}]] for a one-sample dataset"
            )
        array = np.asarray(index)
        if array.size == 0:
            return np.zeros(0, dtype=np.intp)
        if array.dtype == np.bool_:
            if array.shape != (len(self),):
                raise IndexError(
                    f"boolean mask has shape {array.shape}, but the dataset has {len(self)} samples"
                )
            return array
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise IndexError(
                f"expected a 1-D integer array, boolean mask or slice, got {array.dtype} "
                f"array of shape {array.shape}"
            )
        return array

    def __getitem__(self, index: Any) -> MultiViewDataset:
        """Return the samples at ``index`` as a new dataset.

        Parameters
        ----------
        index : slice, boolean mask or integer array
            The samples to keep, in the order given.

        Returns
        -------
        MultiViewDataset
            The subset (arrays are copies for masks and integer arrays, views
            for slices, as in NumPy).

        Raises
        ------
        TypeError
            For a single integer.
        IndexError
            For a mask of the wrong length or an out-of-range index.
        """
        idx = self._normalise_index(index)
        return MultiViewDataset(
            {name: array[idx] for name, array in self.views.items()},
            labels=None if self.labels is None else self.labels[idx],
            ids=self.ids[idx],
            groups=None if self.groups is None else self.groups[idx],
            metadata={key: value[idx] for key, value in self.metadata.items()},
            paths={name: value[idx] for name, value in self.paths.items()},
            masks={name: value[idx] for name, value in self.masks.items()},
            mask_paths={name: value[idx] for name, value in self.mask_paths.items()},
        )

    def subset(self, indices: Any) -> MultiViewDataset:
        """Return the samples at ``indices`` as a new dataset.

        Parameters
        ----------
        indices : slice, boolean mask or integer array
            As for ``dataset[indices]``.

        Returns
        -------
        MultiViewDataset
            The subset.
        """
        return self[indices]

    def select_views(self, names: str | Sequence[str]) -> MultiViewDataset:
        """Return the same samples with only some views, in the order given.

        Parameters
        ----------
        names : str or sequence of str
            The views to keep.

        Returns
        -------
        MultiViewDataset
            A dataset sharing this one's arrays.

        Raises
        ------
        ValueError
            If a view is not in the dataset.
        """
        names = [names] if isinstance(names, str) else list(names)
        missing = [name for name in names if name not in self.views]
        if missing:
            raise ValueError(f"view(s) {missing} not in the dataset; available views: {self.view_names}")
        return MultiViewDataset(
            {name: self.views[name] for name in names},
            labels=self.labels,
            ids=self.ids,
            groups=self.groups,
            metadata=self.metadata,
            paths={name: self.paths[name] for name in names if name in self.paths},
            masks={name: self.masks[name] for name in names if name in self.masks},
            mask_paths={name: self.mask_paths[name] for name in names if name in self.mask_paths},
        )

    def __repr__(self) -> str:
        views = ", ".join(
            f"{name!r}: {tuple(array.shape[1:])} {array.dtype}" for name, array in self.views.items()
        )
        classes = [repr(label) for label in self.classes.tolist()]
        shown = ", ".join(classes if len(classes) <= 6 else [*classes[:3], "...", *classes[-2:]])
        labelled = f"{len(classes)} classes [{shown}]" if self.is_labelled else "unlabelled"
        extras = "".join(
            [
                ", groups" if self.groups is not None else "",
                f", metadata={sorted(self.metadata)}" if self.metadata else "",
                f", masks={list(self.masks)}" if self.masks else "",
            ]
        )
        return f"MultiViewDataset(n={len(self)}, views={{{views}}}, {labelled}{extras})"


def labels_from_strings(values: Sequence[str]) -> np.ndarray:
    """Turn label strings read from files into an array.

    Parameters
    ----------
    values : sequence of str
        Labels as read from a CSV cell or folder name.

    Returns
    -------
    numpy.ndarray
        int64 when every label is an integer written as Python writes it
        (``str(int(s)) == s``: ``"3"``, ``"-1"``); otherwise the strings as
        given, so that ``"007"``, ``"+7"`` or ``"1_000"`` keep the spelling
        the user wrote.

    Examples
    --------
    >>> labels_from_strings(["7", "-2"]).tolist(), labels_from_strings(["007", "008"]).tolist()
    ([7, -2], ['007', '008'])
    """
    try:
        as_int = [int(value) for value in values]
    except ValueError:
        return np.asarray(values, dtype=str)
    if any(str(number) != value for number, value in zip(as_int, values, strict=True)):
        return np.asarray(values, dtype=str)
    return np.asarray(as_int, dtype=np.int64)


def require_labels(labels: np.ndarray | None, purpose: str) -> np.ndarray:
    """Return the labels of some data, or raise naming what needed them.

    Parameters
    ----------
    labels : numpy.ndarray or None
        The labels; None for unlabelled data.
    purpose : str
        What needs labels, for the message (``"a one-class split"``).

    Returns
    -------
    numpy.ndarray
        ``labels``.

    Raises
    ------
    ValueError
        If ``labels`` is None.
    """
    if labels is None:
        raise ValueError(
            f"{purpose} needs labels, but the data is unlabelled "
            "(give a manifest with a label column, or a folder with a <label> level)"
        )
    return labels


def concat_datasets(parts: Sequence[MultiViewDataset]) -> MultiViewDataset:
    """Concatenate datasets with the same views and columns, in order.

    Parameters
    ----------
    parts : sequence of MultiViewDataset
        At least one dataset; all have the views, labels (or none), groups,
        metadata and paths of the first.

    Returns
    -------
    MultiViewDataset
        Their samples, in order (one part is returned as it is). A view's
        masks, and their paths, are kept when every part has them: masks
        unknown in one part are unknown for the whole.

    Raises
    ------
    ValueError
        For no parts, or ids that occur in two parts.
    """
    if not parts:
        raise ValueError("concat_datasets needs at least one dataset")
    if len(parts) == 1:
        return parts[0]
    first = parts[0]

    def joined(pick: Any) -> np.ndarray:
        return np.concatenate([pick(part) for part in parts])

    def in_all(attribute: str) -> list[str]:
        """Return the views of the first part whose ``masks`` or ``mask_paths`` every part has."""
        return [
            name
            for name in getattr(first, attribute)
            if all(name in getattr(part, attribute) for part in parts)
        ]

    return MultiViewDataset(
        {name: joined(lambda part, name=name: part.views[name]) for name in first.views},
        labels=None if first.labels is None else joined(lambda part: part.labels),
        ids=joined(lambda part: part.ids),
        groups=None if first.groups is None else joined(lambda part: part.groups),
        metadata={key: joined(lambda part, key=key: part.metadata[key]) for key in first.metadata},
        paths={name: joined(lambda part, name=name: part.paths[name]) for name in first.paths},
        masks={name: joined(lambda part, name=name: part.masks[name]) for name in in_all("masks")},
        mask_paths={
            name: joined(lambda part, name=name: part.mask_paths[name]) for name in in_all("mask_paths")
        },
    )
