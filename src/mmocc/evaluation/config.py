"""Experiment configuration: parse and strictly validate a TOML config.

A config names the data, the one-class split, the models and the seeds of
an experiment run by :func:`mmocc.evaluation.runner.run_experiment`. Every table
is checked for unknown keys; a misspelt key is an error that names it and
suggests the closest valid key. The schema::

    name = "paper_table1"            # optional; the title of table.md
    description = "..."              # optional
    seeds = [0, 1, 2]                # each seed draws the split and seeds the models
    plots = true                     # ROC, histogram and loss figures (default true)
    table_metrics = ["anomaly_recall", "p_at_n", "roc_auc", "normal_recall"]

    [data]                           # optional
    source = "turntable:../shared/data/coil-20-proc"  # a SRC string; --data overrides it
    size = 32                        # or sizes = [32, 64, 128] (one experiment per size)
    mode = "L"                       # any other option of the source's loader

    [split]                          # optional
    normal = "all"                   # or a list of labels, each normal in turn
    kind = "random"                  # "random", "group" or "metadata"
    train_fraction = 0.66            # random and group splits
    key = "angle"                    # metadata split: train on normal samples
    below = 240                      #   with metadata[key] < below, test on the rest

    [models.multimodal]              # one table per model; the name is free
    kind = "mmocc"                   # "mmocc" (MultimodalOCC) or "baseline" (BaselineOCC)
    preset = "paper"                 # any other estimator parameter
    views = [0]                      # view names, or 0-based positions in the dataset

The ``[models.NAME]`` tables are parsed by :class:`mmocc.evaluation.models.ModelConfig`
(re-exported here), whose checks the command line shares.

Relative paths (the data source, ``cache_dir``) are resolved against the
current working directory, not the config file's folder, so the configs in
``configs/`` are meant to be run from the repository root.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmocc.evaluation.metrics import METRIC_NAMES
from mmocc.evaluation.models import (
    MODEL_KINDS,
    RUNNER_PARAMS,
    ConfigError,
    ModelConfig,
    check_keys,
    check_model_params,
    resolve_views,
)
from mmocc.evaluation.models import is_int as _is_int
from mmocc.evaluation.models import require as _require
from mmocc.utils.files import read_utf8
from mmocc.utils.text import did_you_mean

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


__all__ = [
    "DEFAULT_TABLE_METRICS",
    "MODEL_KINDS",
    "RUNNER_PARAMS",
    "SPLIT_KINDS",
    "TIMING_METRICS",
    "ConfigError",
    "DataConfig",
    "ExperimentConfig",
    "ModelConfig",
    "SplitConfig",
    "check_keys",
    "check_model_params",
    "config_from_dict",
    "load_config",
    "resolve_views",
]

TIMING_METRICS: tuple[str, ...] = ("fit_seconds", "score_seconds")
"""Timing values recorded for every run beside the metrics of :func:`mmocc.evaluation.metrics.evaluate`."""

SPLIT_KINDS: tuple[str, ...] = ("random", "group", "metadata")
"""Valid ``kind`` values of the ``[split]`` table."""

DEFAULT_TABLE_METRICS: tuple[str, ...] = ("anomaly_recall", "p_at_n", "roc_auc", "normal_recall")
"""Columns per model of ``table.md``: the paper's Recall, P@n and ROC AUC, then normal recall."""

_TOP_KEYS = ("name", "description", "seeds", "plots", "table_metrics", "data", "split", "models")
_SPLIT_KEYS = ("normal", "kind", "train_fraction", "key", "below")


@dataclass(frozen=True)
class DataConfig:
    """The ``[data]`` table.

    Attributes
    ----------
    source : str or None
        The SRC string (see :mod:`mmocc.data.sources`); the caller may override it.
    sizes : tuple of int or None
        Input sizes, one experiment each; ``(None,)`` uses the loader default.
    options : dict
        Other loader options, checked against the loader once the source is known.
    """

    source: str | None = None
    sizes: tuple[int | None, ...] = (None,)
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> DataConfig:
        """Validate a ``[data]`` table.

        Parameters
        ----------
        table : mapping
            The table as read from TOML.

        Returns
        -------
        DataConfig
            The parsed table.

        Raises
        ------
        ConfigError
            For a bad source, size or sizes.
        """
        options = dict(table)
        source = options.pop("source", None)
        _require(source is None or isinstance(source, str), f"[data] source must be a string, got {source!r}")
        _require(not ("size" in options and "sizes" in options), "[data] has both size and sizes; give one")
        if "sizes" in options:
            sizes = options.pop("sizes")
            _require(
                isinstance(sizes, list) and bool(sizes),
                f"[data] sizes must be a non-empty list of integers, got {sizes!r}",
            )
        else:
            sizes = [options.pop("size")] if "size" in options else [None]
        for size in sizes:
            _require(
                size is None or (_is_int(size) and size > 0),
                f"[data] sizes must be positive integers, got {size!r}",
            )
        _require(len(set(sizes)) == len(sizes), f"[data] sizes has duplicates: {sizes}")
        return cls(source=source, sizes=tuple(sizes), options=options)

    def to_dict(self) -> dict[str, Any]:
        """Return the table as a JSON-serialisable dict."""
        return {"source": self.source, "sizes": list(self.sizes), **self.options}


