"""Time AUPRO and pixel ROC AUC at a realistic size and report the peak extra memory.

Synthetic data: ``--images`` float32 anomaly maps of ``--size`` x ``--size``
pixels (default 1,000 of 256x256, 6.6e7 pixels); every other image has one to
three disc-shaped defects of radius 2 to ``--radius`` px (15: about 1% of the
pixels in all; larger radii give many more distinct defect scores),
the maps are uniform noise plus a bump on the defects, so scores are mostly
distinct. Prints the seconds of :func:`mmocc.metrics.aupro`, of
:func:`mmocc.metrics.pixel_metrics_by_type` (five types), and the peak memory
they allocate beyond the inputs (``tracemalloc``, which sees NumPy's buffers),
timed and traced in separate runs; then the same images as a list, through
:func:`mmocc.metrics.pixel_metrics_by_type_ragged` (the path of images of
different sizes), with the same values. Usage::

    python benchmarks/pixel_metrics_speed.py
    python benchmarks/pixel_metrics_speed.py --images 100 --size 128
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from collections.abc import Callable

import numpy as np

from mmocc.metrics import aupro, pixel_metrics_by_type, pixel_metrics_by_type_ragged


def make_data(
    n_images: int, size: int, seed: int = 0, radius: int = 15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Masks (bool), maps (float32) and labels ('good' or one of five types) for ``n_images``."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_images, size, size), dtype=bool)
    rows, cols = np.ogrid[:size, :size]
    for i in range(1, n_images, 2):
        for _ in range(rng.integers(1, 4)):
            r, c, disc = rng.integers(0, size), rng.integers(0, size), rng.integers(2, radius + 1)
            masks[i] |= (rows - r) ** 2 + (cols - c) ** 2 <= disc**2
    maps = rng.random(masks.shape, dtype=np.float32)
    np.add(maps, np.float32(0.6), out=maps, where=masks)
    types = np.array([f"type{k}" for k in rng.integers(0, 5, n_images)])
    labels = np.where(np.arange(n_images) % 2 == 1, types, "good")
    return masks, maps, labels


def measure(call: Callable[[], object]) -> tuple[object, float, float]:
    """Result and seconds of one untraced call, and the peak MiB allocated by a second, traced call."""
    start = time.perf_counter()
    result = call()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, seconds, peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--radius", type=int, default=15, help="largest defect radius, px (default 15)")
    args = parser.parse_args()
    masks, maps, labels = make_data(args.images, args.size, radius=args.radius)
    inputs = (masks.nbytes + maps.nbytes) / 2**20
    print(
        f"{args.images} maps of {args.size}x{args.size} ({masks.size:.3g} pixels, "
        f"{masks.mean():.2%} defect pixels), inputs {inputs:.0f} MiB"
    )
    value, seconds, peak = measure(lambda: aupro(masks, maps))
    print(f"aupro: {value:.4f} in {seconds:.2f} s, peak extra memory {peak:.0f} MiB")
    _, seconds, peak = measure(lambda: pixel_metrics_by_type(masks, maps, labels, normal="good"))
    print(f"pixel_metrics_by_type (5 types + overall): {seconds:.2f} s, peak extra memory {peak:.0f} MiB")
    images, scores = list(masks), list(maps)
    _, seconds, peak = measure(lambda: pixel_metrics_by_type_ragged(images, scores, labels, normal="good"))
    print(f"pixel_metrics_by_type_ragged (a list): {seconds:.2f} s, peak extra memory {peak:.0f} MiB")
    print(f"process peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB")


if __name__ == "__main__":
    main()
