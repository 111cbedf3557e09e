"""Bank building cost and coverage: exact greedy coreset, greedy among drawn candidates, greedy within cells.

On the patch features the ``pretrained`` preset builds its bank from
(EfficientNet-Lite0 maps of Magnetic-tile's defect-free images, or of the
synthetic bodies when the shared data is absent), for two numbers of
training images, times :func:`mmocc.search.coreset.greedy_coreset` with all
patches as candidates, with ``max_candidates`` drawn at random, and
:func:`mmocc.search.coreset.cell_coreset` (greedy within cells), and reports
the coverage of each bank: the distance from every training patch to its
nearest bank row (quantiles, and the ratio to exact greedy's). For the exact
bank it also measures the ``"projected"`` search (PCA ranking, exact
re-rank): its recall of the exact nearest bank row over the training patches,
and the largest relative excess of its distances.

Usage::

    python benchmarks/coreset_coverage.py [--images 100 300] [--size 128] [--ratio 0.01]

Prints one Markdown table and writes its rows to ``benchmarks/out/coreset_coverage.json``.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_common import machine

from mmocc.datasets import load_mtile, make_synthetic
from mmocc.model.backbones import load_backbone
from mmocc.model.patches import aggregate
from mmocc.search.coreset import cell_coreset, coverage, greedy_coreset
from mmocc.search.index import NeighborIndex
from mmocc.utils.files import write_json

HERE = Path(__file__).resolve().parent
MTILE = HERE.parents[1] / "shared" / "data" / "magnetic-tile"
QUANTILES = (0.5, 0.95, 0.99, 1.0)


def patch_rows(n_images: int, size: int) -> tuple[torch.Tensor, str]:
    """Patch feature rows ``(n * h * w, C)`` of ``n_images`` normal images, and where they came from."""
    if MTILE.is_dir():
        data = load_mtile(MTILE, per_image=True, classes=["Free"], size=size)
        images, source = data.views["image"][:n_images], f"Magnetic-tile Free, {size} px"
    else:
        data = make_synthetic(n_per_class=n_images, n_classes=2, size=size, seed=0)
        images, source = data.views["dorsal"][:n_images], f"synthetic bodies, {size} px"
    backbone = load_backbone("efficientnet_lite0")
    x = torch.from_numpy(np.ascontiguousarray(images)).float() / 255.0
    with torch.no_grad():
        maps = torch.cat([aggregate(list(backbone(x[i : i + 32]))) for i in range(0, len(x), 32)])
    return maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1]).contiguous(), source


def projected_recall(points: torch.Tensor, chosen: torch.Tensor, dist: torch.Tensor) -> dict[str, float]:
    """The projected search over a bank: recall (an exact nearest distance found), excess, seconds."""
    projected, exact = NeighborIndex(points[chosen], "projected"), NeighborIndex(points[chosen])
    start = time.perf_counter()
    found = projected.nearest_distance(points)
    search_s = time.perf_counter() - start
    start = time.perf_counter()
    exact.nearest_distance(points)
    exact_s = time.perf_counter() - start
    excess = (found - dist) / dist.clamp_min(1e-12)
    return {
        "recall": float((excess <= 1e-5).double().mean()),
        "excess": float(excess.max()),
        "seconds": search_s,
        "exact_s": exact_s,
    }


def measure(points: torch.Tensor, ratio: float, candidates: int | str | None) -> dict[str, Any]:
    """Time one bank selection and measure its coverage (``candidates``: None, a number drawn, "cells")."""
    size = math.ceil(ratio * len(points))
    start = time.perf_counter()
    if candidates == "cells":
        chosen = cell_coreset(points, size, seed=0)
    else:
        chosen = greedy_coreset(
            points, size, seed=0, max_candidates=None if candidates is None else int(candidates)
        )
    seconds = time.perf_counter() - start
    dist = coverage(points, chosen)
    recall = projected_recall(points, chosen, dist) if candidates is None else {}
    return {
        "candidates": candidates,
        "patches": len(points),
        "bank": size,
        "seconds": seconds,
        "coverage": {f"q{int(q * 100)}": float(torch.quantile(dist.double(), q)) for q in QUANTILES},
        **({"projected": recall} if recall else {}),
    }


def main() -> None:
    """Measure, print the table, write the records."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--ratio", type=float, default=0.01)
    parser.add_argument("--candidates", type=int, nargs="+", default=[50000, 20000])
    args = parser.parse_args()
    torch.set_num_threads(2)
    records = []
    print("| images | patches | bank | candidates | seconds | coverage q50 / q95 / q99 / max | max / exact |")
    print("|---|---|---|---|---|---|---|")
    for n_images in args.images:
        points, source = patch_rows(n_images, args.size)
        exact = None
        for candidates in (None, "cells", *args.candidates):
            if isinstance(candidates, int) and candidates >= len(points):
                continue
            row = {**measure(points, args.ratio, candidates), "images": n_images, "source": source}
            exact = exact or row
            cov = row["coverage"]
            ratio = cov["q100"] / exact["coverage"]["q100"]
            quantiles = " / ".join(f"{cov[k]:.3f}" for k in ("q50", "q95", "q99", "q100"))
            print(
                f"| {n_images} | {row['patches']} | {row['bank']} | {candidates or 'all'} | "
                f"{row['seconds']:.1f} | {quantiles} | {ratio:.2f} |",
                flush=True,
            )
            records.append(row)
            if "projected" in row:
                found = row["projected"]
                print(
                    f"projected search over the exact bank: recall {found['recall']:.4f}, largest excess "
                    f"{found['excess']:.2%}, {found['seconds']:.1f} s (exact {found['exact_s']:.1f} s)",
                    flush=True,
                )
    (HERE / "out").mkdir(exist_ok=True)
    write_json(HERE / "out" / "coreset_coverage.json", {"machine": machine(), "rows": records})


if __name__ == "__main__":
    main()