@dataclass(frozen=True)
class SplitConfig:
    """The ``[split]`` table.

    Attributes
    ----------
    normal : "all" or tuple
        The normal classes, each in turn; labels are matched by string form.
    kind : {"random", "group", "metadata"}
        ``"random"`` and ``"group"`` draw ``train_fraction`` of the normal
        samples or groups with the run's seed; ``"metadata"`` trains on the
        normal samples with ``metadata[key] < below`` and tests on the rest.
    train_fraction : float
        Fraction of normal samples or groups that train.
    key : str or None
        Metadata key of a metadata split.
    below : float or None
        Cut of a metadata split.
    """

    normal: str | tuple[Any, ...] = "all"
    kind: str = "random"
    train_fraction: float = 0.66
    key: str | None = None
    below: float | None = None

    @classmethod
    def from_dict(cls, table: Mapping[str, Any]) -> SplitConfig:
        """Validate a ``[split]`` table.

        Parameters
        ----------
        table : mapping
            The table as read from TOML.

        Returns
        -------
        SplitConfig
            The parsed table.

        Raises
        ------
        ConfigError
            For an unknown key or an invalid value.
        """
        check_keys(table, _SPLIT_KEYS, "[split]")
        normal = table.get("normal", "all")
        if normal != "all":
            normal = tuple(normal) if isinstance(normal, list) else (normal,)
            _require(bool(normal), "[split] normal must be 'all' or a non-empty list of labels")
            _require(
                all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in normal),
                f"[split] normal labels must be strings or integers, got {list(normal)!r}",
            )
        kind = table.get("kind", "random")
        _require(
            kind in SPLIT_KINDS,
            f"[split] kind {kind!r} is not valid{did_you_mean(kind, SPLIT_KINDS)} "
            f"(choose one of {SPLIT_KINDS})",
        )
        fraction = table.get("train_fraction", 0.66)
        _require(
            isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 < fraction < 1,
            f"[split] train_fraction must be a number in (0, 1), got {fraction!r}",
        )
        key, below = table.get("key"), table.get("below")
        if kind == "metadata":
            _require(isinstance(key, str) and bool(key), "[split] kind = 'metadata' needs key = \"NAME\"")
            _require(
                isinstance(below, (int, float)) and not isinstance(below, bool) and math.isfinite(below),
                "[split] kind = 'metadata' needs a number below = VALUE",
            )
            _require(
                "train_fraction" not in table, "[split] train_fraction is not used with kind = 'metadata'"
            )
        else:
            for name in ("key", "below"):
                _require(name not in table, f"[split] {name} is only used with kind = 'metadata'")
        return cls(normal=normal, kind=kind, train_fraction=float(fraction), key=key, below=below)

    def to_dict(self) -> dict[str, Any]:
        """Return the table as a JSON-serialisable dict."""
        out: dict[str, Any] = {
            "normal": self.normal if self.normal == "all" else list(self.normal),
            "kind": self.kind,
        }
        if self.kind == "metadata":
            out.update(key=self.key, below=self.below)
        else:
            out["train_fraction"] = self.train_fraction
        return out


