"""The parameter constraints of every mmocc estimator, in one table.

Each parameter of :class:`~mmocc.model.hyperparams.HyperParams`,
:class:`mmocc.MultimodalOCC` and :class:`mmocc.detectors.baselines.BaselineOCC`
is declared once here, with its constraint, in the spirit of scikit-learn's
``_parameter_constraints``: :class:`Interval` (a number in a range),
:class:`Options` (a fixed set of values), :class:`Boolean`, :data:`NONE` and
a few more, combined with :class:`AnyOf` and :func:`nullable`.
:func:`check_values` validates a set of values against a table and returns
them normalised (NumPy scalars become Python ``int``, ``float``, ``bool`` or
``str``, integer sequences become tuples). The tables:

* :data:`HYPERPARAMETER_CONSTRAINTS`: the fields of ``HyperParams`` (checked
  in its ``__post_init__``, so also for presets and model files);
* :data:`DETECTOR_CONSTRAINTS`: the parameters every detector has
  (``views``, ``contamination``, ``threshold``, ...);
* :data:`MULTIMODAL_CONSTRAINTS` and :data:`BASELINE_CONSTRAINTS`: every
  ``__init__`` parameter of each estimator (a hyper-parameter of
  ``MultimodalOCC`` may also be None, its preset's value).

Every refusal is a :class:`ParameterError` whose message starts with the
parameter name and gives the value and what is allowed:
``lr must be >= 0, got -1.0`` (a number out of range names the range),
``epochs must be None or an integer >= 1, got 2.5``,
``threshold must be one of ['train', 'holdout'], got 'val'`` (anything
else names every alternative), and a string close to a valid name says so
first: ``score='nrom' is not valid (unknown score 'nrom'; did you mean
'norm'?); score must be None or one of [...]``.

The vocabulary is ours rather than :mod:`sklearn.utils._param_validation`:
that module is private, its ``Interval(Integral, ...)`` admits booleans,
it cannot suggest a close name or normalise values, and its messages would
change every message users and tests know. The table lives in
:mod:`mmocc.model` because ``HyperParams`` validates through it and the
model package does not import the estimators.
"""

from __future__ import annotations

import math
import reprlib
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import torch

from mmocc.model.augment import AUGMENTATIONS
from mmocc.model.device import AMP_CHOICES
from mmocc.model.losses import DIVERSITY_KINDS
from mmocc.model.patches import PATCH_BACKBONES
from mmocc.scoring import (
    CORESET_METHODS,
    KNN_BANKS,
    KNN_SPACES,
    SCORE_RULES,
    SEARCH_MODES,
    VIEW_COMBINATIONS,
)
from mmocc.utils.text import did_you_mean

PRESET_NAMES: tuple[str, ...] = ("default", "paper", "patch", "pretrained", "combined")
"""Values of ``MultimodalOCC(preset=...)``; :data:`mmocc.model.hyperparams.PRESETS` holds their values."""

THRESHOLD_SOURCES: tuple[str, ...] = ("train", "holdout")
"""Values of a detector's ``threshold``: the training scores, or held-out normals."""

BASELINE_DETECTORS: tuple[str, ...] = ("knn", "iforest", "ocsvm", "pca", "autoencoder", "deepsvdd")
"""Values of ``BaselineOCC(detector=...)``."""

FUSIONS: tuple[str, ...] = ("early", "late", "single")
"""Values of ``BaselineOCC(fusion=...)``."""

SCALINGS: tuple[str, ...] = ("view", "feature")
"""Values of ``BaselineOCC(scaling=...)``."""

_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60


class ParameterError(ValueError, TypeError):
    """A parameter value its constraint refuses; the message starts with the parameter name.

    It is both a ValueError and a TypeError, as scikit-learn's
    ``InvalidParameterError``: a value of the wrong type and a value out
    of range are caught alike.
    """


