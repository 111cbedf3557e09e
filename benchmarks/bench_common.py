"""What the benchmark scripts share: the machine, timing, experiment results and the records they emit.

Every script measures, then saves a list of plain dicts (its *records*) to
``benchmarks/results/<topic>.json`` with :func:`save_records` and lets
``benchmarks/render.py`` write the Markdown. The first record of a topic is
its run record (:func:`run_record`): command, date, seeds and settings, and
the machine (:func:`machine`). The experiments run through
:func:`mmocc.evaluation.runner.run_experiment`; this module reads back the
tidy rows it writes (``normal, model, seed, size, metric, value``) and
summarises them per seed (:func:`summarize`, :func:`spread`).
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import os
import platform
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
COIL = DATA / "coil-20-proc"
RESULTS = ROOT / "benchmarks" / "results"
"""Where the committed records live, one ``<topic>.json`` per Markdown file."""
MARKDOWN = ROOT / "benchmarks"
"""Where the Markdown files live."""
SUMMARY = ("mean", "worst", "p_at_n", "anomaly_recall", "normal_recall")
"""Keys of :func:`summarize` shown as mean ± std over seeds, in table order."""
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")
"""The /proc/cpuinfo flags a machine description names (the ones torch's CPU kernels care about)."""

Results = dict[tuple[str, str, int], dict[str, float]]


def _cpuinfo() -> str:
    with contextlib.suppress(OSError):
        return Path("/proc/cpuinfo").read_text()
    return ""


def cpu_model() -> str:
    """Return the CPU's model name from /proc/cpuinfo, else the platform's processor string."""
    lines = _cpuinfo().splitlines()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.processor() or platform.machine()


def busy_processes() -> list[str]:
    """Command lines of other benchmark jobs running now (they spoil timings)."""
    try:
        out = subprocess.run(["pgrep", "-af", "run_benchmarks|ablations"], capture_output=True, text=True)
    except OSError:
        return []
    return [line for line in out.stdout.splitlines() if str(os.getpid()) != line.split()[0]]


def machine() -> dict[str, Any]:
    """Describe this machine and process for a run record.

    Returns
    -------
    dict
        ``cpu`` (model name), ``isa`` (the :data:`ISA_FLAGS` it has), ``cores``,
        ``arch``, ``system``, ``python``, ``torch`` (version), ``threads``
        (torch threads now), ``mmocc`` (version), ``load`` (1-minute load
        average) and ``busy`` (other benchmark processes running).
    """
    import torch

    import mmocc

    text = _cpuinfo()
    return {
        "cpu": cpu_model(),
        "isa": [flag for flag in ISA_FLAGS if f" {flag} " in text],
        "cores": os.cpu_count(),
        "arch": platform.machine(),
        "system": platform.system(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "mmocc": mmocc.__version__,
        "load": os.getloadavg()[0],
        "busy": busy_processes(),
    }


def command_line(script: str, flags: Sequence[str] = ()) -> str:
    """``python benchmarks/<script> <flags>``: the command that measures what a report shows."""
    return " ".join(["python", f"benchmarks/{script}", *flags])


def run_record(topic: str, command: str, **settings: Any) -> dict[str, Any]:
    """The first record of a topic: command, today's date, the machine and the run's settings."""
    return {"kind": "run", "topic": topic, "command": command, "date": datetime.date.today().isoformat(),
            "machine": machine(), **settings}


def save_records(topic: str, records: Sequence[Mapping[str, Any]], folder: Path = RESULTS) -> Path:
    """Write the records of a topic to ``folder/<topic>.json`` atomically; return the path."""
    from mmocc.utils.files import write_json

    path = folder / f"{topic}.json"
    write_json(path, [dict(record) for record in records])
    return path


def publish(topic: str, records: Sequence[Mapping[str, Any]], results: Path = RESULTS,
            markdown: Path = MARKDOWN) -> Path:
    """Save the records of a topic to ``results``, render its Markdown into ``markdown``; return that file."""
    from render import render

    save_records(topic, records, results)
    return render(topic, results, markdown)


def splice(topic: str, section: Sequence[Mapping[str, Any]], results: Path = RESULTS,
           markdown: Path = MARKDOWN) -> Path:
    """Replace one section's records inside another topic's records (e.g. a rerun of SPEED.md's kNN section).

    The records of the kinds in ``section`` are removed from ``results/<topic>.json`` and ``section`` is put
    where the first of them was; the topic's page is rendered again. Its other sections keep their runs
    (each section states its own command and load). A section the topic does not hold yet goes at the end.
    """
    import json

    kinds = {record["kind"] for record in section}
    old = json.loads((results / f"{topic}.json").read_text(encoding="utf-8"))
    where = next((i for i, record in enumerate(old) if record["kind"] in kinds), len(old))
    kept = [record for record in old if record["kind"] not in kinds]
    spliced = kept[:where] + [dict(record) for record in section] + kept[where:]
    return publish(topic, spliced, results, markdown)


def report(topic: str, records: Sequence[Mapping[str, Any]], write: bool) -> str:
    """The Markdown text of a topic's records; with ``write``, also :func:`publish` them (a full run)."""
    from render import Topic, render_text

    if write:
        return publish(topic, records).read_text(encoding="utf-8")
    return render_text(Topic(topic, records))


def best_time(fn: Callable[[], Any], repeats: int = 5, warmup: int = 1) -> float:
    """Seconds of the fastest of ``repeats`` calls, after ``warmup`` untimed ones (oneDNN builds kernels)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` torch threads, restoring the previous setting."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


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


def spread(values: Sequence[float]) -> dict[str, float | None]:
    """``mean`` and sample ``std`` of per-seed values (``std`` None for one value), as records hold them."""
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return {"mean": float(np.mean(values)), "std": std}


def summary_figures(row: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of a :func:`summarize` row for a record: a :func:`spread` per metric, mean seconds."""
    names = {"mean": "roc_auc", "worst": "worst_roc_auc"}
    return {**{names.get(key, key): spread(row[key]) for key in SUMMARY},
            "seconds": float(np.mean(row["seconds"]))}


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
