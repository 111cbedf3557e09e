"""Measure every speed and scale figure of mmocc, from one command; SPEED.md is rendered from the records.

Usage (from the repository root)::

    python benchmarks/speed.py               # everything (about an hour on 2 cores)
    python benchmarks/speed.py --quick       # fewer repeats and smaller sizes
    python benchmarks/speed.py --smoke       # every section at tiny sizes, into a temp folder
    python benchmarks/speed.py --threads 1   # torch threads of the in-process measurements

Sections measured here: the machine and its matmul limit; training (NCHW,
channels-last, fused Adam, bf16) through :func:`mmocc.model.training.fit_autoencoder`;
scoring paths and settings (``speed_scoring.py``); one COIL-20 task against
PyOD; fixed per-process costs; the COIL-20 paper protocol through
:func:`mmocc.evaluation.runner.run_experiment` against the eager reference of
``paper_reference.py``. Then the sections of ``knn_scale.py``, ``patch_speed.py``,
``streaming.py``, ``cluster_scaling.py`` and ``onnx_speed.py``, run from here, and the quality
check that ``headline.py`` wrote (it is not re-run here: ``python benchmarks/headline.py``).
The records go to ``benchmarks/results/speed.json`` and SPEED.md is rendered
from them (``render_speed.py``, template ``templates/speed.md``) after every
section, marked incomplete until the end. Timings taken while other jobs load
the machine are worthless: the records keep the load average and other
benchmark processes.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import headline
import numpy as np
import torch
from bench_common import (
    COIL,
    RESULTS,
    best_time,
    busy_processes,
    command_line,
    publish,
    run_record,
    torch_threads,
)
from speed_scoring import paper_flops, random_pairs, scoring_records, settings_records

from mmocc import MultimodalOCC
from mmocc.data.inputs import ViewSpec
from mmocc.datasets import load_turntable
from mmocc.evaluation.runner import run_experiment
from mmocc.model import training
from mmocc.model.device import native_bf16
from mmocc.model.hyperparams import DEFAULT, PAPER
from mmocc.model.losses import JointLoss
from mmocc.model.nn import JointAutoencoder
from mmocc.model.training import fit_autoencoder, fit_scalers, initial_center

TARGETS = {"scoring": 0.25, "training": 0.12, "coil_ratio": 4.5, "task_vs_knn": 10.0}
"""Issue 14's targets: shares of the matmul limit, and ratios to the reference and to PyOD's kNN."""
MODELS = {"multimodal": {}, "front": {"views": ["front"]}, "side": {"views": ["side"]}}
"""The COIL-20 protocol's models (paper preset), by name."""


@dataclass(frozen=True)
class Plan:
    """Sizes of one run: repeats per timing, pairs per measurement, COIL-20 tasks."""

    repeats: int
    train_pairs: int
    format_pairs: int
    score_pairs: dict[int, int]
    coil_tasks: int
    profile_pairs: int = 128
    compile_images: int = 2048


PLANS = {
    "full": Plan(3, 512, 256, {32: 4096, 64: 1024, 128: 256}, 20),
    "quick": Plan(2, 256, 128, {32: 1024, 64: 512, 128: 128}, 20),
    "smoke": Plan(1, 64, 64, {32: 64, 64: 16, 128: 8}, 2, 32, 128),
}


