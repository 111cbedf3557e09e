"""Write benchmarks/COMBINED.md: the ``combined`` preset against the current presets (issue 23).

Usage (from the repository root)::

    python benchmarks/combined.py                          # seed 0, every part, 2 processes
    python benchmarks/combined.py --seeds 0 1 2            # more seeds (finished jobs are reused)
    python benchmarks/combined.py --parts novelty defects  # some parts only
    python benchmarks/combined.py --report-only            # rebuild the records and COMBINED.md
    python benchmarks/combined.py --smoke                  # tiny run into a temp folder

The same protocols, splits and seeds as the pages they come from, restricted to the presets:

- ``novelty``: RESULTS.md's COIL-20 random, COIL-20 unseen poses and mfeat protocols
  (:data:`run_benchmarks.PROTOCOLS`, every normal class), through
  :func:`mmocc.evaluation.runner.run_experiment`: ROC AUC, normal recall at the
  threshold τ (share of the held-out normals at or below it), fit + score seconds;
- ``defects``: DEFECTS.md's COIL-20 painted defects at 32 px (:func:`defects.defect_test`
  and :func:`defects.measure`): image ROC AUC, pixel AUROC, view attribution, normal
  recall at τ, seconds, and for ``combined`` which part fired (local on the painted
  copies; global on every 8th test sample of the other classes);
- ``mtile``: REAL.md's Magnetic-tile protocol (a), one image at a time, random 80%
  (:func:`real_protocols.measure`), seed 0 only.
- ``timing``: fit + score seconds of ``default``, ``patch`` and ``combined`` on one COIL-20 task,
  best of 3, one after another in one process (its own part: run it alone for a quiet machine);
- ``choice``: mean or maximum of the two standardized part scores, from the same ``combined``
  fits, on DEFECTS.md's synthetic (6 tasks) and COIL-20 (10 tasks) painted-defect splits:
  image ROC AUC of the painted copies and of the split's other classes (every 8th on COIL-20)
  against the held-out normals.

Every job runs with one torch thread per process; the outputs are resumable under
``benchmarks/out/combined/``. The records are ``benchmarks/results/combined.json``,
from which ``benchmarks/render.py`` writes COMBINED.md (template
``benchmarks/templates/combined.md``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import defects
import numpy as np
import real_protocols
import run_benchmarks
from bench_common import (
    DATA,
    MARKDOWN,
    RESULTS,
    ROOT,
    best_time,
    command_line,
    publish,
    read_results,
    run_one_thread,
    run_record,
    spread,
    summarize,
)

from mmocc.utils.files import atomic_open

OUT = ROOT / "benchmarks" / "out" / "combined"
PRESETS = ("paper", "default", "patch", "pretrained", "combined")
"""Every preset of :data:`mmocc.model.params.PRESET_NAMES`, in table order."""
NOVELTY = ("coil_random", "coil_unseen", "mfeat")
DEFECT_KEY = "coil"
MTILE_ROWS: dict[str, dict[str, Any]] = {
    "pretrained": {"preset": "pretrained", "size": 64},
    "patch": {"preset": "patch", "size": 32},
    "combined": {"preset": "combined", "size": 32},
    "combined_pretrained": {
        "preset": "combined",
        "size": 64,
        "patch_backbone": "efficientnet_lite0",
        "patch_size": 64,
    },
}
"""Magnetic-tile (a) rows, as REAL.md's rows (``real.ROWS``) run them."""
TARGETS = {
    "coil_random": 0.999,
    "coil_unseen": 0.999,
    "mfeat": 0.994,
    "defects": 0.98,
    "mtile_gap": 0.005,
    "cost": 1.5,
}
"""Issue 23's targets; ``cost``: combined fit + score within this factor of the slower part."""


def novelty_job(protocol: str, preset: str, seeds: list[int], out: Path, smoke: bool) -> str:
    """Run one preset on one RESULTS.md protocol for ``seeds`` into ``out/novelty/<protocol>/<preset>``."""
    spec = run_benchmarks.PROTOCOLS[protocol]
    extra = dict(spec.get("paper_params", {})) if preset == "paper" else {}
    config = {
        "name": spec["title"],
        "seeds": seeds,
        "plots": False,
        "data": dict(spec["data"]),
        "split": dict(spec["split"]),
        "models": {preset: {"kind": "mmocc", "preset": preset, **extra}},
    }
    if smoke:
        config["split"]["normal"] = ["1"]
    run_one_thread(config, spec["source"], out / "novelty" / protocol / preset)
    return f"novelty {protocol}/{preset}"


