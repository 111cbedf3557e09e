"""Validation and normalisation of multiview input.

Every estimator in mmocc accepts a mapping ``{view_name: array}``, any object
with a ``.views`` attribute holding such a mapping (for example
:class:`mmocc.datasets.MultiViewDataset`), or a plain 2-D array
``(n_samples, n_features)``, read as one vector view named ``"X"`` (so that
scikit-learn tools that pass plain arrays work). This module turns that input
into a plain ``dict`` of NumPy arrays with a canonical layout:

* image views as ``(n, C, H, W)`` (``(n, H, W, C)`` and ``(n, H, W)`` are
  converted),
* vector views as ``(n, d)``.

The rules (every refusal and warning names the view):

View names
    Any non-empty string, including ones with dots or spaces (a CSV header
    such as ``cam.left``); empty and non-string names are refused.
Dtypes
    Booleans, integers and float16/32/64. Complex, ``longdouble``, object
    and string arrays are refused with a TypeError naming the view.
Channel axis
    A 4-D array is channels-last ``(n, H, W, C)`` when its last axis has 1, 3
    or 4 entries and its second axis does not, and is then moved to
    ``(n, C, H, W)``; otherwise it is taken as channels-first. When both
    axes have 1, 3 or 4 entries (``(n, 3, 32, 3)``), the layout is ambiguous:
    it is read as channels-first, with a warning that says how to pass a
    channels-last array instead (``np.moveaxis(x, -1, 1)``).
Value scale
    uint8 views are on the fixed scale 0-255; every other dtype is scaled by
    the range of its training values. Scoring a view whose dtype is uint8 when
    the model was fitted on another dtype, or the reverse, is refused
    (TypeError), since the same picture would land on another scale; convert
    it to the training dtype and scale, or refit. A non-uint8 image view
    whose scoring values lie far outside the training range (floats in 0-255
    after fitting on 0-1) gets a warning.

It also records a :class:`ViewSpec` per view (kind, shape, dtype and value
range) so that scoring can check that new data matches what the model was
trained on. :func:`check_view` is the per-view check;
:class:`~mmocc.data.dataset.MultiViewDataset` uses it too, keeping arrays as
given (no channels-last conversion, no NaN scan).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.sparse import issparse

_CHANNEL_SIZES = (1, 3, 4)

PLAIN_VIEW = "X"
"""The view name of a plain 2-D array given as ``X``."""

RANGE_WARN_SPANS = 10.0
"""A non-uint8 image view whose scoring values reach more than this many training
ranges beyond the training range gets a warning (a 0-255 vs 0-1 mix-up)."""


@dataclass(frozen=True)
class ViewSpec:
    """Shape, kind, dtype and value range of one view, as seen at fit time.

    Parameters
    ----------
    name : str
        The view name, a non-empty string.
    kind : {"image", "vector"}
        Image views are ``(C, H, W)``, vector views are ``(d,)``.
    shape : tuple of int
        Per-sample shape in canonical layout.
    dtype : str or None, default None
        NumPy name of the training dtype (``"uint8"``, ``"float32"``, ...);
        None for a spec from a model file written before it was recorded.
    value_range : tuple of float or None, default None
        Smallest and largest training value; None when not recorded.

    Raises
    ------
    ValueError
        For an empty or non-string name.
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    dtype: str | None = None
    value_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"view names must be non-empty strings, got {self.name!r}")

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serialisable description of the view.

        Returns
        -------
        dict
            ``{"name": ..., "kind": ..., "shape": [...]}``, plus ``"dtype"``
            and ``"value_range"`` when recorded.
        """
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "shape": list(self.shape)}
        if self.dtype is not None:
            out["dtype"] = self.dtype
        if self.value_range is not None:
            out["value_range"] = list(self.value_range)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ViewSpec:
        """Rebuild a spec written by :meth:`to_dict`.

        Parameters
        ----------
        data : mapping
            The output of :meth:`to_dict`, for example read back from JSON;
            ``"dtype"`` and ``"value_range"`` may be missing (older files).

        Returns
        -------
        ViewSpec
            The spec.

        Raises
        ------
        ValueError
            For an empty view name.

        Examples
        --------
        >>> spec = ViewSpec("photo", "image", (3, 32, 32), "uint8", (0.0, 255.0))
        >>> ViewSpec.from_dict(spec.to_dict()) == spec
        True
        >>> ViewSpec.from_dict({"name": "photo", "kind": "image", "shape": [3, 32, 32]}).dtype is None
        True
        """
        low_high = data.get("value_range")
        return cls(
            name=str(data["name"]),
            kind=str(data["kind"]),
            shape=tuple(int(s) for s in data["shape"]),
            dtype=None if data.get("dtype") is None else str(data["dtype"]),
            value_range=None if low_high is None else (float(low_high[0]), float(low_high[1])),
        )


def _layouts(channels_last: bool) -> str:
    """Describe the accepted array layouts, for error messages."""
    images = "(n, C, H, W) / (n, H, W, C) / (n, H, W)" if channels_last else "(n, C, H, W) / (n, H, W)"
    return f"a vector view (n, d) or an image view {images}"


def _check_dtype(name: str, dtype: np.dtype) -> None:
    """Raise a TypeError naming the view unless ``dtype`` is bool, an integer or float16/32/64."""
    if dtype == np.bool_ or np.issubdtype(dtype, np.integer) or dtype in (np.float16, np.float32, np.float64):
        return
    if np.issubdtype(dtype, np.complexfloating):
        hint = "; complex values are not supported: pass np.real(x), np.abs(x) or both as separate views"
    elif np.issubdtype(dtype, np.floating):
        hint = "; convert with x.astype(np.float64)"
    else:
        hint = ""
    raise TypeError(f"view {name!r}: expected a numeric array, got dtype {dtype}{hint}")


def _channels_first(name: str, array: np.ndarray) -> np.ndarray:
    """Move the channel axis of a channels-last 4-D array to position 1; warn when the layout is ambiguous."""
    first, last = array.shape[1] in _CHANNEL_SIZES, array.shape[3] in _CHANNEL_SIZES
    if last and not first:
        return np.ascontiguousarray(np.moveaxis(array, 3, 1))
    if first and last:
        n, c, h, w = array.shape
        warnings.warn(
            f"view {name!r}: shape {array.shape} is ambiguous; read as channels-first (n, C, H, W) = "
            f"({n}, {c}, {h}, {w}). If it is channels-last (n, H, W, C), pass np.moveaxis(x, -1, 1)",
            UserWarning,
            stacklevel=2,
        )
    return array


def _check_finite(name: str, array: np.ndarray) -> None:
    """Raise a ValueError naming the view and its first bad row if a float array holds NaN or inf."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))
        raise ValueError(
            f"view {name!r}: contains NaN or infinite values (first bad row {int(bad[0])}, "
            f"{len(bad)} rows in all)"
        )


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
        A boolean, integer or float16/32/64 array: a vector view ``(n, d)``
        or an image view ``(n, C, H, W)`` or ``(n, H, W)`` (which gets a
        channel axis), or ``(n, H, W, C)`` when ``channels_last`` is True.
    channels_last : bool, default True
        Move the channel axis of a 4-D array to position 1 when its last axis
        has 1, 3 or 4 entries and its second axis does not (a copy); warn
        when both have (the array is then taken as channels-first). When
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
        For an empty or non-string name, or a dtype other than bool, integer
        and float16/32/64 (complex included).
    ValueError
        For a value that is not an array, a wrong number of dimensions, an
        empty sample axis (``(n, 0)``) or (with ``finite``) NaN or infinite
        values, naming the first bad row.

    Warns
    -----
    UserWarning
        For a 4-D array whose second and last axes both have 1, 3 or 4
        entries (with ``channels_last``).

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
    _check_dtype(name, array.dtype)
    if array.ndim == 3:
        array = array[:, None, :, :]
    elif array.ndim == 4 and channels_last:
        array = _channels_first(name, array)
    elif array.ndim not in (2, 4):
        raise ValueError(
            f"view {name!r}: expected {_layouts(channels_last)}, "
            f"got an array with {array.ndim} dimensions {array.shape}"
        )
    if 0 in array.shape[1:]:
        raise ValueError(
            f"view {name!r}: each sample has 0 feature(s) (shape={array.shape}) "
            "while a minimum of 1 is required."
        )
    if finite:
        _check_finite(name, array)
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


