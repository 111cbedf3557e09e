"""The experiment runner: config -> tasks x models x seeds (x sizes) -> an output folder.

:func:`run_experiment` reproduces the protocol of Laakom et al. (2023) on any
multi-view dataset. For every input size, normal class, seed and model it
draws the one-class split (the same split for every model of that seed),
fits the model on the normal training samples, scores the test samples and
computes :func:`mmocc.evaluation.metrics.evaluate`. Each run is written on its own, so
an interrupted experiment resumes where it stopped: before running, each input size
reports how many of its runs are reused and how many are new, and the progress bar
and time estimates count the new runs only. The output folder holds:

``runs/<run id>.json`` and ``runs/<run id>.npz``
    One run: metrics, fit and score seconds, sizes of the train and test
    sets, threshold, training history; test scores, labels and ids.
``results.csv``
    Tidy results, one row per (normal, model, seed, size, metric), with the
    timings as the metrics ``fit_seconds`` and ``score_seconds``.
``config.json``
    The config actually used, the data summary and package versions.
``table.md``
    The paper's Table I, one table per metric: rows = normal class +
    Average, columns = models, mean +- standard deviation over seeds; the
    P@n table adds the share of anomalies in the test sets, the P@n of a
    random ranking.
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from itertools import groupby
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
from mmocc.utils.files import atomic_open, write_json

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


def _duration(seconds: float) -> str:
    """Format a rough duration: seconds, minutes or hours."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _count(n: int, noun: str) -> str:
    """Return ``n`` and the noun, plural unless ``n`` is 1."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


@dataclass(frozen=True)
class _Run:
    """A planned run: its key, fingerprint, and its stored record when it can be reused."""

    key: RunKey
    fingerprint: str
    reused: RunRecord | None


def _plan(cfg: ExperimentConfig, runs: Path, size: int | None, normals: list[Any], digest: str) -> list[_Run]:
    """List the runs of one input size in order (normal, seed, model), loading the reusable ones."""
    plan = []
    for normal in normals:
        for seed in cfg.seeds:
            for model in cfg.models:
                key = RunKey(size, normal, seed, model)
                run_fingerprint = fingerprint(digest, cfg, key)
                plan.append(_Run(key, run_fingerprint, load_run(runs, key, run_fingerprint)))
    return plan


def _seconds(record: RunRecord) -> float:
    """Return the fit plus score seconds of a run."""
    return float(record.info["fit_seconds"] + record.info["score_seconds"])


def _plan_message(runs: str, n_reused: int, n_new: int, where: str) -> str:
    """Say how many of the runs are reused from ``where`` and how many are new."""
    if not n_reused:
        return f"{runs}, all new"
    if not n_new:
        return f"{runs}, all reused from {where}"
    return f"{runs}: {n_reused} reused from {where}, {n_new} new"


@dataclass
class _Progress:
    """Run counts, time estimates and the progress bar; the bar counts and times new runs only.

    Reused runs take no time, so they are left out of the bar: its rate and
    ETA come from the new runs alone. The bar's total is every run less the
    reused ones found so far (sizes not yet loaded count as new).
    """

    show_bar: bool
    notify: Callable[[str], None]
    n_total: int = 0
    n_reused: int = 0
    several_sizes: bool = False
    timings: dict[tuple[int | None, str], list[float]] = field(default_factory=dict)
    pending: set[RunKey] = field(default_factory=set)
    estimated: bool = True
    bar: Any = None

    def say(self, message: str) -> None:
        """Pass a message to ``notify`` without breaking the progress bar."""
        with tqdm.external_write_mode():
            self.notify(message)

    def plan(self, where: str, plan: list[_Run]) -> None:
        """Announce the runs of one input size (total, reused, new, time estimate) and size the bar."""
        reused = {run.key: run.reused for run in plan if run.reused is not None}
        for key, record in reused.items():
            self._time(key, record)
        self.n_reused += len(reused)
        self.pending = {run.key for run in plan if run.reused is None}
        self.estimated = not self.pending
        where_size = f" at input size {plan[0].key.size}" if self.several_sizes else ""
        message = _plan_message(_count(len(plan), "run") + where_size, len(reused), len(self.pending), where)
        estimate = self._estimate()
        self.say(message + (f"; about {estimate} for them (timed by the reused runs)" if estimate else ""))
        if self.bar is None:
            disable = None if self.show_bar else True
            self.bar = tqdm(total=self.n_total - self.n_reused, desc="new runs", unit="run", disable=disable)
        else:
            self.bar.total -= len(reused)
            self.bar.refresh()

    def started(self, key: RunKey) -> None:
        """Show the run about to be computed."""
        self.bar.set_postfix_str(key.run_id)

    def finished(self, key: RunKey, record: RunRecord) -> None:
        """Count a new run and, once every model has been timed, announce the time left."""
        self.bar.update()
        self._time(key, record)
        self.pending.discard(key)
        estimate = self._estimate()
        if estimate:
            self.say(f"about {estimate} left for the {_count(len(self.pending), 'remaining new run')}")

    def _time(self, key: RunKey, record: RunRecord) -> None:
        """Record the seconds a run took, for the estimates of its size and model."""
        self.timings.setdefault((key.size, key.model), []).append(_seconds(record))

    def _estimate(self) -> str | None:
        """Return the time the pending runs will take, once per size, when every pending model is timed."""
        if (
            self.estimated
            or not self.pending
            or any((key.size, key.model) not in self.timings for key in self.pending)
        ):
            return None
        self.estimated = True
        return _duration(sum(float(np.mean(self.timings[key.size, key.model])) for key in self.pending))

    def close(self) -> None:
        """Close the progress bar."""
        if self.bar is not None:
            self.bar.close()


@dataclass
class _Experiment:
    """What an experiment has done so far, and its progress."""

    cfg: ExperimentConfig
    out: Path
    device: str
    source: str
    progress: _Progress
    records: list[tuple[RunKey, RunRecord]] = field(default_factory=list)
    normals_by_size: dict[int | None, list[Any]] = field(default_factory=dict)
    data_summary: dict[str, Any] | None = None

    def start(self, dataset: MultiViewDataset, n_normals: int) -> None:
        """On the first dataset: summarise the data, write ``config.json`` and count the runs."""
        if self.data_summary is None:
            self.data_summary = {"source": self.source, **describe(dataset)}
            write_json(self.out / "config.json", _config_json(self.cfg, self.data_summary, self.device))
            cfg = self.cfg
            self.progress.n_total = len(cfg.data.sizes) * n_normals * len(cfg.seeds) * len(cfg.models)
            self.progress.several_sizes = len(cfg.data.sizes) > 1
            if self.progress.several_sizes:
                self.progress.say(f"{self.progress.n_total} runs over {len(cfg.data.sizes)} input sizes")


def _run_task(state: _Experiment, dataset: MultiViewDataset, runs: Iterable[_Run]) -> None:
    """Run (or reuse) every model on the task of one normal class and seed."""
    cfg, folder = state.cfg, state.out / "runs"
    task = None
    for run in runs:
        key, record = run.key, run.reused
        if record is None:
            state.progress.started(key)
            if task is None:
                task = _split(dataset, cfg, key.normal, key.seed)
            record = _execute(cfg.models[key.model], task, dataset.view_names, key.seed, state.device)
            record.info.update(
                run_id=key.run_id,
                normal=str(key.normal),
                model=key.model,
                seed=key.seed,
                size=key.size,
                fingerprint=run.fingerprint,
            )
            save_run(folder, key, record, task.test.ids)
            state.progress.finished(key, record)
        state.records.append((key, record))


def _run_dataset(state: _Experiment, size: int | None, dataset: MultiViewDataset) -> None:
    """Run every task, seed and model on the dataset of one input size."""
    normals = _normals(state.cfg, dataset)
    state.normals_by_size[size] = normals
    state.start(dataset, len(normals))
    plan = _plan(state.cfg, state.out / "runs", size, normals, dataset_digest(dataset))
    state.progress.plan(str(state.out), plan)
    for _, runs in groupby(plan, key=lambda run: (run.key.normal, run.key.seed)):
        _run_task(state, dataset, runs)


def _anomaly_shares(records: list[tuple[RunKey, RunRecord]]) -> dict[tuple[int | None, str], float]:
    """Return the share of anomalies in the test set of each (size, normal class), averaged over runs."""
    shares: dict[tuple[int | None, str], list[float]] = {}
    for key, record in records:
        shares.setdefault((key.size, str(key.normal)), []).append(float(np.mean(record.y_test)))
    return {task: float(np.mean(values)) for task, values in shares.items()}


def _write_outputs(state: _Experiment) -> ExperimentResult:
    """Write ``results.csv``, ``table.md`` and the plots; return the result."""
    cfg, out = state.cfg, state.out
    assert state.data_summary is not None
    rows = tidy_rows(state.records)
    write_results_csv(out / "results.csv", rows)
    markdown = markdown_report(
        cfg, rows, state.normals_by_size, state.data_summary, _anomaly_shares(state.records)
    )
    with atomic_open(out / "table.md", "w", encoding="utf-8") as handle:
        handle.write(markdown)
    if cfg.plots:
        from mmocc.evaluation.plots import write_plots

        write_plots(out / "plots", state.records, state.normals_by_size, list(cfg.models))
    return ExperimentResult(
        out=out, rows=rows, markdown=markdown, n_runs=len(state.records), n_reused=state.progress.n_reused
    )


def run_experiment(
    config: str | os.PathLike[str] | Mapping[str, Any] | ExperimentConfig,
    data: str | MultiViewDataset | None,
    out: str | os.PathLike[str],
    *,
    progress: bool = True,
    device: str = "auto",
    notify: Callable[[str], None] | None = None,
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
        Show a progress bar over the new runs (only on a terminal); its rate
        and ETA leave reused runs out.
    device : str, default "auto"
        Torch device of the :class:`mmocc.MultimodalOCC` models.
    notify : callable, optional
        Called with one-line messages: at each input size, the number of
        runs, how many are reused from ``out`` and how many are new, and a
        rough time estimate for the new runs once every model has been timed
        (by reused runs, else by the first new runs).

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
    tracker = _Progress(progress, notify or (lambda message: None))
    state = _Experiment(cfg, Path(out), device, source_text, tracker)
    try:
        for size, dataset in datasets:
            _run_dataset(state, size, dataset)
    finally:
        tracker.close()
    return _write_outputs(state)
