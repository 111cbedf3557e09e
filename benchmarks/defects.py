"""Regenerate benchmarks/DEFECTS.md: local defects painted into one view, and a class-novelty check.

Usage (from the repository root)::

    python benchmarks/defects.py                 # full run, 2 processes, rewrites DEFECTS.md
    python benchmarks/defects.py --report-only   # rebuild the records and DEFECTS.md from finished runs
    python benchmarks/defects.py --smoke         # tiny run into a temp folder, DEFECTS.md untouched

Defect protocol: for each normal class, fit on the normal training split
(random 66%), then score the held-out normal pairs and a copy of each with one
defect painted into one random image view (:func:`mmocc.data.defects.defect_dataset`,
defect seed = class index). Measured: image ROC AUC (defective vs clean), pixel
AUROC of :meth:`~mmocc.MultimodalOCC.anomaly_maps` against the masks (both views'
maps of the defective samples pooled), view attribution (argmax of
:meth:`~mmocc.MultimodalOCC.view_scores` == painted view) and fit + score seconds.
The class-novelty check reruns three protocols of ``run_benchmarks.py`` for the
default, patch, pretrained and combined presets, so the local presets cannot regress there
silently. Runs are resumable under ``benchmarks/out/defects/``; every torch model
runs with one CPU thread per process. Their summaries are the records
``benchmarks/results/defects.json``, from which ``benchmarks/render.py`` writes
DEFECTS.md (template ``benchmarks/templates/defects.md``, which holds the hand-written notes too).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import (
    DATA,
    MARKDOWN,
    RESULTS,
    ROOT,
    command_line,
    publish,
    read_results,
    run_one_thread,
    run_record,
)
from run_benchmarks import PROTOCOLS

from mmocc.utils.files import atomic_open

OUT = ROOT / "benchmarks" / "out" / "defects"
SEEDS = [0]

ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "paper": ("mmocc", {"preset": "paper"}),
    "default": ("mmocc", {"preset": "default"}),
    "patch": ("mmocc", {"preset": "patch"}),
    "pretrained": ("mmocc", {"preset": "pretrained"}),
    "combined": ("mmocc", {"preset": "combined"}),
    "patch_mean": ("mmocc", {"preset": "patch", "view_combine": "mean"}),
    "pretrained_128": ("mmocc", {"preset": "pretrained", "patch_size": 128}),
    "knn_late": ("baseline", {"detector": "knn", "fusion": "late"}),
    "iforest_early": ("baseline", {"detector": "iforest", "fusion": "early"}),
    "knn_early": ("baseline", {"detector": "knn", "fusion": "early"}),
}
"""Rows of the defect tables: (kind, estimator parameters)."""

DEFECT_DATA: dict[str, dict[str, Any]] = {
    "coil": {
        "title": "COIL-20 two-view (pose P and P+90°), 32 px grey, random 66% split",
        "classes": list(range(0, 20, 2)),
        "area": (0.03, 0.08),
    },
    "coil_unseen64": {
        "title": "COIL-20 two-view (pose P and P+90°), 64 px grey, unseen poses: train on the normal pairs "
        "whose first view's angle is below 240°, test on the rest (no training neighbour 5° away)",
        "classes": list(range(0, 20, 2)),
        "area": (0.03, 0.08),
        "size": 64,
        "below": 240,
    },
    "synthetic": {
        "title": "Synthetic two-view bodies (make_synthetic: 6 classes × 100, 32 px RGB, seed 0), "
        "random 66% split",
        "classes": list(range(6)),
        "area": (0.01, 0.03),
    },
}
"""Defect datasets: class indices used as normal (index into ``dataset.classes``), defect area, and
optionally the loaded ``size`` (32 px otherwise) and a pose split (``below``: train on the normal pairs whose
``angle`` metadata is below it; a random 66% split otherwise)."""

NOVELTY = ("coil_random", "coil_unseen", "mfeat")
NOVELTY_MODELS = ("default", "patch", "pretrained", "combined")
NOVELTY_CLASSES = {"coil_unseen": ["1", "5", "9", "13", "17"]}
"""Normal classes of a class-novelty protocol cut to fit the time budget (the others run every class)."""
TARGETS = {"image": 0.95, "pixel": 0.90, "attribution": 0.90, "coil_random": 0.999, "mfeat": 0.994}


@functools.lru_cache(maxsize=2)
def load_data(key: str, smoke: bool) -> Any:
    """The dataset of a defect protocol (cached per worker process)."""
    from mmocc.datasets import load_turntable, make_synthetic

    if key.startswith("coil"):
        return load_turntable(DATA / "coil-20-proc", size=DEFECT_DATA[key].get("size", 32))
    return make_synthetic(n_per_class=20 if smoke else 100, n_classes=6, size=32, seed=0)


def defect_test(
    key: str, index: int, seed: int, smoke: bool
) -> tuple[Any, dict[str, np.ndarray], Any, Any, Any]:
    """Training split, test views (clean normals then their defective copies), painted copies, defects,
    and the split's test samples of the other classes (not part of the defect protocol)."""
    from mmocc import one_class_split
    from mmocc.data.defects import defect_dataset

    data = load_data(key, smoke)
    below = DEFECT_DATA[key].get("below")
    if below is None:
        task = one_class_split(data, normal=data.classes[index], train_fraction=0.66, seed=seed)
    else:
        poses = np.asarray(data.metadata["angle"], dtype=np.float64) < below
        task = one_class_split(data, normal=data.classes[index], train_mask=poses)
    clean = task.test.subset(np.flatnonzero(task.y_test == 0))
    broken, batch = defect_dataset(clean, seed=index, area=DEFECT_DATA[key]["area"])
    test = {v: np.concatenate([clean.views[v], broken.views[v]]) for v in clean.view_names}
    return task.train, test, broken, batch, task.test.subset(np.flatnonzero(task.y_test == 1))