@dataclass(frozen=True)
class ExperimentConfig:
    """A validated experiment configuration.

    Attributes
    ----------
    name : str
        Title of the experiment.
    description : str
        Free text.
    seeds : tuple of int
        One run per seed, task, model and size.
    plots : bool
        Write PNG figures.
    table_metrics : tuple of str
        Metric columns per model in ``table.md``.
    data : DataConfig
        The ``[data]`` table.
    split : SplitConfig
        The ``[split]`` table.
    models : dict of str to ModelConfig
        The models, in config order.
    """

    name: str
    description: str
    seeds: tuple[int, ...]
    plots: bool
    table_metrics: tuple[str, ...]
    data: DataConfig
    split: SplitConfig
    models: dict[str, ModelConfig]

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a JSON-serialisable dict (the form :func:`load_config` reads)."""
        return {
            "name": self.name,
            "description": self.description,
            "seeds": list(self.seeds),
            "plots": self.plots,
            "table_metrics": list(self.table_metrics),
            "data": self.data.to_dict(),
            "split": self.split.to_dict(),
            "models": {name: model.to_dict() for name, model in self.models.items()},
        }


def config_from_dict(raw: Mapping[str, Any], name: str = "experiment") -> ExperimentConfig:
    """Validate a config given as a dict (the TOML document).

    Parameters
    ----------
    raw : mapping
        The config, as :func:`tomllib.load` returns it.
    name : str, default "experiment"
        Title used when the config has no ``name``.

    Returns
    -------
    ExperimentConfig
        The validated config.

    Raises
    ------
    ConfigError
        For an unknown key (with a suggestion) or an invalid value.
    """
    _require(isinstance(raw, Mapping), f"a config must be a table, got {type(raw).__name__}")
    check_keys(raw, _TOP_KEYS, "the top level")
    for section in ("data", "split", "models"):
        _require(isinstance(raw.get(section, {}), Mapping), f"[{section}] must be a table")
    seeds = raw.get("seeds", [0])
    _require(
        isinstance(seeds, list) and bool(seeds) and all(_is_int(s) and s >= 0 for s in seeds),
        f"seeds must be a non-empty list of non-negative integers, got {seeds!r}",
    )
    _require(len(set(seeds)) == len(seeds), f"seeds has duplicates: {seeds}")
    plots = raw.get("plots", True)
    _require(isinstance(plots, bool), f"plots must be true or false, got {plots!r}")
    valid_metrics = (*METRIC_NAMES, *TIMING_METRICS)
    table_metrics = raw.get("table_metrics", list(DEFAULT_TABLE_METRICS))
    _require(
        isinstance(table_metrics, list) and bool(table_metrics),
        f"table_metrics must be a non-empty list, got {table_metrics!r}",
    )
    for metric in table_metrics:
        _require(
            metric in valid_metrics,
            f"table_metrics: unknown metric {metric!r}{did_you_mean(metric, valid_metrics)} "
            f"(valid: {', '.join(valid_metrics)})",
        )
    models_table = raw.get("models", {})
    _require(bool(models_table), "the config has no models: add at least one [models.NAME] table")
    title = raw.get("name", name)
    description = raw.get("description", "")
    for key, value in (("name", title), ("description", description)):
        _require(isinstance(value, str), f"{key} must be a string, got {value!r}")
    return ExperimentConfig(
        name=title,
        description=description,
        seeds=tuple(seeds),
        plots=plots,
        table_metrics=tuple(table_metrics),
        data=DataConfig.from_dict(raw.get("data", {})),
        split=SplitConfig.from_dict(raw.get("split", {})),
        models={key: ModelConfig.from_dict(key, value) for key, value in models_table.items()},
    )


def load_config(config: str | os.PathLike[str] | Mapping[str, Any] | ExperimentConfig) -> ExperimentConfig:
    """Read and validate an experiment config.

    Parameters
    ----------
    config : path-like, mapping or ExperimentConfig
        A TOML file, the equivalent dict, or an already validated config.

    Returns
    -------
    ExperimentConfig
        The validated config.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ConfigError
        For a file that is not UTF-8 (naming the first bad byte), invalid
        TOML, an unknown key or an invalid value; the message names the file.

    Examples
    --------
    >>> cfg = load_config({"seeds": [0], "models": {"multi": {"kind": "mmocc", "preset": "paper"}}})
    >>> cfg.seeds, list(cfg.models)
    ((0,), ['multi'])
    """
    if isinstance(config, ExperimentConfig):
        return config
    if isinstance(config, Mapping):
        return config_from_dict(config)
    path = Path(config)
    if not path.is_file():
        raise FileNotFoundError(f"config file {str(path)!r} does not exist")
    try:
        raw = tomllib.loads(read_utf8(path))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except ValueError as exc:  # not UTF-8; the message names the file and the byte
        raise ConfigError(str(exc)) from None
    try:
        return config_from_dict(raw, name=path.stem)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
