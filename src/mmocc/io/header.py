"""The JSON header of a model file: one schema, checked before anything is built from it.

:data:`HEADER` is the schema: one :class:`Field` per top-level key, with the
check of its value and, for keys added after model format 1, the default
that keeps an older file's meaning. Keys that format 1 always wrote are
required, so their absence means a damaged file. Keys the schema does not
name are kept and never read (a later mmocc may add informative ones).

:func:`check_header` applies the schema, fills the defaults, validates the
resolved hyper-parameters (filling those added after format 1) and bounds
every size a header declares (:data:`LIMITS`), so that nothing is allocated
from a header before the tensors that must back it are checked. Every error
is a ``ValueError`` naming the file and the field.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from mmocc import __version__
from mmocc.model.hyperparams import LATER_DEFAULTS, HyperParams
from mmocc.model.params import ParameterError
from mmocc.model.patches import AUTOENCODER

LIMITS: Mapping[str, int] = MappingProxyType(
    {
        "views": 256,
        "channels": 4096,
        "side": 65536,
        "view_elements": 2**28,
        "width": 65536,
        "depth": 32,
        "samples": 2**40,
    }
)
"""Upper bounds on what a header may declare: views per model, channels of an image view,
height and width, elements of one sample of one view, channels or units of one layer
(``filters``, ``hidden``, ``vector_latent``), layers per stack and training samples.
Generous, but finite; :func:`mmocc.io.format.write_model_file` refuses to write a model beyond them."""

PARAM_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {"knn_bank": "joint", "knn_space": "latent", "stop_tol": None, **LATER_DEFAULTS}
)
"""Hyper-parameters added after model format 1, with the values that keep older files' behaviour."""

THRESHOLD_SOURCES: tuple[str, ...] = ("train", "holdout", "calibrate")
"""The values of a header's ``threshold_source``."""

Check = Callable[[Any], str | None]


@dataclass(frozen=True)
class Field:
    """One top-level header key: how its value is checked, and its default.

    Parameters
    ----------
    check : callable
        Returns ``None`` for a valid value, else what is wrong, as a phrase
        that follows the key name (``" must be a JSON object, got an array"``).
    default : callable, optional
        Returns the value of the key when it is absent; ``None`` makes the
        key required (model format 1 always wrote it).
    """

    check: Check
    default: Callable[[], Any] | None = None


def _got(value: Any) -> str:
    """Name the JSON type of ``value``, for messages."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _as_float(value: Any) -> float | None:
    """Return a JSON number as a float (NaN and infinities too); None for anything else or too large."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


def _is_finite_number(value: Any) -> bool:
    number = _as_float(value)
    return number is not None and math.isfinite(number)


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) else f" must be a string, got {_got(value)}"


def _object(value: Any) -> str | None:
    return None if isinstance(value, dict) else f" must be a JSON object, got {_got(value)}"


def _finite_number(value: Any) -> str | None:
    return None if _is_finite_number(value) else f" must be a finite number, got {value!r:.60}"


def _count(value: Any) -> str | None:
    if _is_int(value) and 1 <= value <= LIMITS["samples"]:
        return None
    return f" must be an integer in [1, {LIMITS['samples']}], got {value!r:.60}"


def _threshold_source(value: Any) -> str | None:
    if value in THRESHOLD_SOURCES:
        return None
    return f" must be one of {list(THRESHOLD_SOURCES)}, got {value!r:.60}"


def _history(value: Any) -> str | None:
    if not isinstance(value, list):
        return f" must be an array, got {_got(value)}"
    for i, epoch in enumerate(value):
        if not isinstance(epoch, dict) or _as_float(epoch.get("loss")) is None:
            return f"[{i}] must be an object with a number 'loss'"
    return None


