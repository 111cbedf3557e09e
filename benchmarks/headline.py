"""Re-run RESULTS.md's headline rows (paper and default multimodal) and compare them with the stored table.

Usage (from the repository root)::

    python benchmarks/headline.py            # 4 protocols x 3 seeds (resumable), then the comparison
    python benchmarks/headline.py --smoke    # 2 tasks of the synthetic protocol, seed 0, into a temp folder

The runs use exactly the configs of ``benchmarks/run_benchmarks.py`` (same
splits, seeds and one torch thread), limited to the ``paper_multimodal`` and
``default_multimodal`` rows, into ``benchmarks/out/headline/``. The comparison
reads the *before* figures from RESULTS.md's records, ``benchmarks/results/results.json``.
:func:`section` returns the Markdown that ``benchmarks/speed.py`` puts into SPEED.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import run_benchmarks
from bench_common import RESULTS, cpu_model, mean_std, read_results, summarize
from render import mean_std as format_spread

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "headline"
ROWS = ("paper_multimodal", "default_multimodal")
"""The headline models of RESULTS.md."""


def stored_rows(results: Path = RESULTS) -> dict[tuple[str, str], str]:
    """(protocol, model) -> RESULTS.md's mean ROC AUC cell of a headline row, e.g. ``0.904 ± 0.003``.

    Read from RESULTS.md's records (``results/results.json``), side-by-side table only.
    """
    path = results / "results.json"
    records = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    return {(r["protocol"], r["model"]): format_spread(r["roc_auc"]) for r in records
            if r["kind"] == "row" and r["study"] == "main" and r["model"] in ROWS}


def run(out: Path = OUT, smoke: bool = False) -> None:
    """Run (or resume) the headline rows of every protocol into ``out/<protocol>``."""
    protocols = ["synthetic"] if smoke else list(run_benchmarks.PROTOCOLS)
    for name in protocols:
        config = run_benchmarks.smoke_config(name) if smoke else run_benchmarks.config_for(name)
        config["models"] = {k: v for k, v in config["models"].items() if k in ROWS}
        run_benchmarks.run_one_thread(config, run_benchmarks.PROTOCOLS[name]["source"], out / name)


def section(out: Path = OUT, seeds: Sequence[int] = run_benchmarks.SEEDS) -> list[str]:
    """Markdown comparing the re-run headline rows with RESULTS.md (rows without results are left out)."""
    stored = stored_rows()
    lines = [
        "## Quality after the training change (RESULTS.md headline rows re-run)",
        "",
        "Mean ROC AUC, mean ± std over seeds of the per-seed task average; same splits and seeds as "
        "RESULTS.md (`python benchmarks/headline.py`).",
        "",
        "| protocol | model | RESULTS.md (before) | now | worst task now |",
        "|---|---|---:|---:|---:|",
    ]
    for name in run_benchmarks.PROTOCOLS:
        table = read_results(out / name)
        for model in ROWS:
            row = summarize(table, model, list(seeds)) if table else None
            if row is None:
                continue
            before, now = stored.get((name, model), "—"), mean_std(row["mean"])
            lines.append(f"| {name} | {model} | {before} | {now} | {np.mean(row['worst']):.3f} |")
    return [*lines, "", f"CPU: {cpu_model()}.", ""]


def main(argv: Sequence[str] | None = None) -> None:
    """Run the headline rows and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="2 synthetic tasks, seed 0, into a temp folder")
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="mmocc-headline-")) if args.smoke else OUT
    run(out, smoke=args.smoke)
    print("\n".join(section(out, [0] if args.smoke else run_benchmarks.SEEDS)))


if __name__ == "__main__":
    main()
