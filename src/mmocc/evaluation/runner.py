"""The experiment runner: config -> tasks x models x seeds (x sizes) -> an output folder.

:func:`run_experiment` reproduces the protocol of Laakom et al. (2023) on any
multi-view dataset. For every input size, normal class, seed and model it
draws the one-class split (the same split for every model of that seed),
fits the model on the normal training samples, scores the test samples and
computes :func:`mmocc.evaluation.metrics.evaluate`. Each run is written on its own, so
an interrupted experiment resumes where it stopped. The output folder holds:

``runs/<run id>.json`` and ``runs/<run id>.npz``
    One run: metrics, fit and score seconds, sizes of the train and test
    sets, threshold, training history; test scores, labels and ids.
``results.csv``
    Tidy results, one row per (normal, model, seed, size, metric), with the
    timings as the metrics ``fit_seconds`` and ``score_seconds``.
``config.json``
    The config actually used, the data summary and package versions.
``table.md``
    The paper's Table I layout: rows = normal class + Average, columns =
    model x metric, mean +- standard deviation over seeds.
``plots/``
    ROC curves per task, score histograms and training-loss curves per model.

Seeds: the run with seed ``s`` draws its split with seed ``s`` and gets
``random_state=s``, so the spread over seeds covers both the split and the
initialisation.

Run records, fingerprints and the resume store are in
:mod:`mmocc.evaluation.runs`, the Markdown table in
:mod:`mmocc.evaluation.report` and the figures in :mod:`mmocc.evaluation.plots`.
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mmocc import __version__
from mmocc.data.dataset import MultiViewDataset
from mmocc.data.sources import describe, find_label, parse_source
from mmocc.data.tasks import OneClassSplit, one_class_split
from mmocc.evaluation.config import ConfigError, ExperimentConfig, ModelConfig, load_config
from mmocc.evaluation.metrics import evaluate
from mmocc.evaluation.report import METRIC_LABELS, markdown_report
from mmocc.evaluation.runs import (
    RESULT_COLUMNS,
    RunKey,
    RunRecord,
    dataset_digest,
    fingerprint,
    load_run,
    save_run,
    tidy_rows,
    write_results_csv,
)
from mmocc.utils import atomic_open, write_json

__all__ = [
    "METRIC_LABELS",
    "RESULT_COLUMNS",
    "ExperimentResult",
    "RunKey",
    "RunRecord",
    "markdown_report",
    "package_versions",
    "run_experiment",
]

_PACKAGES = {"torch": "torch", "numpy": "numpy", "sklearn": "scikit-learn", "pyod": "pyod"}


def package_versions() -> dict[str, str | None]:
    """Versions of mmocc, Python and the numerical packages it uses.

    Returns
    -------
    dict of str to str or None
        ``mmocc``, ``python``, ``torch``, ``numpy``, ``sklearn`` and ``pyod``
        (None when a package is not installed).
    """
    versions: dict[str, str | None] = {"mmocc": __version__, "python": platform.python_version()}
    for key, distribution in _PACKAGES.items():
        try:
            versions[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[key] = None
    return versions


def _image_size(dataset: MultiViewDataset) -> int | None:
    """Height of the first image view, or None for vector-only data."""
    for array in dataset.views.values():
        if array.ndim == 4:
            return int(array.shape[2])
    return None


@dataclass(frozen=True)
class ExperimentResult:
    """What :func:`run_experiment` returns.

    Attributes
    ----------
    out : pathlib.Path
        The output folder.
    rows : list of dict
        The tidy results (keys :data:`RESULT_COLUMNS`), as in ``results.csv``.
    markdown : str
        The content of ``table.md``.
    n_runs : int
        Runs in the experiment.
    n_reused : int
        Runs found finished in ``out`` and not recomputed.
    """

    out: Path
    rows: list[dict[str, Any]]
    markdown: str
    n_runs: int
    n_reused: int

    def values(self, model: str, metric: str, normal: Any = None) -> np.ndarray:
        """Return the values of one model and metric, optionally for one normal class.

        Parameters
        ----------
        model : str
            Model name.
        metric : str
            Metric name.
        normal : label, optional
            Restrict to one normal class (compared by string form).

        Returns
        -------
        numpy.ndarray
            The values over seeds (and classes and sizes when not restricted).
        """
        return np.asarray(
            [
                row["value"]
                for row in self.rows
                if row["model"] == model
                and row["metric"] == metric
                and (normal is None or row["normal"] == str(normal))
            ],
            dtype=np.float64,
        )


def _split(dataset: MultiViewDataset, cfg: ExperimentConfig, normal: Any, seed: int) -> OneClassSplit:
    """Draw the one-class task of a normal class and seed."""
    split = cfg.split
    if split.kind != "metadata":
        return one_class_split(
            dataset, normal, train_fraction=split.train_fraction, split=split.kind, seed=seed
        )
    if split.key not in dataset.metadata:
        raise ConfigError(
            f"[split] key {split.key!r} is not in the dataset's metadata "
            f"(metadata keys: {sorted(dataset.metadata) or 'none'})"
        )
    assert split.below is not None  # SplitConfig requires it for kind = "metadata"
    values = np.asarray(dataset.metadata[split.key], dtype=np.float64)
    return one_class_split(dataset, normal, train_mask=values < split.below)


def _execute(
    model: ModelConfig, task: OneClassSplit, view_names: list[str], seed: int, device: str
) -> RunRecord:
    """Fit one model on a task and score its test set."""
    estimator = model.build(view_names, seed, device)
    started = time.perf_counter()
    estimator.fit(task.train)
    fitted = time.perf_counter()
    scores = estimator.decision_function(task.test)
    scored = time.perf_counter()
    info = {
        "metrics": evaluate(task.y_test, scores, estimator.threshold_),
        "fit_seconds": fitted - started,
        "score_seconds": scored - fitted,
        "threshold": float(estimator.threshold_),
        "n_train": len(task.train),
        "n_test": len(task.test),
        "n_test_anomalies": int(task.y_test.sum()),
        "history": list(getattr(estimator, "history_", [])),
    }
    return RunRecord(info, np.asarray(scores, dtype=np.float64), np.asarray(task.y_test, dtype=np.int64))


def _datasets(cfg: ExperimentConfig, data: str | MultiViewDataset | None) -> tuple[str, Iterator[Any]]:
    """Check the data options and return the source's name and a lazy (size, dataset) iterator."""
    if isinstance(data, MultiViewDataset):
        if len(cfg.data.sizes) > 1:
            raise ConfigError(
                "[data] sizes needs a data source to load at each size, not an in-memory dataset"
            )
        if cfg.data.options or cfg.data.sizes != (None,):
            warnings.warn(
                "[data] loader options are ignored for an in-memory dataset", UserWarning, stacklevel=3
            )
        dataset = data
        return "in-memory dataset", iter([(_image_size(dataset), dataset)])
    text = data if data is not None else cfg.data.source
    if text is None:
        raise ConfigError("no data source: give one on the command line (--data) or as [data] source")
    source = parse_source(text)
    sized = {"size": 0} if cfg.data.sizes != (None,) else {}
    try:
        source.check_options({**cfg.data.options, **sized})
    except ValueError as exc:
        raise ConfigError(f"[data]: {exc}") from None

    def load() -> Iterator[tuple[int | None, MultiViewDataset]]:
        for size in cfg.data.sizes:
            options = dict(cfg.data.options) if size is None else {**cfg.data.options, "size": size}
            dataset = source.load(**options)
            yield (size if size is not None else _image_size(dataset)), dataset

    return text, load()


