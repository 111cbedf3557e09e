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
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from mmocc import __version__
from mmocc.data.dataset import MultiViewDataset
from mmocc.data.sources import describe, find_label, parse_source
from mmocc.data.tasks import OneClassSplit, one_class_split
from mmocc.evaluation.config import TIMING_METRICS, ConfigError, ExperimentConfig, ModelConfig, load_config
from mmocc.evaluation.metrics import METRIC_NAMES, evaluate
from mmocc.utils import atomic_open, safe_name, write_json

RESULT_COLUMNS: tuple[str, ...] = ("normal", "model", "seed", "size", "metric", "value")
"""Columns of ``results.csv``."""

METRIC_LABELS: dict[str, str] = {
    "anomaly_recall": "Recall",
    "p_at_n": "P@n",
    "roc_auc": "ROC AUC",
    "normal_recall": "Normal recall",
    "average_precision": "AP",
    "f1": "F1",
    "fit_seconds": "Fit (s)",
    "score_seconds": "Score (s)",
}
"""Column titles of ``table.md``."""

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


def _dataset_digest(dataset: MultiViewDataset) -> str:
    """SHA-256 of a dataset's views, labels and ids."""
    digest = hashlib.sha256()
    for name, array in dataset.views.items():
        digest.update(f"{name}|{array.shape}|{array.dtype}|".encode())
        digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    digest.update("\0".join(map(str, dataset.labels.tolist())).encode())
    digest.update("\0".join(dataset.ids.tolist()).encode())
    return digest.hexdigest()


def _image_size(dataset: MultiViewDataset) -> int | None:
    """Height of the first image view, or None for vector-only data."""
    for array in dataset.views.values():
        if array.ndim == 4:
            return int(array.shape[2])
    return None


@dataclass(frozen=True)
class RunKey:
    """One run of an experiment.

    Attributes
    ----------
    size : int or None
        Input size (None for vector-only data without a configured size).
    normal : Any
        The normal class, as stored in the dataset.
    seed : int
        Split and model seed.
    model : str
        Model name.
    """

    size: int | None
    normal: Any
    seed: int
    model: str

    @property
    def run_id(self) -> str:
        """str: the run's file-name stem."""
        size = "NA" if self.size is None else str(self.size)
        return f"size{size}__normal-{safe_name(self.normal)}__{self.model}__seed{self.seed}"


@dataclass(frozen=True)
class RunRecord:
    """The stored result of one run.

    Attributes
    ----------
    info : dict
        The JSON record: key fields, ``metrics``, timings, ``threshold``,
        ``n_train``, ``n_test``, ``history``, ``fingerprint``.
    scores : numpy.ndarray
        Test anomaly scores.
    y_test : numpy.ndarray
        Test labels, 0 normal and 1 anomaly.
    """

    info: dict[str, Any]
    scores: np.ndarray
    y_test: np.ndarray


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


def _load_run(runs: Path, key: RunKey, fingerprint: str) -> RunRecord | None:
    """Return a finished run with a matching fingerprint, or None."""
    json_path, npz_path = runs / f"{key.run_id}.json", runs / f"{key.run_id}.npz"
    try:
        info = json.loads(json_path.read_text(encoding="utf-8"))
        if info.get("fingerprint") != fingerprint:
            return None
        with np.load(npz_path, allow_pickle=False) as arrays:
            return RunRecord(info, arrays["scores"], arrays["y_test"])
    except (OSError, ValueError, KeyError):
        return None


def _save_run(runs: Path, key: RunKey, record: RunRecord, ids: np.ndarray) -> None:
    """Write a run's arrays, then its JSON record (whose presence marks it finished)."""
    with atomic_open(runs / f"{key.run_id}.npz", "wb") as handle:
        np.savez(handle, scores=record.scores, y_test=record.y_test, ids=ids.astype(str))
    write_json(runs / f"{key.run_id}.json", record.info)


