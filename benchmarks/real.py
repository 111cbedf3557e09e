"""Regenerate benchmarks/REAL.md: real defects on Magnetic-tile, per image and by six-lighting tiles.

Usage (from the repository root)::

    python benchmarks/real.py            # full run (seeds 0 1 2), rewrites results/real.json and REAL.md
    python benchmarks/real.py --quick    # seed 0 only, into a temporary folder
    python benchmarks/real.py --smoke    # tiny subsets and small rows, into a temporary folder (a minute)
    python benchmarks/real.py --rows 1 --protocols tiles --quick   # time one row

Reads ``../shared/data/magnetic-tile`` (``--data PATH``; exit status 2 when
it is absent) through the public API: :func:`mmocc.datasets.load_mtile`,
:func:`mmocc.one_class_split`, :class:`mmocc.MultimodalOCC`,
:class:`mmocc.BaselineOCC` and :mod:`mmocc.metrics`. The protocols, the
rows and what is measured are described in ``real_protocols.py``; the rows
run are :data:`ROWS` (edit that list to add one: a row whose estimator
parameter does not exist yet is skipped with a note). The records are saved
after every seed of every row, so a stopped run keeps what it measured (its
run record says ``partial``), and ``benchmarks/render.py real`` writes REAL.md
from them (template ``benchmarks/templates/real.md``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import DATA, MARKDOWN, RESULTS, ROOT, command_line, run_record, save_records, spread
from real_protocols import (
    PIXEL_FIGURES,
    PROTOCOLS,
    draw,
    load,
    measure,
    resize_of,
    row_label,
    single_lightings,
    unsupported,
)

TOPIC = "real"
MTILE = DATA / "magnetic-tile"
SEEDS = [0, 1, 2]
ALL = tuple(PROTOCOLS)
ONCE = {"seeds": [0], "protocols": ["image_random", "tiles"]}
"""Where the costlier rows run: seed 0 of (a) and (b)."""
ROWS: list[dict[str, Any]] = [
    {"detector": "knn", "size": 64},
    {"preset": "pretrained", "size": 64, "singles": True},
    {"preset": "default", "size": 64, **ONCE},
    {"preset": "pretrained", "size": 64, "resize": "pad", **ONCE},
    {"preset": "pretrained", "size": 64, "resize": "crop", "protocols": ["image_random", "tiles"]},
    {"preset": "pretrained", "size": 64, "patch_layers": ["stride8", "stride16", "stride32"]},
    {"preset": "pretrained", "size": 128, "patch_layers": ["stride16", "stride32"],
     "protocols": ["image_random", "tiles"]},
    {"preset": "patch", "size": 32, **ONCE},
    {"preset": "patch", "size": 64, "coreset_ratio": 0.01, "coreset_candidates": 20000, **ONCE},
    {"preset": "pretrained", "size": 128, **ONCE},
    {"preset": "pretrained", "size": 256, "tile_size": 64, "coreset_ratio": 0.01, "coreset_candidates": 20000,
     "seeds": [0], "protocols": ["tiles"]},
    {"preset": "combined", "size": 32, **ONCE},
    {"preset": "combined", "size": 64, "patch_backbone": "efficientnet_lite0", "patch_size": 64, **ONCE},
]
"""The rows of a full run, cheapest first (see ``real_protocols.py`` for the keys)."""
SMOKE_ROWS: list[dict[str, Any]] = [
    {"detector": "knn", "size": 32},
    {"preset": "pretrained", "size": 32, "singles": True},
    {"preset": "default", "size": 32, "epochs": 1, "protocols": ["tiles"]},
    {"preset": "pretrained", "size": 32, "tile_size": 16, "protocols": ["image_random"]},
]
"""The rows of ``--smoke``: every code path on tiny inputs."""
METRICS = ("image_roc_auc", *PIXEL_FIGURES, "attribution")
"""Figures summarised as mean ± std over seeds (None when a row has none)."""
MEANS = ("attribution_chance", "attribution_peak", "fit_seconds", "score_seconds", "maps_seconds",
         "normal_recall")
"""Figures summarised as their mean over seeds."""


def _mean_or_none(values: Sequence[Any]) -> float | None:
    return None if any(v is None for v in values) else float(np.mean(values))


def summary(label: str, protocol: str, spec: Mapping[str, Any], results: list[dict[str, Any]],
            derived: str | None) -> dict[str, Any]:
    """The record of one row on one protocol from its per-seed figures (:func:`real_protocols.measure`).

    ``derived`` names how a per-view baseline was built from a row's single-lighting
    models (``"raw"`` or ``"standardized"``), None for a model of its own.
    """
    first = results[0]
    record: dict[str, Any] = {
        "kind": "row", "protocol": protocol, "row": label, "spec": dict(spec), "derived": derived,
        "seeds": [r["seed"] for r in results],
        **{key: first[key] for key in ("n_train", "n_test_normal", "n_test_defective")},
        **{m: None if first[m] is None else spread([r[m] for r in results]) for m in METRICS},
        **{m: _mean_or_none([r.get(m) for r in results]) for m in MEANS},  # derived rows: no recall
        "types": {t: {m: _mean_or_none([r["types"][t].get(m) for r in results]) for m in METRICS[:-1]}
                  for t in first["types"]},
    }
    if "singles" in first:
        best = [max(r["singles"].values()) for r in results]
        record["singles"] = {v: float(np.mean([r["singles"][v] for r in results])) for v in first["singles"]}
        record["best_single"] = spread(best)
        gaps = [r["image_roc_auc"] - b for r, b in zip(results, best, strict=True)]
        record["joint_minus_best"] = spread(gaps)
    return record


class Run:
    """The measurements of one run, saved as records after each seed of each row.

    Parameters
    ----------
    args : argparse.Namespace
        The parsed command line.
    folder : pathlib.Path
        Where ``real.json`` is written.
    command : str
        The command the records name.
    """

    def __init__(self, args: argparse.Namespace, folder: Path, command: str) -> None:
        self.args, self.folder, self.command = args, folder, command
        self.start = time.perf_counter()
        self.results: dict[tuple[str, str, str | None], tuple[Mapping[str, Any], list[dict[str, Any]]]] = {}
        self.skipped: list[dict[str, Any]] = []

    def add(self, row: Mapping[str, Any], protocol: str, result: dict[str, Any],
            derived: str | None = None) -> None:
        """Keep one seed's figures of a row (or of a baseline ``derived`` from its single lightings)."""
        self.results.setdefault((row_label(row), protocol, derived), (row, []))[1].append(result)

    def skip(self, row: Mapping[str, Any], reason: str) -> None:
        """Note a row that was not measured, and why."""
        self.skipped.append({"kind": "skipped", "row": row_label(row), "spec": dict(row), "reason": reason})
        print(f"skipped {row_label(row)}: {reason}", file=sys.stderr, flush=True)

    def save(self, finished: bool) -> Path:
        """Write the records measured so far; ``finished`` False marks the run partial."""
        args = self.args
        protocols = {p: PROTOCOLS[p] for p in args.protocols}
        records = [run_record(TOPIC, self.command, seconds=time.perf_counter() - self.start,
                              partial=not finished, seeds=args.seeds, threads=args.threads, smoke=args.smoke,
                              data=shown_path(args.data), protocols=protocols)]
        for (label, protocol, derived), (row, results) in self.results.items():
            records.append(summary(label, protocol, row, results, derived))
        return save_records(TOPIC, [*records, *self.skipped], self.folder)


