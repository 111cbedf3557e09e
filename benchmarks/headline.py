"""Re-run RESULTS.md's headline rows (paper and default multimodal) and compare them with the stored table.

Usage (from the repository root)::

    python benchmarks/headline.py            # 4 protocols x 3 seeds (resumable), then the comparison
    python benchmarks/headline.py --smoke    # 2 tasks of the synthetic protocol, seed 0, into a temp folder

The runs use exactly the configs of ``benchmarks/run_benchmarks.py`` (same
splits, seeds and one torch thread), limited to the ``paper_multimodal`` and
``default_multimodal`` rows, into ``benchmarks/out/headline/``. The comparison
reads the *before* figures from RESULTS.md's records, ``benchmarks/results/results.json``.
:func:`records` returns the records that ``benchmarks/speed.py`` puts into SPEED.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import run_benchmarks
from bench_common import RESULTS, cpu_model, read_results, spread, summarize
from render import Topic, renderer

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "headline"
ROWS = ("paper_multimodal", "default_multimodal")
"""The headline models of RESULTS.md."""


def stored_rows(results: Path = RESULTS) -> dict[tuple[str, str], dict[str, Any]]:
    """(protocol, model) -> the mean ROC AUC of a headline row of RESULTS.md (a :func:`bench_common.spread`).

    Read from RESULTS.md's records (``results/results.json``), side-by-side table only.
    """
    path = results / "results.json"
    records = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    return {(r["protocol"], r["model"]): r["roc_auc"] for r in records
            if r["kind"] == "row" and r["study"] == "main" and r["model"] in ROWS}


def run(out: Path = OUT, smoke: bool = False) -> None:
    """Run (or resume) the headline rows of every protocol into ``out/<protocol>``."""
    protocols = ["synthetic"] if smoke else list(run_benchmarks.PROTOCOLS)
    for name in protocols:
        config = run_benchmarks.smoke_config(name) if smoke else run_benchmarks.config_for(name)
        config["models"] = {k: v for k, v in config["models"].items() if k in ROWS}
        run_benchmarks.run_one_thread(config, run_benchmarks.PROTOCOLS[name]["source"], out / name)


def records(out: Path = OUT, seeds: Sequence[int] = run_benchmarks.SEEDS) -> list[dict[str, Any]]:
    """The re-run headline rows beside RESULTS.md's (rows without results are left out).

    Returns ``headline_setup`` (the CPU) and a ``headline`` record per protocol
    and model: ``before`` (RESULTS.md's mean ROC AUC, None when it has none),
    ``now`` (the re-run's, both as :func:`bench_common.spread`) and ``worst``
    (the mean over seeds of the worst task now).
    """
    stored = stored_rows()
    rows = []
    for name in run_benchmarks.PROTOCOLS:
        table = read_results(out / name)
        for model in ROWS:
            row = summarize(table, model, list(seeds)) if table else None
            if row is not None:
                rows.append({"kind": "headline", "protocol": name, "model": model,
                             "before": stored.get((name, model)), "now": spread(row["mean"]),
                             "worst": float(np.mean(row["worst"]))})
    return [{"kind": "headline_setup", "cpu": cpu_model()}, *rows]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the headline rows and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="2 synthetic tasks, seed 0, into a temp folder")
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="mmocc-headline-")) if args.smoke else OUT
    run(out, smoke=args.smoke)
    found = records(out, [0] if args.smoke else run_benchmarks.SEEDS)
    print(renderer("render_scale").headline(Topic("headline", found)))


if __name__ == "__main__":
    main()
