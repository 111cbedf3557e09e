"""Regenerate ``scores.npz``: the behaviour fixture that refactors must keep.

Usage (from the repository root)::

    python tests/integration/regression/make_scores.py

Both presets are fitted on two COIL-20 one-class tasks (classes 0-4 of
``../shared/data/coil-20-proc`` at 32 px; normal class 0 and 3; random 66%
split, seed 0) and on the built-in synthetic data (3 classes, 30 pairs each,
32 px; normal class 0; seed 0), with one torch thread. The file holds every
test score, the training scores and the threshold, plus the CPU model and
the machine they were computed on (:func:`signature`): float rounding of
training differs between CPU models, between the kernels torch dispatches to
(AVX2 or AVX-512) and with bf16 autocast, which ``amp="auto"`` turns on where
the CPU computes bf16 natively, so ``tests/integration/test_regression.py`` only compares
exactly on the signature recorded here.

``scores_nchw.npz`` is the fixture as it was before training switched to the
channels-last layout (issue 14). That switch changes the float rounding of
every step, so the scores are not bitwise the same; the test holds the default
preset to a documented tolerance against it (see ``NCHW_TOLERANCE`` there).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import numpy as np
import torch

from mmocc import MultimodalOCC, one_class_split
from mmocc.datasets import load_turntable, make_synthetic
from mmocc.model.device import native_bf16

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "scores.npz"
NCHW_FIXTURE = HERE / "scores_nchw.npz"
COIL = HERE.parents[3] / "shared" / "data" / "coil-20-proc"
PRESETS = ("paper", "default")
THREADS = 1
"""Torch threads of :func:`compute` (part of the signature: reductions split by thread round differently)."""


def cpu_model() -> str:
    """Return the CPU model name of this machine (from /proc/cpuinfo where present)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def tasks() -> dict[str, tuple[object, object]]:
    """The (train, test) datasets of each regression task, by name."""
    coil = load_turntable(COIL, size=32, cache=False)
    coil = coil.subset(np.flatnonzero(np.isin(coil.labels, coil.classes[:5])))
    synthetic = make_synthetic(n_per_class=30, n_classes=3, size=32, seed=0)
    out = {}
    for name, data, normal in (("coil0", coil, coil.classes[0]), ("coil3", coil, coil.classes[3]),
                               ("synthetic", synthetic, synthetic.classes[0])):
        task = one_class_split(data, normal=normal, train_fraction=0.66, seed=0)
        out[name] = (task.train, task.test)
    return out


def compute() -> dict[str, np.ndarray]:
    """Fit both presets on every task; return the arrays to store."""
    torch.set_num_threads(THREADS)
    arrays: dict[str, np.ndarray] = {}
    for name, (train, test) in tasks().items():
        for preset in PRESETS:
            clf = MultimodalOCC(preset=preset, random_state=0).fit(train)
            arrays[f"{name}/{preset}/test"] = clf.decision_function(test)
            arrays[f"{name}/{preset}/train"] = clf.decision_scores_
            arrays[f"{name}/{preset}/threshold"] = np.array(clf.threshold_)
    return arrays


def bf16_training() -> bool:
    """Whether the default preset (``amp="auto"``) trains under bf16 autocast on this machine's CPU."""
    return native_bf16(torch.device("cpu"))


def signature() -> str:
    """The machine signature the fixture is exact for.

    CPU model, torch version, the CPU capability torch dispatches its kernels
    to (``DEFAULT``, ``AVX2``, ``AVX512``, ...), whether training runs under
    bf16 autocast, and the torch threads; e.g.
    ``"AMD EPYC | torch 2.13.0+cpu | AVX2 | bf16 off | 1 thread"``.
    """
    capability = torch.backends.cpu.get_cpu_capability()
    bf16 = "on" if bf16_training() else "off"
    threads = f"{THREADS} thread" + ("" if THREADS == 1 else "s")
    return f"{cpu_model()} | torch {torch.__version__} | {capability} | bf16 {bf16} | {threads}"


def main() -> int:
    """Write the fixture."""
    if not COIL.is_dir():
        print(f"COIL-20 not found at {COIL}", file=sys.stderr)
        return 2
    arrays = compute()
    np.savez_compressed(FIXTURE, signature=np.array(signature()), **arrays)
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes) on {signature()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
