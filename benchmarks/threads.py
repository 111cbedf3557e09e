"""Threads under load: does ``mmocc train`` collapse when other processes share the cores?

OpenMP threads that spin-wait (``OMP_WAIT_POLICY=ACTIVE``, the libgomp
behaviour torch got before) burn their time slices waiting for each other
when other processes hold the cores. The CLI now sets ``OMP_WAIT_POLICY=PASSIVE``
unless the environment sets it. This script times the same ``mmocc train`` run,
side by side in one session, with and without busy background processes:

- ``1 thread``: ``--threads 1``;
- ``default, spin``: torch's thread count, ``OMP_WAIT_POLICY=ACTIVE`` (before);
- ``default, passive``: torch's thread count, the CLI's default (after).

Target (issue 14): with two busy background processes the default run takes at
most 1.5 times the 1-thread run. Usage::

    python benchmarks/threads.py            # writes benchmarks/THREADS.md
    python benchmarks/threads.py --smoke    # seconds; prints the report only

The records go to ``benchmarks/results/threads.json`` and THREADS.md is
rendered from them (``render_threads.py``, template ``templates/threads.md``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench_common import command_line, report, run_record

VARIANTS: dict[str, tuple[list[str], dict[str, str]]] = {
    "1 thread": (["--threads", "1"], {}),
    "default, spin (before)": ([], {"OMP_WAIT_POLICY": "ACTIVE"}),
    "default, passive (after)": ([], {}),
}


@contextmanager
def busy_processes(n: int) -> Iterator[None]:
    """Keep ``n`` processes spinning on the CPU for the duration."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def time_train(args: list[str], env: dict[str, str], data: str, epochs: int, out: Path) -> float:
    """Wall seconds of one ``mmocc train`` run in a fresh process."""
    environ = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    command = [
        sys.executable,
        "-m",
        "mmocc",
        "train",
        "--data",
        data,
        "--normal",
        "0",
        "--epochs",
        str(epochs),
        "-q",
        "--out",
        str(out),
        *args,
    ]
    start = time.perf_counter()
    subprocess.run(command, env={**environ, **env}, check=True, capture_output=True)
    return time.perf_counter() - start


def measure(data: str, epochs: int, repeats: int, busy: int) -> dict[str, float]:
    """Best-of-``repeats`` wall time of each variant, with ``busy`` background processes."""
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder, busy_processes(busy):
        for _ in range(repeats):  # interleaved, so that drifting load hits every variant alike
            for name, (args, env) in VARIANTS.items():
                seconds = time_train(args, env, data, epochs, Path(folder) / "m.mmocc")
                best[name] = min(best.get(name, float("inf")), seconds)
    return best


def main() -> None:
    """Run the measurement; save the records and write THREADS.md (or only print, with --smoke)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny data, one repeat, print only")
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    data = (
        "synthetic:n_per_class=12,n_classes=2,size=16"
        if options.smoke
        else "synthetic:n_per_class=120,size=32"
    )
    epochs, repeats = (1, 1) if options.smoke else (8, options.repeats)
    started = time.perf_counter()
    run = run_record("threads", command_line("threads.py"), data=data, epochs=epochs, repeats=repeats)
    records = [run]
    for busy in (0, 2):
        times = measure(data, epochs, repeats, busy)
        one, spin, passive = (times[name] for name in VARIANTS)
        records.append({"kind": "load", "busy": busy, "one_thread": one, "spin": spin, "passive": passive,
                        "spin_ratio": spin / one, "passive_ratio": passive / one})
    run["seconds"] = time.perf_counter() - started
    print(report("threads", records, write=not options.smoke))


if __name__ == "__main__":
    main()