def defect_job(index: int, seed: int, presets: list[str], out: Path, smoke: bool) -> str:
    """Measure the presets on one COIL-20 painted-defect task into ``out/defects/coil_<i>_<seed>.json``."""
    import torch

    torch.set_num_threads(1)
    path = out / "defects" / f"{DEFECT_KEY}_{index}_{seed}.json"
    done = json.loads(path.read_text(encoding="utf-8"))["rows"] if path.is_file() else {}
    todo = [p for p in presets if p not in done]
    if todo:
        train, test, broken, batch, others = defects.defect_test(DEFECT_KEY, index, seed, smoke)
        others = others.subset(np.arange(0, len(others), 8))
        for preset in todo:
            done[preset] = defects.measure(preset, seed, train, test, broken, batch, others)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "w", encoding="utf-8") as handle:
            json.dump({"index": index, "seed": seed, "rows": done}, handle, indent=1)
    return f"defects {index} seed {seed}"


PARTS = ("choice", "defects", "timing", "mtile", "novelty")
"""The parts of a run, in the order their jobs are submitted."""
COMBINATIONS = ("mean", "max")
"""How the two standardized part scores can be combined; ``choice`` compares them on the same fits."""
CHOICE_DATA = {"synthetic": list(range(6)), "coil": defects.DEFECT_DATA["coil"]["classes"]}


def _auc(normal: np.ndarray, anomalous: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    labels = np.r_[np.zeros(len(normal)), np.ones(len(anomalous))]
    return float(roc_auc_score(labels, np.r_[normal, anomalous]))


def _combine(parts: dict[str, np.ndarray], how: str) -> np.ndarray:
    """The sample scores of the part scores under one of :data:`COMBINATIONS`."""
    both = np.column_stack([parts["global"], parts["local"]])
    return both.mean(axis=1) if how == "mean" else both.max(axis=1)


def choice_job(key: str, index: int, seed: int, out: Path, smoke: bool) -> str:
    """Image ROC AUC of painted defects and of other classes under each combination, from one combined fit."""
    import torch

    from mmocc import MultimodalOCC

    torch.set_num_threads(1)
    path = out / "choice" / f"{key}_{index}_{seed}.json"
    if not path.is_file():
        train, test, broken, _, others = defects.defect_test(key, index, seed, smoke)
        others = others.subset(np.arange(0, len(others), 8 if key == "coil" else 1))
        clf = MultimodalOCC(preset="combined", random_state=seed, device="cpu").fit(train.views)
        clean = {view: values[: len(values) - len(broken)] for view, values in test.items()}
        parts = {
            name: clf.score_parts(x)
            for name, x in (("clean", clean), ("painted", broken), ("others", others))
        }
        row = {}
        for how in COMBINATIONS:
            normal = _combine(parts["clean"], how)
            row[how] = {kind: _auc(normal, _combine(parts[kind], how)) for kind in ("painted", "others")}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "w", encoding="utf-8") as handle:
            json.dump({"dataset": key, "index": index, "seed": seed, **row}, handle, indent=1)
    return f"choice {key} {index} seed {seed}"


TIMED = ("default", "patch", "combined")
"""The presets of the ``timing`` part: ``combined`` and its two parts alone."""


def timing_job(out: Path, repeats: int) -> str:
    """Best-of-``repeats`` fit + score seconds of :data:`TIMED`, one after another in one process.

    One task: COIL-20 class index 0 of DEFECTS.md's split (seed 0), fit on its training
    pairs, score its test views (held-out normals and their painted copies); one torch thread.
    """
    import torch

    from mmocc import MultimodalOCC

    torch.set_num_threads(1)
    path = out / "timing.json"
    if not path.is_file():
        train, test, _, _, _ = defects.defect_test(DEFECT_KEY, 0, 0, False)

        def fit_score(preset: str) -> None:
            MultimodalOCC(preset=preset, random_state=0, device="cpu").fit(train.views).decision_function(
                test
            )

        seconds = {preset: best_time(lambda p=preset: fit_score(p), repeats=repeats) for preset in TIMED}
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path, "w", encoding="utf-8") as handle:
            json.dump({"repeats": repeats, "n_train": len(train), "seconds": seconds}, handle, indent=1)
    return "timing"


def mtile_job(name: str, out: Path) -> str:
    """Measure one Magnetic-tile (a) row on seed 0 into ``out/mtile/<name>.json``."""
    import torch

    torch.set_num_threads(1)
    path = out / "mtile" / f"{name}.json"
    if not path.is_file():
        row = MTILE_ROWS[name]
        data = real_protocols.load(DATA / "magnetic-tile", "image_random", row["size"], "stretch", False)
        result = real_protocols.measure(row, real_protocols.draw(data, "image_random", 0), 0)
        path.parent.mkdir(parents=True, exist_ok=True)
        keep = (
            "image_roc_auc",
            "pixel_roc_auc",
            "aupro",
            "normal_recall",
            "fit_seconds",
            "score_seconds",
            "n_train",
            "n_test_normal",
            "n_test_defective",
        )
        with atomic_open(path, "w", encoding="utf-8") as handle:
            json.dump(
                {"row": name, "spec": row, "seed": 0, **{k: result.get(k) for k in keep}}, handle, indent=1
            )
    return f"mtile {name}"


