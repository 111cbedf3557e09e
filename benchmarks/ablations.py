"""Regenerate benchmarks/ABLATIONS.md: the paper's Table III and Table IV ablations on COIL-20.

Usage (from the repository root)::

    python benchmarks/ablations.py                 # sweep, Table IV, Table III (2 processes), report
    python benchmarks/ablations.py --report-only   # rebuild the records and ABLATIONS.md from finished runs
    python benchmarks/ablations.py --smoke         # every part on a tiny subset, in a temp folder

All on COIL-20 two-view pairs (pose P and P+90°, grayscale), resumable (finished
work under ``benchmarks/out/ablations/`` is reused), one torch thread per process:

``sweep``
    Picks lambda and gamma of each WLD-Reg regularizer, per preset, from normal
    data only: 5 classes, the seed-0 training pairs split again 66% / 34%; the
    criterion is the held-out value of the training objective
    (:class:`mmocc.model.losses.JointLoss` without the diversity term) relative
    to no regularizer, and the rule is :func:`choose`.
``table4``
    ``configs/paper_table4.toml`` (seeds 0-2, 20 tasks) with the sweep's choice,
    for the paper and the default preset.
``table3``
    ``configs/paper_table3.toml`` at 64 and 128 (paper preset) and 64 (default
    preset); size 32 is the no-regularizer model of ``table4``.

Experiments run through :func:`mmocc.evaluation.runner.run_experiment`. Their
summaries are the records ``benchmarks/results/ablations.json``, from which
``benchmarks/render.py`` writes ABLATIONS.md (template ``benchmarks/templates/ablations.md``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
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

from mmocc import MultimodalOCC
from mmocc.data.sources import find_label, load_source
from mmocc.data.tasks import one_class_split
from mmocc.model.losses import JointLoss
from mmocc.utils.files import write_json

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    import tomli as tomllib

SOURCE = f"turntable:{DATA / 'coil-20-proc'}"
TABLE4 = ROOT / "configs" / "paper_table4.toml"
TABLE3 = ROOT / "configs" / "paper_table3.toml"
PRESETS = ("paper", "default")
KINDS = ("direct", "det", "logdet")
SWEEP_SEED = 0
SWEEP_FRACTION = 0.66
PROBE = {"weight": 1.0, "gamma": 1.0}
"""The presets' former gamma, run at lambda = 1 only to show it leaves the regularizer inert."""
HARM_TOLERANCE = 1e-3
"""Held-out objective changes below 0.1% (in log ratio) count as no harm."""
EXPECTED_MINUTES = {"table3_paper_128": 22, "table3_paper_64": 17, "table4_paper": 15, "table4_default": 12}
"""Rough single-thread cost of each job, to start the longest first."""
PAPER_TABLE4 = {"none": 0.578, "direct": 0.579, "det": 0.580, "logdet": 0.578}
"""Average ROC AUC of the paper's Table IV (FIN-Benthic2), for reference."""
States = dict[str, dict[str, Any]]
Chosen = dict[str, dict[str, dict[str, float]]]


@dataclass(frozen=True)
class Plan:
    """What an invocation runs and where it writes; the defaults make ``benchmarks/ABLATIONS.md``."""

    out: Path = ROOT / "benchmarks" / "out" / "ablations"
    results: Path = RESULTS
    """Folder of the records ``ablations.json``."""
    markdown: Path = MARKDOWN
    """Folder of ABLATIONS.md."""
    flags: tuple[str, ...] = ()
    """Command-line flags of the run, as the report shows them."""
    seeds: tuple[int, ...] = (0, 1, 2)
    classes: tuple[str, ...] = ("1", "5", "9", "13", "17")
    weights: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
    gammas: tuple[float, ...] = (0.03, 0.1)
    normals: tuple[str, ...] | None = None
    """Normal classes of Tables III and IV (None: all 20)."""
    table3: tuple[tuple[str, str, int, tuple[int, ...]], ...] = (
        ("table3_paper_64", "paper", 64, (0, 1, 2)),
        ("table3_paper_128", "paper", 128, (0,)),
        ("table3_default_64", "default", 64, (0,)),
    )
    """Table III runs besides size 32 (name, preset, size, seeds); the costly ones get one seed."""