# ------------------------------------------------------------ training
def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Dense float32 matmul GFLOP/s (``2 n^3`` per product), the reference limit."""
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
    return 2 * n**3 / best_time(lambda: a @ b, repeats) / 1e9


def fit_rate(n: int, epochs: int = 3) -> float:
    """Training pairs/s of a paper-preset ``MultimodalOCC.fit`` on 3x32x32 pairs (best epoch past the 1st)."""
    clf = MultimodalOCC(preset="paper", epochs=epochs, random_state=0, device="cpu")
    clf.fit(random_pairs(n, (3, 32, 32)))
    return n / min(h["seconds"] for h in clf.history_[1:])


@contextlib.contextmanager
def training_variant(fused_adam: bool, bf16: bool) -> Iterator[None]:
    """Train with fused Adam and/or forced bf16 autocast (emulated where the CPU lacks bf16)."""
    saved_adam, saved_amp = torch.optim.Adam, training.resolve_amp
    if fused_adam:
        torch.optim.Adam = functools.partial(saved_adam, fused=True)  # type: ignore[misc]
    if bf16:
        training.resolve_amp = lambda amp, device: True
    try:
        yield
    finally:
        torch.optim.Adam, training.resolve_amp = saved_adam, saved_amp  # type: ignore[misc]


TRAINING_VARIANTS = {
    "NCHW, float32 (before)": (False, False, False),
    "channels-last (default)": (True, False, False),
    "channels-last + fused Adam": (True, True, False),
    "channels-last + bf16 autocast": (True, False, True),
}
"""Label: (channels_last, fused Adam, bf16) of the training rows."""


def training_rates(n: int, epochs: int = 3, repeats: int = 2) -> dict[str, dict[str, float]]:
    """Pairs/s of :func:`fit_autoencoder` epochs (paper preset) for each of :data:`TRAINING_VARIANTS`.

    Same seed, data and batch order in all; the variants run interleaved,
    ``repeats`` times, best epoch past the first kept. ``loss_diff`` is the
    largest relative difference of the epoch losses from the first variant
    (the formats round differently, and dropout draws its masks in memory order).
    """
    views = random_pairs(n, (3, 32, 32))
    data = {k: torch.from_numpy(v) for k, v in views.items()}
    hp = replace(PAPER, epochs=epochs)
    out: dict[str, dict[str, float]] = {label: {"rate": 0.0} for label in TRAINING_VARIANTS}
    losses: dict[str, list[float]] = {}
    runs = itertools.product(range(repeats), TRAINING_VARIANTS.items())
    for _, (label, (channels_last, fused, bf16)) in runs:
        torch.manual_seed(0)
        model = JointAutoencoder([ViewSpec(v, "image", (3, 32, 32)) for v in views], hp.arch())
        fit_scalers(model, views, hp.scaling)
        loss = JointLoss(center=None, units=model.bottleneck_units())
        with training_variant(fused, bf16):
            history = fit_autoencoder(model, data, hp, loss, generator=torch.Generator().manual_seed(0),
                                      channels_last=channels_last)
        out[label]["rate"] = max(out[label]["rate"], n / min(h["seconds"] for h in history[1:]))
        losses[label] = [h["loss"] for h in history]
    base = losses[next(iter(TRAINING_VARIANTS))]
    for label, values in losses.items():
        diffs = [abs(a - b) / max(abs(a), 1e-12) for a, b in zip(base, values, strict=True)]
        out[label]["loss_diff"] = max(diffs)
    return out


def center_rates(n: int, repeats: int) -> dict[str, float]:
    """Pairs/s of the Deep-SVDD centre initialisation: eval-mode model (before) and :func:`initial_center`."""
    views = random_pairs(n, (3, 32, 32))
    data = {k: torch.from_numpy(v) for k, v in views.items()}
    model = JointAutoencoder([ViewSpec(v, "image", (3, 32, 32)) for v in views], DEFAULT.arch())
    fit_scalers(model, views, DEFAULT.scaling)

    def before() -> None:
        with torch.inference_mode():
            model.eval()(data, decode=False).phi.double().mean(dim=0)

    after = n / best_time(lambda: initial_center(model, data, 1024), repeats)
    return {"before": n / best_time(before, repeats), "after": after}


def profile_operators(fn: Callable[[], Any], rows: int = 8) -> list[dict[str, Any]]:
    """The top operators of ``fn`` by self CPU time (after one untimed call): name, share, calls."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events) or 1
    return [{"name": e.key, "share": e.self_cpu_time_total / total, "calls": e.count} for e in events[:rows]]


def training_records(plan: Plan, threads: int, peak: float, peak_1: float) -> list[dict[str, Any]]:
    """FLOPs, a ``training`` record per path (pairs/s, GFLOP/s, share of the limit), centre initialisation."""
    enc, dec = paper_flops(32)
    per_pair = 6 * (enc + dec)

    def row(path: str, threads: int, rate: float, limit: float, **more: Any) -> dict[str, Any]:
        gflops = rate * per_pair / 1e9
        return {"kind": "training", "path": path, "threads": threads, "pairs_per_s": rate, "gflops": gflops,
                "share": gflops / limit, "speedup": None, "loss_diff": None, **more}

    records = [row("fit", threads, fit_rate(plan.train_pairs), peak)]
    with torch_threads(1):
        records.append(row("fit_1_thread", 1, fit_rate(plan.train_pairs), peak_1))
    variants = training_rates(plan.format_pairs, repeats=plan.repeats)
    base = variants[next(iter(TRAINING_VARIANTS))]["rate"]
    records += [row(label, threads, v["rate"], peak, speedup=v["rate"] / base, loss_diff=v["loss_diff"])
                for label, v in variants.items()]
    centre = center_rates(plan.format_pairs, plan.repeats)
    return [{"kind": "flops", "size": 32, "encoder": enc, "decoder": dec, "per_pair": per_pair,
             "ms_per_pair": 1e3 * per_pair / peak / 1e9}, *records,
            {"kind": "training_setup", "repeats": plan.repeats,
             "native_bf16": native_bf16(torch.device("cpu"))},
            {"kind": "centre", "pairs": plan.format_pairs, **centre,
             "speedup": centre["after"] / centre["before"]}]