def choice_records(out: Path, seeds: list[int]) -> list[dict[str, Any]]:
    """A ``choice`` record per dataset and combination: mean ROC AUC over tasks, and tasks where it wins."""
    records = []
    for key in CHOICE_DATA:
        tasks = [
            json.loads(p.read_text(encoding="utf-8")) for p in sorted((out / "choice").glob(f"{key}_*.json"))
        ]
        tasks = [t for t in tasks if t["seed"] in seeds]
        for how in COMBINATIONS if tasks else ():
            other = next(h for h in COMBINATIONS if h != how)
            record: dict[str, Any] = {
                "kind": "choice",
                "dataset": key,
                "combination": how,
                "tasks": len(tasks),
            }
            for kind in ("painted", "others"):
                record[kind] = float(np.mean([t[how][kind] for t in tasks]))
                record[f"{kind}_wins"] = sum(t[how][kind] > t[other][kind] for t in tasks)
            records.append(record)
    return records


def _median_seconds(table: dict[Any, dict[str, float]], preset: str, seeds: list[int]) -> float:
    """Median fit + score seconds over every task of ``seeds``: a task stopped by another job's pause
    (SIGSTOP while this run shares the machine) inflates a mean, not the median."""
    return float(
        np.median(
            [
                table[preset, "fit_seconds", seed][task] + table[preset, "score_seconds", seed][task]
                for seed in seeds
                for task in table[preset, "roc_auc", seed]
            ]
        )
    )


def novelty_records(out: Path, presets: list[str], seeds: list[int]) -> list[dict[str, Any]]:
    """A ``novelty`` record per protocol and preset: spreads over the seeds of ``seeds`` it finished.

    A seed counts as finished when it has as many tasks as the preset's most complete seed.
    """
    records = []
    for protocol in NOVELTY:
        for preset in presets:
            table = read_results(out / "novelty" / protocol / preset)
            counts = {seed: len(table.get((preset, "roc_auc", seed), {})) for seed in seeds}
            done = [seed for seed in seeds if counts[seed] and counts[seed] == max(counts.values())]
            row = summarize(table, preset, done) if done else None
            if row is not None:
                records.append(
                    {
                        "kind": "novelty",
                        "protocol": protocol,
                        "preset": preset,
                        "seeds": done,
                        "tasks": len(row["roc"]) // len(done),
                        "roc_auc": spread(row["mean"]),
                        "worst": spread(row["worst"]),
                        "normal_recall": spread(row["normal_recall"]),
                        "seconds": _median_seconds(table, preset, done),
                    }
                )
    return records


def defect_records(out: Path, presets: list[str], seeds: list[int]) -> list[dict[str, Any]]:
    """A ``defect`` record per preset: means over its finished tasks of ``seeds`` (None: not measured)."""
    tasks = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((out / "defects").glob("*.json"))]
    tasks = [t for t in tasks if t["seed"] in seeds]
    records = []
    for preset in presets:
        ok = [t for t in tasks if preset in t["rows"] and "error" not in t["rows"][preset]]
        rows = [t["rows"][preset] for t in ok]
        if not rows:
            continue

        def mean(key: str, rows: list[dict[str, Any]] = rows) -> float | None:
            values = [r.get(key) for r in rows]
            return None if any(v is None for v in values) else float(np.mean(values))

        records.append(
            {
                "kind": "defect",
                "preset": preset,
                "seeds": sorted({t["seed"] for t in ok}),
                "tasks": len(rows),
                "image": mean("image"),
                "worst": float(min(r["image"] for r in rows)),
                "pixel": mean("pixel"),
                "attribution": mean("attribution"),
                "normal_recall": mean("normal_recall"),
                "fired_local": mean("fired_local"),
                "fired_global_others": mean("fired_global_others"),
                "seconds": float(np.median([r["seconds"] for r in rows])),
            }
        )
    return records


def mtile_records(out: Path) -> list[dict[str, Any]]:
    """An ``mtile`` record per finished Magnetic-tile (a) row."""
    found = [
        json.loads((out / "mtile" / f"{name}.json").read_text(encoding="utf-8"))
        for name in MTILE_ROWS
        if (out / "mtile" / f"{name}.json").is_file()
    ]
    return [{"kind": "mtile", **record} for record in found]