def _plain_array(X: Any) -> np.ndarray:
    """Return ``X`` as the array of the one vector view :data:`PLAIN_VIEW`; raise saying what X may be."""
    expected = (
        "X must be a dict {view_name: array}, a dataset with a .views mapping, or a 2-D array "
        f"(n_samples, n_features) read as one vector view {PLAIN_VIEW!r}"
    )
    if not isinstance(X, (np.ndarray, list, tuple)) and not hasattr(X, "__array__"):
        raise TypeError(f"{expected}; got {type(X).__name__}")
    try:
        array = np.asarray(X)
    except ValueError as exc:  # ragged nested sequences
        raise ValueError(f"{expected}; got a {type(X).__name__} not readable as an array: {exc}") from exc
    if array.ndim == 1:
        raise ValueError(
            f"{expected}; got a 1-D array of shape {array.shape}. Reshape your data with x.reshape(-1, 1) "
            "for one feature or x.reshape(1, -1) for one sample"
        )
    if array.ndim != 2:
        raise ValueError(f"{expected}; got a {array.ndim}-D array of shape {array.shape}")
    return array


def get_view_arrays(X: Any) -> Mapping[str, Any]:
    """Return the raw ``{name: array}`` mapping behind ``X``.

    Parameters
    ----------
    X : mapping, object with a ``views`` attribute, or 2-D array-like
        The multiview input; a 2-D array-like (ndarray, nested lists,
        DataFrame) is one vector view named :data:`PLAIN_VIEW`.

    Returns
    -------
    Mapping
        The mapping from view name to array-like.

    Raises
    ------
    TypeError
        If ``X`` is sparse, or neither a mapping, nor has a ``views``
        mapping, nor is array-like.
    ValueError
        If ``X`` is array-like but not 2-D.

    Examples
    --------
    >>> list(get_view_arrays(np.zeros((4, 2))))
    ['X']
    """
    if issparse(X):  # before the Mapping test: a DOK matrix is a dict
        raise TypeError(f"X is a sparse {type(X).__name__}: sparse input is not supported, pass X.toarray()")
    views = getattr(X, "views", X)
    if isinstance(views, Mapping):
        return views
    return {PLAIN_VIEW: _plain_array(X)}