def smoke_plan() -> Plan:
    """Two sweep classes, a 2 x 1 grid, two normal classes and one seed, in a temp folder."""
    tmp = Path(tempfile.mkdtemp(prefix="mmocc-ablations-"))
    return Plan(out=tmp / "out", results=tmp, markdown=tmp, flags=("--smoke",), seeds=(0,),
                classes=("1", "5"), weights=(0.01, 1.0), gammas=(0.1,), normals=("1", "2"),
                table3=(("table3_paper_64", "paper", 64, (0,)),))


# --------------------------------------------------------------------------- helpers
def _read_json(path: Path) -> Any:
    """Read JSON, or return None when the file is missing or broken."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as handle:
        return tomllib.load(handle)


def _key(setting: dict[str, Any]) -> str:
    return f"{setting['kind']}|{setting['weight']:g}|{setting['gamma']:g}"


def sweep_grid(plan: Plan) -> list[dict[str, Any]]:
    """The sweep's settings: no regularizer first, then per kind the grid and the gamma = 1 probe."""
    grid: list[dict[str, Any]] = [{"kind": None, "weight": 0.0, "gamma": 0.0, "probe": False}]
    for kind in KINDS:
        grid += [{"kind": kind, "weight": w, "gamma": g, "probe": False}
                 for w in plan.weights for g in plan.gammas]
        grid.append({"kind": kind, **PROBE, "probe": True})
    return grid


