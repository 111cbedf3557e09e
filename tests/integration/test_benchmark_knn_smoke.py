"""The kNN-at-scale benchmark runs end to end at its smoke size, reports exact = old and renders."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.usefixtures("one_torch_thread")
def test_knn_scale_smoke_records() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        knn_scale = importlib.import_module("knn_scale")
        render = importlib.import_module("render")
    finally:
        sys.path.remove(str(BENCHMARKS))
    records = knn_scale.measure_records(smoke=True)
    searches = [r["search"] for r in records if r["kind"] == "knn"]
    assert searches == ["old", "exact", "approximate", "projected"]
    accuracy = next(r for r in records if r["kind"] == "knn_accuracy")
    assert accuracy["exact_vs_old"] < 1e-5
    text = render.renderer("render_scale").knn(render.Topic("knn", records))
    assert text.startswith("## kNN at scale")
    assert accuracy["projected_recall"] > 0.5
    assert "- Projected: recall@5 " in text
    firsts = {line.split(" |")[0] for line in text.splitlines()}
    assert {"| old", "| exact", "| approximate", "| projected"} <= firsts
    assert text.endswith("- Target (issue 14): k-NN part of fit + score <= 60 s at n_train 16,000, "
                         "n_test 100,000 on 2 cores.")
