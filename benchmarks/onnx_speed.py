"""ONNX Runtime against PyTorch: scoring speed of an exported detector, side by side in one process.

For each preset (``default`` at 32 px, ``patch`` and ``pretrained`` at 64 px)
the script fits a detector on COIL-20 two-view pairs (``load_turntable``,
grey, pose P and P+90°; normal objects 1 and 2, random 66% of their pairs
for training, seed 0), exports it with :meth:`MultimodalOCC.export_onnx`
(timed: tracing and the parity check on 48 probes), and scores a fixed set of
test pairs (the held-out pairs, cycled to the size wanted) with:

- ``torch``: ``clf.decision_function``, its exact search through faiss's flat
  index when faiss is installed (as the dev extra installs it);
- ``torch, no faiss``: the same with faiss hidden (torch's blocked search, the
  algorithm of the graph: MatMul + top-k, candidates re-measured);
- ``onnxruntime``: :class:`mmocc.export.runtime.OnnxDetector` on the file,
  CPU provider, graph optimization ``ORT_ENABLE_ALL`` (ONNX Runtime's default).

Torch runs ``--threads`` threads and ONNX Runtime as many intra-op threads,
both set explicitly; the engines run interleaved, best of 3 rounds, at two
sizes of the scored set. Then, on the same files: ONNX Runtime's graph
optimization levels (default and pretrained presets), dynamic int8
quantization of the default export (``onnxruntime.quantization.quantize_dynamic``)
with its score difference and ROC AUC against float, and OpenVINO (when it is
installed; it is not a dependency) reading the default export: whether it
loads, compiles on the CPU and agrees with ONNX Runtime within 1e-4 relative /
1e-5 absolute, and its speed. Usage (from the repository root)::

    python benchmarks/onnx_speed.py            # minutes on 2 cores; writes ONNX.md and SPEED.md's section
    python benchmarks/onnx_speed.py --quick    # smaller scored sets; prints only
    python benchmarks/onnx_speed.py --smoke    # seconds per preset, tiny training; prints only
    python benchmarks/onnx_speed.py --splice   # only put results/onnx.json into SPEED.md's section

The records (:func:`measure_records`) go to ``benchmarks/results/onnx.json``;
ONNX.md is rendered from them (``render_scale.py``) and ``speed.py`` puts the
same records into SPEED.md.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.metadata
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_common import COIL, RESULTS, command_line, machine, report, run_record, splice, torch_threads
from sklearn.metrics import roc_auc_score

SEED = 0
NORMAL = 2
"""The first ``NORMAL`` COIL-20 objects are the normal class."""
TRAIN_FRACTION = 0.66
ROUNDS = 3
PRESETS = {"default": 32, "patch": 64, "pretrained": 64}
"""Preset -> image size."""
SIZES = {
    "full": {"default": (1024, 4096), "patch": (32, 128), "pretrained": (256, 1024)},
    "quick": {"default": (256, 1024), "patch": (16, 64), "pretrained": (64, 256)},
    "smoke": {"default": (16, 32), "patch": (4, 8), "pretrained": (8, 16)},
}
"""Scored-set sizes by mode and preset: the patch preset's graph scores a pair at a time (see SPEED.md)."""
LEVEL_PRESETS = ("default", "pretrained")
LEVELS = ("ORT_DISABLE_ALL", "ORT_ENABLE_BASIC", "ORT_ENABLE_ALL")
RTOL, ATOL = 1e-4, 1e-5
"""OpenVINO against ONNX Runtime: the tolerances of the export's own parity check."""


