"""Regenerate benchmarks/RESULTS.md: every model side by side on four protocols.

Usage (from the repository root)::

    python benchmarks/run_benchmarks.py                 # all protocols, 2 processes
    python benchmarks/run_benchmarks.py coil_random     # one protocol, then rebuild RESULTS.md
    python benchmarks/run_benchmarks.py --design        # plus the default preset's design study
    python benchmarks/run_benchmarks.py --report-only   # rebuild RESULTS.md from finished runs
    python benchmarks/run_benchmarks.py --smoke         # tiny synthetic run, report in a temp folder

Each protocol runs through :func:`mmocc.evaluation.runner.run_experiment` into
``benchmarks/out/<protocol>/`` (resumable: finished runs are reused); ``--smoke``
runs a tiny cut of it into a temp folder and leaves RESULTS.md alone. Rows are
the paper preset (multimodal, left, right), the default preset (multimodal,
left, right) and six PyOD detectors in early fusion, late fusion and on each
single view, all on exactly the same splits and seeds. Every torch model runs
with one CPU thread per process.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from bench_common import DATA, ROOT, markdown_table, read_results, run_one_thread, summarize, summary_cells

from mmocc.utils.files import atomic_open

OUT = ROOT / "benchmarks" / "out"
REPORT = ROOT / "benchmarks" / "RESULTS.md"
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


def protocol_table(folder: Path, rows: list[str], seeds: list[int]) -> tuple[list[str], dict[str, float]]:
    """Markdown table of one job and each model's mean ROC AUC."""
    table = read_results(folder)
    body, means = [], {}
    for model in rows:
        row = summarize(table, model, seeds)
        if row is None:
            continue
        means[model] = float(np.mean(row["mean"]))
        body.append([f"**{model}**" if model.startswith("default") else model, *summary_cells(row, 2)])
    header = ["model", "mean ROC AUC", "worst task ROC AUC", "P@n", "anomaly recall @τ", "normal recall @τ",
              "wall s / task"]
    return markdown_table(header, body), means


def verdict(means: dict[str, float]) -> str:
    """One line: does the default multimodal beat every baseline and its unimodal variants?"""
    baselines = {m: v for m, v in means.items() if not m.startswith(("default", "paper"))}
    if not baselines or not {"default_multimodal", "default_view0", "default_view1"} <= set(means):
        return ""
    ours = means["default_multimodal"]
    best_name = max(baselines, key=baselines.get)
    uni = max(means["default_view0"], means["default_view1"])
    return (
        f"Default multimodal {ours:.4f}; best baseline {best_name} {baselines[best_name]:.4f} "
        f"({'beaten' if ours > baselines[best_name] else 'NOT beaten'}); best default unimodal {uni:.4f} "
        f"({'beaten' if ours > uni else 'NOT beaten'})."
    )


def write_report(out: Path = OUT, path: Path = REPORT, seeds: list[int] = SEEDS) -> None:
    """Rebuild the generated block of ``path`` from the protocols finished under ``out``."""
    import torch

    import mmocc

    parts = [
        "<!-- generated by benchmarks/run_benchmarks.py: edit the script, not this block -->",
        "## Side-by-side benchmark",
        "",
        f"Machine: {platform.machine()}, {platform.system()}, Python {platform.python_version()}, "
        f"torch {torch.__version__} (CPU, 1 thread per process), mmocc {mmocc.__version__}. "
        f"Seeds {seeds}: seed s draws the split and seeds every model. Cells are mean ± std over seeds "
        "of the per-seed average over tasks (worst task: per-seed minimum). τ = the model's threshold "
        "(contamination 0.05). Wall time = fit + score per task, one CPU thread.",
        "",
        "Command: `python benchmarks/run_benchmarks.py`",
    ]
    for name, spec in PROTOCOLS.items():
        if (out / name / "results.csv").is_file():
            table, means = protocol_table(out / name, list(models()), seeds)
            parts += ["", f"### {spec['title']}", "", verdict(means), "", *table]
    design = [name for name in DESIGN_PROTOCOLS if (out / "design" / name / "results.csv").is_file()]
    if design:
        parts += [
            "",
            "## Design study: the default preset's scoring choices",
            "",
            f"Seed {DESIGN_SEEDS}; same splits as above. Each row changes only the named options of the "
            "default preset: the k-NN memory bank (joint latent, per view, or pooled over views sharing "
            "an encoder), the k-NN space (learned latent, scaled input, or both) and the Deep-SVDD "
            "centre distance. Command: `python benchmarks/run_benchmarks.py --design`",
        ]
        for name in design:
            table, _ = protocol_table(out / "design" / name, list(DESIGN_VARIANTS), DESIGN_SEEDS)
            parts += ["", f"### {PROTOCOLS[name]['title']}", "", *table]
    block = "\n".join(parts) + "\n<!-- end generated -->\n"
    text = path.read_text() if path.is_file() else "# Results\n\n<!-- end generated -->\n"
    start = text.find("<!-- generated by benchmarks/run_benchmarks.py")
    end = text.find("<!-- end generated -->")
    if start == -1:
        start = end
    text = text[:start] + block + text[end + len("<!-- end generated -->\n") :]
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    print(block)


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
    out, report = OUT, REPORT
    if args.smoke:
        out = Path(tempfile.mkdtemp(prefix="mmocc-results-"))
        report = out / "RESULTS.md"
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
    write_report(out, report, [0] if args.smoke else SEEDS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