def _normals(cfg: ExperimentConfig, dataset: MultiViewDataset) -> list[Any]:
    """Return the normal classes of the experiment, as stored in the dataset."""
    if cfg.split.normal == "all":
        return dataset.classes.tolist()
    try:
        return [find_label(dataset, label) for label in cfg.split.normal]
    except ValueError as exc:
        raise ConfigError(f"[split] normal: {exc}") from None


def _config_json(cfg: ExperimentConfig, data_summary: dict[str, Any], device: str) -> dict[str, Any]:
    """Return the content of ``config.json``."""
    used = cfg.to_dict()
    used["data"]["source"] = data_summary["source"]
    return {"config": used, "device": device, "data": data_summary, "versions": package_versions()}


@dataclass
class _Experiment:
    """What an experiment has done so far, and its progress bar."""

    cfg: ExperimentConfig
    out: Path
    device: str
    progress: bool
    source: str
    records: list[tuple[RunKey, RunRecord]] = field(default_factory=list)
    normals_by_size: dict[int | None, list[Any]] = field(default_factory=dict)
    data_summary: dict[str, Any] | None = None
    n_reused: int = 0
    bar: Any = None

    def start(self, dataset: MultiViewDataset, n_normals: int) -> None:
        """On the first dataset: summarise the data, write ``config.json`` and open the bar."""
        if self.data_summary is None:
            self.data_summary = {"source": self.source, **describe(dataset)}
        if self.bar is None:
            write_json(self.out / "config.json", _config_json(self.cfg, self.data_summary, self.device))
            cfg = self.cfg
            total = len(cfg.data.sizes) * n_normals * len(cfg.seeds) * len(cfg.models)
            self.bar = tqdm(total=total, desc="runs", unit="run", disable=None if self.progress else True)

    def close(self) -> None:
        """Close the progress bar."""
        if self.bar is not None:
            self.bar.close()