def version(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def first_line(exc: BaseException) -> str:
    """The exception's type and the first line of its message."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"[:300]


@contextlib.contextmanager
def no_faiss() -> Iterator[None]:
    """Hide faiss: the indexes built in the block search with torch's blocked exact search, and keep it."""
    import mmocc.search.index as index

    found = index.faiss_module
    index.faiss_module = lambda: None  # type: ignore[assignment]
    try:
        yield
    finally:
        index.faiss_module = found


def session(path: Path, threads: int, level: str = "ORT_ENABLE_ALL") -> Any:
    """An ONNX Runtime CPU session on ``path`` with ``threads`` intra-op threads and an optimization level."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def detector(path: Path, threads: int, level: str = "ORT_ENABLE_ALL", info_from: Path | None = None) -> Any:
    """:class:`OnnxDetector` on a :func:`session` (metadata read from ``info_from``, default ``path``)."""
    import onnx

    from mmocc.export.metadata import read_metadata
    from mmocc.export.runtime import OnnxDetector

    proto = onnx.load(str(info_from or path), load_external_data=False)
    meta = {prop.key: prop.value for prop in proto.metadata_props}
    return OnnxDetector(session(path, threads, level), read_metadata(meta, str(path)), str(path))


def interleaved(calls: dict[str, Callable[[], Any]], rounds: int = ROUNDS) -> dict[str, float]:
    """Best seconds of each call over ``rounds`` rounds of every call in turn (the first round warms up)."""
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def subset(views: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The pairs ``rows`` of every view, contiguous."""
    return {view: np.ascontiguousarray(x[rows]) for view, x in views.items()}


def banks(path: Path) -> list[list[int]]:
    """``[rows, dims]`` of each memory bank of an export (its ``*.bank`` initializers)."""
    import onnx

    model = onnx.load(str(path))
    return [list(init.dims) for init in model.graph.initializer if init.name.endswith(".bank")]


def load_task(size: int, smoke: bool) -> Any:
    """The COIL-20 task at ``size`` px: normal objects 1..NORMAL (in smoke object 1, 20% for training)."""
    from mmocc import one_class_split
    from mmocc.datasets import load_turntable

    data = load_turntable(COIL, size=size, mode="L")
    normal = data.classes[:1] if smoke else data.classes[:NORMAL]
    fraction = 0.2 if smoke else TRAIN_FRACTION
    return one_class_split(data, normal=list(normal), train_fraction=fraction, seed=SEED)


def measure_preset(preset: str, task: Any, sizes: tuple[int, int], threads: int, folder: Path,
                   smoke: bool) -> tuple[dict[str, Any], list[dict[str, Any]], Path]:
    """Fit, export and time one preset; its ``onnx_model`` record, ``onnx`` rows and the file."""
    from mmocc import MultimodalOCC
    from mmocc.search.index import faiss_module

    start = time.perf_counter()
    clf = MultimodalOCC(preset=preset, random_state=SEED, verbose=False, **({"epochs": 1} if smoke else {}))
    clf.fit(task.train)
    fit_s = time.perf_counter() - start
    path = folder / f"{preset}.onnx"
    start = time.perf_counter()
    parity = clf.export_onnx(path)
    export_s = time.perf_counter() - start
    ort_clf = detector(path, threads)
    blocked_clf = copy.deepcopy(clf)  # its own indexes, built without faiss on first use and kept
    blocked_clf.rule_._indexes.clear()
    test = dict(task.test.views)
    n_test = len(task.test)
    model = {"kind": "onnx_model", "preset": preset, "size": PRESETS[preset], "train": len(task.train),
             "fit_s": fit_s, "export_s": export_s, "file_mb": path.stat().st_size / 2**20,
             "banks": banks(path),
             "samples_per_run": ort_clf.info_.samples_per_run, "parity_samples": parity.samples,
             "parity_abs": parity.max_abs_error, "parity_rel": parity.max_rel_error,
             "parity_score_abs": parity.max_abs_error["score"]}
    rows = []
    for n in sizes:
        X = subset(test, np.arange(n) % n_test)
        calls: dict[str, Callable[[], Any]] = {"torch": lambda X=X: clf.decision_function(X)}
        if faiss_module() is not None:
            def blocked(X: dict[str, np.ndarray] = X) -> Any:
                with no_faiss():
                    return blocked_clf.decision_function(X)
            calls["torch_no_faiss"] = blocked
        calls["onnxruntime"] = lambda X=X: ort_clf.decision_function(X)
        best = interleaved(calls)
        diff = np.abs(ort_clf.decision_function(X) - clf.decision_function(X))
        speed = {name: n / s for name, s in best.items()}
        blocked_speed = speed.get("torch_no_faiss")
        rows.append({"kind": "onnx", "preset": preset, "size": PRESETS[preset], "pairs": n,
                     "torch": speed["torch"], "torch_no_faiss": blocked_speed,
                     "onnxruntime": speed["onnxruntime"], "ratio": speed["onnxruntime"] / speed["torch"],
                     "ratio_no_faiss": None if blocked_speed is None
                     else speed["onnxruntime"] / blocked_speed,
                     "max_abs_diff": float(diff.max())})
    for small, large in zip(rows[:-1], rows[1:], strict=True):
        growth = large["pairs"] / small["pairs"]
        for engine in ("torch", "torch_no_faiss", "onnxruntime"):
            if large[engine] is not None:
                large[f"{engine}_cost_growth"] = (small[engine] / large[engine]) * growth
    model["test_pairs"] = n_test
    return model, rows, path


def level_records(preset: str, path: Path, n: int, test: dict[str, np.ndarray], threads: int) -> list[dict]:
    """ONNX Runtime's graph optimization levels on one export, ``n`` pairs, interleaved, best of 3."""
    X = subset(test, np.arange(n) % len(next(iter(test.values()))))
    detectors = {level: detector(path, threads, level) for level in LEVELS}
    best = interleaved({level: lambda d=d: d.decision_function(X) for level, d in detectors.items()})
    reference = best["ORT_ENABLE_ALL"]
    return [{"kind": "onnx_level", "preset": preset, "pairs": n, "level": level, "pairs_per_s": n / s,
             "vs_enable_all": reference / s} for level, s in best.items()]


def quant_record(path: Path, task: Any, n: int, threads: int, folder: Path) -> dict[str, Any]:
    """Dynamic int8 quantization of an export: pairs/s on ``n`` pairs; score change, ROC AUC on the test."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantized = folder / f"{path.stem}.int8.onnx"
        quantize_dynamic(str(path), str(quantized), weight_type=QuantType.QInt8)
        float_clf, int8_clf = detector(path, threads), detector(quantized, threads, info_from=path)
        test = dict(task.test.views)
        X = subset(test, np.arange(n) % len(task.test))
        best = interleaved({"float": lambda: float_clf.decision_function(X),
                            "int8": lambda: int8_clf.decision_function(X)})
        scores = {"float": float_clf.decision_function(test), "int8": int8_clf.decision_function(test)}
    except Exception as exc:  # a quantizer or runtime failure is a result here
        return {"kind": "onnx_quant", "ok": False, "error": first_line(exc)}
    labels = np.asarray(task.y_test)
    diff = np.abs(scores["int8"] - scores["float"])
    return {"kind": "onnx_quant", "ok": True, "pairs": n, "float": n / best["float"],
            "int8": n / best["int8"], "ratio": best["float"] / best["int8"], "test_pairs": len(labels),
            "max_abs_diff": float(diff.max()),
            "max_rel_diff": float((diff / np.maximum(np.abs(scores["float"]), 1e-12)).max()),
            "roc_float": float(roc_auc_score(labels, scores["float"])),
            "roc_int8": float(roc_auc_score(labels, scores["int8"])),
            "file_mb": quantized.stat().st_size / 2**20, "float_mb": path.stat().st_size / 2**20}


def openvino_record(path: Path, test: dict[str, np.ndarray], n: int, threads: int) -> dict[str, Any]:
    """OpenVINO on an export: load, compile on the CPU, agree with ONNX Runtime on ``n`` pairs; pairs/s."""
    record: dict[str, Any] = {"kind": "onnx_openvino", "version": version("openvino"), "pairs": n}
    if record["version"] is None:
        return {**record, "step": "import", "error": "openvino is not installed", "ok": False}
    ort_clf = detector(path, threads)
    X = subset(test, np.arange(n) % len(next(iter(test.values()))))
    step = "read_model"
    try:
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(path))
        results = {}
        for hint in ("default", "f32"):
            step = f"compile_model ({hint})"
            config = {"INFERENCE_NUM_THREADS": threads}
            if hint == "f32":
                config["INFERENCE_PRECISION_HINT"] = "f32"
            compiled = core.compile_model(model, "CPU", config)
            hint_type = compiled.get_property("INFERENCE_PRECISION_HINT")
            precision = hint_type.get_type_name() if hasattr(hint_type, "get_type_name") else str(hint_type)
            step = f"infer ({hint})"
            names = {port.get_any_name(): port for port in compiled.outputs}
            feeds = list(ort_clf._feeds(ort_clf.checked_views(X)))

            def run(compiled: Any = compiled, feeds: list = feeds, names: dict = names) -> np.ndarray:
                request = compiled.create_infer_request()
                return np.concatenate([request.infer(feed)[names["score"]] for feed in feeds])

            best = interleaved({"openvino": run, "onnxruntime": lambda: ort_clf.decision_function(X)})
            got, want = run().astype(np.float64), ort_clf.decision_function(X)
            diff = np.abs(got - want)
            results[hint] = {"precision": precision, "pairs_per_s": n / best["openvino"],
                             "ort_pairs_per_s": n / best["onnxruntime"], "max_abs_diff": float(diff.max()),
                             "max_rel_diff": float((diff / np.maximum(np.abs(want), 1e-12)).max()),
                             "match": bool(np.allclose(got, want, rtol=RTOL, atol=ATOL))}
    except Exception as exc:  # the failure and its step are the result
        return {**record, "ok": False, "step": step, "error": first_line(exc)}
    return {**record, "ok": True, "step": None, "error": None, **{f"{k}_{h}": v for h, r in results.items()
                                                                   for k, v in r.items()}}


def measure_records(smoke: bool = False, quick: bool = False, threads: int = 2) -> list[dict[str, Any]]:
    """Run the benchmark and return its records.

    Parameters
    ----------
    smoke : bool, default False
        Tiny training (object 1, 20%, 1 epoch) and scored sets, for a check that the script runs.
    quick : bool, default False
        Smaller scored sets.
    threads : int, default 2
        Torch threads and ONNX Runtime intra-op threads.

    Returns
    -------
    list of dict
        ``onnx_setup`` (command, mode, machine, versions, threads, data, load, seconds; ``skipped`` with
        the reason when COIL-20 or onnxruntime is absent), an ``onnx_model`` per preset (fit and export
        seconds, banks, parity), an ``onnx`` row per preset and scored size (pairs/s of each engine),
        ``onnx_level`` rows, ``onnx_quant`` and ``onnx_openvino``.
    """
    mode = "smoke" if smoke else "quick" if quick else "full"
    command = command_line("onnx_speed.py", [] if mode == "full" else [f"--{mode}"])
    setup: dict[str, Any] = {"kind": "onnx_setup", "command": command, "mode": mode, "skipped": None}
    missing = [name for name in ("onnx", "onnxruntime") if version(name) is None]
    if not COIL.is_dir() or missing:
        return [{**setup, "skipped": f"{COIL} is absent" if missing == [] else f"{missing} not installed"}]
    import onnxruntime as ort

    load_start, started = os.getloadavg(), time.perf_counter()
    models, rows, levels, quant, openvino = [], [], [], {}, {}
    with torch_threads(threads), tempfile.TemporaryDirectory(prefix="mmocc-onnx-") as tmp:
        folder = Path(tmp)
        tasks = {size: load_task(size, smoke) for size in sorted(set(PRESETS.values()))}
        for preset, size in PRESETS.items():
            sizes = SIZES[mode][preset]
            model, preset_rows, path = measure_preset(preset, tasks[size], sizes, threads, folder, smoke)
            models.append(model)
            rows += preset_rows
            test = dict(tasks[size].test.views)
            if preset in LEVEL_PRESETS:
                levels += level_records(preset, path, sizes[-1], test, threads)
            if preset == "default":
                quant = quant_record(path, tasks[size], sizes[-1], threads, folder)
                openvino = openvino_record(path, test, sizes[-1], threads)
        info = machine()
    task = tasks[32]
    setup.update(
        machine=info, isa=", ".join(info["isa"]) or "none of avx2, avx512f, avx512_bf16",
        onnxruntime=ort.__version__, onnx=version("onnx"), faiss=version("faiss-cpu"),
        threads=threads, ort_default_threads=ort.SessionOptions().intra_op_num_threads,
        load_start=load_start[0], load_end=os.getloadavg()[0], seed=SEED, rounds=ROUNDS,
        normal=", ".join(f"obj{c}" for c in np.atleast_1d(task.normal)), train_fraction=0.2 if smoke
        else TRAIN_FRACTION, train=len(task.train), test=len(task.test),
        test_normal=int(np.sum(np.asarray(task.y_test) == 0)), seconds=time.perf_counter() - started)
    return [setup, *models, *rows, *levels, quant, openvino]


def main() -> None:
    """Print the report; a full run also saves the records, writes ONNX.md and SPEED.md's ONNX section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="tiny training and scored sets, print only")
    mode.add_argument("--quick", action="store_true", help="smaller scored sets, print only")
    mode.add_argument("--splice", action="store_true",
                      help="only put the saved records (results/onnx.json) into SPEED.md's ONNX section")
    parser.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime intra-op threads")
    options = parser.parse_args()
    if options.splice:
        saved = json.loads((RESULTS / "onnx.json").read_text(encoding="utf-8"))
        print(splice("speed", [r for r in saved if r["kind"] != "run"]))
        return
    torch.manual_seed(SEED)
    measured = measure_records(smoke=options.smoke, quick=options.quick, threads=options.threads)
    write = not (options.smoke or options.quick)
    print(report("onnx", [run_record("onnx", command_line("onnx_speed.py")), *measured], write=write))
    if write:
        splice("speed", measured)


if __name__ == "__main__":
    main()
