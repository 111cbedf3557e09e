"""Regenerate benchmarks/STREAMING.md: peak memory of a streamed ``mmocc score``; the cache's build rate.

Usage (from the repository root)::

    python benchmarks/streaming.py            # 100,000 pairs, 5 repeats of the cache rates
    python benchmarks/streaming.py --quick    # 20,000 pairs, 3 repeats
    python benchmarks/streaming.py --smoke    # 500 pairs, 1 repeat, report in a temp folder

*Before* is the code before streaming (the parent of the commit that added
``src/mmocc/data/listing.py``), checked out with ``git worktree add``
(at ``--before``, created when absent) and run from its ``src`` folder;
*after* is this checkout. Both score the same generated manifest (RGB 32x32
PNG pairs cycling over a few distinct files, as ``speed.py`` measures it) in a
subprocess whose peak RSS is read by :func:`bench_common.peak_rss_mib`, and their CSVs
are compared byte for byte. The cache rates time plain Pillow and both
versions of ``decode_files`` side by side, interleaved, on the COIL-20 files.
Timings taken while other jobs load the machine are worthless: the records
keep the load average. The records (:func:`measure_records`) go to
``benchmarks/results/streaming.json`` and STREAMING.md is rendered from them
(``render_scale.py``); ``speed.py`` puts the same records into SPEED.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from bench_common import COIL, ROOT, command_line, peak_rss_mib, publish, run_record, write_manifest

from mmocc.data.images import RESAMPLE, decode_files

BEFORE = Path(tempfile.gettempdir()) / "mmocc-before-streaming"
TARGET_MIB = 600
TARGET_CACHE = 0.90
SIZES = {"full": (100_000, 5), "quick": (20_000, 3), "smoke": (500, 1)}
"""Pairs scored and repeats of the cache timings, per mode."""


def _checkout(before: Path) -> Path:
    """The ``src`` folder of the code before streaming, checked out at ``before`` when it is not there yet.

    That is the parent of the commit that added ``src/mmocc/data/listing.py``.
    """
    if not (before / "src" / "mmocc").is_dir():
        added = subprocess.run(
            ["git", "log", "--diff-filter=A", "--format=%H", "--", "src/mmocc/data/listing.py"],
            cwd=ROOT, check=True, capture_output=True, text=True,
        ).stdout.split()
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(before), f"{added[-1]}^"],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    return before / "src"


def score_memory(n: int, distinct: int, threads: int, before_src: Path) -> dict[str, Any]:
    """Peak RSS and wall seconds of ``mmocc score`` on ``n`` pairs, before and after; are the CSVs equal."""
    from PIL import Image

    out: dict[str, Any] = {"n": n, "data_mib": n * 2 * 3 * 32 * 32 / 2**20}
    with tempfile.TemporaryDirectory() as tmp:
        root, rng = Path(tmp), np.random.default_rng(0)
        (root / "img").mkdir()
        for i, view in itertools.product(range(distinct), ("left", "right")):
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(
                root / "img" / f"{i}_{view}.png"
            )
        model = root / "model.safetensors"  # written by the old code, which both versions read
        fit = (
            "import sys, numpy as np, mmocc; r = np.random.default_rng(0); "
            "X = {v: r.integers(0, 256, (256, 3, 32, 32), dtype=np.uint8) for v in ('left', 'right')}; "
            "clf = mmocc.MultimodalOCC(preset='paper', epochs=1, random_state=0, device='cpu'); "
            "clf.fit(X).save(sys.argv[1])"
        )
        subprocess.run(
            [sys.executable, "-c", fit, str(model)],
            check=True,
            env={**os.environ, "PYTHONPATH": str(before_src)},
        )
        manifest = write_manifest(root, n, distinct)
        for name, src in (("before", before_src), ("after", ROOT / "src")):
            env = {**os.environ, "MMOCC_CACHE_DIR": str(root / f"cache_{name}"), "PYTHONPATH": str(src)}
            cli = [
                sys.executable,
                "-m",
                "mmocc",
                "score",
                str(model),
                "--quiet",
                "--device",
                "cpu",
                "--data",
                str(manifest),
                "--out",
                str(root / f"{name}.csv"),
                "--threads",
                str(threads),
            ]
            out[f"{name}_mib"], out[f"{name}_s"] = peak_rss_mib(cli, env)
        out["same_csv"] = (root / "before.csv").read_bytes() == (root / "after.csv").read_bytes()
    return out


def _old_images(before_src: Path) -> ModuleType:
    """The ``mmocc.data.images`` of the code before, loaded under another name beside this one."""
    spec = importlib.util.spec_from_file_location("mmocc_images_before", before_src / "mmocc/data/images.py")
    if spec is None or spec.loader is None:
        raise FileNotFoundError(before_src / "mmocc/data/images.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cache_rates(repeats: int, before_src: Path, files: Sequence[Path] | None = None) -> dict[str, Any]:
    """Images/s of plain Pillow and of a cold ``decode_files`` before and after, at 1 and all threads.

    Plain Pillow with threads maps the same per-file work over a thread pool.
    Every variant runs once per round, rounds interleaved; the best round counts.
    """
    from PIL import Image

    files = list(files or sorted(p for p in COIL.iterdir() if p.suffix.lower() == ".png"))
    for path in files:  # same OS file cache state for everyone
        path.read_bytes()
    old = _old_images(before_src)

    def pillow(n_jobs: int) -> Callable[[], None]:
        out = np.empty((len(files), 1, 32, 32), np.uint8)

        def one(i: int) -> None:
            with Image.open(files[i]) as image:
                out[i, 0] = np.asarray(image.convert("L").resize((32, 32), RESAMPLE))

        def run() -> None:
            if n_jobs == 1:
                for i in range(len(files)):
                    one(i)
            else:
                with ThreadPoolExecutor(n_jobs) as pool:
                    list(pool.map(one, range(len(files))))

        return run

    def cold(decode: Callable[..., Any], n_jobs: int) -> Callable[[], None]:
        def run() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                decode(files, size=32, mode="L", cache=True, cache_dir=tmp, n_jobs=n_jobs)

        return run

    threads = sorted({1, os.cpu_count() or 1})
    variants = {f"pillow_{k}": pillow(k) for k in threads}
    variants |= {f"before_{k}": cold(old.decode_files, k) for k in threads}
    variants |= {f"after_{k}": cold(decode_files, k) for k in threads}
    best = dict.fromkeys(variants, np.inf)
    for _ in range(repeats):
        for name, run in variants.items():
            start = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - start)
    return {"files": len(files), "threads": threads, **{k: len(files) / v for k, v in best.items()}}


def measure_records(smoke: bool = False, quick: bool = False, before: Path = BEFORE,
                    threads: int = 1) -> list[dict[str, Any]]:
    """Measure and return the records of the streaming and cache-rate sections.

    Parameters
    ----------
    smoke : bool, default False
        Tiny sizes, one repeat.
    quick : bool, default False
        20,000 pairs instead of 100,000, three repeats.
    before : pathlib.Path
        Where the code before streaming is (or gets) checked out.
    threads : int, default 1
        Torch threads of the scoring subprocesses.

    Returns
    -------
    list of dict
        ``streaming`` (peak memory and seconds before and after, decoded size,
        equal CSVs, the target and whether it is met), then ``cache_setup`` and a
        ``cache`` record per thread count (images/s and shares of plain Pillow),
        or ``cache_skipped`` without the COIL-20 files.
    """
    n, repeats = SIZES["smoke" if smoke else "quick" if quick else "full"]
    distinct = 50 if smoke else 1000
    before_src = _checkout(before)
    mem = score_memory(n, distinct, threads, before_src)
    records: list[dict[str, Any]] = [{
        "kind": "streaming", "n": n, "distinct": distinct, "threads": threads,
        **{k: mem[k] for k in ("before_mib", "before_s", "after_mib", "after_s", "data_mib", "same_csv")},
        "target_mib": TARGET_MIB, "met": mem["after_mib"] * 2**20 / 1e6 < TARGET_MIB,
    }]
    if not COIL.is_dir():
        return [*records, {"kind": "cache_skipped", "path": str(COIL)}]
    rates = cache_rates(repeats, before_src)
    rows = [{"kind": "cache", "threads": k, "pillow": rates[f"pillow_{k}"], "before": rates[f"before_{k}"],
             "before_share": rates[f"before_{k}"] / rates[f"pillow_{k}"], "after": rates[f"after_{k}"],
             "after_share": rates[f"after_{k}"] / rates[f"pillow_{k}"]} for k in rates["threads"]]
    worst = min(row["after_share"] for row in rows)
    setup = {"kind": "cache_setup", "files": rates["files"], "repeats": repeats, "target": TARGET_CACHE,
             "met": worst >= TARGET_CACHE, "worst": worst}
    return [*records, setup, *rows]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the measurements; save the records and write STREAMING.md (into a temp folder with ``--smoke``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; records and report in a temp dir")
    parser.add_argument("--quick", action="store_true", help="20,000 pairs, fewer repeats")
    parser.add_argument("--before", type=Path, default=BEFORE, help="checkout of the code before streaming")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the scoring runs")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    flags = ["--smoke"] if args.smoke else ["--quick"] if args.quick else []
    run = run_record("streaming", command_line("streaming.py", flags))
    records = [run, *measure_records(args.smoke, args.quick, args.before, args.threads)]
    run.update(seconds=time.perf_counter() - start, load_end=os.getloadavg()[0])
    folders = [Path(tempfile.mkdtemp(prefix="mmocc-streaming-"))] * 2 if args.smoke else []
    path = publish("streaming", records, *folders)
    print(path.read_text(encoding="utf-8"))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
