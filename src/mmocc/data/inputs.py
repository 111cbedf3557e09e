"""Validation and normalisation of multiview input.

Every estimator in mmocc accepts either a mapping ``{view_name: array}`` or any
object with a ``.views`` attribute holding such a mapping (for example
:class:`mmocc.datasets.MultiViewDataset`). This module turns that input into a
plain ``dict`` of NumPy arrays with a canonical layout:

* image views as ``(n, C, H, W)`` (``(n, H, W, C)`` and ``(n, H, W)`` are
  converted),
* vector views as ``(n, d)``.

It also records a :class:`ViewSpec` per view so that scoring can check that new
data matches what the model was trained on. :func:`check_view` is the per-view
check; :class:`~mmocc.data.dataset.MultiViewDataset` uses it too, keeping
arrays as given (no channels-last conversion, no NaN scan).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

_CHANNEL_SIZES = (1, 3, 4)


@dataclass(frozen=True)
class ViewSpec:
    """Shape and kind of one view, as seen at fit time.

    Parameters
    ----------
    name : str
        The view name.
    kind : {"image", "vector"}
        Image views are ``(C, H, W)``, vector views are ``(d,)``.
    shape : tuple of int
        Per-sample shape in canonical layout.
    """

    name: str
    kind: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description of the view.

        Returns
        -------
        dict
            ``{"name": ..., "kind": ..., "shape": [...]}``.
        """
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ViewSpec:
        """Rebuild a spec written by :meth:`to_dict`.

        Parameters
        ----------
        data : mapping
            The output of :meth:`to_dict`, for example read back from JSON.

        Returns
        -------
        ViewSpec
            The spec.

        Examples
        --------
        >>> spec = ViewSpec("photo", "image", (3, 32, 32))
        >>> ViewSpec.from_dict(spec.to_dict()) == spec
        True
        """
        return cls(name=str(data["name"]), kind=str(data["kind"]), shape=tuple(int(s) for s in data["shape"]))


def _layouts(channels_last: bool) -> str:
    """Describe the accepted array layouts, for error messages."""
    images = "(n, C, H, W) / (n, H, W, C) / (n, H, W)" if channels_last else "(n, C, H, W) / (n, H, W)"
    return f"a vector view (n, d) or an image view {images}"


