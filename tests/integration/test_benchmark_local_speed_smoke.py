"""``benchmarks/local_speed.py --smoke`` fits and scores both local workloads and prints the table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "local_speed.py"


def test_local_speed_smoke_prints_both_workloads() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--threads", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "16 px pairs, `patch`" in done.stdout and "32 px single views, `pretrained`" in done.stdout