def timing_records(out: Path) -> list[dict[str, Any]]:
    """The ``timing`` record, when the part ran: best seconds per preset, and combined / slower part."""
    path = out / "timing.json"
    if not path.is_file():
        return []
    found = json.loads(path.read_text(encoding="utf-8"))
    seconds = found["seconds"]
    ratio = seconds["combined"] / max(seconds["default"], seconds["patch"])
    return [{"kind": "timing", **found, "ratio": ratio}]


def cost_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fit + score seconds per task of ``combined`` against its parts alone (``default``, ``patch``)."""
    out = []
    for kind, key in (("novelty", "protocol"), ("defect", None)):
        groups = {r.get(key) if key else "coil_defects": {} for r in records if r["kind"] == kind}
        for r in records:
            if r["kind"] == kind:
                groups[r.get(key) if key else "coil_defects"][r["preset"]] = r["seconds"]
        for where, seconds in groups.items():
            if {"combined", "default", "patch"} <= set(seconds):
                slower = max(seconds["default"], seconds["patch"])
                out.append(
                    {
                        "kind": "cost",
                        "where": where,
                        "combined": seconds["combined"],
                        "default": seconds["default"],
                        "patch": seconds["patch"],
                        "ratio": seconds["combined"] / slower,
                    }
                )
    return out


def write_report(
    out: Path, results: Path, report: Path, args: argparse.Namespace, seconds: float | None
) -> Path:
    """Save the records of the finished jobs under ``out`` and render COMBINED.md into ``report``."""
    presets = [p for p in PRESETS if p in args.presets]
    measured = [
        *novelty_records(out, presets, args.seeds),
        *defect_records(out, presets, args.seeds),
        *mtile_records(out),
        *choice_records(out, args.seeds),
        *timing_records(out),
    ]
    flags = [] if args.seeds == [0] else ["--seeds", *map(str, args.seeds)]
    run = run_record(
        "combined",
        command_line("combined.py", flags),
        seconds=seconds,
        seeds=args.seeds,
        presets=presets,
        workers=args.jobs,
        threads=1,
        targets=TARGETS,
        parts=args.parts,
        novelty_protocols={p: run_benchmarks.PROTOCOLS[p]["title"] for p in NOVELTY},
        defect_title=defects.DEFECT_DATA[DEFECT_KEY]["title"],
    )
    return publish("combined", [run, *measured, *cost_records(measured)], results, report)


def submit_all(pool: ProcessPoolExecutor, args: argparse.Namespace, out: Path) -> list[Any]:
    """Submit the jobs of the requested parts in the order given (a stopped run keeps what finished).

    The mean-or-maximum comparison first, then the defect tasks, then Magnetic-tile, then one job per
    protocol and preset, presets in
    ``--presets`` order; the tables list the presets in :data:`PRESETS` order.
    """
    futures = []
    if "choice" in args.parts:
        for seed in args.seeds:
            for key, classes in CHOICE_DATA.items():
                for index in classes[:1] if args.smoke else classes:
                    futures.append(pool.submit(choice_job, key, index, seed, out, args.smoke))
    if "defects" in args.parts:
        for seed in args.seeds:
            for index in [0] if args.smoke else defects.DEFECT_DATA[DEFECT_KEY]["classes"]:
                futures.append(pool.submit(defect_job, index, seed, args.presets, out, args.smoke))
    if "timing" in args.parts:
        futures.append(pool.submit(timing_job, out, 1 if args.smoke else 3))
    if "mtile" in args.parts and not args.smoke:
        futures += [pool.submit(mtile_job, name, out) for name in MTILE_ROWS]
    if "novelty" in args.parts:
        for protocol in ["coil_random"] if args.smoke else NOVELTY:
            for preset in args.presets:
                futures.append(pool.submit(novelty_job, protocol, preset, args.seeds, out, args.smoke))
    return futures


def main(argv: list[str] | None = None) -> int:
    """Run the requested parts, then rebuild COMBINED.md from every finished job."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--presets", nargs="+", choices=PRESETS, default=list(PRESETS))
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS))
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="COIL-20 class 0/1 only, into a temp folder")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"{DATA} not found: COMBINED.md needs COIL-20, mfeat and Magnetic-tile", file=sys.stderr)
        return 2
    out, results, report = OUT, RESULTS, MARKDOWN
    if args.smoke:
        out = results = report = Path(tempfile.mkdtemp(prefix="mmocc-combined-"))
    start = time.perf_counter()
    if not args.report_only:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for future in as_completed(submit_all(pool, args, out)):
                print(
                    f"{time.perf_counter() - start:7.0f} s  finished {future.result()}",
                    file=sys.stderr,
                    flush=True,
                )
    seconds = None if args.report_only else time.perf_counter() - start
    print(write_report(out, results, report, args, seconds).read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
