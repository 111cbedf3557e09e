"""Regenerate benchmarks/CALIBRATION.md: normal recall at τ under a pose shift, by threshold source.

Usage (from the repository root)::

    python benchmarks/calibration.py                 # full run, 2 processes, rewrites CALIBRATION.md
    python benchmarks/calibration.py --report-only   # records and CALIBRATION.md from finished runs
    python benchmarks/calibration.py --smoke         # tiny synthetic run, records and report in a temp folder

Protocols: ``coil_unseen`` and ``coil_random`` of ``run_benchmarks.py``, loaded and
split exactly as there (every class in turn is normal). For each task and seed the
default preset of :class:`mmocc.MultimodalOCC` is compared with three sources of
its threshold τ, on the same samples:

(a) ``threshold="train"``: the quantile of the leave-one-out training scores;
(b) ``threshold="holdout"``: fitted on 1 - ``validation_fraction`` of the training
    normals, τ from the scores of the rest;
(c) ``calibrate()``: the model of (a), then :meth:`~mmocc.MultimodalOCC.calibrate`
    on a share of the test normals (drawn with ``default_rng((seed, class index))``).

The calibration normals of (c) are removed from the test set of all three, so every
variant is evaluated on identical samples that no variant has seen. Runs are
resumable under ``benchmarks/out/calibration/``; one torch thread per process.
Their summaries are the records ``benchmarks/results/calibration.json``, from
which ``benchmarks/render.py`` writes CALIBRATION.md (template
``benchmarks/templates/calibration.md``, which holds the hand-written reading too).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import DATA, MARKDOWN, RESULTS, ROOT, command_line, publish, run_record
from run_benchmarks import PROTOCOLS

from mmocc.utils.files import write_json

OUT = ROOT / "benchmarks" / "out" / "calibration"
SEEDS = [0, 1, 2]
CALIBRATION_FRACTION = 0.2
"""Share of each task's test normals given to :meth:`~mmocc.MultimodalOCC.calibrate` in (c)."""
VALIDATION_FRACTION = 0.2
"""``validation_fraction`` of (b)."""
CONTAMINATION = 0.05
"""``contamination`` of every model (the default): τ is the 95th percentile of its reference scores."""
VARIANTS = ("train", "holdout", "calibrate")
"""The threshold sources (a), (b) and (c)."""
METRICS = ("normal_recall", "anomaly_recall", "f1", "roc_auc")
"""The metrics of :func:`mmocc.metrics.evaluate` the report shows, in column order."""
FULL = ("coil_unseen", "coil_random")
"""The protocols of ``run_benchmarks.PROTOCOLS`` run here, the shifted one first."""
SMOKE_SOURCE = "synthetic:n_per_class=30,n_classes=3,size=16,seed=0"
SMOKE: dict[str, dict[str, Any]] = {
    "synthetic_yaw": {
        "title": "Synthetic bodies (30 per class, 16 px), train on normal pairs with yaw < 1°",
        "source": SMOKE_SOURCE,
        "data": {},
        "split": {"normal": "all", "kind": "metadata", "key": "yaw", "below": 1.0},
    },
    "synthetic_random": {
        "title": "Synthetic bodies (30 per class, 16 px), random 66% split",
        "source": SMOKE_SOURCE,
        "data": {},
        "split": {"normal": "all", "kind": "random", "train_fraction": 0.66},
    },
}
"""The protocols of ``--smoke``: a yaw shift and a random split of a tiny synthetic set."""
SMOKE_PARAMS = {"epochs": 2}
"""Estimator parameters of ``--smoke`` on top of the default preset (a check of the script only)."""


def protocols(smoke: bool) -> dict[str, dict[str, Any]]:
    """Return the protocols of a run, by name.

    Parameters
    ----------
    smoke : bool
        The tiny synthetic protocols instead of the COIL-20 ones.

    Returns
    -------
    dict of str to dict
        ``title``, ``source``, ``data`` (loader options) and ``split`` of each protocol.
    """
    return SMOKE if smoke else {name: PROTOCOLS[name] for name in FULL}


