"""The benchmark scripts import the library as it is laid out now, and their pieces run at tiny sizes.

The scripts themselves have ``--smoke`` modes (a minute or more each); these
tests only catch a renamed or moved library name and check the small pieces
that stand in for removed copies (loss, FLOP count, results reading).
"""

from __future__ import annotations

import csv
import importlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mmocc import MultimodalOCC

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scripts() -> dict[str, object]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        names = ("speed", "speed_scoring", "ablations", "run_benchmarks", "calibration")
        return {name: importlib.import_module(name) for name in names}
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_flop_count_matches_the_layer_shape_formula(scripts: dict) -> None:
    # 2 * c_in * c_out * 9 * H * W summed over the convolutions of the paper encoder / decoder at 32x32.
    assert scripts["speed_scoring"].paper_flops(32) == (13_565_952, 13_639_680)


def test_heldout_objective_is_the_joint_loss_without_diversity(scripts: dict) -> None:
    rng = np.random.default_rng(0)
    X = {v: rng.integers(0, 256, (24, 1, 8, 8), dtype=np.uint8) for v in ("left", "right")}
    clf = MultimodalOCC(preset="paper", epochs=1, filters=(4, 4), diversity="logdet", random_state=0,
                        device="cpu").fit(X)
    got = scripts["ablations"].heldout_objective(clf, X)
    assert np.isfinite(got["objective"])
    assert got["objective"] == pytest.approx(got["compactness"] + got["reconstruction"], rel=1e-6)
    distances = scripts["ablations"].unit_sq_distances(clf, X, batch=8)
    assert len(distances) == 5 and distances == sorted(distances)


def test_scoring_path_patch_is_undone(scripts: dict) -> None:
    from mmocc.model import inference

    speed, before = scripts["speed_scoring"], inference.for_device
    with speed.scoring_path(speed.plain):
        assert inference.for_device is speed.plain
    assert inference.for_device is before


def test_reports_render_from_results_csv(scripts: dict, tmp_path: Path) -> None:
    run = scripts["run_benchmarks"]
    folder = tmp_path / "synthetic"
    folder.mkdir()
    with open(folder / "results.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["normal", "model", "seed", "size", "metric", "value"])
        for model in ("default_multimodal", "default_view0", "default_view1", "knn_early"):
            roc = 0.95 if model == "default_multimodal" else 0.9
            metrics = {"roc_auc": roc, "p_at_n": 0.5, "anomaly_recall": 0.8, "normal_recall": 0.95,
                       "fit_seconds": 1.0, "score_seconds": 0.5}
            for normal in ("0", "1"):
                writer.writerows([normal, model, 0, 32, metric, value] for metric, value in metrics.items())
    records = tmp_path / "records"
    report = run.write_report(tmp_path, records, tmp_path, [0], "python benchmarks/run_benchmarks.py --smoke")
    text = report.read_text()
    assert "| **default_multimodal** | 0.950 | 0.950 | 0.500 | 0.800 | 0.950 | 1.50 |" in text
    assert "best baseline knn_early 0.9000 (beaten)" in text
    saved = json.loads((records / "results.json").read_text())
    assert saved[0]["kind"] == "run" and saved[0]["machine"]["cpu"] and saved[0]["date"]
    assert {r["model"] for r in saved if r["kind"] == "row"} == {
        "default_multimodal", "default_view0", "default_view1", "knn_early"}
    assert run.write_report(tmp_path / "nothing", records, tmp_path, [0], "") is None
    ablations = scripts["ablations"]
    plan = ablations.Plan(out=tmp_path / "ablations", results=records, markdown=tmp_path)
    assert "(Table IV not run yet)" in ablations.write_report({}, {}, plan, jobs=2).read_text()


def test_calibration_compares_threshold_sources_on_the_same_samples(scripts: dict, tmp_path: Path) -> None:
    calibration = scripts["calibration"]
    name = calibration.run_job("synthetic_yaw", 0, 0, tmp_path, smoke=True)
    record = json.loads((tmp_path / name).read_text())
    rows = record["rows"]
    assert {variant: row["source"] for variant, row in rows.items()} == {
        "train": "train", "holdout": "holdout", "calibrate": "calibrate"}
    # (a) and (c) share one fit and its scores: only the threshold moves.
    assert rows["train"]["roc_auc"] == rows["calibrate"]["roc_auc"]
    assert record["n_calibration"] >= 1 and record["n_test_normal"] >= 1
    report = calibration.write_report(tmp_path, tmp_path / "records", tmp_path, "calibration.py --smoke", 1.0,
                                      [0], smoke=True)
    text = report.read_text()
    assert "| `synthetic_yaw` |" in text and "## `synthetic_yaw`" in text
    assert "`synthetic_random`" not in text  # no finished job: no section
