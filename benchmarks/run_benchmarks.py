"""Regenerate benchmarks/RESULTS.md: every model side by side on four protocols.

Usage (from the repository root)::

    python benchmarks/run_benchmarks.py                 # all protocols, 2 processes
    python benchmarks/run_benchmarks.py coil_random     # one protocol, then rebuild RESULTS.md
    python benchmarks/run_benchmarks.py --design        # plus the default preset's design study
    python benchmarks/run_benchmarks.py --report-only   # rebuild the records from finished runs
    python benchmarks/run_benchmarks.py --smoke         # tiny synthetic run, records and report in a temp dir

Each protocol runs through :func:`mmocc.evaluation.runner.run_experiment` into
``benchmarks/out/<protocol>/`` (resumable: finished runs are reused). The
per-seed summaries of every finished protocol become the records
``benchmarks/results/results.json``, from which ``benchmarks/render.py`` writes
RESULTS.md (template ``benchmarks/templates/results.md``); ``--smoke`` runs a
tiny cut of it into a temp folder and leaves both alone. Rows are
the paper preset (multimodal, left, right), the default preset (multimodal,
left, right), the combined preset (multimodal) and six PyOD detectors in early fusion, late fusion and on each
single view, all on exactly the same splits and seeds. Every torch model runs
with one CPU thread per process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from bench_common import (
    DATA,
    MARKDOWN,
    RESULTS,
    ROOT,
    command_line,
    publish,
    read_results,
    run_one_thread,
    run_record,
    summarize,
    summary_figures,
)

OUT = ROOT / "benchmarks" / "out"
SEEDS = [0, 1, 2]
DETECTORS = ("knn", "iforest", "ocsvm", "pca", "autoencoder", "deepsvdd")

PROTOCOLS: dict[str, dict[str, Any]] = {
    "coil_random": {
        "title": "COIL-20 two-view (pose P and P+90°), random 66% split of the normal pairs, 20 tasks",
        "source": f"turntable:{DATA / 'coil-20-proc'}",
        "data": {"size": 32, "mode": "L"},
        "split": {"normal": "all", "kind": "random", "train_fraction": 0.66},
    },
    "coil_unseen": {
        "title": "COIL-20 unseen poses: train on normal pairs with first-view angle < 240°, "
        "test on the rest plus all anomalies, 20 tasks",
        "source": f"turntable:{DATA / 'coil-20-proc'}",
        "data": {"size": 32, "mode": "L"},
        "split": {"normal": "all", "kind": "metadata", "key": "angle", "below": 240},
    },
    "mfeat": {
        "title": "UCI Multiple Features, views pix (16×15 image) + fou (76 Fourier coefficients), "
        "random 66% split, 10 tasks",
        "source": f"mfeat:{DATA / 'uci-mfeat'}",
        "data": {"views": ["pix", "fou"]},
        "split": {"normal": "all", "kind": "random", "train_fraction": 0.66},
        # An image and a vector cannot share an encoder: the paper's unshared-weights extension.
        "paper_params": {"shared_weights": False},
    },
    "synthetic": {
        "title": "Synthetic two-view bodies (mmocc.datasets.make_synthetic: 6 classes × 100, 32×32 RGB, "
        "seed 0), random 66% split, 6 tasks",
        "source": "synthetic:n_per_class=100,n_classes=6,size=32,seed=0",
        "data": {},
        "split": {"normal": "all", "kind": "random", "train_fraction": 0.66},
    },
}


DESIGN_VARIANTS: dict[str, dict[str, Any]] = {
    "default_multimodal": {},
    "joint_latent": {"knn_bank": "joint", "knn_space": "latent"},
    "view_latent": {"knn_bank": "view", "knn_space": "latent"},
    "pooled_latent": {"knn_bank": "pooled", "knn_space": "latent"},
    "pooled_input": {"knn_bank": "pooled", "knn_space": "input"},
    "center_score": {"score": "center"},
}
DESIGN_SEEDS = [0]
SMOKE_MODELS = ("paper_multimodal", "default_multimodal", "default_view0", "default_view1", "knn_early",
                "knn_late")
"""The models of ``--smoke``."""
DESIGN_PROTOCOLS = ("coil_unseen", "mfeat", "synthetic")


def design_models() -> dict[str, dict[str, Any]]:
    """Variants of the default preset's scoring, for the design table."""
    return {name: {"kind": "mmocc", "preset": "default", **extra} for name, extra in DESIGN_VARIANTS.items()}


