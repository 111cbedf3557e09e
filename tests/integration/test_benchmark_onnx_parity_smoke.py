"""``benchmarks/onnx_parity.py --smoke`` exports two presets checked on COIL-20 and prints the page."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("onnxruntime", reason='the ONNX export needs onnxruntime: pip install "mmocc[onnx]"')

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
COIL = BENCHMARKS.parents[1] / "shared" / "data" / "coil-20-proc"


@pytest.mark.skipif(not COIL.is_dir(), reason=f"{COIL} not found")
def test_smoke_exports_two_presets_and_prints_their_parity() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "onnx_parity.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith(("| default |", "| patch |"))]
    assert len(rows) == 2
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[3] == "54 / 170" and cells[8] == "0"  # the split; no decision differs
        assert float(cells[4]) <= 1e-4  # the score's largest error
        torch_auc, onnx_auc = (float(value) for value in cells[9].split(" / "))
        assert abs(torch_auc - onnx_auc) < 1e-3
