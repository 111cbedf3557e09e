"""Run records of an experiment: keys, fingerprints, the resume store and tidy rows.

Each run is stored as ``runs/<run id>.npz`` (test scores, labels and ids)
and ``runs/<run id>.json`` (metrics, timings, sizes, threshold, history and
the run's fingerprint). The JSON file is written last, so its presence
marks a finished run; a run is reused only while its fingerprint, a hash of
everything that determines its result, still matches.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmocc.evaluation.config import TIMING_METRICS
from mmocc.evaluation.metrics import METRIC_NAMES
from mmocc.utils.files import atomic_open, write_json
from mmocc.utils.text import safe_name

if TYPE_CHECKING:
    from mmocc.data.dataset import MultiViewDataset
    from mmocc.evaluation.config import ExperimentConfig

RESULT_COLUMNS: tuple[str, ...] = ("normal", "model", "seed", "size", "metric", "value")
"""Columns of ``results.csv``."""


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


def dataset_digest(dataset: MultiViewDataset) -> str:
    """Return the SHA-256 of a dataset's views, labels and ids.

    Parameters
    ----------
    dataset : MultiViewDataset
        The data of an experiment.

    Returns
    -------
    str
        The hex digest.
    """
    digest = hashlib.sha256()
    for name, array in dataset.views.items():
        digest.update(f"{name}|{array.shape}|{array.dtype}|".encode())
        digest.update(np.ascontiguousarray(array).reshape(-1).view(np.uint8).data)
    if dataset.labels is not None:
        digest.update("\0".join(map(str, dataset.labels.tolist())).encode())
    digest.update("\0".join(dataset.ids.tolist()).encode())
    return digest.hexdigest()


def fingerprint(data_digest: str, cfg: ExperimentConfig, key: RunKey) -> str:
    """Hash everything that determines a run's result.

    Parameters
    ----------
    data_digest : str
        :func:`dataset_digest` of the data at the run's size.
    cfg : ExperimentConfig
        The experiment (its split and the run's model table).
    key : RunKey
        The run.

    Returns
    -------
    str
        The hex SHA-256 of the data digest, split, model table, seed and size.
    """
    payload = {
        "data": data_digest,
        "split": cfg.split.to_dict(),
        "model": cfg.models[key.model].to_dict(),
        "seed": key.seed,
        "size": key.size,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def load_run(runs: Path, key: RunKey, fingerprint: str) -> RunRecord | None:
    """Return a finished run with a matching fingerprint, or None.

    Parameters
    ----------
    runs : pathlib.Path
        The ``runs`` folder.
    key : RunKey
        The run.
    fingerprint : str
        The fingerprint the stored run must have.

    Returns
    -------
    RunRecord or None
        The stored run; None when it is missing, unreadable or stale.
    """
    json_path, npz_path = runs / f"{key.run_id}.json", runs / f"{key.run_id}.npz"
    try:
        info = json.loads(json_path.read_text(encoding="utf-8"))
        if info.get("fingerprint") != fingerprint:
            return None
        with np.load(npz_path, allow_pickle=False) as arrays:
            return RunRecord(info, arrays["scores"], arrays["y_test"])
    except (OSError, ValueError, KeyError):
        return None


def save_run(runs: Path, key: RunKey, record: RunRecord, ids: np.ndarray) -> None:
    """Write a run's arrays, then its JSON record (whose presence marks it finished).

    Parameters
    ----------
    runs : pathlib.Path
        The ``runs`` folder.
    key : RunKey
        The run.
    record : RunRecord
        Its result.
    ids : numpy.ndarray
        The test sample ids, stored beside the scores.
    """
    with atomic_open(runs / f"{key.run_id}.npz", "wb") as handle:
        np.savez(handle, scores=record.scores, y_test=record.y_test, ids=ids.astype(str))
    write_json(runs / f"{key.run_id}.json", record.info)


def tidy_rows(records: list[tuple[RunKey, RunRecord]]) -> list[dict[str, Any]]:
    """Return one row per run and metric, the timings included.

    Parameters
    ----------
    records : list of (RunKey, RunRecord)
        The finished runs.

    Returns
    -------
    list of dict
        Rows with the keys :data:`RESULT_COLUMNS`.
    """
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


def write_results_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write tidy rows to ``results.csv``, atomically.

    Parameters
    ----------
    path : pathlib.Path
        The CSV file.
    rows : list of dict
        Rows with the keys :data:`RESULT_COLUMNS`.
    """
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