def measure(name: str, seed: int, train: Any, test: dict[str, np.ndarray], broken: Any, batch: Any,
            others: Any = None) -> dict:
    """Fit one row's model and compute the defect metrics (None where a model has no such output).

    Besides the four of DEFECTS.md: ``normal_recall``, the share of the clean test normals at or
    below the threshold; for a rule with parts (``score="combined"``), ``fired_local``, the share of
    defective samples whose local part fired, and with ``others`` (samples of other classes),
    ``fired_global_others``, the share of them whose global part fired.
    """
    from sklearn.metrics import roc_auc_score

    from mmocc import BaselineOCC, MultimodalOCC

    kind, params = ROWS[name]
    model = (
        MultimodalOCC(random_state=seed, device="cpu", **params)
        if kind == "mmocc"
        else BaselineOCC(random_state=seed, **params)
    )
    start = time.perf_counter()
    scores = model.fit(train.views).decision_function(test)
    row: dict[str, Any] = {"seconds": time.perf_counter() - start, "pixel": None, "attribution": None}
    n = len(batch)
    row["image"] = float(roc_auc_score(np.r_[np.zeros(len(scores) - n), np.ones(n)], scores))
    row["normal_recall"] = float(np.mean(scores[: len(scores) - n] <= model.threshold_))
    if kind == "mmocc" and model.rule_.part_names:
        row["fired_local"] = float(np.mean(model.score_parts(broken.views)["fired"] == "local"))
        if others is not None:
            row["fired_global_others"] = float(np.mean(model.score_parts(others)["fired"] == "global"))
    try:
        views = model.view_scores(broken.views)
        names = list(views)
        guess = np.asarray(names)[np.argmax(np.stack([views[v] for v in names], axis=1), axis=1)]
        row["attribution"] = float(np.mean(guess == batch.defect_view_names))
    except (AttributeError, ValueError) as exc:
        row["attribution_note"] = str(exc).splitlines()[0]
    try:
        maps = model.anomaly_maps(broken.views)
        shown = [v for v in batch.view_names if v in maps]
        truth = np.concatenate([batch.masks[v].ravel() for v in shown])
        row["pixel"] = float(roc_auc_score(truth, np.concatenate([maps[v].ravel() for v in shown])))
    except (AttributeError, ValueError) as exc:
        row["pixel_note"] = str(exc).splitlines()[0]
    return row