def check_view(name: object, value: Any, *, channels_last: bool = True, finite: bool = True) -> np.ndarray:
    """Validate one view and return it in canonical layout.

    This is the one per-view check behind :func:`check_views` (estimator
    input) and :class:`~mmocc.data.dataset.MultiViewDataset`; every error
    message names the view.

    Parameters
    ----------
    name : str
        The view name; it must be a non-empty string.
    value : array-like
        A numeric or boolean array: a vector view ``(n, d)`` or an image view
        ``(n, C, H, W)`` or ``(n, H, W)`` (which gets a channel axis), or
        ``(n, H, W, C)`` when ``channels_last`` is True.
    channels_last : bool, default True
        Move the channel axis of a 4-D array to position 1 when its last axis
        has 1, 3 or 4 entries and its second axis does not (a copy). When
        False, 4-D arrays are taken to be channels-first as given.
    finite : bool, default True
        Reject floating-point arrays holding NaN or infinite values (a full
        pass over the array).

    Returns
    -------
    numpy.ndarray
        The array, 2-D or 4-D. It is ``value`` itself, or a view of it, unless
        ``value`` is not an ndarray or a channels-last image was moved.

    Raises
    ------
    TypeError
        For an empty or non-string name, or a non-numeric dtype.
    ValueError
        For a value that is not an array, a wrong number of dimensions, or
        (with ``finite``) NaN or infinite values, naming the first bad row.

    Examples
    --------
    >>> check_view("photo", np.zeros((2, 8, 8, 3), np.uint8)).shape
    (2, 3, 8, 8)
    >>> check_view("photo", np.zeros((2, 8, 8, 3), np.uint8), channels_last=False).shape
    (2, 8, 8, 3)
    >>> check_view("depth", np.zeros((2, 8, 8))).shape
    (2, 1, 8, 8)
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"view names must be non-empty strings, got {name!r}")
    try:
        array = np.asarray(value)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"view {name!r}: cannot be read as an array: {exc}") from exc
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise TypeError(f"view {name!r}: expected a numeric array, got dtype {array.dtype}")
    if array.ndim == 3:
        array = array[:, None, :, :]
    elif array.ndim == 4 and channels_last:
        if array.shape[3] in _CHANNEL_SIZES and array.shape[1] not in _CHANNEL_SIZES:
            array = np.ascontiguousarray(np.moveaxis(array, 3, 1))
    elif array.ndim not in (2, 4):
        raise ValueError(
            f"view {name!r}: expected {_layouts(channels_last)}, "
            f"got an array with {array.ndim} dimensions {array.shape}"
        )
    if finite and np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))
        raise ValueError(
            f"view {name!r}: contains NaN or infinite values (first bad row {int(bad[0])}, "
            f"{len(bad)} rows in all)"
        )
    return array


def check_sample_counts(views: Mapping[str, np.ndarray]) -> int:
    """Return the number of samples shared by all views.

    Parameters
    ----------
    views : mapping of str to numpy.ndarray
        At least one view, each with the samples along the first axis.

    Returns
    -------
    int
        The number of samples.

    Raises
    ------
    ValueError
        If the views differ in length; the message lists every view's count
        and names the first one that differs from the first view.

    Examples
    --------
    >>> check_sample_counts({"a": np.zeros((3, 2)), "b": np.zeros((3, 1, 4, 4))})
    3
    """
    first, *others = views
    n = len(views[first])
    for name in others:
        if len(views[name]) != n:
            detail = ", ".join(f"{key}={len(array)}" for key, array in views.items())
            raise ValueError(
                f"views have different numbers of samples: {detail}; view {name!r} has "
                f"{len(views[name])} samples, but view {first!r} has {n}"
            )
    return n


def get_view_arrays(X: Any) -> Mapping[str, Any]:
    """Return the raw ``{name: array}`` mapping behind ``X``.

    Parameters
    ----------
    X : mapping or object with a ``views`` attribute
        The multiview input.

    Returns
    -------
    Mapping
        The mapping from view name to array-like.

    Raises
    ------
    TypeError
        If ``X`` is neither a mapping nor has a ``views`` mapping.
    """
    views = getattr(X, "views", X)
    if not isinstance(views, Mapping):
        raise TypeError(
            "X must be a dict {view_name: array} or a dataset with a .views mapping, "
            f"got {type(X).__name__}"
        )
    return views


def check_views(X: Any, *, allow_empty: bool = False) -> dict[str, np.ndarray]:
    """Validate multiview input and return canonical arrays.

    Parameters
    ----------
    X : mapping or object with a ``views`` attribute
        ``{view_name: array}`` with non-empty string names; images
        ``(n, C, H, W)``, ``(n, H, W, C)`` or ``(n, H, W)``, vectors
        ``(n, d)``; any numeric or boolean dtype (see :func:`check_view`).
    allow_empty : bool, default False
        Accept zero samples.

    Returns
    -------
    dict of str to numpy.ndarray
        Arrays in canonical layout, in the order given; arrays already in
        that layout are returned as given, not copied.

    Raises
    ------
    TypeError
        For a non-mapping input, an empty or non-string view name or a
        non-numeric dtype.
    ValueError
        For no views, a wrong number of dimensions, differing sample counts,
        NaN or infinite values, or an empty input.

    Examples
    --------
    >>> views = check_views({"photo": np.zeros((4, 8, 8, 3), np.uint8), "size": np.ones((4, 2))})
    >>> {name: array.shape for name, array in views.items()}
    {'photo': (4, 3, 8, 8), 'size': (4, 2)}
    """
    raw = get_view_arrays(X)
    if len(raw) == 0:
        raise ValueError("X has no views: pass at least one {view_name: array}")
    out = {name: check_view(name, value) for name, value in raw.items()}
    if check_sample_counts(out) == 0 and not allow_empty:
        raise ValueError("X has 0 samples: at least one sample is needed")
    return out


def view_specs(views: Mapping[str, np.ndarray]) -> list[ViewSpec]:
    """Describe canonical views as :class:`ViewSpec` objects.

    Parameters
    ----------
    views : mapping of str to numpy.ndarray
        Output of :func:`check_views`.

    Returns
    -------
    list of ViewSpec
        One spec per view, in the mapping's order.
    """
    return [
        ViewSpec(name, "image" if array.ndim == 4 else "vector", tuple(int(s) for s in array.shape[1:]))
        for name, array in views.items()
    ]


def select_views(
    views: Mapping[str, np.ndarray], names: list[str] | tuple[str, ...] | None
) -> dict[str, np.ndarray]:
    """Keep the requested views, in the requested order.

    Parameters
    ----------
    views : mapping of str to numpy.ndarray
        Available views.
    names : sequence of str or None
        Views to keep; ``None`` keeps all of them.

    Returns
    -------
    dict of str to numpy.ndarray
        The selected views.

    Raises
    ------
    ValueError
        If a requested view is missing.
    """
    if names is None:
        return dict(views)
    if isinstance(names, str):
        names = [names]
    missing = [n for n in names if n not in views]
    if missing:
        raise ValueError(f"view(s) {missing} not found in X; available views: {sorted(views)}")
    return {n: views[n] for n in names}


def match_specs(
    views: Mapping[str, np.ndarray], specs: list[ViewSpec], *, allow_missing: bool = False
) -> dict[str, np.ndarray]:
    """Check that scoring input has the views and shapes seen at fit time.

    Parameters
    ----------
    views : mapping of str to numpy.ndarray
        Canonical views from :func:`check_views`; extra views are ignored.
    specs : list of ViewSpec
        The specs recorded at fit time.
    allow_missing : bool, default False
        Accept a subset of the fitted views (at least one).

    Returns
    -------
    dict of str to numpy.ndarray
        The views named in ``specs``, in fit order.

    Raises
    ------
    ValueError
        If a view is missing or its per-sample shape differs.
    """
    missing = [s.name for s in specs if s.name not in views]
    if missing and not (allow_missing and len(missing) < len(specs)):
        raise ValueError(
            f"view(s) {missing} missing from X; the model was fitted on views "
            f"{[s.name for s in specs]}, got {sorted(views)}"
        )
    out = {}
    for spec in specs:
        if spec.name not in views:
            continue
        shape = tuple(views[spec.name].shape[1:])
        if shape != spec.shape:
            raise ValueError(
                f"view {spec.name!r}: per-sample shape {shape} does not match the shape "
                f"{spec.shape} seen at fit time"
            )
        out[spec.name] = views[spec.name]
    return out
