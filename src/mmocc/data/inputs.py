"""Validation and normalisation of multiview input.

Every estimator in mmocc accepts either a mapping ``{view_name: array}`` or any
object with a ``.views`` attribute holding such a mapping (for example
:class:`mmocc.datasets.MultiViewDataset`). This module turns that input into a
plain ``dict`` of NumPy arrays with a canonical layout:

* image views as ``(n, C, H, W)`` (``(n, H, W, C)`` and ``(n, H, W)`` are
  converted),
* vector views as ``(n, d)``.

It also records a :class:`ViewSpec` per view so that scoring can check that new
data matches what the model was trained on.
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
        """Return a JSON-serialisable description of the view."""
        return {"name": self.name, "kind": self.kind, "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ViewSpec:
        """Rebuild a spec written by :meth:`to_dict`."""
        return cls(name=str(data["name"]), kind=str(data["kind"]), shape=tuple(int(s) for s in data["shape"]))


def _to_channels_first(name: str, array: np.ndarray) -> np.ndarray:
    """Return a 4-D image array in ``(n, C, H, W)`` layout."""
    if array.ndim == 3:
        return array[:, None, :, :]
    if array.ndim != 4:
        raise ValueError(
            f"view {name!r}: expected a vector view (n, d) or an image view (n, C, H, W) / "
            f"(n, H, W, C) / (n, H, W), got an array with {array.ndim} dimensions {array.shape}"
        )
    channels_first = array.shape[1] in _CHANNEL_SIZES
    channels_last = array.shape[3] in _CHANNEL_SIZES
    if channels_last and not channels_first:
        return np.ascontiguousarray(np.moveaxis(array, 3, 1))
    return array


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
        ``{view_name: array}``; images ``(n, C, H, W)``, ``(n, H, W, C)`` or
        ``(n, H, W)``, vectors ``(n, d)``. uint8 and floating dtypes are accepted.
    allow_empty : bool, default False
        Accept zero samples.

    Returns
    -------
    dict of str to numpy.ndarray
        Arrays in canonical layout, in the order given.

    Raises
    ------
    TypeError
        For a non-mapping input, a non-string view name or a non-numeric dtype.
    ValueError
        For no views, a wrong number of dimensions, differing sample counts,
        NaN or infinite values, or an empty input.
    """
    raw = get_view_arrays(X)
    if len(raw) == 0:
        raise ValueError("X has no views: pass at least one {view_name: array}")
    out: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for name, value in raw.items():
        if not isinstance(name, str):
            raise TypeError(f"view names must be strings, got {name!r}")
        array = np.asarray(value)
        if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
            raise TypeError(f"view {name!r}: expected a numeric array, got dtype {array.dtype}")
        if array.ndim == 2:
            canonical = array
        elif array.ndim in (3, 4):
            canonical = _to_channels_first(name, array)
        else:
            raise ValueError(
                f"view {name!r}: expected a vector view (n, d) or an image view (n, C, H, W) / "
                f"(n, H, W, C) / (n, H, W), got an array with {array.ndim} dimensions {array.shape}"
            )
        if np.issubdtype(canonical.dtype, np.floating) and not np.isfinite(canonical).all():
            bad = np.argwhere(~np.isfinite(canonical.reshape(len(canonical), -1)).all(axis=1)).ravel()
            raise ValueError(
                f"view {name!r}: contains NaN or infinite values (first bad row {int(bad[0])}, "
                f"{len(bad)} rows in all)"
            )
        out[name] = canonical
        counts[name] = len(canonical)
    if len(set(counts.values())) > 1:
        detail = ", ".join(f"{k}={v}" for k, v in counts.items())
        raise ValueError(f"views have different numbers of samples: {detail}")
    if not allow_empty and next(iter(counts.values())) == 0:
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


def match_specs(views: Mapping[str, np.ndarray], specs: list[ViewSpec]) -> dict[str, np.ndarray]:
    """Check that scoring input has the views and shapes seen at fit time.

    Parameters
    ----------
    views : mapping of str to numpy.ndarray
        Canonical views from :func:`check_views`; extra views are ignored.
    specs : list of ViewSpec
        The specs recorded at fit time.

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
    if missing:
        raise ValueError(
            f"view(s) {missing} missing from X; the model was fitted on views "
            f"{[s.name for s in specs]}, got {sorted(views)}"
        )
    out = {}
    for spec in specs:
        shape = tuple(views[spec.name].shape[1:])
        if shape != spec.shape:
            raise ValueError(
                f"view {spec.name!r}: per-sample shape {shape} does not match the shape "
                f"{spec.shape} seen at fit time"
            )
        out[spec.name] = views[spec.name]
    return out