def defect_job(key: str, index: int, seed: int, out: Path, smoke: bool) -> str:
    """Run every row on one (dataset, normal class, seed) task into ``out/<key>_<index>_<seed>.json``."""
    import torch

    torch.set_num_threads(1)
    path = out / f"{key}_{index}_{seed}.json"
    if path.is_file():
        return path.name
    train, test, broken, batch, _ = defect_test(key, index, seed, smoke)
    rows = {}
    for name in ROWS:
        try:
            rows[name] = measure(name, seed, train, test, broken, batch)
        except Exception as exc:  # noqa: BLE001 - a failing row is reported, not fatal
            rows[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    out.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump({"dataset": key, "index": index, "seed": seed, "rows": rows}, handle, indent=1)
    return path.name


def novelty_config(protocol: str, model: str, smoke: bool) -> tuple[dict[str, Any], str]:
    """Experiment config and source of one class-novelty protocol for one preset, seed 0."""
    spec = PROTOCOLS[protocol]
    config = {
        "name": spec["title"],
        "seeds": [0],
        "plots": False,
        "data": dict(spec["data"]),
        "split": dict(spec["split"]),
        "models": {model: {"kind": "mmocc", "preset": model}},
    }
    if smoke or protocol in NOVELTY_CLASSES:
        config["split"]["normal"] = ["1"] if smoke else NOVELTY_CLASSES[protocol]
    return config, spec["source"]


def novelty_job(protocol: str, model: str, out: Path, smoke: bool) -> str:
    """Run one preset on one class-novelty protocol; an exception is written to ``error.txt`` and returned."""
    folder = out / "novelty" / protocol / model
    try:
        run_one_thread(*novelty_config(protocol, model, smoke), folder)
    except Exception as exc:  # noqa: BLE001 - e.g. a preset that cannot read a vector view
        folder.mkdir(parents=True, exist_ok=True)
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        (folder / "error.txt").write_text(message + "\n", encoding="utf-8")
        return f"{protocol}/{model} failed: {message}"
    return f"{protocol}/{model}"


def jobs(smoke: bool) -> tuple[list[tuple[str, str]], list[tuple[str, int, int]]]:
    """The class-novelty (protocol, model) jobs and the defect (dataset, class index, seed) jobs."""
    have_data = DATA.is_dir()
    if smoke:
        defects = [("synthetic", i, 0) for i in (0, 1)] + ([("coil", 0, 0)] if have_data else [])
        return ([("coil_random", "pretrained")] if have_data else []), defects
    novelty = [(p, m) for p in NOVELTY for m in NOVELTY_MODELS] if have_data else []
    defects = [(key, i, s) for s in SEEDS for key, spec in DEFECT_DATA.items() for i in spec["classes"]]
    return novelty, [job for job in defects if have_data or job[0] != "coil"]


def collect(out: Path, key: str) -> dict[str, dict[str, list]]:
    """model -> metric -> list over tasks of one defect dataset (NaN where the metric does not exist)."""
    table: dict[str, dict[str, list]] = {name: {} for name in ROWS}
    for path in sorted(out.glob(f"{key}_[0-9]*_*.json")):
        task = json.loads(path.read_text(encoding="utf-8"))
        for name, row in task["rows"].items():
            cells = table.setdefault(name, {})
            if "error" in row:
                cells.setdefault("errors", []).append(row["error"])
                continue
            for metric in ("image", "pixel", "attribution", "seconds", "normal_recall"):
                value = row.get(metric)
                cells.setdefault(metric, []).append(np.nan if value is None else value)
    return table


def mean_worst(values: list[float] | None) -> dict[str, float | None]:
    """``mean`` and ``worst`` over tasks, both None when the model has no such output."""
    if not values or np.all(np.isnan(values)):
        return {"mean": None, "worst": None}
    return {"mean": float(np.nanmean(values)), "worst": float(np.nanmin(values))}


def defect_records(out: Path, key: str) -> list[dict[str, Any]]:
    """One defect dataset's records: its ``defect_dataset`` record, then a ``defect`` record per model."""
    n_tasks = len(list(out.glob(f"{key}_[0-9]*_*.json")))
    if not n_tasks:
        return []
    spec = DEFECT_DATA[key]
    records: list[dict[str, Any]] = [{"kind": "defect_dataset", "dataset": key, "title": spec["title"],
                                      "area": list(spec["area"]), "tasks": n_tasks}]
    for name, cells in collect(out, key).items():
        if not cells:
            continue
        row: dict[str, Any] = {"kind": "defect", "dataset": key, "model": name, "error": None}
        if "image" not in cells:
            records.append({**row, "error": cells["errors"][0]})
            continue
        records.append({**row, **{m: mean_worst(cells.get(m)) for m in ("image", "pixel", "attribution")},
                        "seconds": float(np.mean(cells["seconds"])),
                        "normal_recall": mean_worst(cells.get("normal_recall"))})
    return records


def novelty_records(out: Path) -> list[dict[str, Any]]:
    """A ``novelty`` record per class-novelty protocol and preset: mean and worst ROC AUC, error or none."""
    records = []
    for protocol in NOVELTY:
        for model in NOVELTY_MODELS:
            folder = out / "novelty" / protocol / model
            roc = read_results(folder).get((model, "roc_auc", 0))
            record: dict[str, Any] = {"kind": "novelty", "protocol": protocol, "model": model,
                                      "state": "missing"}
            if (folder / "error.txt").is_file():
                record.update(state="error", error=(folder / "error.txt").read_text(encoding="utf-8").strip())
            elif roc:
                record.update(state="done", roc_auc=float(np.mean(list(roc.values()))),
                              worst=float(min(roc.values())), tasks=len(roc))
            records.append(record)
    return records


def write_report(out: Path, results: Path, report: Path, command: str, seconds: float | None) -> Path | None:
    """Save the records of the runs under ``out`` to ``results`` and render DEFECTS.md into ``report``.

    Returns the Markdown file, or None (and leaves both alone) when nothing has finished.
    """
    records = [record for key in DEFECT_DATA for record in defect_records(out, key)]
    novelty = novelty_records(out)
    if not records and all(r["state"] == "missing" for r in novelty):
        print(f"nothing finished under {out}: records and DEFECTS.md left as they are", file=sys.stderr)
        return None
    run = run_record("defects", command, seconds=seconds, seeds=SEEDS, workers=2, threads=1,
                     novelty_classes=NOVELTY_CLASSES, targets=TARGETS)
    path = publish("defects", [run, *records, *novelty], results, report)
    print(path.read_text(encoding="utf-8"))
    return path


def run_all(out: Path, smoke: bool, workers: int) -> None:
    """Run every job in ``workers`` processes: the defect tasks, then the class-novelty regression check.

    The novelty jobs are the longest (one preset over every task of a protocol), so a stopped run
    keeps the defect tables; a rerun resumes from the finished tasks of both.
    """
    novelty, defects = jobs(smoke)
    if not DATA.is_dir():
        print(f"{DATA} not found: running the synthetic defects only", file=sys.stderr)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(defect_job, key, i, s, out, smoke) for key, i, s in defects]
        futures += [pool.submit(novelty_job, p, m, out, smoke) for p, m in novelty]
        for future in as_completed(futures):
            print(f"finished {future.result()}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, then rebuild DEFECTS.md (or a temp report with ``--smoke``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--report-only", action="store_true", help="rebuild DEFECTS.md from finished runs")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="tiny run (synthetic 20 per class, classes 0-1, COIL class 0, one novelty job) "
        "into a temp folder; DEFECTS.md untouched",
    )
    args = parser.parse_args(argv)
    out, results, report = OUT, RESULTS, MARKDOWN
    if args.smoke:
        out = results = report = Path(tempfile.mkdtemp(prefix="mmocc-defects-"))
    start = time.perf_counter()
    if not args.report_only:
        run_all(out, args.smoke, args.jobs)
    seconds = None if args.report_only else time.perf_counter() - start
    command = command_line("defects.py", ["--smoke"] if args.smoke else [])
    return 0 if write_report(out, results, report, command, seconds) is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
