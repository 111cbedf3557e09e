"""How much of Magnetic-tile's defects each resize mode keeps at one input size, and how fast it loads.

Every image of ``../shared/data/magnetic-tile`` (one at a time,
``per_image=True``) is loaded with each ``resize`` mode (``stretch``,
``pad``, ``crop``) at ``--size`` (128), without the cache. Over the
defective images (every class but ``Free``) it prints:

- ``area after/before``: the defect area of the loaded masks, in source
  pixels (each output pixel counts the source pixels it covers in the
  scaled image), over the defect area of the original masks. Masks are
  resized keeping every defect (a cell is a defect if any pixel under it
  is), so above 1 means defects grew by that rounding, below 1 that some
  were cropped away;
- ``median px``: the median defect area per image in output pixels, what a
  detector sees;
- ``regions kept``: the share of connected defect regions (8-connected, in
  the original masks) with at least one pixel left;
- ``image kept``: the share of the source image area inside the square;
- ``load s``: seconds to list and decode all images and masks (best of
  ``--repeats``).

Usage::

    python benchmarks/mtile_resize.py [--data PATH] [--size 128] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from mmocc.data.dataset import MultiViewDataset
from mmocc.data.images import RESIZE_MODES, fit_mask, square_geometry
from mmocc.data.mtile import NORMAL_LABEL, SINGLE_VIEW, load_mtile

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "magnetic-tile"


def load(root: Path, size: int, resize: str, repeats: int) -> tuple[MultiViewDataset, float]:
    """Load every image with one resize mode; return the data and the best time of ``repeats``."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        data = load_mtile(root, per_image=True, size=size, resize=resize, cache=False)
        best = min(best, time.perf_counter() - start)
    return data, best


def measure(data: MultiViewDataset, size: int, resize: str) -> dict[str, float]:
    """Compare the loaded masks of the defective images with their original masks."""
    before = after = kept_area = total_area = 0.0
    regions = kept_regions = empty = 0
    pixels = []
    for i in np.flatnonzero(data.labels != NORMAL_LABEL):
        source = np.asarray(Image.open(data.mask_paths[SINGLE_VIEW][i])) > 0
        loaded = data.masks[SINGLE_VIEW][i]
        (height, width), corner = square_geometry(source.shape[1], source.shape[0], size, resize)
        per_pixel = source.size / (height * width)  # source pixels under one output pixel
        before += source.sum()
        after += loaded.sum() * per_pixel
        pixels.append(int(loaded.sum()))
        total_area += source.size
        kept_area += min(size, height) * min(size, width) * per_pixel
        labelled, n_regions = ndimage.label(source, structure=np.ones((3, 3), dtype=bool))
        fitted = [fit_mask(labelled == k, size, resize) for k in range(1, n_regions + 1)]
        if not np.array_equal(np.any([np.zeros_like(loaded), *fitted], axis=0), loaded):
            raise AssertionError(f"{data.ids[i]}: the loaded mask differs from its regions' geometry")
        regions += n_regions
        empty += n_regions == 0
        kept_regions += sum(bool(region.any()) for region in fitted)
    return {
        "area": after / before,
        "median_px": float(np.median(pixels)),
        "regions": kept_regions / regions,
        "n_regions": regions,
        "image": kept_area / total_area,
        "n_images": len(pixels),
        "empty": empty,
    }


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the magnetic-tile folder")
    parser.add_argument("--size", type=int, default=128, help="input side length in pixels")
    parser.add_argument("--repeats", type=int, default=2, help="loads timed per mode (the best counts)")
    args = parser.parse_args()
    if not args.data.is_dir():
        parser.error(f"no magnetic-tile folder at {args.data}")
    rows = []
    for resize in RESIZE_MODES:
        data, seconds = load(args.data, args.size, resize, args.repeats)
        rows.append((resize, seconds, measure(data, args.size, resize)))
    first = rows[0][2]
    print(
        f"magnetic-tile at {args.size} px, {len(data)} images loaded per mode; "
        f"{first['n_images']:.0f} defective images ({first['empty']:.0f} with an empty mask), "
        f"{first['n_regions']:.0f} defect regions"
    )
    print(
        f"{'resize':<8} {'area after/before':>17} {'median px':>9} {'regions kept':>12} "
        f"{'image kept':>10} {'load s':>7}"
    )
    for resize, seconds, m in rows:
        print(
            f"{resize:<8} {m['area']:>17.3f} {m['median_px']:>9.0f} {m['regions']:>12.1%} "
            f"{m['image']:>10.1%} {seconds:>7.2f}"
        )


if __name__ == "__main__":
    main()