def _training(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f" must be a JSON object, got {_got(value)}"
    for key in ("n_samples", "n_calibration"):
        if key in value and not (_is_int(value[key]) and 0 <= value[key] <= LIMITS["samples"]):
            return f".{key} must be an integer in [0, {LIMITS['samples']}], got {value[key]!r:.60}"
    if not isinstance(value.get("fingerprint"), (str, type(None))):
        return f".fingerprint must be a string or null, got {_got(value['fingerprint'])}"
    return None


def _backbone_entry(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        return f" must be a JSON object, got {_got(value)}"
    if not isinstance(value.get("name"), str) or not isinstance(value.get("fingerprint"), str):
        return " must hold a string 'name' and a string 'fingerprint'"
    return None


def _shape_problem(kind: Any, shape: Any) -> str | None:
    """Say what is wrong with a view's kind and per-sample shape; None when nothing is."""
    if kind not in ("image", "vector"):
        return f".kind must be 'image' or 'vector', got {kind!r:.60}"
    rank = 3 if kind == "image" else 1
    layout = "(C, H, W)" if kind == "image" else "(d,)"
    if not isinstance(shape, list) or len(shape) != rank or not all(_is_int(s) and s >= 1 for s in shape):
        return f".shape of an {kind} view must be {rank} positive integer(s) {layout}, got {shape!r:.60}"
    if kind == "image" and shape[0] > LIMITS["channels"]:
        return f".shape has {shape[0]} channels, more than the limit {LIMITS['channels']}"
    if kind == "image" and max(shape[1:]) > LIMITS["side"]:
        return f".shape {shape} has a side longer than the limit {LIMITS['side']}"
    if math.prod(shape) > LIMITS["view_elements"]:
        return f".shape {shape} has more elements per sample than the limit {LIMITS['view_elements']}"
    return None


def _scale_problem(dtype: Any, value_range: Any) -> str | None:
    """Say what is wrong with a view's optional training dtype and value range; None when nothing is."""
    if dtype is not None and not (isinstance(dtype, str) and re.fullmatch(r"[a-z]{2,8}[0-9]{0,3}", dtype)):
        return f".dtype must be null or a NumPy dtype name such as 'uint8', got {dtype!r:.60}"
    if value_range is None:
        return None
    pair = isinstance(value_range, list) and len(value_range) == 2
    if not (pair and all(map(_is_finite_number, value_range))):
        return f".value_range must be null or [low, high] of finite numbers, got {value_range!r:.60}"
    if value_range[0] > value_range[1]:
        return f".value_range must have low <= high, got {value_range!r:.60}"
    return None


def _view_problem(view: Any) -> str | None:
    """Say what is wrong with one entry of ``views``; None when nothing is."""
    if not isinstance(view, dict):
        return f" must be a JSON object, got {_got(view)}"
    name = view.get("name")
    if not isinstance(name, str) or not name:
        return f".name must be a non-empty string, got {name!r:.60}"
    return _shape_problem(view.get("kind"), view.get("shape")) or _scale_problem(
        view.get("dtype"), view.get("value_range")
    )


def _views(value: Any) -> str | None:
    if not isinstance(value, list) or not 1 <= len(value) <= LIMITS["views"]:
        return f" must be an array of 1 to {LIMITS['views']} views, got {_got(value)}"
    for i, view in enumerate(value):
        problem = _view_problem(view)
        if problem:
            return f"[{i}]{problem}"
    names = [view["name"] for view in value]
    if len(set(names)) != len(names):
        return f" name a view twice: {names}"
    return None


HEADER: Mapping[str, Field] = MappingProxyType(
    {
        "mmocc_version": Field(_text),
        "torch_version": Field(_text),
        "estimator_params": Field(_object),
        "params": Field(_object),
        "views": Field(_views),
        "threshold": Field(_finite_number),
        "n_samples_in": Field(_count),
        "history": Field(_history),
        "trained_on": Field(_text),
        "created": Field(_text, default=lambda: "?"),
        "threshold_source": Field(_threshold_source, default=lambda: "train"),
        "training": Field(_training, default=dict),
        "metadata": Field(_object, default=dict),
        "backbone": Field(_backbone_entry, default=lambda: None),
    }
)
"""The header schema: each top-level key's check, and whether it is required or its default.

``format`` and ``format_version`` are checked by :func:`mmocc.io.format.read_config`
before the schema applies. ``backbone`` is null unless the patch features
come from a pretrained or custom backbone."""


def _version(text: str) -> tuple[int, ...]:
    """Return the leading numeric parts of a version string: ``"0.10.2rc1"`` gives ``(0, 10, 2)``."""
    parts = []
    for part in text.split("."):
        digits = re.match(r"\d+", part)
        if digits is None:
            break
        parts.append(int(digits.group()))
        if digits.end() < len(part):
            break
    return tuple(parts)


def check_known_keys(
    section: str, values: Mapping[str, Any], known: Iterable[str], path: str | os.PathLike[str], writer: str
) -> None:
    """Refuse keys this mmocc does not know, saying which mmocc wrote them.

    Parameters
    ----------
    section : str
        The header key that holds ``values`` (for the message).
    values : mapping
        The stored values.
    known : iterable of str
        The keys this version knows.
    path : str or path-like
        The model file (for the message).
    writer : str
        The mmocc version that wrote the file.

    Raises
    ------
    ValueError
        Naming the file, the first unknown key and both versions.

    Examples
    --------
    >>> check_known_keys("params", {"foo": 1}, ["bar"], "m.mmocc", "99.0")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: 'm.mmocc' was written by mmocc 99.0 (newer than this ...): unknown parameter 'foo' in 'params'
    """
    unknown = sorted(set(values) - set(known))
    if not unknown:
        return
    newer = _version(writer) > _version(__version__)
    relation = f"newer than this {__version__}" if newer else f"this is mmocc {__version__}"
    raise ValueError(
        f"{str(path)!r} was written by mmocc {writer} ({relation}): "
        f"unknown parameter {unknown[0]!r} in {section!r}"
    )


def _check_widths(hp: HyperParams, path: str | os.PathLike[str]) -> None:
    """Bound the layer widths and depths the hyper-parameters declare."""
    for name in ("filters", "hidden"):
        widths = getattr(hp, name)
        if len(widths) > LIMITS["depth"] or max(widths) > LIMITS["width"]:
            raise ValueError(
                f"{str(path)!r}: invalid model header: params.{name}={list(widths)!r:.60} exceeds the limits "
                f"({LIMITS['depth']} layers of at most {LIMITS['width']})"
            )
    if hp.vector_latent > LIMITS["width"]:
        raise ValueError(
            f"{str(path)!r}: invalid model header: params.vector_latent={hp.vector_latent} exceeds "
            f"the limit {LIMITS['width']}"
        )


def check_params(values: Mapping[str, Any], path: str | os.PathLike[str], writer: str) -> HyperParams:
    """Validate a header's resolved hyper-parameters, filling those added after format 1.

    The values are checked as :class:`~mmocc.model.hyperparams.HyperParams`
    checks them (:data:`mmocc.model.params.HYPERPARAMETER_CONSTRAINTS`), then
    bounded by :data:`LIMITS`.

    Parameters
    ----------
    values : mapping
        The header's ``params``.
    path : str or path-like
        The model file (for messages).
    writer : str
        The mmocc version that wrote the file.

    Returns
    -------
    HyperParams
        The validated hyper-parameters.

    Raises
    ------
    ValueError
        For an unknown, missing or invalid hyper-parameter, or one beyond :data:`LIMITS`.
    """
    filled = {**PARAM_DEFAULTS, **values}
    check_known_keys("params", filled, HyperParams.names(), path, writer)
    missing = [name for name in HyperParams.names() if name not in filled]
    if missing:
        raise ValueError(f"{str(path)!r}: the model header's params lack {missing} (a damaged file?)")
    try:
        hp = HyperParams.from_dict(filled)
    except ParameterError as exc:  # its message starts with the parameter name
        raise ValueError(f"{str(path)!r}: invalid model header: params.{exc}") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"{str(path)!r}: invalid stored hyper-parameters: {exc}") from None
    _check_widths(hp, path)
    return hp


def _check_backbone_entry(config: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Check that ``backbone`` is there exactly when the patch features come from a backbone."""
    name = config["params"]["patch_backbone"]
    stored = config["backbone"]
    if name == AUTOENCODER and stored is None:
        return
    if stored is None or stored["name"] != name:
        raise ValueError(
            f"{str(path)!r}: invalid model header: params.patch_backbone={name!r} but the backbone "
            f"entry is {stored!r:.80}"
        )


def check_header(config: Mapping[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    """Validate a model header against :data:`HEADER` and fill the defaults.

    Parameters
    ----------
    config : mapping
        The parsed JSON header (format tag and version already checked).
    path : str or path-like
        The model file (for messages).

    Returns
    -------
    dict
        The header with absent optional keys filled and ``params`` complete
        (hyper-parameters added after format 1 filled, values normalised).

    Raises
    ------
    ValueError
        Naming the file and the first missing or invalid field.
    """
    out = dict(config)
    for key, field in HEADER.items():
        if key not in out:
            if field.default is None:
                raise ValueError(f"{str(path)!r}: the model header has no {key!r} (a damaged file?)")
            out[key] = field.default()
            continue
        problem = field.check(out[key])
        if problem:
            raise ValueError(f"{str(path)!r}: invalid model header: {key}{problem}")
    out["params"] = check_params(out["params"], path, out["mmocc_version"]).to_dict()
    _check_backbone_entry(out, path)
    return out