def _run_task(
    state: _Experiment, size: int | None, dataset: MultiViewDataset, digest: str, normal: Any, seed: int
) -> None:
    """Run (or reuse) every model on the task of one normal class and seed."""
    cfg, runs = state.cfg, state.out / "runs"
    task = None
    for model in cfg.models.values():
        key = RunKey(size, normal, seed, model.name)
        state.bar.set_postfix_str(key.run_id, refresh=False)
        run_fingerprint = fingerprint(digest, cfg, key)
        record = load_run(runs, key, run_fingerprint)
        if record is not None:
            state.n_reused += 1
        else:
            if task is None:
                task = _split(dataset, cfg, normal, seed)
            record = _execute(model, task, dataset.view_names, seed, state.device)
            record.info.update(
                run_id=key.run_id,
                normal=str(normal),
                model=model.name,
                seed=seed,
                size=size,
                fingerprint=run_fingerprint,
            )
            save_run(runs, key, record, task.test.ids)
        state.records.append((key, record))
        state.bar.update()


def _run_dataset(state: _Experiment, size: int | None, dataset: MultiViewDataset) -> None:
    """Run every task, seed and model on the dataset of one input size."""
    normals = _normals(state.cfg, dataset)
    state.normals_by_size[size] = normals
    state.start(dataset, len(normals))
    digest = dataset_digest(dataset)
    for normal in normals:
        for seed in state.cfg.seeds:
            _run_task(state, size, dataset, digest, normal, seed)


def _write_outputs(state: _Experiment) -> ExperimentResult:
    """Write ``results.csv``, ``table.md`` and the plots; return the result."""
    cfg, out = state.cfg, state.out
    assert state.data_summary is not None
    rows = tidy_rows(state.records)
    write_results_csv(out / "results.csv", rows)
    markdown = markdown_report(cfg, rows, state.normals_by_size, state.data_summary)
    with atomic_open(out / "table.md", "w", encoding="utf-8") as handle:
        handle.write(markdown)
    if cfg.plots:
        from mmocc.evaluation.plots import write_plots

        write_plots(out / "plots", state.records, state.normals_by_size, list(cfg.models))
    return ExperimentResult(
        out=out, rows=rows, markdown=markdown, n_runs=len(state.records), n_reused=state.n_reused
    )


def run_experiment(
    config: str | os.PathLike[str] | Mapping[str, Any] | ExperimentConfig,
    data: str | MultiViewDataset | None,
    out: str | os.PathLike[str],
    *,
    progress: bool = True,
    device: str = "auto",
) -> ExperimentResult:
    """Run an experiment and write its artefacts to ``out``.

    Parameters
    ----------
    config : path-like, mapping or ExperimentConfig
        A TOML config file, the equivalent dict, or a validated config (see
        :mod:`mmocc.evaluation.config` for the schema).
    data : str, MultiViewDataset or None
        A SRC string (see :mod:`mmocc.data.sources`) overriding ``[data] source``,
        an in-memory dataset (then ``[data]`` loader options are ignored), or
        None to use ``[data] source``.
    out : path-like
        Output folder; finished runs found there are reused, not recomputed.
    progress : bool, default True
        Show a progress bar over runs (only on a terminal).
    device : str, default "auto"
        Torch device of the :class:`mmocc.MultimodalOCC` models.

    Returns
    -------
    ExperimentResult
        The tidy results and the Markdown table.

    Raises
    ------
    ConfigError
        For an invalid config, data options the source does not take, a
        normal label not in the data, or a view out of range.
    FileNotFoundError
        If the config or the data source does not exist.
    ValueError
        For an invalid device or data the models reject.
    mmocc.evaluation.plots.MatplotlibMissingError
        If ``plots`` is on and matplotlib is not installed (checked before
        any run).

    Examples
    --------
    >>> cfg = {
    ...     "seeds": [0],
    ...     "split": {"normal": [0]},
    ...     "models": {"knn": {"kind": "baseline", "detector": "knn"}},
    ... }
    >>> result = run_experiment(cfg, "synthetic:n_per_class=20,n_classes=2,size=8",
    ...                         "/tmp/mmocc-doctest", progress=False)  # doctest: +SKIP
    >>> result.n_runs  # doctest: +SKIP
    1
    """
    from mmocc.model.device import resolve_device

    cfg = load_config(config)
    resolve_device(device)
    if cfg.plots:
        from mmocc.evaluation.plots import require_matplotlib

        require_matplotlib()
    source_text, datasets = _datasets(cfg, data)
    state = _Experiment(cfg, Path(out), device, progress, source_text)
    try:
        for size, dataset in datasets:
            _run_dataset(state, size, dataset)
    finally:
        state.close()
    return _write_outputs(state)