def models(paper_params: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Every model of the benchmark, by row name; ``paper_params`` adjust the paper multimodal row."""
    out: dict[str, dict[str, Any]] = {}
    for preset in ("paper", "default"):
        extra = dict(paper_params or {}) if preset == "paper" else {}
        out[f"{preset}_multimodal"] = {"kind": "mmocc", "preset": preset, **extra}
        out[f"{preset}_view0"] = {"kind": "mmocc", "preset": preset, "views": [0]}
        out[f"{preset}_view1"] = {"kind": "mmocc", "preset": preset, "views": [1]}
    out["combined_multimodal"] = {"kind": "mmocc", "preset": "combined"}
    for detector in DETECTORS:
        for fusion in ("early", "late"):
            out[f"{detector}_{fusion}"] = {"kind": "baseline", "detector": detector, "fusion": fusion}
        for view in (0, 1):
            out[f"{detector}_view{view}"] = {
                "kind": "baseline",
                "detector": detector,
                "fusion": "single",
                "views": [view],
            }
    return out


def config_for(name: str, design: bool = False) -> dict[str, Any]:
    """The experiment config of one protocol (or of its design-variant study)."""
    spec = PROTOCOLS[name]
    return {
        "name": spec["title"],
        "seeds": DESIGN_SEEDS if design else SEEDS,
        "plots": False,
        "data": dict(spec["data"]),
        "split": dict(spec["split"]),
        "models": design_models() if design else models(spec.get("paper_params")),
    }


def smoke_config(name: str, design: bool = False) -> dict[str, Any]:
    """:func:`config_for` cut to seed 0, normal classes 1 and 2 and a few models (checks the script only)."""
    config = config_for(name, design)
    keep = list(DESIGN_VARIANTS)[:2] if design else SMOKE_MODELS
    config.update(seeds=[0], models={k: v for k, v in config["models"].items() if k in keep})
    config["split"]["normal"] = ["1", "2"]
    return config


def run_protocol(job: str, out: Path = OUT, smoke: bool = False) -> str:
    """Run one job, ``<protocol>`` or ``design/<protocol>`` (resumable), into ``out/<job>``; return it."""
    design = job.startswith("design/")
    name = job.removeprefix("design/")
    config = smoke_config(name, design) if smoke else config_for(name, design)
    run_one_thread(config, PROTOCOLS[name]["source"], out / job)
    return job


def protocol_records(
    folder: Path, study: str, name: str, rows: list[str], seeds: list[int]
) -> list[dict[str, Any]]:
    """The records of one finished job: its protocol, then one per model with results for every seed.

    Parameters
    ----------
    folder : pathlib.Path
        The job's output folder (nothing when it holds no ``results.csv``).
    study : {"main", "design"}
        The side-by-side table or the design study.
    name : str
        The protocol, a key of :data:`PROTOCOLS`.
    rows : list of str
        The models, in table order.
    seeds : list of int
        The seeds every model must have finished.

    Returns
    -------
    list of dict
        A ``protocol`` record (name and title), then a ``row`` record per model
        holding the per-seed :func:`bench_common.summary_figures`.
    """
    if not (folder / "results.csv").is_file():
        return []
    table = read_results(folder)
    records: list[dict[str, Any]] = [{"kind": "protocol", "study": study, "protocol": name,
                                      "title": PROTOCOLS[name]["title"]}]
    for model in rows:
        row = summarize(table, model, seeds)
        if row is not None:
            records.append({"kind": "row", "study": study, "protocol": name, "model": model,
                            **summary_figures(row)})
    return records


def collect(out: Path, seeds: list[int], command: str) -> list[dict[str, Any]]:
    """The records of RESULTS.md: the run, then every protocol finished under ``out`` and its design study."""
    records = [run_record("results", command, seeds=seeds, design_seeds=DESIGN_SEEDS, contamination=0.05,
                          threads=1)]
    for name in PROTOCOLS:
        records += protocol_records(out / name, "main", name, list(models()), seeds)
    for name in DESIGN_PROTOCOLS:
        design = out / "design" / name
        records += protocol_records(design, "design", name, list(DESIGN_VARIANTS), DESIGN_SEEDS)
    return records


def write_report(out: Path, results: Path, report: Path, seeds: list[int], command: str) -> Path | None:
    """Save the records of the runs under ``out`` to ``results`` and render RESULTS.md into ``report``.

    Returns the Markdown file, or None (and leaves both alone) when no protocol has finished.
    """
    records = collect(out, seeds, command)
    if len(records) == 1:
        print(f"no finished protocol under {out}: records and RESULTS.md left as they are", file=sys.stderr)
        return None
    return publish("results", records, results, report)


def main(argv: list[str] | None = None) -> int:
    """Run the requested protocols, then rebuild RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("protocols", nargs="*", help=f"any of {list(PROTOCOLS)} (default: all)")
    parser.add_argument("--jobs", type=int, default=2, help="protocols run in parallel processes")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--design", action="store_true", help="also run the default preset's design study")
    parser.add_argument("--smoke", action="store_true",
                        help="seed 0, normal classes 1 and 2, a few models (synthetic protocol unless "
                        "named); outputs and report in a temp folder")
    args = parser.parse_args(argv)
    unknown = [n for n in args.protocols if n not in PROTOCOLS]
    if unknown:
        parser.error(f"unknown protocol(s) {unknown}; choose from {list(PROTOCOLS)}")
    out, results, report = OUT, RESULTS, MARKDOWN
    if args.smoke:
        out = results = report = Path(tempfile.mkdtemp(prefix="mmocc-results-"))
        args.protocols = args.protocols or ["synthetic"]
    if not args.report_only:
        names = args.protocols or list(PROTOCOLS)
        if not DATA.is_dir():
            names = [n for n in names if not PROTOCOLS[n]["source"].startswith(("turntable", "mfeat"))]
            print(f"{DATA} not found: running only {names}", file=sys.stderr)
        jobs = names + ([f"design/{n}" for n in names if n in DESIGN_PROTOCOLS] if args.design else [])
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for done in pool.map(run_protocol, jobs, [out] * len(jobs), [args.smoke] * len(jobs)):
                print(f"finished {done}", file=sys.stderr)
    command = command_line("run_benchmarks.py", ["--smoke"] if args.smoke else [])
    path = write_report(out, results, report, [0] if args.smoke else SEEDS, command)
    if path is not None:
        print(path.read_text(encoding="utf-8"))
    return 0 if path is not None else 1


if __name__ == "__main__":
    raise SystemExit(main())
