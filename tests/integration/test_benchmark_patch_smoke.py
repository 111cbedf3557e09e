"""``benchmarks/patch_speed.py --smoke`` runs end to end and prints both tables without writing the report."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "patch_speed.py"


def test_patch_speed_smoke_prints_the_report(tmp_path: Path) -> None:
    report = SCRIPT.parent / "PATCH_SPEED.md"
    before = report.stat().st_mtime_ns if report.exists() else None
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "# Patch scoring speed" in out and "Default bank:" in out
    assert "| 16 px | 1% |" in out and "| 16 px | 100% |" in out
    assert "blocked / cdist" in out
    assert (report.stat().st_mtime_ns if report.exists() else None) == before