def _fingerprint(data_digest: str, cfg: ExperimentConfig, key: RunKey) -> str:
    """Hash of everything that determines a run's result."""
    payload = {
        "data": data_digest,
        "split": cfg.split.to_dict(),
        "model": cfg.models[key.model].to_dict(),
        "seed": key.seed,
        "size": key.size,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


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
    from mmocc.detector import resolve_device

    cfg = load_config(config)
    resolve_device(device)
    source_text, datasets = _datasets(cfg, data)
    out = Path(out)
    runs = out / "runs"
    records: list[tuple[RunKey, RunRecord]] = []
    normals_by_size: dict[int | None, list[Any]] = {}
    summary: dict[str, Any] = {}
    n_reused = 0
    bar = None
    try:
        for size, dataset in datasets:
            normals = _normals(cfg, dataset)
            normals_by_size[size] = normals
            summary.setdefault("data", {"source": source_text, **describe(dataset)})
            if bar is None:
                write_json(out / "config.json", _config_json(cfg, summary["data"], device))
                total = len(cfg.data.sizes) * len(normals) * len(cfg.seeds) * len(cfg.models)
                bar = tqdm(total=total, desc="runs", unit="run", disable=None if progress else True)
            digest = _dataset_digest(dataset)
            for normal in normals:
                for seed in cfg.seeds:
                    task = None
                    for model in cfg.models.values():
                        key = RunKey(size, normal, seed, model.name)
                        bar.set_postfix_str(key.run_id, refresh=False)
                        fingerprint = _fingerprint(digest, cfg, key)
                        record = _load_run(runs, key, fingerprint)
                        if record is not None:
                            n_reused += 1
                        else:
                            if task is None:
                                task = _split(dataset, cfg, normal, seed)
                            record = _execute(model, task, dataset.view_names, seed, device)
                            record.info.update(
                                run_id=key.run_id,
                                normal=str(normal),
                                model=model.name,
                                seed=seed,
                                size=size,
                                fingerprint=fingerprint,
                            )
                            _save_run(runs, key, record, task.test.ids)
                        records.append((key, record))
                        bar.update()
    finally:
        if bar is not None:
            bar.close()
    rows = _tidy_rows(records)
    _write_results_csv(out / "results.csv", rows)
    markdown = markdown_report(cfg, rows, normals_by_size, summary["data"])
    with atomic_open(out / "table.md", "w", encoding="utf-8") as handle:
        handle.write(markdown)
    if cfg.plots:
        from mmocc.evaluation.plots import write_plots

        write_plots(out / "plots", records, normals_by_size, list(cfg.models))
    return ExperimentResult(out=out, rows=rows, markdown=markdown, n_runs=len(records), n_reused=n_reused)


def _config_json(cfg: ExperimentConfig, data_summary: dict[str, Any], device: str) -> dict[str, Any]:
    """Return the content of ``config.json``."""
    used = cfg.to_dict()
    used["data"]["source"] = data_summary["source"]
    return {"config": used, "device": device, "data": data_summary, "versions": package_versions()}


def _tidy_rows(records: list[tuple[RunKey, RunRecord]]) -> list[dict[str, Any]]:
    """One row per run and metric (timings included)."""
    rows = []
    for key, record in records:
        values = {**record.info["metrics"], **{name: record.info[name] for name in TIMING_METRICS}}
        for metric in (*METRIC_NAMES, *TIMING_METRICS):
            rows.append(
                {
                    "normal": str(key.normal),
                    "model": key.model,
                    "seed": key.seed,
                    "size": "" if key.size is None else key.size,
                    "metric": metric,
                    "value": float(values[metric]),
                }
            )
    return rows


def _write_results_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def _cell(values: list[float]) -> str:
    """Mean, and sample standard deviation when there are several values."""
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def _row_cells(
    lookup: dict[tuple[Any, ...], float],
    size: Any,
    normals: list[str],
    seeds: list[int],
    models: list[str],
    metrics: tuple[str, ...],
) -> list[str]:
    """Cells of one table row; with several normals, each seed's mean over them."""
    cells = []
    for model in models:
        for metric in metrics:
            per_seed = [
                float(np.mean([lookup[size, normal, model, seed, metric] for normal in normals]))
                for seed in seeds
            ]
            cells.append(_cell(per_seed))
    return cells


def _markdown_table(header: list[str], body: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def markdown_report(
    cfg: ExperimentConfig,
    rows: list[dict[str, Any]],
    normals_by_size: Mapping[int | None, list[Any]],
    data_summary: Mapping[str, Any],
) -> str:
    """Render the results in the layout of the paper's Table I.

    One table per input size: a row per normal class and an Average row,
    a column per model and metric (``cfg.table_metrics``), each cell the mean
    +- sample standard deviation over seeds. The Average row averages over
    classes within each seed first, so its spread is over seeds too. With
    several sizes a last table gives the Average row of each size.

    Parameters
    ----------
    cfg : ExperimentConfig
        The config (models, seeds, metrics, split).
    rows : list of dict
        Tidy results.
    normals_by_size : mapping
        The normal classes of each size, in table order.
    data_summary : mapping
        ``source`` and ``n_samples`` of the data.

    Returns
    -------
    str
        The Markdown document.
    """
    lookup = {
        (str(row["size"]), row["normal"], row["model"], row["seed"], row["metric"]): row["value"]
        for row in rows
    }
    models, seeds, metrics = list(cfg.models), list(cfg.seeds), cfg.table_metrics
    header_cells = [f"{model} {METRIC_LABELS[metric]}" for model in models for metric in metrics]
    split = cfg.split
    protocol = (
        f"normal samples with {split.key} < {split.below} train"
        if split.kind == "metadata"
        else f"{split.kind} split, {split.train_fraction:g} of the normal samples train"
    )
    spread = "mean ± standard deviation over" if len(seeds) > 1 else "one seed:"
    lines = [
        f"# {cfg.name}",
        "",
        *([cfg.description, ""] if cfg.description else []),
        f"Data: `{data_summary['source']}` ({data_summary['n_samples']} samples); {protocol}; "
        f"{spread} seeds {', '.join(map(str, seeds))}. "
        "Recall = anomaly recall at the threshold; Normal recall = fraction of test normals at or below it.",
        "",
    ]
    averages = []
    for size, normals in normals_by_size.items():
        key_size = "" if size is None else str(size)
        names = [str(normal) for normal in normals]
        if len(normals_by_size) > 1:
            lines += [f"## Input size {size}", ""]
        elif size is not None:
            lines += [f"Input size {size}.", ""]
        body = [[name, *_row_cells(lookup, key_size, [name], seeds, models, metrics)] for name in names]
        average = _row_cells(lookup, key_size, names, seeds, models, metrics)
        averages.append([str(size), *average])
        body.append(["**Average**", *average])
        lines += [_markdown_table(["Normal class", *header_cells], body)]
    if len(normals_by_size) > 1:
        lines += [
            "## Average over classes by input size",
            "",
            _markdown_table(["Input size", *header_cells], averages),
        ]
    return "\n".join(lines)
