"""Write benchmarks/ONNX_PARITY.md (via render.py): every preset exported to ONNX, checked on real data.

Usage (from the repository root)::

    python benchmarks/onnx_parity.py            # every case, ~5 min on 2 cores
    python benchmarks/onnx_parity.py --smoke    # two tiny cases (16 px, 1 epoch), page printed only

Each case fits a preset, exports it with ``--check-data`` = its real test set
(:func:`mmocc.export.writer.export_onnx` with ``check=``), and records the
parity report (largest error per output kind, decisions that differ), the
export's seconds and size, and the ROC AUC of the model's and the graph's
scores on that test set.

- COIL-20 (``../shared/data/coil-20-proc``), two views 90 degrees apart:
  object 1 is normal; a random 75% of its 72 pairs train (seed 0), and the
  test set is its other 18 pairs plus 8 evenly spaced pairs of each other
  object. ``default``, ``paper`` and ``combined`` at 32 px; ``patch`` and
  ``pretrained`` at 64 px.
- Magnetic-tile (``../shared/data/magnetic-tile``), one image at a time at
  128 px: 150 random defect-free images train (seed 0); the test set is 50
  other defect-free images and 50 defect images (``pretrained``, maps
  compared at 128 px).

Without ``../shared/data`` the script says so and stops.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_common import COIL, DATA, command_line, publish, run_record  # noqa: E402

MTILE = DATA / "magnetic-tile"
CASES = [
    ("default", "coil", 32),
    ("paper", "coil", 32),
    ("combined", "coil", 32),
    ("patch", "coil", 64),
    ("pretrained", "coil", 64),
    ("pretrained", "mtile", 128),
]
SMOKE_CASES = [("default", "coil", 16), ("patch", "coil", 16)]


def coil_split(
    size: int, per_object: int = 8
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """COIL-20 pairs: train on 75% of object 1's; test its other pairs and ``per_object`` of each other."""
    from mmocc.datasets import load_turntable

    data = load_turntable(COIL, size=size)
    labels = np.asarray(data.labels)
    normal = np.flatnonzero(labels == labels.min())
    order = np.random.default_rng(0).permutation(normal)
    train, held = order[: len(order) * 3 // 4], order[len(order) * 3 // 4 :]
    others = [np.flatnonzero(labels == label) for label in np.unique(labels) if label != labels.min()]
    picked = np.concatenate([o[np.linspace(0, len(o) - 1, per_object).round().astype(int)] for o in others])
    test = np.concatenate([held, picked])
    y = np.r_[np.zeros(len(held)), np.ones(len(picked))]
    views = data.views
    return {k: v[train] for k, v in views.items()}, {k: v[test] for k, v in views.items()}, y


def mtile_split(size: int, n_train: int = 150, n_test: int = 50) -> tuple[dict, dict, np.ndarray]:
    """Magnetic-tile images: random defect-free ones train; other defect-free and defect images test."""
    from mmocc.datasets import load_mtile

    data = load_mtile(MTILE, per_image=True, size=size)
    labels = np.asarray(data.labels)
    rng = np.random.default_rng(0)
    free = rng.permutation(np.flatnonzero(labels == "Free"))
    defect = rng.permutation(np.flatnonzero(labels != "Free"))[:n_test]
    train, test = free[:n_train], np.concatenate([free[n_train : n_train + n_test], defect])
    y = np.r_[np.zeros(n_test), np.ones(len(defect))]
    views = data.views
    return {k: v[train] for k, v in views.items()}, {k: v[test] for k, v in views.items()}, y


def measure(preset: str, data: str, size: int, folder: Path, epochs: int | None = None) -> dict[str, Any]:
    """Fit one preset, export it checked on its test set, and compare the two ROC AUCs."""
    from sklearn.metrics import roc_auc_score

    from mmocc import MultimodalOCC
    from mmocc.export.runtime import OnnxDetector
    from mmocc.export.writer import export_onnx

    train, test, y = coil_split(size) if data == "coil" else mtile_split(size)
    extra: dict[str, Any] = {"patch_size": size} if preset == "pretrained" else {}
    if epochs is not None:
        extra["epochs"] = epochs
    start = time.perf_counter()
    clf = MultimodalOCC(preset=preset, random_state=0, verbose=False, **extra).fit(train)
    fitted = time.perf_counter()
    path = folder / f"{preset}_{data}_{size}.onnx"
    report = export_onnx(clf, path, check=test, check_origin=f"{data} test set")
    exported = time.perf_counter()
    onnx_scores = OnnxDetector.load(path).decision_function(test)
    torch_scores = clf.decision_function(test)
    return {
        "kind": "case",
        "preset": preset,
        "data": data,
        "size": size,
        "n_train": len(next(iter(train.values()))),
        "n_test": len(y),
        "fit_s": fitted - start,
        "export_s": exported - fitted,
        "megabytes": path.stat().st_size / 2**20,
        "report": report.to_dict(),
        "auc_torch": float(roc_auc_score(y, torch_scores)),
        "auc_onnx": float(roc_auc_score(y, onnx_scores)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="two tiny cases into a temp folder")
    args = parser.parse_args()
    if not COIL.is_dir():
        sys.exit(f"no COIL-20 at {COIL}: this benchmark needs ../shared/data")
    import onnxruntime
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    cases = SMOKE_CASES if args.smoke else [c for c in CASES if c[1] == "coil" or MTILE.is_dir()]
    command = command_line("onnx_parity.py", ["--smoke"] if args.smoke else [])
    records = [run_record("onnx_parity", command, onnxruntime=onnxruntime.__version__)]
    with tempfile.TemporaryDirectory() as tmp:
        for preset, data, size in cases:
            records.append(measure(preset, data, size, Path(tmp), 1 if args.smoke else None))
            print(f"{preset} {data} {size}: {records[-1]['report']['max_abs_error']}", flush=True)
    if args.smoke:
        from render import Topic, renderer

        print(renderer("render_onnx_parity").render(Topic("onnx_parity", records)))
        return
    print(publish("onnx_parity", records).read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