def check_views(X: Any, *, allow_empty: bool = False) -> dict[str, np.ndarray]:
    """Validate multiview input and return canonical arrays.

    Parameters
    ----------
    X : mapping, object with a ``views`` attribute, or 2-D array-like
        ``{view_name: array}`` with non-empty string names; images
        ``(n, C, H, W)``, ``(n, H, W, C)`` or ``(n, H, W)``, vectors
        ``(n, d)``; boolean, integer or float16/32/64 values (see
        :func:`check_view`). A 2-D array is one vector view named
        :data:`PLAIN_VIEW`.
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
        For an input that is neither a mapping nor array-like, an empty or
        non-string view name or an unsupported dtype.
    ValueError
        For no views, a plain array that is not 2-D, a wrong number of
        dimensions, differing sample counts, NaN or infinite values, or an
        empty input.

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


def _value_range(array: np.ndarray) -> tuple[float, float] | None:
    """Smallest and largest value of an array as floats; None when it is empty."""
    if array.size == 0:
        return None
    return float(array.min()), float(array.max())


def view_specs(views: Mapping[str, np.ndarray]) -> list[ViewSpec]:
    """Describe canonical views as :class:`ViewSpec` objects.

    Parameters
    ----------
    views : mapping of str to numpy.ndarray
        Output of :func:`check_views`.

    Returns
    -------
    list of ViewSpec
        One spec per view, in the mapping's order, with its dtype and value
        range (a pass over each array).

    Examples
    --------
    >>> view_specs({"size": np.array([[1.0, 2.0], [3.0, 0.5]])})
    [ViewSpec(name='size', kind='vector', shape=(2,), dtype='float64', value_range=(0.5, 3.0))]
    """
    return [
        ViewSpec(
            name,
            "image" if array.ndim == 4 else "vector",
            tuple(int(s) for s in array.shape[1:]),
            array.dtype.name,
            _value_range(array),
        )
        for name, array in views.items()
    ]


def _check_names(names: object) -> list[str]:
    """Return the ``views`` parameter as a list of names, or raise a TypeError naming the parameter."""
    if isinstance(names, str):
        return [names]
    if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names):
        return list(names)
    raise TypeError(f"views must be None, a view name or a list of view names, got {names!r}")


def select_views(
    views: Mapping[str, np.ndarray], names: str | list[str] | tuple[str, ...] | None
) -> dict[str, np.ndarray]:
    """Keep the requested views, in the requested order.

    Parameters
    ----------
    views : mapping of str to numpy.ndarray
        Available views.
    names : str, sequence of str or None
        Views to keep; ``None`` keeps all of them.

    Returns
    -------
    dict of str to numpy.ndarray
        The selected views.

    Raises
    ------
    TypeError
        If ``names`` is not None, a string or a sequence of strings.
    ValueError
        If a requested view is missing.
    """
    if names is None:
        return dict(views)
    names = _check_names(names)
    missing = [n for n in names if n not in views]
    if missing:
        raise ValueError(f"view(s) {missing} not found in X; available views: {sorted(views)}")
    return {n: views[n] for n in names}


def _to_uint8_advice(array: np.ndarray) -> str:
    """Say how to turn the values of ``array`` into uint8 0-255, judging by their range."""
    span = _value_range(array)
    if span is not None and 0.0 <= span[0] and span[1] <= 1.0 and np.issubdtype(array.dtype, np.floating):
        shown = f"[{span[0]:g}, {span[1]:g}]"
        return f"its values are in {shown}: convert with (x * 255).round().astype(np.uint8)"
    if span is not None and 0.0 <= span[0] and span[1] <= 255.0:
        return (
            f"its values are in [{span[0]:g}, {span[1]:g}], on the 0-255 scale: convert with "
            "np.asarray(x).round().astype(np.uint8) (a list of values becomes int64 or float64, not uint8)"
        )
    shown = "" if span is None else f"its values reach [{span[0]:g}, {span[1]:g}], outside 0-255; "
    return f"{shown}scale them to 0-255 and convert with .astype(np.uint8)"


def _scale_mismatch(spec: ViewSpec, array: np.ndarray) -> str:
    """Say why a view scored as uint8 after fitting on another dtype, or the reverse, is refused."""
    what = "images" if spec.kind == "image" else "values"
    dtype = array.dtype
    if spec.dtype == "uint8":
        return (
            f"view {spec.name!r} was fitted on uint8 {what} (0-255); got {dtype}: "
            f"{_to_uint8_advice(array)}, or refit on {dtype} {what}"
        )
    fitted = f"{spec.dtype} {what}"
    if spec.value_range is not None:
        fitted += f" in [{spec.value_range[0]:g}, {spec.value_range[1]:g}], scaled by that range"
    return (
        f"view {spec.name!r} was fitted on {fitted}; got uint8 (0-255). Convert with "
        f"x.astype(np.{spec.dtype}) / 255 if the training values were in [0, 1] (without / 255 if they "
        f"were in 0-255), or refit on uint8 {what}"
    )


def _warn_far_outside(spec: ViewSpec, array: np.ndarray) -> None:
    """Warn when an image view's values lie far outside its training range (a 0-255 vs 0-1 mix-up)."""
    if spec.kind != "image" or spec.value_range is None or array.size == 0:
        return
    low, high = spec.value_range
    margin = RANGE_WARN_SPANS * ((high - low) or 1.0)
    smallest, largest = float(array.min()), float(array.max())
    if smallest < low - margin or largest > high + margin:
        warnings.warn(
            f"view {spec.name!r}: values reach [{smallest:g}, {largest:g}], far outside the training range "
            f"[{low:g}, {high:g}]; if the scale changed (0-255 against 0-1), convert to the training scale",
            UserWarning,
            stacklevel=2,
        )