# ------------------------------------------------------------------ COIL-20
@contextlib.contextmanager
def nchw_training() -> Iterator[None]:
    """Train in the contiguous (NCHW) format, as before channels-last training became the default."""
    defaults = training.fit_autoencoder.__kwdefaults__
    saved = defaults["channels_last"]
    defaults["channels_last"] = False
    try:
        yield
    finally:
        defaults["channels_last"] = saved


def task_records(repeats: int) -> list[dict[str, Any]]:
    """Seconds of fit + score of one COIL-20 task: the default preset (NCHW and default training) and PyOD's.

    Normal class obj1, random 66% split, seed 0; the variants run
    interleaved, best of ``repeats`` after one untimed run each. Each
    ``task`` record also holds its ratio to PyOD's kNN (floored at 50 ms).
    """
    from mmocc import BaselineOCC, one_class_split

    data = load_turntable(COIL, size=32, mode="L")
    task = one_class_split(data, normal=data.classes[0], train_fraction=0.66, seed=0)
    candidates: dict[str, Callable[[], Any]] = {
        "default_nchw": lambda: MultimodalOCC(random_state=0, verbose=False),
        "default": lambda: MultimodalOCC(random_state=0, verbose=False),
        "knn": lambda: BaselineOCC(detector="knn"),
        "deepsvdd": lambda: BaselineOCC(detector="deepsvdd", random_state=0),
    }
    best = dict.fromkeys(candidates, float("inf"))
    for _ in range(repeats + 1):
        for name, make in candidates.items():
            context = nchw_training() if name == "default_nchw" else contextlib.nullcontext()
            with context, torch_threads(torch.get_num_threads()):
                start = time.perf_counter()
                make().fit(task.train).decision_function(task.test)
                best[name] = min(best[name], time.perf_counter() - start)
    knn = max(best["knn"], 0.05)
    return [{"kind": "task", "detector": name, "seconds": s, "vs_knn": s / knn} for name, s in best.items()]


def fixed_costs(repeats: int) -> dict[str, Any]:
    """Seconds of per-process costs: imports in fresh processes, the first fit against later ones."""
    def fresh(code: str) -> float:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            best = min(best, time.perf_counter() - start)
        return best

    code = "\n".join((
        "import time, numpy as np, torch",
        "from mmocc import MultimodalOCC",
        f"torch.set_num_threads({torch.get_num_threads()})",
        "X = {v: np.random.default_rng(0).integers(0, 256, (48, 1, 32, 32), dtype=np.uint8) for v in 'ab'}",
        "t = []",
        "for _ in range(3):",
        "    s = time.perf_counter(); MultimodalOCC(random_state=0).fit(X)",
        "    t.append(time.perf_counter() - s)",
        "print(t[0], min(t[1:]))",
    ))
    first, later = (float(x) for x in subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split())
    return {"kind": "fixed_costs", "repeats": repeats, "python": fresh("pass"),
            "mmocc": fresh("import mmocc"), "torch": fresh("import torch"), "first_fit": first,
            "later_fit": later}


def _coil_experiment(normals: list[str], out: str, cache_dir: str) -> list[dict[str, Any]]:
    """The paper preset's three models on some COIL-20 tasks through ``run_experiment``; its tidy rows."""
    models = {name: {"kind": "mmocc", "preset": "paper", **extra} for name, extra in MODELS.items()}
    config = {"seeds": [0], "plots": False, "data": {"size": 32, "mode": "L", "cache_dir": cache_dir},
              "split": {"normal": normals, "train_fraction": 0.66}, "models": models}
    return run_experiment(config, f"turntable:{COIL}", out, progress=False, device="cpu").rows


def coil_protocol(cache_dir: str, normals: list[str], workers: int, threads: int) -> dict[str, Any]:
    """The COIL-20 protocol in ``workers`` processes: a ``coil`` record of wall, fit and score s, ROC AUCs."""
    with tempfile.TemporaryDirectory() as tmp:
        outs = [f"{tmp}/{i}" for i in range(workers)]
        if workers == 1:
            with torch_threads(threads):
                start = time.perf_counter()
                rows = _coil_experiment(normals, outs[0], cache_dir)
        else:
            with ProcessPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(threads,)) as pool:
                list(pool.map(time.sleep, [0.2] * workers))  # start the workers first
                start = time.perf_counter()
                chunks = [normals[i::workers] for i in range(workers) if normals[i::workers]]
                n = len(chunks)
                parts = pool.map(_coil_experiment, chunks, outs[:n], [cache_dir] * n)
                rows = [row for part in parts for row in part]
        wall = time.perf_counter() - start

    def total(metric: str) -> float:
        return sum(r["value"] for r in rows if r["metric"] == metric and r["model"] in MODELS)

    rocs = [float(np.mean([r["value"] for r in rows if r["model"] == m and r["metric"] == "roc_auc"]))
            for m in MODELS]
    return {"kind": "coil", "implementation": "mmocc", "processes": workers, "threads": threads, "wall": wall,
            "fit": total("fit_seconds"), "score": total("score_seconds"), "roc_auc": rocs}


