"""The kNN-at-scale benchmark runs end to end at its smoke size and reports exact = old."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.usefixtures("one_torch_thread")
def test_knn_scale_smoke_section() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        knn_scale = importlib.import_module("knn_scale")
    finally:
        sys.path.remove(str(BENCHMARKS))
    lines = knn_scale.section(smoke=True)
    assert lines[0] == "## kNN at scale"
    rows = [line.split(" |")[0] for line in lines if line.startswith("| ")]
    assert {"| old", "| exact", "| approximate"} <= set(rows)
    difference = next(line for line in lines if line.startswith("- Exact against old"))
    assert float(difference.split("distances ")[1].split(" ")[0]) < 1e-5