def run_row(run: Run, row: Mapping[str, Any]) -> None:
    """Measure one row on each of its protocols and seeds, saving after each seed."""
    args = run.args
    for protocol in [p for p in row.get("protocols", ALL) if p in args.protocols]:
        for seed in [s for s in row.get("seeds", args.seeds) if s in args.seeds]:
            data = load(args.data, protocol, row["size"], resize_of(row), args.smoke)
            task = draw(data, protocol, seed)
            result = measure(row, task, seed)
            derived = {}
            if row.get("singles") and protocol == "tiles":
                derived = single_lightings(row, task, seed)
                result["singles"] = derived.pop("singles")
            run.add(row, protocol, result)
            for how, figures in derived.items():
                run.add(row, protocol, figures, how)
            run.save(finished=False)
            print(f"{time.perf_counter() - run.start:7.0f} s  {protocol} seed {seed}  {row_label(row)}: "
                  f"image ROC AUC {result['image_roc_auc']:.3f}, fit {result['fit_seconds']:.0f} s, "
                  f"score {result['score_seconds']:.0f} s", flush=True)


def shown_path(path: Path) -> str:
    """A data folder as the records show it: relative to the repository when beside it, else absolute."""
    path = path.resolve()
    return os.path.relpath(path, ROOT) if path.is_relative_to(ROOT.parent) else str(path)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=MTILE, help=f"Magnetic-tile folder (default {MTILE})")
    parser.add_argument("--out", type=Path, help="folder of real.json and REAL.md (default: benchmarks/ "
                        "for a full run, a temporary folder for --quick and --smoke)")
    parser.add_argument("--seeds", type=int, nargs="+", default=SEEDS, help=f"default {SEEDS}")
    parser.add_argument("--quick", action="store_true", help="seed 0 only")
    parser.add_argument("--smoke", action="store_true", help="tiny subsets and rows, seed 0 (about a minute)")
    parser.add_argument("--rows", type=int, nargs="+", help="indexes into ROWS (default all)")
    parser.add_argument("--protocols", nargs="+", choices=ALL, default=list(ALL), help="default all")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args(argv)
    if args.quick or args.smoke:
        args.seeds = [0]
    return args


def flags(args: argparse.Namespace) -> list[str]:
    """The command-line flags that change what is measured, as the records' command shows them."""
    out = ["--smoke"] if args.smoke else ["--quick"] if args.quick else []
    if args.seeds != SEEDS and not (args.quick or args.smoke):
        out += ["--seeds", *map(str, args.seeds)]
    if args.rows:
        out += ["--rows", *map(str, args.rows)]
    if args.protocols != list(ALL):
        out += ["--protocols", *args.protocols]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Measure the rows, save the records after each seed, then render REAL.md next to them."""
    import torch
    from render import render

    args = parse_args(argv)
    if not args.data.is_dir():
        print(f"{args.data}: no Magnetic-tile folder; skipping REAL.md (--data PATH names another)",
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    folder = args.out or (Path(tempfile.mkdtemp(prefix="mmocc-real-")) if args.quick or args.smoke else None)
    results, markdown = (folder, folder) if folder else (RESULTS, MARKDOWN)
    run = Run(args, results, command_line("real.py", flags(args)))
    rows = SMOKE_ROWS if args.smoke else ROWS
    for index in args.rows or range(len(rows)):
        row = rows[index]
        missing = unsupported(row)
        if missing:
            run.skip(row, f"MultimodalOCC has no parameter {', '.join(missing)} in this version")
            continue
        try:
            run_row(run, row)
        except Exception as exc:  # noqa: BLE001 - one failing row must not lose the others' records
            run.skip(row, f"failed: {type(exc).__name__}: {exc}")
    run.save(finished=True)
    print(f"wrote {render(TOPIC, results, markdown)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