def coil_records(tasks: int, threads: int) -> list[dict[str, Any]]:
    """The COIL-20 paper protocol: the eager reference, then mmocc in 1 process and in 2 (one thread each)."""
    import paper_reference

    records: list[dict[str, Any]] = [{"kind": "coil_setup", "tasks": tasks}]
    with tempfile.TemporaryDirectory() as cache_dir:
        classes = load_turntable(COIL, size=32, mode="L", cache_dir=cache_dir).classes[:tasks]
        with torch_threads(threads):
            ref = paper_reference.run_protocol(list(classes), cache_dir)
        records.append({"kind": "coil", "implementation": "reference", "processes": 1, "threads": threads,
                        "wall": ref["wall"], "fit": None, "score": None, "roc_auc": [ref[m] for m in MODELS]})
        for workers, n_threads in ((1, threads), (2, 1)):
            row = coil_protocol(cache_dir, [str(c) for c in classes], workers, n_threads)
            records.append({**row, "vs_reference": ref["wall"] / row["wall"]})
    return records


# ------------------------------------------------------------------ the run
def measure(plan: Plan, args: argparse.Namespace) -> Iterator[list[dict[str, Any]]]:
    """Yield the records of each section in turn, SPEED.md's order."""
    peak = matmul_gflops()
    with torch_threads(1):
        peak_1 = matmul_gflops()
    yield [{"kind": "matmul", "n": 2048, "threads": args.threads, "gflops": peak, "gflops_1_thread": peak_1}]
    yield training_records(plan, args.threads, peak, peak_1)
    X = random_pairs(plan.profile_pairs, (3, 32, 32))
    fit = functools.partial(MultimodalOCC(preset="paper", epochs=1, random_state=0, device="cpu").fit, X)
    yield [{"kind": "profile", "pairs": plan.profile_pairs, "operators": profile_operators(fit)}]
    yield scoring_records(plan.score_pairs, plan.repeats, peak)
    compile_images = None if args.no_compile or args.smoke else plan.compile_images
    yield settings_records(plan.score_pairs[32], plan.repeats, args.threads, compile_images)
    if COIL.is_dir():
        yield [{"kind": "task_setup", "repeats": plan.repeats}, *task_records(plan.repeats),
               fixed_costs(plan.repeats)]
        yield coil_records(plan.coil_tasks, args.threads)
    else:
        yield [{"kind": "task_skipped", "path": str(COIL)},
               {"kind": "coil_setup", "tasks": plan.coil_tasks}, {"kind": "coil_skipped", "path": str(COIL)}]
    for module in ("knn_scale", "patch_speed", "streaming", "cluster_scaling", "onnx_speed"):
        yield importlib.import_module(module).measure_records(smoke=args.smoke, quick=args.quick)
    yield headline.records()


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="Fewer repeats and pairs.")
    mode.add_argument("--smoke", action="store_true", help="Every section at tiny sizes, into a temp folder.")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="Torch threads (all cores).")
    parser.add_argument("--no-compile", action="store_true", help="Skip the torch.compile trial.")
    parser.add_argument("--out", type=Path, help="Folder of speed.json and SPEED.md (default: "
                        "benchmarks/results/ and benchmarks/; a temp folder with --smoke).")
    args = parser.parse_args(argv)
    if args.smoke and args.out is not None and args.out.resolve() in (RESULTS, RESULTS.parent):
        parser.error("--smoke numbers must not overwrite the committed records or SPEED.md")
    if args.out is None and args.smoke:
        args.out = Path(tempfile.mkdtemp(prefix="mmocc-speed-"))
    args.mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    return args


def main(argv: Sequence[str] | None = None) -> None:
    """Run every measurement; save the records and render SPEED.md after each section."""
    args = parse_args(argv)
    plan = PLANS[args.mode]
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    flags = [] if args.mode == "full" else [f"--{args.mode}"]
    run = run_record("speed", command_line("speed.py", flags), mode=args.mode, complete=False,
                     targets=TARGETS)
    records = [run]
    folders = (RESULTS, RESULTS.parent) if args.out is None else (args.out, args.out)
    for section in measure(plan, args):
        records += section
        print(f"measured {section[0]['kind']}: {publish('speed', records, *folders)}", file=sys.stderr)
    busy = busy_processes()
    run.update(complete=True, seconds=time.perf_counter() - started, load_end=os.getloadavg()[0],
               busy_end=len(busy))
    path = publish("speed", records, *folders)
    print(path.read_text(encoding="utf-8"))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