# --------------------------------------------------------------------------- sweep
def heldout_objective(clf: MultimodalOCC, views: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean training objective of a fitted model on samples, in evaluation mode, without diversity term."""
    hp, model = clf.params_, clf.model_.eval()
    center = None if clf.center_ is None else torch.as_tensor(clf.center_)
    loss = JointLoss(center=center, units=model.bottleneck_units(), compact_weight=hp.compact_weight,
                     recon_weight=hp.recon_weight)
    with torch.inference_mode():
        out = model({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in views.items()})
        terms = loss.terms(out.phi, out.latents, out.inputs, out.recons)
    return {"objective": float(loss.total(terms)), "compactness": float(terms.compactness),
            "reconstruction": float(terms.reconstruction)}


def unit_sq_distances(
    clf: MultimodalOCC, views: dict[str, np.ndarray], batch: int = 32, *, train_mode: bool = True
) -> list[float]:
    """5/25/50/75/95th percentiles of ``||phi_n(x) - phi_m(x)||^2`` between bottleneck units, n != m.

    Measured as the regularizer sees them: in training mode (BatchNorm on
    batch statistics, dropout on) on the first ``batch`` samples, unless
    ``train_mode`` is False.
    """
    model = clf.model_
    model.train(train_mode)
    torch.manual_seed(0)
    try:
        with torch.no_grad():
            out = model({k: torch.from_numpy(np.ascontiguousarray(v[:batch])) for k, v in views.items()},
                        decode=False)
    finally:
        model.eval()
    parts = []
    for name, units in model.bottleneck_units().items():
        latent = out.latents[name].reshape(len(out.latents[name]), units, -1)
        parts.append(torch.cdist(latent, latent).pow(2)[:, ~torch.eye(units, dtype=torch.bool)].flatten())
    return np.percentile(torch.cat(parts).numpy(), [5, 25, 50, 75, 95]).tolist()


def _sweep_split(dataset: Any, label: str) -> tuple[Any, Any]:
    """The seed-0 training pairs of one normal class, split again into fitting and held-out pairs."""
    train = one_class_split(dataset, find_label(dataset, label), seed=SWEEP_SEED).train
    order = np.random.default_rng(SWEEP_SEED).permutation(len(train))
    n_fit = round(SWEEP_FRACTION * len(train))
    return train.subset(np.sort(order[:n_fit])), train.subset(np.sort(order[n_fit:]))


def _sweep_record(preset: str, setting: dict[str, Any], fit: Any, held: Any) -> tuple[dict[str, Any], Any]:
    """Fit one setting on the fitting pairs; return its record and the model."""
    started = time.perf_counter()
    clf = MultimodalOCC(preset=preset, diversity=setting["kind"], diversity_weight=setting["weight"],
                        diversity_gamma=setting["gamma"] if setting["kind"] else None,
                        random_state=SWEEP_SEED, device="cpu").fit(fit)
    record = {
        **{k: setting[k] for k in ("kind", "weight", "gamma", "probe")},
        "setting": _key(setting),
        "fit_seconds": time.perf_counter() - started,
        "heldout": heldout_objective(clf, held.views),
        "train": heldout_objective(clf, fit.views),
        "heldout_false_alarm": float(np.mean(clf.decision_function(held) > clf.threshold_)),
        "diversity_last_epoch": clf.history_[-1]["diversity"],
        "n_fit": len(fit),
        "n_heldout": len(held),
    }
    return record, clf


def run_sweep(preset: str, plan: Plan) -> dict[str, Any]:
    """Run (or resume) the lambda/gamma sweep of one preset; return its state.

    The state holds ``records`` (one per class and setting), ``distances``
    (per class: unit distance percentiles at initialisation and after
    training) and ``seconds`` (compute time of the finished classes).
    """
    torch.set_num_threads(1)
    path, grid = plan.out / "sweep" / f"{preset}.json", sweep_grid(plan)
    spec = {"classes": list(plan.classes), "seed": SWEEP_SEED, "fraction": SWEEP_FRACTION,
            "grid": [_key(s) for s in grid]}
    state = _read_json(path)
    if not state or state.get("spec") != spec:
        state = {"spec": spec, "records": [], "distances": {}, "seconds": 0.0}
    done = {(r["class"], r["setting"]) for r in state["records"]}
    dataset = load_source(SOURCE, size=32, mode="L")
    for label in plan.classes:
        todo = [s for s in grid if (label, _key(s)) not in done]
        if not todo:
            continue
        started = time.perf_counter()
        fit, held = _sweep_split(dataset, label)
        init = MultimodalOCC(preset=preset, lr=0.0, epochs=1, random_state=SWEEP_SEED, device="cpu").fit(fit)
        distances = {**state["distances"].get(label, {}), "init": unit_sq_distances(init, fit.views)}
        for setting in todo:
            record, clf = _sweep_record(preset, setting, fit, held)
            state["records"].append({"class": label, **record})
            if setting["kind"] is None:
                distances["trained"] = unit_sq_distances(clf, fit.views)
                distances["trained, evaluation mode"] = unit_sq_distances(clf, fit.views, train_mode=False)
        state["distances"][label] = distances
        state["seconds"] += time.perf_counter() - started
        write_json(path, state)
    return state


def sweep_summary(state: dict[str, Any], plan: Plan) -> list[dict[str, Any]]:
    """Aggregate a sweep over classes, relative to no regularizer, one entry per setting.

    ``log_ratio`` is the mean over classes of log(held-out objective / that
    without a regularizer), ``log_ratio_se`` its standard error and ``ratio``
    its exponential; ``admissible`` (see :func:`choose`), mean held-out
    ``recon``, ``false_alarm``, last-epoch diversity term ``diversity`` (J)
    and ``penalty`` (lambda * |J|) come with it.
    """
    by = {(r["class"], r["setting"]): r for r in state["records"]}
    grid = sweep_grid(plan)
    out = []
    for setting in grid:
        if not all((c, _key(setting)) in by and (c, _key(grid[0])) in by for c in plan.classes):
            continue
        rows = [by[c, _key(setting)] for c in plan.classes]
        base = [by[c, _key(grid[0])]["heldout"]["objective"] for c in plan.classes]
        logs = np.log([r["heldout"]["objective"] / b for r, b in zip(rows, base, strict=True)])
        mean, se = float(np.mean(logs)), float(np.std(logs, ddof=1) / np.sqrt(len(logs)))
        div = np.array([r["diversity_last_epoch"] for r in rows])
        out.append({
            **setting, "log_ratio": mean, "log_ratio_se": se, "ratio": math.exp(mean),
            "admissible": setting["kind"] is not None and mean <= max(se, HARM_TOLERANCE),
            "ratio_min": float(np.exp(logs.min())), "ratio_max": float(np.exp(logs.max())),
            "recon": float(np.mean([r["heldout"]["reconstruction"] for r in rows])),
            "false_alarm": float(np.mean([r["heldout_false_alarm"] for r in rows])),
            "diversity": float(div.mean()), "penalty": float(np.mean(setting["weight"] * np.abs(div))),
        })
    return out


def choose(summary: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The chosen (lambda, gamma) of each regularizer: the strongest setting that does no measurable harm.

    A setting is admissible when its mean log held-out objective ratio to no
    regularizer is at most one standard error over the classes (or
    :data:`HARM_TOLERANCE`, whichever is larger). Among admissible settings
    (the probes excluded) the one with the largest penalty ``lambda * |J|``
    wins, as in the one-standard-error rule.
    """
    chosen = {}
    for kind in KINDS:
        candidates = [s for s in summary if s["kind"] == kind and not s["probe"] and s["admissible"]]
        if candidates:
            best = max(candidates, key=lambda s: (s["penalty"], -s["log_ratio"]))
            chosen[kind] = {k: best[k] for k in ("weight", "gamma", "ratio", "penalty")}
    return chosen


# --------------------------------------------------------------------------- experiments
def table4_config(preset: str, chosen: dict[str, dict[str, float]], plan: Plan) -> dict[str, Any]:
    """``configs/paper_table4.toml`` for a preset with the sweep's lambda and gamma (plots off)."""
    config = copy.deepcopy(_toml(TABLE4))
    config.update(plots=False, seeds=list(plan.seeds))
    if plan.normals:
        config["split"]["normal"] = list(plan.normals)
    if preset != "paper":
        config["name"] = config["name"].replace("paper hyper-parameters", f"{preset} preset")
    for name, model in config["models"].items():
        model["preset"] = preset
        kind = model.get("diversity")
        if kind is not None:
            model.update(diversity_weight=chosen[kind]["weight"], diversity_gamma=chosen[kind]["gamma"])
        elif name != "multimodal":
            raise ValueError(f"{TABLE4}: model {name!r} has no diversity")
    return config


def toml_mismatches(chosen: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Records of the ``configs/paper_table4.toml`` values that differ from the paper sweep's choice."""
    problems = []
    for name, model in _toml(TABLE4)["models"].items():
        kind = model.get("diversity")
        for param, field in (("diversity_weight", "weight"), ("diversity_gamma", "gamma")):
            if kind is not None and not math.isclose(model.get(param, math.nan), chosen[kind][field]):
                problems.append({"kind": "toml_mismatch", "model": name, "param": param,
                                 "toml": model.get(param), "chosen": chosen[kind][field]})
    return problems


def table3_config(preset: str, size: int, seeds: tuple[int, ...], plan: Plan) -> dict[str, Any]:
    """``configs/paper_table3.toml`` at one size, seeds and preset (plots off)."""
    config = copy.deepcopy(_toml(TABLE3))
    config.update(plots=False, seeds=list(seeds))
    config["data"].pop("sizes", None)
    config["data"]["size"] = size
    if plan.normals:
        config["split"]["normal"] = list(plan.normals)
    for model in config["models"].values():
        model["preset"] = preset
    return config


def run_job(name: str, config: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """Run one experiment (resumable) with one torch thread; return its timing."""
    started = time.perf_counter()
    result = run_one_thread(config, SOURCE, plan.out / name)
    return {"name": name, "wall_seconds": time.perf_counter() - started, "n_runs": result.n_runs,
            "n_reused": result.n_reused}


def _record_timing(timing: dict[str, Any], plan: Plan) -> None:
    """Keep the wall time of the last invocation of a job that computed runs."""
    path = plan.out / "timings.json"
    timings = _read_json(path) or {}
    if timing["n_reused"] < timing["n_runs"] or timing["name"] not in timings:
        timings[timing["name"]] = timing
        write_json(path, timings)


# --------------------------------------------------------------------------- records
def paired(base: dict[Any, float], other: dict[Any, float]) -> dict[str, float]:
    """Paired comparison over (task, seed) runs: mean difference, wins, losses and Wilcoxon p."""
    from scipy.stats import wilcoxon

    keys = sorted(set(base) & set(other))
    diff = np.array([other[k] - base[k] for k in keys])
    nonzero = diff[diff != 0]
    p = float(wilcoxon(nonzero).pvalue) if len(nonzero) >= 6 else 1.0
    return {"delta": float(diff.mean()), "wins": int((diff > 0).sum()), "losses": int((diff < 0).sum()),
            "n": len(keys), "p": p}


def table4_records(plan: Plan) -> list[dict[str, Any]]:
    """Table IV: per preset the model without a regularizer, then each regularizer paired against it.

    The per-class ``table.md`` of each experiment comes along verbatim as a
    ``per_class_table`` record.
    """
    records: list[dict[str, Any]] = []
    for preset in PRESETS:
        table = read_results(plan.out / f"table4_{preset}")
        base = summarize(table, "multimodal", plan.seeds)
        if base is None:
            continue
        none = dict.fromkeys(("delta", "wins", "losses", "p"))
        records.append({"kind": "table4", "preset": preset, "model": "none", **summary_figures(base), **none})
        for kind in KINDS:
            row = summarize(table, kind, plan.seeds)
            if row is not None:
                stats = paired(base["roc"], row["roc"])
                records.append({"kind": "table4", "preset": preset, "model": kind, **summary_figures(row),
                                **{key: stats[key] for key in ("delta", "wins", "losses", "p")}})
    for preset in PRESETS:
        path = plan.out / f"table4_{preset}" / "table.md"
        if path.is_file():
            text = path.read_text(encoding="utf-8").split("\n", 1)[1].strip()
            records.append({"kind": "per_class_table", "preset": preset, "markdown": text})
    return records


def table3_records(plan: Plan) -> list[dict[str, Any]]:
    """Table III: the no-regularizer model per preset and input size (size 32 is Table IV's)."""
    records = []
    for preset in PRESETS:
        runs = [(f"table4_{preset}", 32, plan.seeds)]
        runs += [(name, size, seeds) for name, p, size, seeds in plan.table3 if p == preset]
        for name, size, seeds in runs:
            row = summarize(read_results(plan.out / name), "multimodal", seeds)
            if row is not None:
                seed0 = float(np.mean([v for (_, s), v in row["roc"].items() if s == 0]))
                records.append({"kind": "table3", "preset": preset, "size": size, "seeds": list(seeds),
                                **summary_figures(row), "seed0_roc_auc": seed0})
    return records


def distance_records(states: States) -> list[dict[str, Any]]:
    """Unit distance percentiles per preset and model state (mean over classes), and their median."""
    records: list[dict[str, Any]] = []
    for preset, state in states.items():
        for when in ("init", "trained", "trained, evaluation mode"):
            values = [d[when] for d in state["distances"].values() if when in d]
            if values:
                records.append({"kind": "distances", "preset": preset, "model": when,
                                "percentiles": np.mean(values, axis=0).tolist()})
    medians = [d[w][2] for s in states.values() for d in s["distances"].values() for w in ("init", "trained")]
    if medians:
        records.append({"kind": "bottleneck", "median_sq_distance": float(np.median(medians))})
    return records


def sweep_records(states: States, chosen_by_preset: Chosen, plan: Plan) -> list[dict[str, Any]]:
    """The sweep's settings per preset, det(S) per γ (mean over the det settings), and the choice."""
    fields = ("weight", "gamma", "probe", "ratio", "ratio_min", "ratio_max", "admissible", "recon",
              "false_alarm", "diversity", "penalty")
    records: list[dict[str, Any]] = []
    for preset, state in states.items():
        records += [{"kind": "sweep", "preset": preset, "regularizer": s["kind"], **{k: s[k] for k in fields}}
                    for s in sweep_summary(state, plan)]
    det = [r for r in records if r["regularizer"] == "det" and not r["probe"]]
    for gamma in plan.gammas:
        values = [r["diversity"] for r in det if r["gamma"] == gamma]
        if values:
            records.append({"kind": "det_scale", "gamma": gamma, "det": float(-np.mean(values) / 2)})
    records += [{"kind": "chosen", "preset": preset, "regularizer": kind, **setting}
                for preset, chosen in chosen_by_preset.items() for kind, setting in chosen.items()]
    return records


def collect(states: States, chosen_by_preset: Chosen, plan: Plan, jobs: int) -> list[dict[str, Any]]:
    """Every record of ABLATIONS.md, from the finished work under ``plan.out``."""
    timings = _read_json(plan.out / "timings.json") or {}
    total = timings.get("_total", {})
    sweep = {"classes": list(plan.classes), "seed": SWEEP_SEED, "fraction": SWEEP_FRACTION,
             "weights": list(plan.weights), "gammas": list(plan.gammas)}
    run = run_record("ablations", command_line("ablations.py", plan.flags), jobs=total.get("jobs", jobs),
                     threads=1, seeds=list(plan.seeds), sweep=sweep, paper_table4=PAPER_TABLE4,
                     wall_seconds=total.get("wall_seconds"),
                     sweep_seconds=sum(state.get("seconds", 0.0) for state in states.values()))
    records = [run, *table4_records(plan), *table3_records(plan), *distance_records(states)]
    records += sweep_records(states, chosen_by_preset, plan)
    records += [{"kind": "job", **{key: t[key] for key in ("name", "wall_seconds", "n_runs", "n_reused")}}
                for name, t in sorted(timings.items()) if not name.startswith("_")]
    return records + (toml_mismatches(chosen_by_preset["paper"]) if "paper" in chosen_by_preset else [])


def write_report(states: States, chosen_by_preset: Chosen, plan: Plan, jobs: int) -> Path:
    """Save the records to ``plan.results``, render ABLATIONS.md into ``plan.markdown``; return its path."""
    path = publish("ablations", collect(states, chosen_by_preset, plan, jobs), plan.results, plan.markdown)
    print(f"wrote {path}", file=sys.stderr)
    return path


# --------------------------------------------------------------------------- main
def run_all(plan: Plan, jobs: int, sweep_only: bool) -> dict[str, dict[str, Any]]:
    """Run the sweep, then (unless ``sweep_only``) Table IV and Table III; return the sweep states."""
    started = time.perf_counter()
    old = [_read_json(plan.out / "sweep" / f"{p}.json") or {} for p in PRESETS]
    before = sum(len(state.get("records", [])) for state in old)
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        states = dict(zip(PRESETS, pool.map(run_sweep, PRESETS, [plan] * len(PRESETS)), strict=True))
    n_fits = sum(len(state["records"]) for state in states.values())
    _record_timing({"name": "sweep", "wall_seconds": time.perf_counter() - started, "n_runs": n_fits,
                    "n_reused": min(before, n_fits)}, plan)
    if sweep_only:
        return states
    chosen = {p: choose(sweep_summary(s, plan)) for p, s in states.items()}
    todo = [(f"table4_{p}", table4_config(p, chosen[p], plan)) for p in PRESETS]
    todo += [(name, table3_config(p, size, seeds, plan)) for name, p, size, seeds in plan.table3]
    todo.sort(key=lambda job: -EXPECTED_MINUTES.get(job[0], 0))
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        names, configs = zip(*todo, strict=True)
        for timing in pool.map(run_job, names, configs, [plan] * len(todo)):
            _record_timing(timing, plan)
            print(f"finished {timing['name']} in {timing['wall_seconds'] / 60:.1f} min", file=sys.stderr)
    timings = _read_json(plan.out / "timings.json") or {}
    timings["_total"] = {"wall_seconds": time.perf_counter() - started, "jobs": jobs}
    write_json(plan.out / "timings.json", timings)
    return states


def main(argv: list[str] | None = None) -> int:
    """Run the sweep, then Table IV and Table III, then write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="processes in parallel (default 2)")
    parser.add_argument("--report-only", action="store_true",
                        help="only rebuild the records and ABLATIONS.md from finished work")
    parser.add_argument("--sweep-only", action="store_true", help="stop after the sweep")
    parser.add_argument("--smoke", action="store_true", help="every part on a tiny subset, in a temp folder")
    args = parser.parse_args(argv)
    plan = smoke_plan() if args.smoke else Plan()
    if args.report_only:
        states = {p: s for p in PRESETS if (s := _read_json(plan.out / "sweep" / f"{p}.json"))}
        if not states:
            print(f"no finished sweep under {plan.out}: records and ABLATIONS.md left as they are",
                  file=sys.stderr)
            return 1
    elif not DATA.is_dir():
        parser.error(f"{DATA} not found: COIL-20 is needed")
    else:
        states = run_all(plan, args.jobs, args.sweep_only)
    chosen_by_preset = {p: choose(sweep_summary(s, plan)) for p, s in states.items()}
    for preset, chosen in chosen_by_preset.items():
        print(f"{preset}: {chosen}", file=sys.stderr)
    write_report(states, chosen_by_preset, plan, args.jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
