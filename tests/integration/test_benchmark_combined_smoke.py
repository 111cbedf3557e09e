"""``benchmarks/combined.py --smoke`` measures the presets on one COIL-20 task and prints COMBINED.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
COIL = BENCHMARKS.parents[1] / "shared" / "data" / "coil-20-proc"


@pytest.mark.skipif(not COIL.is_dir(), reason=f"{COIL} not found")
def test_smoke_measures_the_parts_and_prints_the_page() -> None:
    args = ["--smoke", "--presets", "default", "patch", "combined", "--parts", "choice", "defects", "timing"]
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "combined.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    page = result.stdout
    assert "| **combined** | 0 | 1 |" in page  # the defect row: seed 0, one task
    assert "| synthetic | mean | 1 |" in page and "| coil | max | 1 |" in page
    assert "best of 1" in page and "cost on one task" in page
    assert "COIL-20 painted defects image ROC AUC" in page