class Constraint(ABC):
    """What one parameter accepts, and how an accepted value is normalised."""

    @abstractmethod
    def alternatives(self) -> tuple[str, ...]:
        """Return what is allowed, one phrase per alternative (``"True"``, ``"a number in (0, 1)"``)."""

    @abstractmethod
    def accepts(self, value: Any) -> bool:
        """Return whether ``value`` satisfies the constraint."""

    def normalise(self, value: Any) -> Any:
        """Return an accepted value in canonical form (here: unchanged)."""
        return value

    def range_problem(self, value: Any) -> str | None:
        """Return the range a refused value of the right type misses (``"in (0, 1]"``); None otherwise."""
        return None

    def choices(self) -> tuple[Any, ...]:
        """Return the named values the constraint offers, for did-you-mean suggestions (here: none)."""
        return ()


def _finite_number(value: Any) -> bool:
    """Whether ``value`` is a real number (not a bool) with a finite float value."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _bound(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class Interval(Constraint):
    """A finite number (``kind=float``) or an integer (``kind=int``) in a range; booleans are refused.

    Parameters
    ----------
    kind : {int, float}
        Integers only, or any real number (integers included).
    low : float
        The lower bound.
    high : float or None
        The upper bound; None for none.
    closed : {"both", "left", "right", "neither"}, default "both"
        Which bounds belong to the range.

    Examples
    --------
    >>> check_value("lr", -1.0, Interval(float, 0, None, closed="left"))
    Traceback (most recent call last):
    ...
    mmocc.model.params.ParameterError: lr must be >= 0, got -1.0
    """

    kind: type[int] | type[float]
    low: float
    high: float | None
    closed: Literal["both", "left", "right", "neither"] = "both"

    def _in_range(self, value: Any) -> bool:
        number = int(value) if self.kind is int else float(value)  # a huge int compares exactly
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        above = number > self.low or (left and number == self.low)
        below = self.high is None or number < self.high or (right and number == self.high)
        return above and below

    def _of_kind(self, value: Any) -> bool:
        if self.kind is int:
            return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
        return _finite_number(value)

    def _range(self) -> str:
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.high is None:
            return f"{'>=' if left else '>'} {_bound(self.low)}"
        return f"in {'[' if left else '('}{_bound(self.low)}, {_bound(self.high)}{']' if right else ')'}"

    def alternatives(self) -> tuple[str, ...]:
        """Return the kind and the range (``"a finite number >= 0"``, ``"an integer in [16, 1024]"``)."""
        if self.kind is int:
            return (f"an integer {self._range()}",)
        return (f"{'a finite number' if self.high is None else 'a number'} {self._range()}",)

    def accepts(self, value: Any) -> bool:
        """Return whether ``value`` is of the kind and in the range."""
        return self._of_kind(value) and self._in_range(value)

    def normalise(self, value: Any) -> Any:
        """Return the value as a Python ``int`` or ``float``."""
        return self.kind(value)

    def range_problem(self, value: Any) -> str | None:
        """Return the range when ``value`` is of the kind but outside it."""
        return self._range() if self._of_kind(value) and not self._in_range(value) else None


def _same_choice(value: Any, choice: Any) -> bool:
    """Whether ``value`` is ``choice``: None is None, booleans (NumPy's too) and strings match by value."""
    if choice is None:
        return value is None
    if isinstance(choice, bool):
        return isinstance(value, (bool, np.bool_)) and bool(value) is choice
    return isinstance(value, type(choice)) and not isinstance(value, (bool, np.bool_)) and value == choice


@dataclass(frozen=True)
class Options(Constraint):
    """One of a fixed set of values (strings, booleans, None); ``1`` is not ``True``.

    Examples
    --------
    >>> check_value("amp", "x", Options(("auto", True, False)))
    Traceback (most recent call last):
    ...
    mmocc.model.params.ParameterError: amp must be 'auto', True or False, got 'x'
    >>> try:  # doctest: +ELLIPSIS
    ...     check_value("scaling", "standrd", Options(("unit", "standard")))
    ... except ParameterError as exc:
    ...     print(exc)
    scaling='standrd' is not valid (unknown scaling 'standrd'; did you mean 'standard'?); scaling must be ...
    """

    values: tuple[Any, ...]

    def alternatives(self) -> tuple[str, ...]:
        """Return ``"one of [...]"`` for names; True, False and None are spelt out one by one."""
        if all(isinstance(choice, str) for choice in self.values):
            return (f"one of {list(self.values)}",)
        return tuple(repr(choice) for choice in self.values)

    def accepts(self, value: Any) -> bool:
        """Return whether ``value`` is one of the values."""
        return any(_same_choice(value, choice) for choice in self.values)

    def normalise(self, value: Any) -> Any:
        """Return the matching value itself (``numpy.str_`` and ``numpy.bool_`` become Python's)."""
        return next(choice for choice in self.values if _same_choice(value, choice))

    def choices(self) -> tuple[Any, ...]:
        """Return the values."""
        return self.values


@dataclass(frozen=True)
class Boolean(Constraint):
    """True or False; NumPy booleans count, ``0`` and ``1`` do not."""

    def alternatives(self) -> tuple[str, ...]:
        """Return ``("True", "False")``."""
        return ("True", "False")

    def accepts(self, value: Any) -> bool:
        """Return whether ``value`` is a boolean."""
        return isinstance(value, (bool, np.bool_))

    def normalise(self, value: Any) -> Any:
        """Return a Python ``bool``."""
        return bool(value)


@dataclass(frozen=True)
class PositiveInts(Constraint):
    """A non-empty sequence (not a string) of integers >= 1, normalised to a tuple of ``int``."""

    def alternatives(self) -> tuple[str, ...]:
        """Return the one alternative."""
        return ("a non-empty sequence of positive integers",)

    def accepts(self, value: Any) -> bool:
        """Return whether ``value`` is such a sequence."""
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__") or not len(value):
            return False
        return all(_POSITIVE_INT.accepts(v) for v in value)

    def normalise(self, value: Any) -> Any:
        """Return a tuple of Python ``int``."""
        return tuple(int(v) for v in value)


class DistinctNames(Constraint):
    """A non-empty sequence (not a string) of distinct non-empty strings, normalised to a tuple."""

    def alternatives(self) -> tuple[str, ...]:
        """Return the one alternative."""
        return ("a non-empty sequence of distinct names",)

    def accepts(self, value: Any) -> bool:
        """Return whether ``value`` is such a sequence."""
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or not value:
            return False
        return all(isinstance(v, str) and v for v in value) and len(set(value)) == len(value)

    def normalise(self, value: Any) -> Any:
        """Return a tuple of ``str``."""
        return tuple(value)


@dataclass(frozen=True)
class InstanceOf(Constraint):
    """An instance of some types, described by ``label`` (``"a dict"``)."""

    types: type | tuple[type, ...]
    label: str

    def alternatives(self) -> tuple[str, ...]:
        """Return the label."""
        return (self.label,)

    def accepts(self, value: Any) -> bool:
        """Return whether ``value`` is an instance."""
        return isinstance(value, self.types)


@dataclass(frozen=True)
class ViewNames(Constraint):
    """A view name, or a list or tuple of view names (checked against the data at fit time)."""

    def alternatives(self) -> tuple[str, ...]:
        """Return the two alternatives."""
        return ("a view name", "a list of view names")

    def accepts(self, value: Any) -> bool:
        """Return whether ``value`` is a string or a list or tuple of strings."""
        many = isinstance(value, (list, tuple)) and all(isinstance(name, str) for name in value)
        return isinstance(value, str) or many


@dataclass(frozen=True)
class AnyOf(Constraint):
    """Any of several constraints; the first that accepts a value normalises it."""

    members: tuple[Constraint, ...]

    def alternatives(self) -> tuple[str, ...]:
        """Return every member's alternatives."""
        return tuple(phrase for member in self.members for phrase in member.alternatives())

    def accepts(self, value: Any) -> bool:
        """Return whether a member accepts ``value``."""
        return any(member.accepts(value) for member in self.members)

    def normalise(self, value: Any) -> Any:
        """Return the value as the first accepting member normalises it."""
        return next(member for member in self.members if member.accepts(value)).normalise(value)

    def range_problem(self, value: Any) -> str | None:
        """Return the first member's range problem."""
        return next((p for member in self.members if (p := member.range_problem(value))), None)

    def choices(self) -> tuple[Any, ...]:
        """Return every member's choices."""
        return tuple(choice for member in self.members for choice in member.choices())


NONE = InstanceOf(type(None), "None")
"""None."""


def nullable(constraint: Constraint) -> Constraint:
    """Return ``constraint`` widened to None (itself when it accepts None already)."""
    return constraint if constraint.accepts(None) else AnyOf((NONE, constraint))


def _either(phrases: tuple[str, ...]) -> str:
    """Join alternatives: ``"a"``, ``"a or b"``, ``"a, b or c"``."""
    return phrases[0] if len(phrases) == 1 else f"{', '.join(phrases[:-1])} or {phrases[-1]}"


def _refusal(name: str, value: Any, constraint: Constraint) -> str:
    """Say what is wrong with ``value``: its range, else every alternative; a near-miss name first."""
    shown = _SHOWN.repr(value)
    narrow = constraint.range_problem(value)
    if narrow is not None:
        return f"{name} must be {narrow}, got {shown}"
    allowed = _either(constraint.alternatives())
    names = [choice for choice in constraint.choices() if isinstance(choice, str)]
    hint = did_you_mean(value, names) if isinstance(value, str) else ""
    if hint:
        return f"{name}={shown} is not valid (unknown {name} {shown}{hint}); {name} must be {allowed}"
    return f"{name} must be {allowed}, got {shown}"


def check_value(name: str, value: Any, constraint: Constraint) -> Any:
    """Validate one parameter value and return it normalised.

    Parameters
    ----------
    name : str
        The parameter name, for the message.
    value : object
        Its value.
    constraint : Constraint
        What it accepts.

    Returns
    -------
    object
        The value in canonical form (:meth:`Constraint.normalise`).

    Raises
    ------
    ParameterError
        Naming the parameter, the value and what is allowed.

    Examples
    --------
    >>> check_value("epochs", np.int64(3), Interval(int, 1, None, closed="left"))
    3
    >>> check_value("verbose", "x", nullable(Boolean()))
    Traceback (most recent call last):
    ...
    mmocc.model.params.ParameterError: verbose must be None, True or False, got 'x'
    """
    if constraint.accepts(value):
        return constraint.normalise(value)
    raise ParameterError(_refusal(name, value, constraint))


def check_values(table: Mapping[str, Constraint], values: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a value for every parameter of ``table``, in table order.

    Parameters
    ----------
    table : mapping of str to Constraint
        The constraints, e.g. :data:`MULTIMODAL_CONSTRAINTS`.
    values : mapping of str to object
        One value per name in ``table`` (more are ignored).

    Returns
    -------
    dict
        The normalised values, in table order.

    Raises
    ------
    ParameterError
        For the first value refused.
    """
    return {name: check_value(name, values[name], constraint) for name, constraint in table.items()}


_POSITIVE_INT = Interval(int, 1, None, closed="left")
_NON_NEGATIVE = Interval(float, 0, None, closed="left")
_BOOLEAN = Boolean()
_RANDOM_STATE = InstanceOf(np.random.RandomState, "a numpy.random.RandomState")

HYPERPARAMETER_CONSTRAINTS: Mapping[str, Constraint] = MappingProxyType(
    {
        "filters": PositiveInts(),
        "hidden": PositiveInts(),
        "vector_latent": _POSITIVE_INT,
        "dropout": Interval(float, 0, 1, closed="left"),
        "shared_weights": Options((True, False, "auto")),
        "bias": _BOOLEAN,
        "bn_affine": _BOOLEAN,
        "scaling": Options(("unit", "standard")),
        "compactness": Options(("origin", "center")),
        "compact_weight": _NON_NEGATIVE,
        "recon_weight": _NON_NEGATIVE,
        "epochs": _POSITIVE_INT,
        "batch_size": _POSITIVE_INT,
        "lr": _NON_NEGATIVE,
        "weight_decay": _NON_NEGATIVE,
        "lr_schedule": Options(("constant", "cosine")),
        "stop_tol": nullable(_NON_NEGATIVE),
        "augment": Options(AUGMENTATIONS),
        "augment_shift": Interval(float, 0, 0.5),
        "score": Options(SCORE_RULES),
        "n_neighbors": _POSITIVE_INT,
        "knn_bank": Options(KNN_BANKS),
        "knn_space": Options(KNN_SPACES),
        "diversity": Options((None, *DIVERSITY_KINDS)),
        "diversity_weight": _NON_NEGATIVE,
        "diversity_gamma": _NON_NEGATIVE,
        "patch_backbone": Options(PATCH_BACKBONES),
        "patch_size": nullable(Interval(int, 16, 1024)),
        "coreset_ratio": Interval(float, 0, 1, closed="right"),
        "patch_top_k": _POSITIVE_INT,
        "view_combine": Options(VIEW_COMBINATIONS),
        "knn_search": Options(SEARCH_MODES),
        "tile_size": nullable(Interval(int, 16, 1024)),
        "tile_overlap": Interval(float, 0, 1, closed="left"),
        "coreset_candidates": nullable(_POSITIVE_INT),
        "patch_layers": nullable(DistinctNames()),
        "coreset_method": Options(CORESET_METHODS),
    }
)
"""One constraint per field of :class:`~mmocc.model.hyperparams.HyperParams`, in field order."""

DETECTOR_CONSTRAINTS: Mapping[str, Constraint] = MappingProxyType(
    {
        "views": nullable(ViewNames()),
        "contamination": Interval(float, 0, 0.5, closed="right"),
        "threshold": Options(THRESHOLD_SOURCES),
        "validation_fraction": Interval(float, 0, 1, closed="neither"),
        "random_state": AnyOf((NONE, Interval(int, 0, 2**32 - 1), _RANDOM_STATE)),
    }
)
"""The parameters every detector has (:class:`mmocc.detectors.base.BaseMultiviewDetector`)."""

_FROM_PRESET = {name: nullable(constraint) for name, constraint in HYPERPARAMETER_CONSTRAINTS.items()}
_FROM_PRESET["patch_backbone"] = nullable(
    AnyOf((HYPERPARAMETER_CONSTRAINTS["patch_backbone"], InstanceOf(torch.nn.Module, "a torch.nn.Module")))
)

MULTIMODAL_CONSTRAINTS: Mapping[str, Constraint] = MappingProxyType(
    {
        "preset": Options(PRESET_NAMES),
        **_FROM_PRESET,
        **DETECTOR_CONSTRAINTS,
        "device": InstanceOf((str, torch.device), "a torch.device or a name ('auto', 'cpu', 'cuda:1', ...)"),
        "amp": Options(AMP_CHOICES),
        "score_batch_size": _POSITIVE_INT,
        "verbose": nullable(_BOOLEAN),
    }
)
"""Every parameter of :class:`mmocc.MultimodalOCC`; a hyper-parameter may be None (its preset's value).

``device`` is parsed, and CUDA looked for, when fitting or loading
(:func:`mmocc.model.device.resolve_device`).
"""

BASELINE_CONSTRAINTS: Mapping[str, Constraint] = MappingProxyType(
    {
        "detector": Options(BASELINE_DETECTORS),
        "fusion": Options(FUSIONS),
        **DETECTOR_CONSTRAINTS,
        "scaling": Options(SCALINGS),
        "detector_params": nullable(InstanceOf(dict, "a dict")),
    }
)
"""Every parameter of :class:`mmocc.detectors.baselines.BaselineOCC`."""
