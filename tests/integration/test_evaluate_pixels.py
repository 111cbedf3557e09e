"""``mmocc evaluate`` on data with masks: pixel ROC AUC and AUPRO per defect type, and a warning when tau
flags far more held-out normals than it should; ``mmocc train`` keeps to an MVTec folder's training split."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--preset", "patch", "--size", "16", "--epochs", "1", "-p", "filters=[8,4,4]", "--threads", "1"]


def _texture(rng: np.random.Generator, shift: int = 0) -> np.ndarray:
    return (rng.integers(90, 130, (16, 16)) + shift).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def mvtec(tmp_path_factory) -> Path:
    """train/good (16), test/good (6), test/scratch (6, a bright 3x3 square with its mask)."""
    root = tmp_path_factory.mktemp("mvtec") / "part"
    rng = np.random.default_rng(0)
    for i in range(16):
        (root / "train" / "good").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_texture(rng)).save(root / "train" / "good" / f"{i:03d}.png")
    for i in range(6):
        (root / "test" / "good").mkdir(parents=True, exist_ok=True)
        Image.fromarray(_texture(rng)).save(root / "test" / "good" / f"{i:03d}.png")
        image, mask = _texture(rng), np.zeros((16, 16), dtype=np.uint8)
        y, x = rng.integers(2, 11, 2)
        image[y : y + 3, x : x + 3], mask[y : y + 3, x : x + 3] = 255, 255
        for folder, pixels, name in (
            ("test", image, f"{i:03d}.png"),
            ("ground_truth", mask, f"{i:03d}_mask.png"),
        ):
            (root / folder / "scratch").mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / folder / "scratch" / name)
    return root


def mmocc(cwd: Path, *args: object) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MMOCC_CACHE_DIR": str(cwd / "cache")}
    return subprocess.run(
        [sys.executable, "-m", "mmocc", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.fixture(scope="module")
def model(mvtec: Path) -> Path:
    out = mvtec.parent / "m.mmocc"
    done = mmocc(mvtec.parent, "train", "--data", f"mvtec:{mvtec}", "--normal", "good", *TINY, "--out", out)
    assert done.returncode == 0, done.stderr
    assert "training on 16 samples of class 'good'" in done.stderr  # test/good stays out of training
    return out


def test_evaluate_prints_pixel_metrics_per_defect_type(mvtec: Path, model: Path):
    done = mmocc(mvtec.parent, "evaluate", model, "--data", f"mvtec:{mvtec}", "--json")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["n_normal"] == 6 and record["n_anomalies"] == 6
    rows = record["pixel_metrics"]["image"]
    assert set(rows) == {"scratch", "overall"}
    assert rows["scratch"]["n_images"] == 12 and rows["scratch"]["n_regions"] == 6
    assert rows["overall"]["pixel_roc_auc"] > 0.9  # a bright square on a flat texture is easy to find
    assert 0.0 <= rows["overall"]["aupro"] <= 1.0
    text = mmocc(mvtec.parent, "evaluate", model, "--data", f"mvtec:{mvtec}")
    assert text.returncode == 0, text.stderr
    assert "pixel metrics, image (ROC AUC, AUPRO up to FPR 0.3):" in text.stdout
    assert "scratch" in text.stdout and "aupro" in text.stdout


def test_evaluate_warns_when_tau_flags_far_more_normals_than_it_should(
    mvtec: Path, model: Path, tmp_path: Path
):
    rng = np.random.default_rng(1)
    shifted = tmp_path / "shifted"
    for folder, shift in (("test/good", 60), ("train/good", 0)):
        (shifted / folder).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(_texture(rng, shift)).save(shifted / folder / f"{i:03d}.png")
    (shifted / "test" / "dent").mkdir(parents=True)
    Image.fromarray(_texture(rng, 120)).save(shifted / "test" / "dent" / "000.png")
    done = mmocc(mvtec.parent, "evaluate", model, "--data", f"mvtec:{shifted}")
    assert done.returncode == 0, done.stderr
    assert "warning: tau flags" in done.stderr and "threshold=holdout" in done.stderr
    calm = mmocc(mvtec.parent, "evaluate", model, "--data", f"mvtec:{mvtec}")
    assert "warning: tau flags" not in calm.stderr
