"""Scoring on a Dask cluster: 1 vs 2 workers against single-process ``mmocc score``, on this machine.

Scores a manifest of N generated pairs of small PNGs (decoded every run,
``-O cache=false``) with one model:

- warm, interleaved over a few rounds so that a changing load weighs on every
  variant alike: scoring in this process with 1 and 2 torch threads, and
  :func:`mmocc.deploy.cluster.score` on started, warmed LocalClusters of 1 and 2
  one-thread workers (torch uses 1 thread per worker): what a long run on a
  real cluster sees;
- end to end, once each: ``mmocc score --threads 1`` and ``mmocc score
  --engine dask --workers 2`` in fresh processes (imports, cluster start,
  merge included).

Every cluster output is checked to equal the single-process CSV byte for byte.
Timings taken while other jobs load the machine are worthless: the report
records the load average. Usage (from the repository root)::

    python benchmarks/cluster_scaling.py            # 20,000 pairs; writes benchmarks/CLUSTER.md
    python benchmarks/cluster_scaling.py --quick    # 5,000 pairs
    python benchmarks/cluster_scaling.py --smoke    # 1,000 pairs; prints the report only

The records (:func:`measure_records`) go to ``benchmarks/results/cluster.json``
and CLUSTER.md is rendered from them (``render_scale.py``); ``speed.py`` puts
the same records into SPEED.md.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import command_line, cpu_model, report, run_record, torch_threads, write_manifest
from PIL import Image

from mmocc import MultimodalOCC, distributed

DISTINCT = 200
"""Distinct PNG pairs the manifest cycles over."""
BATCH = 500
"""Samples per chunk: 40 chunks at 20,000 pairs, so 2 workers get 4 shards each."""
Timings = dict[tuple[int | None, int], list[float]]


def _setup(root: Path, n: int) -> tuple[Path, Path]:
    """Write the PNG pairs, a manifest of ``n`` pairs and a model trained on 256 of them."""
    from mmocc.data.sources import load_source

    rng = np.random.default_rng(0)
    (root / "img").mkdir()
    for i, view in itertools.product(range(DISTINCT), ("left", "right")):
        pixels = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "img" / f"{i}_{view}.png")
    manifest = write_manifest(root, n, DISTINCT)
    train = load_source(str(write_manifest(root, 256, DISTINCT)), size=32, cache=False)
    model = root / "model.mmocc"
    MultimodalOCC(epochs=1, random_state=0, device="cpu").fit(train).save(model)
    return manifest, model


def _cli(args: list[str], root: Path) -> float:
    """Wall seconds of one ``mmocc score`` run in a fresh process."""
    env = {**os.environ, "MMOCC_CACHE_DIR": str(root / "cache")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mmocc", "score", *args], check=True, env=env, cwd=root)
    return time.perf_counter() - start


def _single(model: Path, manifest: Path, threads: int) -> float:
    """Seconds of in-process single-process scoring: decode and score every chunk, as ``mmocc score`` does."""
    import mmocc
    from mmocc.data.sources import parse_source
    from mmocc.data.streaming import plan_source
    from mmocc.deploy.batch import model_data_options, score_chunks, score_columns

    with torch_threads(threads):
        start = time.perf_counter()
        clf, parsed = mmocc.load(model, device="cpu"), parse_source(str(manifest))
        plan = plan_source(parsed, **model_data_options(clf, parsed, {"cache": False}))
        for chunk, scores, by_view, parts in score_chunks(clf, plan, BATCH, quiet=True):
            score_columns(chunk, scores, clf.threshold_, by_view, parts)
        return time.perf_counter() - start


def _check_same(path: Path, reference: Path) -> None:
    """Raise naming the first line where ``path`` differs from ``reference``."""
    got, want = path.read_text().splitlines(), reference.read_text().splitlines()
    for i, (line, expected) in enumerate(zip(got, want, strict=False)):
        if line != expected:
            raise AssertionError(f"{path} differs from {reference.name} at line {i + 1}:\n{line}\n{expected}")
    if len(got) != len(want):
        raise AssertionError(f"{path} has {len(got)} lines, {reference.name} {len(want)}")


def _rounds(root: Path, manifest: Path, model: Path, rounds: int) -> tuple[Timings, list[int]]:
    """Interleaved timings (seconds per run) on warm clusters of 1 and 2 workers.

    Each round runs every variant once, so that a load that changes over time
    weighs on all of them alike. Returns the timings by (workers, torch threads),
    workers None for in-process scoring, and the workers' torch threads.
    """
    import torch
    from distributed import Client

    times: Timings = {}
    with (
        distributed.local_cluster(1) as one,
        Client(one) as client_1,
        distributed.local_cluster(2) as two,
        Client(two) as client_2,
    ):
        clients = {1: client_1, 2: client_2}
        threads = [t for c in clients.values() for t in c.run(torch.get_num_threads).values()]
        common = {"batch_size": BATCH, "data_options": {"cache": False}, "device": "cpu"}
        for workers, client in clients.items():  # load the model and list the source in every worker
            distributed.score(model, str(manifest), root / f"warm{workers}", client=client, **common,
                              n_shards=workers)
        for r in range(rounds):
            for threads_single in (1, 2):
                times.setdefault((None, threads_single), []).append(_single(model, manifest, threads_single))
            for workers, client in clients.items():
                out = root / f"api{workers}-{r}"
                start = time.perf_counter()
                distributed.score(model, str(manifest), out, client=client, **common)
                times.setdefault((workers, 1), []).append(time.perf_counter() - start)
                _check_same(out / "scores.csv", root / "single1.csv")
    return times, threads


def measure_records(smoke: bool = False, quick: bool = False) -> list[dict[str, Any]]:
    """Run the measurements and return their records.

    Parameters
    ----------
    smoke : bool, default False
        1,000 pairs, one round: checks that everything runs.
    quick : bool, default False
        5,000 pairs instead of 20,000.

    Returns
    -------
    list of dict
        ``cluster_setup`` (command, sizes, machine, load averages, the workers'
        torch threads and the scaling figures), a ``cluster_warm`` record per
        warm variant (best and median seconds, pairs/s, ratio to one process
        with one thread) and a ``cluster_cli`` record per end-to-end run.
    """
    n, rounds = (1_000, 1) if smoke else (5_000, 3) if quick else (20_000, 3)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest, model = _setup(root, n)
        base = [str(model), "--data", str(manifest), "-O", "cache=false", "--device", "cpu", "-q"]
        base += ["--batch-size", str(BATCH)]
        single_cli = _cli([*base, "--out", "single1.csv", "--threads", "1"], root)
        dask_cli = _cli([*base, "--out", "cli2", "--engine", "dask", "--workers", "2"], root)
        _check_same(root / "cli2" / "scores.csv", root / "single1.csv")
        times, threads = _rounds(root, manifest, model, rounds)
    best = {key: min(values) for key, values in times.items()}
    single = best[None, 1]
    warm = [{"kind": "cluster_warm", "workers": workers, "threads": n_threads, "best_s": min(values),
             "median_s": float(np.median(values)), "pairs_per_s": n / min(values),
             "vs_single": single / min(values)} for (workers, n_threads), values in times.items()]
    flags = ["--smoke"] if smoke else ["--quick"] if quick else []
    setup = {"kind": "cluster_setup", "command": command_line("cluster_scaling.py", flags),
             "mode": "smoke" if smoke else "quick" if quick else "full", "n": n, "distinct": DISTINCT,
             "batch": BATCH, "rounds": rounds, "cpu": cpu_model(), "cores": os.cpu_count(),
             "load_before": list(load_before), "load_after": list(os.getloadavg()),
             "worker_threads": sorted(set(threads)), "scaling": best[1, 1] / best[2, 1],
             "two_workers_vs_single": single / best[2, 1]}
    return [setup, *warm, {"kind": "cluster_cli", "run": "single", "seconds": single_cli},
            {"kind": "cluster_cli", "run": "dask", "workers": 2, "seconds": dask_cli}]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the report; unless ``--smoke``, save the records and write CLUSTER.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="1,000 pairs; print the report only")
    parser.add_argument("--quick", action="store_true", help="5,000 pairs instead of 20,000")
    args = parser.parse_args(argv)
    records = [run_record("cluster", command_line("cluster_scaling.py")),
               *measure_records(smoke=args.smoke, quick=args.quick)]
    print(report("cluster", records, write=not args.smoke))
    return 0


if __name__ == "__main__":
    sys.exit(main())