@functools.lru_cache(maxsize=2)
def _load(source: str, options: str) -> Any:
    from mmocc.data.sources import load_source

    return load_source(source, **json.loads(options))


def load_data(spec: Mapping[str, Any]) -> Any:
    """Load a protocol's dataset (``source`` with the loader options ``data``), cached per process."""
    return _load(spec["source"], json.dumps(spec["data"], sort_keys=True))


def make_task(dataset: Any, split: Mapping[str, Any], normal: Any, seed: int) -> Any:
    """Draw a one-class task as :func:`mmocc.evaluation.runner.run_experiment` does for ``[split]``.

    Parameters
    ----------
    dataset : MultiViewDataset
        The samples.
    split : mapping
        The protocol's split: ``kind = "metadata"`` trains on the normals whose
        metadata ``key`` is below ``below``; otherwise ``kind`` and ``train_fraction``
        of :func:`mmocc.one_class_split`.
    normal : label
        The normal class.
    seed : int
        Seed of a random split (a metadata split does not depend on it).

    Returns
    -------
    OneClassSplit
        The task.
    """
    from mmocc import one_class_split

    if split["kind"] == "metadata":
        values = np.asarray(dataset.metadata[split["key"]], dtype=np.float64)
        return one_class_split(dataset, normal, train_mask=values < split["below"])
    return one_class_split(dataset, normal, train_fraction=split["train_fraction"], split=split["kind"],
                           seed=seed)


def calibration_split(y_test: np.ndarray, fraction: float, seed: Any) -> tuple[np.ndarray, np.ndarray]:
    """Split a test set into calibration normals and the samples evaluated.

    Parameters
    ----------
    y_test : numpy.ndarray
        Test labels, 0 normal and 1 anomaly.
    fraction : float
        Share of the normals drawn for calibration (rounded; at least one, and
        at least one normal is left to evaluate).
    seed : int or tuple of int
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    calibration, evaluated : numpy.ndarray
        Sorted positions in the test set.
    """
    normals = np.flatnonzero(y_test == 0)
    n = min(max(round(fraction * len(normals)), 1), len(normals) - 1)
    calibration = np.sort(np.random.default_rng(seed).permutation(normals)[:n])
    return calibration, np.setdiff1d(np.arange(len(y_test)), calibration)


def _evaluate(y: np.ndarray, scores: np.ndarray, clf: Any, seconds: float) -> dict[str, Any]:
    """Metrics at the current threshold, the threshold, its source, how many scores set it, the seconds."""
    from mmocc.metrics import evaluate

    reference = clf.decision_scores_ if clf.calibration_scores_ is None else clf.calibration_scores_
    return {**evaluate(y, scores, clf.threshold_), "threshold": float(clf.threshold_),
            "source": clf.threshold_source_, "n_reference": len(reference), "seconds": seconds}


