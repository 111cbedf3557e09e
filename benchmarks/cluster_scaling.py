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

import numpy as np
from bench_common import cpu_model, write_manifest
from PIL import Image

from mmocc import MultimodalOCC, distributed

HERE = Path(__file__).resolve().parent
DISTINCT = 200
"""Distinct PNG pairs the manifest cycles over."""
BATCH = 500
"""Samples per chunk: 40 chunks at 20,000 pairs, so 2 workers get 4 shards each."""


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
    import torch

    import mmocc
    from mmocc.data.sources import parse_source
    from mmocc.data.streaming import plan_source
    from mmocc.deploy.batch import model_data_options, score_chunks, score_columns

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        clf, parsed = mmocc.load(model, device="cpu"), parse_source(str(manifest))
        plan = plan_source(parsed, **model_data_options(clf, parsed, {"cache": False}))
        for chunk, scores, by_view in score_chunks(clf, plan, BATCH, quiet=True):
            score_columns(chunk, scores, clf.threshold_, by_view)
        return time.perf_counter() - start
    finally:
        torch.set_num_threads(before)


def _check_same(path: Path, reference: Path) -> None:
    """Raise naming the first line where ``path`` differs from ``reference``."""
    got, want = path.read_text().splitlines(), reference.read_text().splitlines()
    for i, (line, expected) in enumerate(zip(got, want, strict=False)):
        if line != expected:
            raise AssertionError(f"{path} differs from {reference.name} at line {i + 1}:\n{line}\n{expected}")
    if len(got) != len(want):
        raise AssertionError(f"{path} has {len(got)} lines, {reference.name} {len(want)}")


def _rounds(root: Path, manifest: Path, model: Path, rounds: int) -> tuple[dict[str, list[float]], list[int]]:
    """Interleaved timings (seconds per run, by variant) on warm clusters of 1 and 2 workers.

    Each round runs every variant once, so that a load that changes over time
    weighs on all of them alike. Returns the timings and the workers' torch threads.
    """
    import torch
    from distributed import Client

    times: dict[str, list[float]] = {}
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
                name = f"in-process scoring, 1 process, {threads_single} torch thread(s)"
                times.setdefault(name, []).append(_single(model, manifest, threads_single))
            for workers, client in clients.items():
                out = root / f"api{workers}-{r}"
                start = time.perf_counter()
                distributed.score(model, str(manifest), out, client=client, **common)
                times.setdefault(f"`distributed.score`, warm cluster of {workers} worker(s)", []).append(
                    time.perf_counter() - start)
                _check_same(out / "scores.csv", root / "single1.csv")
    return times, threads


def section(smoke: bool = False, quick: bool = False) -> list[str]:
    """Run the measurements and return the report as Markdown lines.

    Parameters
    ----------
    smoke : bool, default False
        1,000 pairs, one round: checks that everything runs.
    quick : bool, default False
        5,000 pairs instead of 20,000.

    Returns
    -------
    list of str
        The report's lines.
    """
    n, rounds = (1_000, 1) if smoke else (5_000, 3) if quick else (20_000, 3)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest, model = _setup(root, n)
        base = [str(model), "--data", str(manifest), "-O", "cache=false", "--device", "cpu", "-q"]
        base += ["--batch-size", str(BATCH)]
        seconds = _cli([*base, "--out", "single1.csv", "--threads", "1"], root)
        end_to_end = {"`mmocc score --threads 1`": seconds}
        seconds = _cli([*base, "--out", "cli2", "--engine", "dask", "--workers", "2"], root)
        end_to_end["`mmocc score --engine dask --workers 2`"] = seconds
        _check_same(root / "cli2" / "scores.csv", root / "single1.csv")
        times, threads = _rounds(root, manifest, model, rounds)
    load_after = os.getloadavg()
    best = {name: min(values) for name, values in times.items()}
    single = best["in-process scoring, 1 process, 1 torch thread(s)"]
    one, two = (best[f"`distributed.score`, warm cluster of {w} worker(s)"] for w in (1, 2))
    flag = " --smoke" if smoke else " --quick" if quick else ""
    return [
        "## Scoring on a cluster: 1 vs 2 Dask workers",
        "",
        f"Generated by `python benchmarks/cluster_scaling.py{flag}`: {n:,} pairs of 32 px RGB PNGs "
        f"(a manifest cycling over {DISTINCT} distinct pairs, decoded every run), the default preset, "
        f"chunks of {BATCH}, on the CPU. Warm runs: {rounds} interleaved round(s), best and median shown.",
        "",
        f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores",
        f"- load average (1, 5, 15 min) before: {', '.join(f'{x:.2f}' for x in load_before)}; "
        f"after: {', '.join(f'{x:.2f}' for x in load_after)}",
        f"- torch threads per Dask worker: {sorted(set(threads))} (Dask sets OMP_NUM_THREADS=1 in workers); "
        "the clusters are `mmocc.deploy.cluster.local_cluster`'s, without Dask's MALLOC_TRIM_THRESHOLD_",
        "- every cluster output equals the single-process CSV byte for byte",
        "",
        "| run (warm: model loaded, workers started) | best s | median s | pairs/s | vs 1 process 1 thread |",
        "|---|---|---|---|---|",
        *(
            f"| {name} | {min(v):.2f} | {np.median(v):.2f} | {n / min(v):,.0f} | {single / min(v):.2f}x |"
            for name, v in times.items()
        ),
        "",
        "| end to end (process start, imports, cluster start, merge) | wall s |",
        "|---|---|",
        *(f"| {name} | {s:.2f} |" for name, s in end_to_end.items()),
        "",
        f"Scaling from 1 to 2 workers on a warm cluster: **{one / two:.2f}x** (ideal 2x on {os.cpu_count()} "
        f"cores); 2 workers against one process with 1 thread: {single / two:.2f}x.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; write benchmarks/CLUSTER.md unless ``--smoke``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="1,000 pairs; print the report only")
    parser.add_argument("--quick", action="store_true", help="5,000 pairs instead of 20,000")
    args = parser.parse_args(argv)
    text = "\n".join(section(smoke=args.smoke, quick=args.quick)) + "\n"
    print(text)
    if not args.smoke:
        (HERE / "CLUSTER.md").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
