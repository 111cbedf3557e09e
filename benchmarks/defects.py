"""Regenerate benchmarks/DEFECTS.md: local defects painted into one view, and a class-novelty check.

Usage (from the repository root)::

    python benchmarks/defects.py                 # full run, 2 processes, rewrites DEFECTS.md
    python benchmarks/defects.py --report-only   # rebuild DEFECTS.md from finished runs
    python benchmarks/defects.py --smoke         # tiny run into a temp folder, DEFECTS.md untouched

Defect protocol: for each normal class, fit on the normal training split
(random 66%), then score the held-out normal pairs and a copy of each with one
defect painted into one random image view (:func:`mmocc.data.defects.defect_dataset`,
defect seed = class index). Measured: image ROC AUC (defective vs clean), pixel
AUROC of :meth:`~mmocc.MultimodalOCC.anomaly_maps` against the masks (both views'
maps of the defective samples pooled), view attribution (argmax of
:meth:`~mmocc.MultimodalOCC.view_scores` == painted view) and fit + score seconds.
The class-novelty check reruns three protocols of ``run_benchmarks.py`` for the
default, patch and pretrained presets, so the local presets cannot regress there
silently. Runs are resumable under ``benchmarks/out/defects/``; every torch model
runs with one CPU thread per process.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import DATA, ROOT, cpu_model, markdown_table, read_results, run_one_thread
from run_benchmarks import PROTOCOLS

from mmocc.utils.files import atomic_open

OUT = ROOT / "benchmarks" / "out" / "defects"
REPORT = ROOT / "benchmarks" / "DEFECTS.md"
SEEDS = [0]

ROWS: dict[str, tuple[str, dict[str, Any]]] = {
    "paper": ("mmocc", {"preset": "paper"}),
    "default": ("mmocc", {"preset": "default"}),
    "patch": ("mmocc", {"preset": "patch"}),
    "pretrained": ("mmocc", {"preset": "pretrained"}),
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
    "synthetic": {
        "title": "Synthetic two-view bodies (make_synthetic: 6 classes × 100, 32 px RGB, seed 0), "
        "random 66% split",
        "classes": list(range(6)),
        "area": (0.01, 0.03),
    },
}
"""Defect datasets: class indices used as normal (index into ``dataset.classes``) and defect area."""

NOVELTY = ("coil_random", "coil_unseen", "mfeat")
NOVELTY_MODELS = ("default", "patch", "pretrained")
NOVELTY_CLASSES = {"coil_unseen": ["1", "5", "9", "13", "17"]}
"""Normal classes of a class-novelty protocol cut to fit the time budget (the others run every class)."""
TARGETS = {"image": 0.95, "pixel": 0.90, "attribution": 0.90, "coil_random": 0.999, "mfeat": 0.994}


@functools.lru_cache(maxsize=2)
def load_data(key: str, smoke: bool) -> Any:
    """The dataset of a defect protocol (cached per worker process)."""
    from mmocc.datasets import load_turntable, make_synthetic

    if key == "coil":
        return load_turntable(DATA / "coil-20-proc", size=32)
    return make_synthetic(n_per_class=20 if smoke else 100, n_classes=6, size=32, seed=0)


def defect_test(key: str, index: int, seed: int, smoke: bool) -> tuple[Any, dict[str, np.ndarray], Any, Any]:
    """Training split, test views (clean normals then their defective copies), painted copies, defects."""
    from mmocc import one_class_split
    from mmocc.data.defects import defect_dataset

    data = load_data(key, smoke)
    task = one_class_split(data, normal=data.classes[index], train_fraction=0.66, seed=seed)
    clean = task.test.subset(np.flatnonzero(task.y_test == 0))
    broken, batch = defect_dataset(clean, seed=index, area=DEFECT_DATA[key]["area"])
    test = {v: np.concatenate([clean.views[v], broken.views[v]]) for v in clean.view_names}
    return task.train, test, broken, batch


def measure(name: str, seed: int, train: Any, test: dict[str, np.ndarray], broken: Any, batch: Any) -> dict:
    """Fit one row's model and compute the four defect metrics (None where a model has no such output)."""
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
    train, test, broken, batch = defect_test(key, index, seed, smoke)
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


def fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or np.isnan(value) else f"{value:.{digits}f}"