def run_job(protocol: str, index: int, seed: int, out: Path, smoke: bool) -> str:
    """Compare the three threshold sources on one (protocol, normal class index, seed) task.

    Writes ``out/<protocol>_<index>_<seed>.json`` (kept and reused when it exists).

    Parameters
    ----------
    protocol : str
        A key of :func:`protocols`.
    index : int
        The normal class, as an index into ``dataset.classes``.
    seed : int
        Seed of the split, the calibration draw and every model.
    out : pathlib.Path
        Folder of the job files.
    smoke : bool
        Tiny synthetic protocols and :data:`SMOKE_PARAMS`.

    Returns
    -------
    str
        The job file's name.
    """
    import torch

    from mmocc import MultimodalOCC

    torch.set_num_threads(1)
    path = out / f"{protocol}_{index}_{seed}.json"
    if path.is_file():
        return path.name
    spec = protocols(smoke)[protocol]
    dataset = load_data(spec)
    task = make_task(dataset, spec["split"], dataset.classes[index], seed)
    calibration, kept = calibration_split(task.y_test, CALIBRATION_FRACTION, (seed, index))
    test, y = task.test.subset(kept), task.y_test[kept]
    params = {"random_state": seed, "device": "cpu", "verbose": False, **(SMOKE_PARAMS if smoke else {})}
    rows = {}
    for source in ("train", "holdout"):
        start = time.perf_counter()
        clf = MultimodalOCC(contamination=CONTAMINATION, threshold=source,
                            validation_fraction=VALIDATION_FRACTION, **params)
        clf.fit(task.train)
        scores = clf.decision_function(test)
        rows[source] = _evaluate(y, scores, clf, time.perf_counter() - start)
        if source == "train":
            start = time.perf_counter()
            clf.calibrate(task.test.subset(calibration))
            seconds = rows["train"]["seconds"] + time.perf_counter() - start
            rows["calibrate"] = _evaluate(y, scores, clf, seconds)
    record = {
        "protocol": protocol,
        "normal": str(task.normal),
        "seed": seed,
        "n_train": len(task.train),
        "n_calibration": len(calibration),
        "n_test_normal": int(np.sum(y == 0)),
        "n_test_anomalies": int(np.sum(y == 1)),
        "rows": rows,
    }
    write_json(path, record)
    return path.name


def collect(out: Path, protocol: str, seeds: list[int]) -> list[dict[str, Any]]:
    """The finished job records of one protocol and the given seeds, sorted by file name."""
    paths = sorted(out.glob(f"{protocol}_*.json"))
    records = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    return [record for record in records if record["seed"] in seeds]


def mean_worst(records: list[dict[str, Any]], variant: str, metric: str) -> tuple[float, float]:
    """Mean and minimum over tasks and seeds of one variant's metric."""
    values = [record["rows"][variant][metric] for record in records]
    return float(np.mean(values)), float(np.min(values))


def exchangeable_recall(n: float, conformal: bool) -> float:
    """Expected normal recall at τ taken from ``n`` scores of normals exchangeable with new ones.

    A new exchangeable sample falls below the k-th smallest of ``n`` with
    probability ``k / (n + 1)``. Training scores use ``numpy.percentile``, which
    interpolates at rank ``h = (1 - c)(n - 1)`` (from 0): about ``(h + 1) / (n + 1)``
    (0.93 for n = 48). Held-out and calibration scores use the conformal rank
    ``k = min(ceil((n + 1)(1 - c)), n)`` (:func:`mmocc.detectors.base.conformal_threshold`):
    ``k / (n + 1)``, at least ``1 - c`` once ``n >= 1 / c - 1`` (0.83 for n = 5).
    """
    if not conformal:
        return ((1.0 - CONTAMINATION) * (n - 1) + 1.0) / (n + 1)
    k = min(math.ceil((n + 1) * (1.0 - CONTAMINATION) - 1e-9), round(n))
    return k / (n + 1)


