"""What verifying the image cache's checksum costs: warm loads with and without it, side by side.

Usage (from the repository root)::

    python benchmarks/cache_checksum.py                  # 1440 x 2 files, 1x32x32 and 3x64x64
    python benchmarks/cache_checksum.py --files 200 --repeats 3

A warm load is :func:`mmocc.data.images.decode_files` served from the cache
(a stat of every source file, the cache key, reading the entry and, with
verification, hashing its array), and :func:`mmocc.datasets.load_manifest`
of a two-view manifest over the same files (what a user waits for: the CSV,
the paths, the decode and the data set). *Not verified* replaces
:func:`mmocc.data.cache.checksum` by a constant while the entry is written
and read, so the same bytes are read the same way but never hashed. Each
pair is timed alternately and the medians reported. Since the stat of every
file dominates a warm load and varies more than the hash costs, the cost of
verification is taken from reading the entry alone (verified minus not
verified) and given as a share of each unverified warm load. The hash alone
is also timed for each candidate :mod:`hashlib` algorithm. Times are the
process's CPU time (a warm load runs on one thread), which other jobs on the
machine disturb less than wall time; the report names the CPU and the load
average all the same.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import cpu_model
from PIL import Image

from mmocc.data import cache
from mmocc.data.images import decode_files
from mmocc.datasets import load_manifest

SHAPES = ((1, 32), (3, 64))
"""(channels, side) of the entries timed: COIL-20 at the default size, and colour at twice it."""
ALGORITHMS = ("sha256", "blake2b", "sha1", "md5")




def make_files(folder: Path, n: int, channels: int, side: int) -> list[Path]:
    """Write ``n`` random PNG images of ``side`` x ``side`` pixels and ``channels`` channels."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    shape = (side, side) if channels == 1 else (side, side, channels)
    paths = [folder / f"{i}.png" for i in range(n)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return paths


def once_ms(run: Callable[[], Any]) -> float:
    """CPU time of one call of ``run``, in milliseconds."""
    start = time.process_time()
    run()
    return 1e3 * (time.process_time() - start)


def median_ms(run: Callable[[], Any], repeats: int) -> float:
    """Median CPU time of ``run`` in milliseconds, after one untimed call."""
    run()
    return statistics.median(once_ms(run) for _ in range(repeats))


def write_manifest(files: list[Path], folder: Path) -> Path:
    """Write a two-view manifest pairing consecutive files; return its path."""
    path = folder / "manifest.csv"
    rows = [f"s{i},{files[2 * i].name},{files[2 * i + 1].name}" for i in range(len(files) // 2)]
    path.write_text("\n".join(["sample_id,left,right", *rows]) + "\n")
    return path


class Unverified:
    """Within the block, :func:`mmocc.data.cache.checksum` is a constant: entries are read, never hashed."""

    def __enter__(self) -> None:
        self.real = cache.checksum
        cache.checksum = lambda array: bytes(32)

    def __exit__(self, *exc: object) -> None:
        cache.checksum = self.real


def side_by_side(run: Callable[[str], Any], repeats: int) -> tuple[float, float]:
    """Median CPU times (ms) of ``run("verified")`` and, unverified, ``run("unverified")``, alternately."""
    run("verified")
    with Unverified():
        run("unverified")
    verified, unverified = [], []
    for _ in range(repeats):
        verified.append(once_ms(lambda: run("verified")))
        with Unverified():
            unverified.append(once_ms(lambda: run("unverified")))
    return statistics.median(verified), statistics.median(unverified)


def measure(n: int, channels: int, side: int, repeats: int, folder: Path) -> list[str]:
    """Report lines for one entry shape."""
    files = make_files(folder / "img", n, channels, side)
    manifest = write_manifest(files, folder / "img")
    mode = "L" if channels == 1 else "RGB"
    shape = (n, channels, side, side)
    loaders = {
        "decode_files": lambda variant: decode_files(files, size=side, mode=mode, cache_dir=folder / variant),
        "load_manifest": lambda variant: load_manifest(
            manifest, size=side, mode=mode, cache_dir=folder / variant
        ),
    }
    loads = {name: side_by_side(load, repeats) for name, load in loaders.items()}
    entries = {variant: next((folder / variant).glob("images-*")) for variant in ("verified", "unverified")}
    read, unread = side_by_side(lambda variant: cache.read_cached(entries[variant], shape), repeats)
    cost = read - unread
    array = np.zeros(shape, dtype=np.uint8)
    lines = [
        f"entry {n} x {channels}x{side}x{side} ({array.nbytes / 1e6:.1f} MB), checksum {cache.CHECKSUM}:",
        f"  read the entry  : verified {read:6.1f} ms, not verified {unread:6.1f} ms; "
        f"verification {cost:.1f} ms",
    ]
    for name, (verified, unverified) in loads.items():
        lines.append(
            f"  warm {name:<13}: verified {verified:6.1f} ms, not verified {unverified:6.1f} ms; "
            f"verification = {100 * cost / unverified:4.1f} % of it"
        )
    base = loads["decode_files"][1]
    for name in ALGORITHMS:
        alone = median_ms(lambda name=name: hashlib.new(name, array.data).digest(), repeats)
        lines.append(
            f"  {name:<8} alone {alone:6.1f} ms = {100 * alone / base:5.1f} % of a warm decode_files"
        )
    return lines


def main() -> None:
    """Parse the arguments, time each entry shape and print the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2880, help="images per entry (COIL-20: 1440 x 2)")
    parser.add_argument("--repeats", type=int, default=7, help="timed loads per variant")
    args = parser.parse_args()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average {os.getloadavg()[0]:.2f}")
    for channels, side in SHAPES:
        with tempfile.TemporaryDirectory() as folder:
            print("\n".join(measure(args.files, channels, side, args.repeats, Path(folder))))
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
