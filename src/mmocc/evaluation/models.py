"""Model tables of an experiment config, and the checks the command line shares with them.

One implementation serves the ``[models.NAME]`` tables of a config and the
``mmocc train`` options: :func:`check_model_params` checks parameter names
(with a did-you-mean) and values (through the estimator's own
``check_params()``), and :func:`resolve_views` turns view names or 0-based
positions into the dataset's view names.

This module imports the estimators only when a check needs them, so the
command line can import it without importing torch.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mmocc.utils.text import did_you_mean

MODEL_KINDS: tuple[str, ...] = ("mmocc", "baseline")
"""Valid ``kind`` values of a ``[models.NAME]`` table."""

RUNNER_PARAMS: tuple[str, ...] = ("random_state", "device", "verbose")
"""Estimator parameters the runner sets itself (from ``seeds`` and ``device``)."""

_RUNNER_OWNED = "the runner sets it (from seeds and --device)"
_MODEL_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class ConfigError(ValueError):
    """An invalid experiment configuration; the message names the key at fault."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`ConfigError` with ``message`` unless ``condition`` holds.

    Parameters
    ----------
    condition : bool
        What must hold.
    message : str
        The error message.

    Raises
    ------
    ConfigError
        If ``condition`` is false.
    """
    if not condition:
        raise ConfigError(message)


def is_int(value: Any) -> bool:
    """Return whether ``value`` is an int and not a bool.

    Parameters
    ----------
    value : Any
        A value read from TOML or the command line.

    Returns
    -------
    bool
        True for ints other than ``True`` and ``False``.
    """
    return isinstance(value, int) and not isinstance(value, bool)


def check_keys(table: Mapping[str, Any], allowed: Collection[str], where: str, noun: str = "key") -> None:
    """Raise :class:`ConfigError` for the first key of ``table`` not in ``allowed``.

    Parameters
    ----------
    table : mapping
        A config table.
    allowed : collection of str
        The valid keys.
    where : str
        Where the table is, for the message (e.g. ``"[split]"``).
    noun : str, default "key"
        What a key is called in the message (e.g. ``"parameter"``).

    Raises
    ------
    ConfigError
        Naming the unknown key, the closest valid key and all valid keys.

    Examples
    --------
    >>> try:
    ...     check_keys({"seed": 1}, ["seeds", "plots"], "the top level")
    ... except ConfigError as exc:
    ...     print(exc)
    unknown key 'seed' in the top level; did you mean 'seeds'? (valid keys: plots, seeds)
    """
    for key in table:
        if key not in allowed:
            raise ConfigError(
                f"unknown {noun} {key!r} in {where}{did_you_mean(key, allowed)} "
                f"(valid {noun}s: {', '.join(sorted(allowed))})"
            )


def estimator_class(kind: str) -> type:
    """Return the estimator class of a model kind.

    Parameters
    ----------
    kind : {"mmocc", "baseline"}
        The model kind.

    Returns
    -------
    type
        :class:`mmocc.MultimodalOCC` or :class:`mmocc.detectors.baselines.BaselineOCC`
        (imported on call).
    """
    if kind == "mmocc":
        from mmocc.detectors.multimodal import MultimodalOCC

        return MultimodalOCC
    from mmocc.detectors.baselines import BaselineOCC

    return BaselineOCC


def check_model_params(
    kind: str,
    params: Mapping[str, Any],
    where: str,
    *,
    reserved: Mapping[str, str] | None = None,
    noun: str = "key",
) -> None:
    """Check the names and values of estimator parameters without data.

    Parameters
    ----------
    kind : {"mmocc", "baseline"}
        The model kind.
    params : mapping
        The parameters; ``views`` is checked by name only (its values need
        the data, see :func:`resolve_views`).
    where : str
        Where the parameters come from, for messages (e.g. ``"[models.m]"``).
    reserved : mapping of str to str, optional
        Parameters the caller sets itself, each with the reason given when it
        is set anyway; default :data:`RUNNER_PARAMS`, set by the runner.
    noun : str, default "key"
        What a parameter is called in the unknown-name message.

    Raises
    ------
    ConfigError
        For a reserved or unknown name (with a did-you-mean), or a value the
        estimator's ``check_params()`` rejects.
    """
    reserved = dict.fromkeys(RUNNER_PARAMS, _RUNNER_OWNED) if reserved is None else reserved
    cls = estimator_class(kind)
    for key in params:
        require(key not in reserved, f"{where} must not set {key!r}: {reserved.get(key)}")
    allowed = set(cls().get_params()) - set(reserved)
    check_keys(params, allowed, f"{where} ({cls.__name__})", noun)
    try:
        cls(**{key: value for key, value in params.items() if key != "views"}).check_params()
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def resolve_views(
    views: Sequence[str | int] | None, view_names: Sequence[str], where: str = ""
) -> list[str] | None:
    """Turn view names or 0-based positions into dataset view names.

    Parameters
    ----------
    views : sequence of str or int, or None
        Names and positions; None selects every view.
    view_names : sequence of str
        The dataset's views, in order.
    where : str, default ""
        Where the views come from, the prefix of messages (e.g. ``"[models.m]"``).

    Returns
    -------
    list of str or None
        The view names, or None for all of them.

    Raises
    ------
    ConfigError
        For a position out of range or a name not in the dataset.

    Examples
    --------
    >>> resolve_views([1, "dorsal"], ["dorsal", "lateral"])
    ['lateral', 'dorsal']
    """
    if views is None:
        return None
    names = list(view_names)
    prefix = f"{where} " if where else ""
    out = []
    for view in views:
        if isinstance(view, int):
            require(
                view < len(names),
                f"{prefix}view position {view} is out of range; the dataset has views {names}",
            )
            out.append(names[view])
        else:
            require(
                view in names,
                f"{prefix}view {view!r} is not in the dataset{did_you_mean(view, names)} (views: {names})",
            )
            out.append(view)
    return out


@dataclass(frozen=True)
class ModelConfig:
    """One ``[models.NAME]`` table.

    Attributes
    ----------
    name : str
        The model's name in results and tables.
    kind : {"mmocc", "baseline"}
        :class:`mmocc.MultimodalOCC` or :class:`mmocc.detectors.baselines.BaselineOCC`.
    params : dict
        Estimator parameters; ``views`` may hold 0-based view positions.
    """

    name: str
    kind: str
    params: dict[str, Any]

    @classmethod
    def from_dict(cls, name: str, table: Mapping[str, Any]) -> ModelConfig:
        """Validate a ``[models.NAME]`` table against the estimator's parameters.

        Parameters
        ----------
        name : str
            The model name (letters, digits, ``_``, ``.``, ``-``).
        table : mapping
            The table as read from TOML.

        Returns
        -------
        ModelConfig
            The parsed table.

        Raises
        ------
        ConfigError
            For a bad name, a missing or unknown kind, an unknown or
            runner-owned parameter, bad views, or an invalid value.
        """
        where = f"[models.{name}]"
        require(
            bool(_MODEL_NAME.fullmatch(name)),
            f"model name {name!r} may only hold letters, digits, '_', '.' and '-'",
        )
        require(isinstance(table, Mapping), f"{where} must be a table")
        params = dict(table)
        kind = params.pop("kind", None)
        require(kind is not None, f"{where} needs kind = one of {MODEL_KINDS}")
        require(
            kind in MODEL_KINDS,
            f"{where} kind {kind!r} is not valid{did_you_mean(kind, MODEL_KINDS)} "
            f"(choose one of {MODEL_KINDS})",
        )
        views = params.get("views")
        if views is not None:
            views = [views] if isinstance(views, (str, int)) else views
            require(
                isinstance(views, list)
                and bool(views)
                and all(isinstance(v, str) or (is_int(v) and v >= 0) for v in views),
                f"{where} views must be a list of view names or 0-based positions, got {table['views']!r}",
            )
            params["views"] = list(views)
        check_model_params(kind, params, where)
        return cls(name=name, kind=kind, params=params)

    def resolve_views(self, view_names: list[str]) -> list[str] | None:
        """Turn the configured views into dataset view names.

        Parameters
        ----------
        view_names : list of str
            The dataset's views, in order.

        Returns
        -------
        list of str or None
            The views, or None for all of them.

        Raises
        ------
        ConfigError
            For a position out of range or a name not in the dataset.
        """
        return resolve_views(self.params.get("views"), view_names, f"[models.{self.name}]")

    def build(self, view_names: list[str], seed: int, device: str) -> Any:
        """Create the unfitted estimator for one run.

        Parameters
        ----------
        view_names : list of str
            The dataset's views, to resolve view positions.
        seed : int
            The run's ``random_state``.
        device : str
            Torch device of :class:`mmocc.MultimodalOCC` models.

        Returns
        -------
        MultimodalOCC or BaselineOCC
            The estimator.
        """
        params = {**self.params, "views": self.resolve_views(view_names), "random_state": seed}
        if self.kind == "mmocc":
            params["device"] = device
        return estimator_class(self.kind)(**params)

    def to_dict(self) -> dict[str, Any]:
        """Return the table as a JSON-serialisable dict."""
        return {"kind": self.kind, **self.params}