def check_scale(spec: ViewSpec, array: np.ndarray) -> None:
    """Check that a scoring array is on the value scale the view was fitted on.

    uint8 views are on the fixed scale 0-255, every other dtype is scaled by
    its training range, so a switch between uint8 and another dtype puts the
    same picture on another scale. Specs without a recorded dtype (older
    model files) are not checked.

    Parameters
    ----------
    spec : ViewSpec
        The view as recorded at fit time.
    array : numpy.ndarray
        The scoring array of that view.

    Raises
    ------
    TypeError
        If exactly one of the fit-time dtype and ``array.dtype`` is uint8;
        the message says what was expected and how to convert.

    Warns
    -----
    UserWarning
        For a non-uint8 image view whose values lie more than
        :data:`RANGE_WARN_SPANS` training ranges outside the training range.

    Examples
    --------
    >>> spec = ViewSpec("left", "image", (1, 2, 2), "uint8", (0.0, 255.0))
    >>> check_scale(spec, np.zeros((1, 1, 2, 2), np.float32))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: view 'left' was fitted on uint8 images (0-255); got float32: ...
    """
    if spec.dtype is None:
        return
    if (spec.dtype == "uint8") != (array.dtype == np.uint8):
        raise TypeError(_scale_mismatch(spec, array))
    if array.dtype != np.uint8:
        _warn_far_outside(spec, array)


def match_specs(
    views: Mapping[str, np.ndarray], specs: list[ViewSpec], *, allow_missing: bool = False
) -> dict[str, np.ndarray]:
    """Check that scoring input has the views, shapes and value scales seen at fit time.

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
    TypeError
        If a view's dtype is on another value scale than at fit time (see
        :func:`check_scale`).
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
        check_scale(spec, views[spec.name])
        out[spec.name] = views[spec.name]
    return out
