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
Timings taken while other jobs load the machine are worthless: the report
records the load average.
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
from bench_common import cpu_model, peak_rss_mib, write_manifest
from speed import COIL

from mmocc.data.images import RESAMPLE, decode_files
from mmocc.utils.files import atomic_open

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "benchmarks" / "STREAMING.md"
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


def section(smoke: bool = False, quick: bool = False, before: Path = BEFORE, threads: int = 1) -> list[str]:
    """Measure and return the Markdown lines of the streaming and cache-rate report.

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
    list of str
        The report's lines.
    """
    n, repeats = SIZES["smoke" if smoke else "quick" if quick else "full"]
    before_src = _checkout(before)
    mem = score_memory(n, 50 if smoke else 1000, threads, before_src)
    met = mem["after_mib"] * 2**20 / 1e6 < TARGET_MIB
    lines = [
        "## Streaming sources: peak memory of `mmocc score`",
        "",
        f"{n:,} RGB 32x32 PNG pairs read through a manifest (cycling over {50 if smoke else 1000:,} distinct "
        f"pairs), paper preset, {threads} torch thread(s), each with its default `--batch-size` "
        "(before 4,096, after 1,024); peak RSS is the child's `ru_maxrss`. *Before* holds every decoded "
        "image; *after* lists the samples, then decodes, "
        "scores and writes 1,024 at a time with two chunks decoded ahead.",
        "",
        "| code | peak RSS MiB | wall s | decoded images if all held, MiB |",
        "|---|---:|---:|---:|",
        f"| before (no streaming) | {mem['before_mib']:.0f} | {mem['before_s']:.1f} "
        f"| {mem['data_mib']:.0f} |",
        f"| after (streaming) | {mem['after_mib']:.0f} | {mem['after_s']:.1f} | {mem['data_mib']:.0f} |",
        "",
        f"CSV byte for byte equal: **{'yes' if mem['same_csv'] else 'NO'}**. Target: peak under "
        f"{TARGET_MIB} MB at 100,000 pairs: **{'met' if met else 'missed'}**"
        f"{'' if n == 100_000 else f' (measured at {n:,} pairs only)'}.",
        "",
    ]
    if not COIL.is_dir():
        return [*lines, f"Cache rates skipped: {COIL} is absent.", ""]
    rates = cache_rates(repeats, before_src)
    lines += [
        f"## Image cache build rate (the {rates['files']:,} COIL-20 PNG files, 32x32 grey, cold cache)",
        "",
        "Plain Pillow: open, convert, Lanczos resize, per file (with threads, over a thread pool). "
        f"`decode_files` adds the cache key (stat and resolved path per file), the checksum and the write. "
        f"Best of {repeats} interleaved rounds.",
        "",
        "| threads | plain Pillow images/s | before | of Pillow | after | of Pillow |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for k in rates["threads"]:
        pil, old, new = rates[f"pillow_{k}"], rates[f"before_{k}"], rates[f"after_{k}"]
        lines.append(f"| {k} | {pil:.0f} | {old:.0f} | {old / pil:.1%} | {new:.0f} | {new / pil:.1%} |")
    worst = min(rates[f"after_{k}"] / rates[f"pillow_{k}"] for k in rates["threads"])
    lines += [
        "",
        f"Target: at least {TARGET_CACHE:.0%} of plain Pillow at the same threads: "
        f"**{'met' if worst >= TARGET_CACHE else 'missed'}** (worst {worst:.1%}). The cache key now costs "
        "one `lstat` per file (its status, unless it is a link) and one `resolve` per folder, not a stat "
        "and a `resolve` per file, and the thread pool takes 64 files per task instead of one.",
        "",
    ]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    """Run the measurements and write benchmarks/STREAMING.md (a temp file with ``--smoke``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes; report in a temp folder")
    parser.add_argument("--quick", action="store_true", help="20,000 pairs, fewer repeats")
    parser.add_argument("--before", type=Path, default=BEFORE, help="checkout of the code before streaming")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the scoring runs")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    lines = [
        "# Streaming sources and the image cache",
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} logical CPUs; 1-minute load average at the start "
        f"{os.getloadavg()[0]:.2f}.",
        "",
        *section(args.smoke, args.quick, args.before, args.threads),
        f"_The run took {time.perf_counter() - start:.0f} s; 1-minute load average at the end: "
        f"{os.getloadavg()[0]:.2f}._",
        "",
    ]
    path = Path(tempfile.mkdtemp()) / "STREAMING.md" if args.smoke else REPORT
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
