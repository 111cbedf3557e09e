"""What the benchmark scripts share: running an experiment and summarising its ``results.csv``.

The experiments themselves run through :func:`mmocc.evaluation.runner.run_experiment`;
this module only reads back the tidy rows it writes (``normal, model, seed, size,
metric, value``) and renders the per-seed summaries the reports show. It also
names the machine (:func:`cpu_model`) for every report.
"""

from __future__ import annotations

import contextlib
import csv
import platform
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SUMMARY = ("mean", "worst", "p_at_n", "anomaly_recall", "normal_recall")
"""Keys of :func:`summarize` shown as mean ± std over seeds, in table order."""

Results = dict[tuple[str, str, int], dict[str, float]]


def cpu_model() -> str:
    """Return the CPU's model name from /proc/cpuinfo, else the platform's processor string."""
    text = ""
    with contextlib.suppress(OSError):
        text = Path("/proc/cpuinfo").read_text()
    names = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def run_one_thread(config: Mapping[str, Any], source: str, out: Path) -> Any:
    """Run (or resume) an experiment on the CPU with one torch thread; return its ExperimentResult."""
    import torch

    from mmocc.evaluation.runner import run_experiment

    torch.set_num_threads(1)
    return run_experiment(config, source, out, progress=False, device="cpu")


def read_results(folder: Path) -> Results:
    """(model, metric, seed) -> {normal class: value} from ``folder/results.csv``; empty when absent."""
    table: Results = defaultdict(dict)
    path = folder / "results.csv"
    if path.is_file():
        with path.open(newline="", encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                table[row["model"], row["metric"], int(row["seed"])][row["normal"]] = float(row["value"])
    return table


def summarize(table: Results, model: str, seeds: Sequence[int]) -> dict[str, Any] | None:
    """Per-seed task averages of one model, or None when a seed has no runs.

    Returns lists over seeds of ``mean`` and ``worst`` task ROC AUC, mean
    ``p_at_n``, ``anomaly_recall``, ``normal_recall`` and ``seconds`` (fit +
    score per task), and ``roc``: {(normal, seed): ROC AUC}.
    """
    out: dict[str, Any] = {key: [] for key in (*SUMMARY, "seconds")}
    out["roc"] = {}
    for seed in seeds:
        roc = table.get((model, "roc_auc", seed))
        if not roc:
            return None
        out["mean"].append(float(np.mean(list(roc.values()))))
        out["worst"].append(float(min(roc.values())))
        for metric in SUMMARY[2:]:
            out[metric].append(float(np.mean(list(table[model, metric, seed].values()))))
        fit, score = table[model, "fit_seconds", seed], table[model, "score_seconds", seed]
        out["seconds"].append(float(np.mean([fit[c] + score[c] for c in roc])))
        out["roc"].update({(c, seed): v for c, v in roc.items()})
    return out


def mean_std(values: Sequence[float], digits: int = 3) -> str:
    """``mean ± sample std``, or the value alone when there is one."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"


def summary_cells(row: Mapping[str, Any], seconds_digits: int = 1) -> list[str]:
    """The :data:`SUMMARY` cells of a :func:`summarize` row, then the mean seconds per task."""
    return [*(mean_std(row[key]) for key in SUMMARY), f"{np.mean(row['seconds']):.{seconds_digits}f}"]


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a Markdown table, the first column left-aligned and the others right-aligned."""
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|",
        *("| " + " | ".join(row) + " |" for row in body),
    ]


_RSS_WRAPPER = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def peak_rss_mib(command: Sequence[str], env: dict[str, str]) -> tuple[float, float]:
    """Peak resident memory (MiB) and wall seconds of a subprocess.

    A small wrapper process starts it and reads its children's ``ru_maxrss``:
    Linux carries a process's peak RSS across ``exec``, so a child forked
    from a large process directly would report that process's peak.
    """
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", _RSS_WRAPPER, *command], capture_output=True, text=True,
                         check=True, env=env)
    return int(out.stdout.strip().splitlines()[-1]) / 1024, time.perf_counter() - start


def write_manifest(root: Path, n: int, distinct: int) -> Path:
    """A manifest of ``n`` labelled pairs cycling over the ``distinct`` PNG pairs under ``root/img``."""
    path = root / f"manifest_{n}.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["sample_id", "label", "left", "right"])
        for i in range(n):
            writer.writerow([f"s{i}", i % 2, f"img/{i % distinct}_left.png", f"img/{i % distinct}_right.png"])
    return path