def collect(out: Path, key: str) -> dict[str, dict[str, list]]:
    """model -> metric -> list over tasks of one defect dataset (NaN where the metric does not exist)."""
    table: dict[str, dict[str, list]] = {name: {} for name in ROWS}
    for path in sorted(out.glob(f"{key}_*.json")):
        task = json.loads(path.read_text(encoding="utf-8"))
        for name, row in task["rows"].items():
            cells = table.setdefault(name, {})
            if "error" in row:
                cells.setdefault("errors", []).append(row["error"])
                continue
            for metric in ("image", "pixel", "attribution", "seconds"):
                value = row.get(metric)
                cells.setdefault(metric, []).append(np.nan if value is None else value)
    return table


def mean_worst(values: list[float] | None) -> tuple[float | None, float | None]:
    if not values or np.all(np.isnan(values)):
        return None, None
    return float(np.nanmean(values)), float(np.nanmin(values))


def defect_section(out: Path, key: str) -> tuple[list[str], dict[str, dict[str, float | None]]]:
    """Markdown table of one defect dataset, and per row the mean of each metric."""
    table = collect(out, key)
    body, means = [], {}
    for name, cells in table.items():
        if not cells:
            continue
        if "image" not in cells:
            body.append([name, f"error: {cells['errors'][0]}", *[""] * 6])
            continue
        stats = {m: mean_worst(cells.get(m)) for m in ("image", "pixel", "attribution")}
        means[name] = {m: s[0] for m, s in stats.items()}
        body.append(
            [
                f"**{name}**" if name in ("patch", "pretrained") else name,
                *(fmt(v) for m in ("image", "pixel", "attribution") for v in stats[m]),
                f"{np.mean(cells['seconds']):.2f}",
            ]
        )
    header = [
        "model",
        "image AUC mean",
        "image AUC worst",
        "pixel AUROC mean",
        "pixel AUROC worst",
        "view attribution mean",
        "view attribution worst",
        "fit+score s / task",
    ]
    n_tasks = len(list(out.glob(f"{key}_*.json")))
    return [f"{n_tasks} tasks.", "", *markdown_table(header, body)], means


def novelty_section(out: Path) -> tuple[list[str], dict[tuple[str, str], float]]:
    """Markdown table of the class-novelty check (mean and worst task ROC AUC), and the means."""
    body, means = [], {}
    for protocol in NOVELTY:
        cells = [protocol]
        for model in NOVELTY_MODELS:
            folder = out / "novelty" / protocol / model
            roc = read_results(folder).get((model, "roc_auc", 0))
            if (folder / "error.txt").is_file():
                cells.append("error: " + (folder / "error.txt").read_text(encoding="utf-8").strip())
            elif roc:
                means[protocol, model] = float(np.mean(list(roc.values())))
                cells.append(f"{means[protocol, model]:.4f} / {min(roc.values()):.3f} ({len(roc)} tasks)")
            else:
                cells.append("not run")
        body.append(cells)
    return markdown_table(["protocol", *(f"{m}: mean / worst ROC AUC" for m in NOVELTY_MODELS)], body), means


def verdict_line(what: str, value: float | None, target: float) -> str:
    if value is None:
        return f"- {what}: not measured (target ≥ {target})."
    met = value >= target
    gap = "" if met else f", missed by {target - value:.3f}"
    return f"- {what}: {value:.4f} vs target ≥ {target} — **{'met' if met else 'not met'}**{gap}."


def best_local(means: dict[str, dict[str, float | None]]) -> str | None:
    """The local preset row with the highest mean image AUC on a defect dataset."""
    local = {n: m["image"] for n, m in means.items() if n.startswith(("patch", "pretrained")) and m["image"]}
    return max(local, key=local.get) if local else None


def reading(defects: dict[str, dict], novelty: dict[tuple[str, str], float]) -> list[str]:
    """The 'Reading' section: measured verdict of the chosen local preset vs the targets."""
    coil = defects.get("coil", {})
    lines = ["## Reading", ""]
    for name in [n for n in ("patch", "pretrained", best_local(coil)) if n in coil and n][:3]:
        if any(line.startswith(f"### `{name}`") for line in lines):
            continue
        cells = coil[name]
        lines += [
            f"### `{name}` on COIL-20 defects and class novelty",
            "",
            verdict_line("image ROC AUC (mean)", cells["image"], TARGETS["image"]),
            verdict_line("pixel AUROC (mean)", cells["pixel"], TARGETS["pixel"]),
            verdict_line("view attribution (mean)", cells["attribution"], TARGETS["attribution"]),
        ]
        for protocol in ("coil_random", "mfeat"):
            lines.append(
                verdict_line(f"class novelty {protocol}", novelty.get((protocol, name)), TARGETS[protocol])
            )
        lines.append("")
    return lines