def protocol_records(name: str, title: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of one protocol from its job records: the protocol, then one per threshold source.

    Parameters
    ----------
    name, title : str
        The protocol and its description.
    records : list of dict
        Its job records (:func:`run_job`), one per task and seed.

    Returns
    -------
    list of dict
        A ``protocol`` record (sizes of the first task; ``holdout_beats_train``, the
        share of tasks × seeds where (b) has the higher normal recall;
        ``roc_auc_gap``, the largest ROC AUC difference of (a) and (c)), then a
        ``variant`` record per threshold source: ``mean`` and ``worst`` of each
        metric, the mean ``n_reference``, the normal recall those many exchangeable
        scores give and the mean ``seconds``.
    """
    first = records[0]
    gap = max(abs(r["rows"]["train"]["roc_auc"] - r["rows"]["calibrate"]["roc_auc"]) for r in records)
    raised = np.mean([r["rows"]["holdout"]["normal_recall"] > r["rows"]["train"]["normal_recall"]
                      for r in records])
    out: list[dict[str, Any]] = [{
        "kind": "protocol", "protocol": name, "title": title, "n_records": len(records),
        **{key: first[key] for key in ("n_train", "n_calibration", "n_test_normal", "n_test_anomalies")},
        "holdout_beats_train": float(raised), "roc_auc_gap": float(gap),
    }]
    for variant in VARIANTS:
        n = float(np.mean([record["rows"][variant]["n_reference"] for record in records]))
        figures = {metric: dict(zip(("mean", "worst"), mean_worst(records, variant, metric), strict=True))
                   for metric in METRICS}
        out.append({"kind": "variant", "protocol": name, "variant": variant, **figures, "n_reference": n,
                    "expected_normal_recall": exchangeable_recall(n, conformal=variant != "train"),
                    "seconds": float(np.mean([record["rows"][variant]["seconds"] for record in records]))})
    return out


def write_report(out: Path, results: Path, report: Path, command: str, seconds: float | None,
                 seeds: list[int], smoke: bool) -> Path | None:
    """Save the records of the job files under ``out`` to ``results``; render CALIBRATION.md into ``report``.

    Parameters
    ----------
    out : pathlib.Path
        Folder of the job files.
    results, report : pathlib.Path
        Folders of ``calibration.json`` and of CALIBRATION.md.
    command : str
        The command the report shows.
    seconds : float or None
        Total wall time (None: not timed).
    seeds : list of int
        The seeds reported (job files of other seeds are left out).
    smoke : bool
        Report the smoke protocols.

    Returns
    -------
    pathlib.Path or None
        The Markdown file; None, with both files left alone, when no job has finished.
    """
    records = [run_record("calibration", command, seconds=seconds, seeds=seeds, workers=2, threads=1,
                          contamination=CONTAMINATION, calibration_fraction=CALIBRATION_FRACTION,
                          validation_fraction=VALIDATION_FRACTION)]
    for name, spec in protocols(smoke).items():
        if found := collect(out, name, seeds):
            records += protocol_records(name, spec["title"], found)
    if len(records) == 1:
        print(f"no finished job under {out}: records and CALIBRATION.md left as they are", file=sys.stderr)
        return None
    return publish("calibration", records, results, report)


def jobs(smoke: bool, seeds: list[int]) -> list[tuple[str, int, int]]:
    """The (protocol, normal class index, seed) jobs of a run, by seed, the shifted protocol first."""
    return [
        (name, index, seed)
        for seed in seeds
        for name, spec in protocols(smoke).items()
        for index in range(2 if smoke else len(load_data(spec).classes))
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the jobs, then rebuild CALIBRATION.md (or a temp report with ``--smoke``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS, help=f"default {SEEDS}")
    parser.add_argument("--report-only", action="store_true", help="rebuild the report from finished runs")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny synthetic run (2 protocols, 2 classes, seed 0, 2 epochs) into a temp "
                        "folder; CALIBRATION.md untouched")
    args = parser.parse_args(argv)
    out, results, report, seeds = OUT, RESULTS, MARKDOWN, args.seeds
    if args.smoke:
        seeds = [0]
        out = results = report = Path(tempfile.mkdtemp(prefix="mmocc-calibration-"))
    elif not args.report_only and not DATA.is_dir():
        parser.error(f"{DATA} not found: the COIL-20 protocols need it (--smoke runs without it)")
    start = time.perf_counter()
    if not args.report_only:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            futures = [pool.submit(run_job, *job, out, args.smoke) for job in jobs(args.smoke, seeds)]
            for future in as_completed(futures):
                print(f"finished {future.result()}", flush=True)
    seconds = None if args.report_only else time.perf_counter() - start
    flags = ["--smoke"] if args.smoke else [] if seeds == SEEDS else ["--seeds", *map(str, seeds)]
    command = command_line("calibration.py", flags)
    path = write_report(out, results, report, command, seconds, seeds, args.smoke)
    if path is not None:
        print(path.read_text(encoding="utf-8"))
    return 0 if path is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