def header(command: str, seconds: float | None) -> list[str]:
    """Title, command, machine, threads, seeds, splits, date and wall time."""
    import torch

    import mmocc

    cpu = cpu_model()
    wall = "not timed (report rebuilt from finished runs)" if seconds is None else f"{seconds / 60:.1f} min"
    return [
        "<!-- generated by benchmarks/defects.py: edit the script, not this block -->",
        "# Local defects and class novelty",
        "",
        f"Command: `{command}`. Date: {datetime.date.today().isoformat()}. Total wall time: {wall}.",
        "",
        f"Machine: {cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"torch {torch.__version__} (CPU, torch.set_num_threads(1) in each of 2 worker processes), "
        f"mmocc {mmocc.__version__}. Seeds {SEEDS}: seed s draws the one-class split and seeds every model; "
        "the defects of normal class index i are painted with seed i.",
        "",
        "Defect protocol: each listed normal class in turn; fit on a random 66% of its samples "
        "(`one_class_split(train_fraction=0.66)`); test set = the held-out normal pairs (label 0) plus "
        "a copy of each with one blob / scratch / erase defect in one random view (`defect_dataset`, "
        "label 1). Image AUC = ROC AUC of `decision_function` on that test set; pixel AUROC = ROC AUC of "
        "`anomaly_maps` against the defect masks, both views' maps of the defective samples pooled (only "
        "presets with maps: score='patch'); view attribution = share of defective samples whose largest "
        "`view_scores` entry is the painted view (only rules with per-view scores). '—' = the model has no "
        "such output. Seconds = fit + `decision_function` on the test set, one thread, two processes "
        "sharing 2 cores. Rows: the presets of `MultimodalOCC`; `patch_mean` = patch with "
        "view_combine='mean'; `pretrained_128` = pretrained with patch_size=128; PyOD baselines via "
        "`BaselineOCC` (`knn_early` = kNN on the raw pixels of both views concatenated).",
    ]


def write_report(out: Path, path: Path, command: str, seconds: float | None) -> None:
    """Rebuild the generated block of ``path`` from the runs under ``out``; text outside it is kept."""
    parts = header(command, seconds)
    defects = {}
    for key, spec in DEFECT_DATA.items():
        if any(out.glob(f"{key}_*.json")):
            table, defects[key] = defect_section(out, key)
            parts += [
                "",
                f"## Defects: {spec['title']}",
                "",
                f"Area {spec['area']} of the image; " + table[0],
                *table[1:],
            ]
    novelty_table, novelty = novelty_section(out)
    parts += [
        "",
        "## Class novelty (regression check)",
        "",
        "Same protocols and splits as RESULTS.md (seed 0 only): the test set is the held-out normals "
        "plus every other class. mfeat has an image view (pix) and a vector view (fou). "
        f"Normal classes: all, except {NOVELTY_CLASSES} (to fit the time budget).",
        "",
        *novelty_table,
        "",
        *reading(defects, novelty),
    ]
    block = "\n".join(parts).rstrip() + "\n<!-- end generated -->\n"
    text = path.read_text(encoding="utf-8") if path.is_file() else "<!-- end generated -->\n"
    start = text.find("<!-- generated by benchmarks/defects.py")
    end = text.find("<!-- end generated -->")
    text = text[: end if start == -1 else start] + block + text[end + len("<!-- end generated -->\n") :]
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(block)


def run_all(out: Path, smoke: bool, workers: int) -> None:
    """Run every job (class-novelty ones first: they are the longest) in ``workers`` processes."""
    novelty, defects = jobs(smoke)
    if not DATA.is_dir():
        print(f"{DATA} not found: running the synthetic defects only", file=sys.stderr)
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(novelty_job, p, m, out, smoke) for p, m in novelty]
        futures += [pool.submit(defect_job, key, i, s, out, smoke) for key, i, s in defects]
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
    out, report = OUT, REPORT
    if args.smoke:
        out = Path(tempfile.mkdtemp(prefix="mmocc-defects-"))
        report = out / "DEFECTS.md"
    start = time.perf_counter()
    if not args.report_only:
        run_all(out, args.smoke, args.jobs)
    seconds = None if args.report_only else time.perf_counter() - start
    command = "python benchmarks/defects.py" + (" --smoke" if args.smoke else "")
    write_report(out, report, command, seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
