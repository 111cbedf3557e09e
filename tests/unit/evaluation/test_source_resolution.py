"""Pixel metrics at the source resolution: the ragged metrics, PixelEvaluation(resolution="source") and
``mmocc evaluate --pixel-resolution source`` on non-square images loaded padded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from mmocc.data.dataset import MultiViewDataset
from mmocc.data.images import fit_mask, square_geometry
from mmocc.evaluation import pixel_metrics as pm
from mmocc.evaluation.localization import ALL_VIEWS, PixelEvaluation

# ----------------------------------------------------------------------------- ragged metrics


def random_images(seed: int, n: int = 11, shape: tuple[int, int] = (17, 13)) -> tuple[Any, Any, list[str]]:
    """Same-size masks (small blocks on the defective images), noisy maps, labels good / a / b."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, *shape), dtype=bool)
    labels = ["good", "a", "b", "good", "a", "a", "b", "good", "b", "a", "good"][:n]
    for i, label in enumerate(labels):
        if label != "good":
            y, x = rng.integers(0, shape[0] - 3), rng.integers(0, shape[1] - 3)
            masks[i, y : y + rng.integers(1, 4), x : x + rng.integers(1, 4)] = True
    maps = (rng.random((n, *shape)) + 0.5 * masks).astype(np.float32)
    maps[::3] = np.round(maps[::3], 1)  # ties
    return masks, maps, labels


def assert_same_rows(ragged: dict, stacked: dict) -> None:
    assert list(ragged) == list(stacked)
    for kind, row in stacked.items():
        assert ragged[kind]["n_images"] == row["n_images"] and ragged[kind]["n_regions"] == row["n_regions"]
        assert ragged[kind]["pixel_roc_auc"] == row["pixel_roc_auc"]  # integer counts: exact
        assert ragged[kind]["aupro"] == pytest.approx(row["aupro"], rel=1e-12, abs=1e-15)  # summed weights


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ragged_metrics_equal_the_stacked_ones_on_same_size_images(seed):
    masks, maps, labels = random_images(seed)
    stacked = pm.pixel_metrics_by_type(masks, maps, labels, normal="good")
    assert_same_rows(pm.pixel_metrics_by_type_ragged(list(masks), list(maps), labels, normal="good"), stacked)
    wide = pm.pixel_metrics_by_type(masks, maps, labels, normal="good", max_fpr=0.7)
    assert_same_rows(
        pm.pixel_metrics_by_type_ragged(masks, maps, labels, normal="good", max_fpr=0.7), wide
    )  # a stack is a sequence of images too


def test_ragged_metrics_equal_the_stacked_ones_when_runs_are_cut_short(monkeypatch):
    masks, maps, labels = random_images(3)
    stacked = pm.pixel_metrics_by_type(masks, maps, labels, normal="good")
    monkeypatch.setattr(pm, "_CHUNK_PIXELS", 2 * masks[0].size)  # runs of at most two images
    assert_same_rows(pm.pixel_metrics_by_type_ragged(list(masks), list(maps), labels, normal="good"), stacked)


def test_ragged_metrics_on_images_of_different_sizes():
    rng = np.random.default_rng(4)
    shapes = [(12, 20), (20, 12), (7, 9), (12, 20), (31, 5)]
    masks = [np.zeros(shape, dtype=bool) for shape in shapes]
    masks[1][3:6, 2] = masks[2][0, 0] = masks[4][10:12, 1:3] = True
    maps = [rng.random(shape) + 0.3 * mask for shape, mask in zip(shapes, masks, strict=True)]
    labels = ["good", "crack", "crack", "good", "stain"]
    rows = pm.pixel_metrics_by_type_ragged(masks, maps, labels, normal="good")
    flat_masks = np.concatenate([mask.ravel() for mask in masks])
    flat_maps = np.concatenate([score.ravel() for score in maps])
    assert rows["overall"]["pixel_roc_auc"] == pytest.approx(roc_auc_score(flat_masks, flat_maps), abs=1e-12)
    assert rows["overall"]["n_regions"] == 3 and rows["crack"]["n_images"] == 4
    perfect = [mask.astype(float) for mask in masks]
    assert pm.pixel_metrics_by_type_ragged(masks, perfect, labels, normal="good")["overall"]["aupro"] == 1.0


@pytest.mark.parametrize(
    ("masks", "maps", "labels", "message"),
    [
        ([np.zeros((2, 2), bool)], [], [0], "need as many images"),
        ([], [], [], "need as many images"),
        ([np.eye(2, dtype=bool)], [np.zeros((2, 3))], [1], r"image 0: .*\(2, 2\) and \(2, 3\)"),
        (
            [np.zeros((2, 2), bool), np.eye(2, dtype=bool)],
            [np.zeros((2, 2)), np.full((2, 2), np.nan)],
            [0, 1],
            "image 1: the map contains NaN",
        ),
        (
            [np.eye(2, dtype=bool), np.eye(2) * 2],
            [np.zeros((2, 2))] * 2,
            [1, 1],
            "image 1: masks must be boolean",
        ),
        (
            [np.eye(2, dtype=bool), np.eye(2, dtype=bool)],
            [np.zeros((2, 2))] * 2,
            [0, 1],
            "image 0 is labelled normal",
        ),
        ([np.zeros((2, 2), bool)] * 2, [np.zeros((2, 2))] * 2, [0, 1], "masks has no defect pixel"),
        ([np.zeros((2, 2), bool)], [np.zeros((2, 2))], [0, 1], "labels has 2 entries"),
    ],
)
def test_ragged_metrics_refuse_bad_input(masks, maps, labels, message):
    with pytest.raises(ValueError, match=message):
        pm.pixel_metrics_by_type_ragged(masks, maps, labels, normal=0)


# ----------------------------------------------------------------------------- PixelEvaluation


class FixedMaps:
    """A stand-in model whose anomaly maps are given."""

    def __init__(self, maps: np.ndarray) -> None:
        self.maps = maps

    def anomaly_maps(self, chunk: MultiViewDataset) -> dict[str, np.ndarray]:
        return {"image": self.maps[: len(chunk)]}


def peak_at(pixel: tuple[int, int], shape: tuple[int, int], size: int, resize: str) -> np.ndarray:
    """A smooth (size, size) map peaking where source ``pixel`` lands in the square."""
    (scaled_h, scaled_w), (top, left) = square_geometry(shape[1], shape[0], size, resize)
    y = (pixel[0] + 0.5) * scaled_h / shape[0] + top - 0.5
    x = (pixel[1] + 0.5) * scaled_w / shape[1] + left - 0.5
    cells = np.arange(size)
    return np.exp(-((cells[:, None] - y) ** 2 + (cells[None, :] - x) ** 2) / 8.0).astype(np.float32)


def files_dataset(
    tmp_path: Path, shape: tuple[int, int], defects: list, size: int, resize: str
) -> MultiViewDataset:
    """One normal image (no mask file) and one image per defect (a list of pixels), written as files."""
    images, mask_files, masks = [], [], []
    for i, pixels in enumerate([None, *defects]):
        image = tmp_path / f"{i}.png"
        Image.fromarray(np.full(shape, 100, np.uint8)).save(image)
        mask = np.zeros(shape, dtype=bool)
        for pixel in pixels or []:
            mask[pixel] = True
        if pixels:
            Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / f"{i}_mask.png")
        images.append(str(image))
        mask_files.append(str(tmp_path / f"{i}_mask.png") if pixels else "")
        masks.append(fit_mask(mask, size, resize))
    n = len(images)
    return MultiViewDataset(
        {"image": np.zeros((n, 1, size, size), np.uint8)},
        labels=np.array(["good"] + ["dot"] * (n - 1)),
        paths={"image": images},
        masks={"image": np.stack(masks)},
        mask_paths={"image": mask_files},
    )


@pytest.mark.parametrize("resize", ["stretch", "pad", "crop"])
def test_a_one_pixel_defect_at_source_size_is_one_region_of_one_pixel_found_at_its_place(tmp_path, resize):
    shape, size, pixel = (12, 20), 16, (5, 9)  # height 12, width 20
    data = files_dataset(tmp_path, shape, [[pixel]], size, resize)
    maps = np.stack([np.zeros((size, size), np.float32), peak_at(pixel, shape, size, resize)])
    loaded = PixelEvaluation(FixedMaps(maps), resize=resize)
    source = PixelEvaluation(FixedMaps(maps), resolution="source", resize=resize)
    for pixels in (loaded, source):
        pixels.add(data, data.labels)
    at_source = source.metrics("good")["image"]["overall"]
    assert at_source["n_regions"] == 1 and at_source["n_images"] == 2
    # the defect pixel is among the highest-scoring pixels: under one in 200 pixels outrank it
    assert at_source["pixel_roc_auc"] > 0.995
    assert loaded.metrics("good")["image"]["overall"]["n_regions"] == 1


def test_source_resolution_cuts_what_a_crop_lost_out_of_both_classes(tmp_path):
    shape, size = (12, 20), 12  # crop keeps columns 4..15 of the 20
    lost, kept = [(6, 1)], [(6, 10), (6, 15)]
    data = files_dataset(tmp_path, shape, [lost, kept], size, "crop")
    maps = np.stack([np.zeros((size, size))] * 3).astype(np.float32)
    maps[2] = fit_mask(
        np.isin(np.arange(20), [10, 15])[None].repeat(12, 0) & (np.arange(12) == 6)[:, None], size, "crop"
    )
    pixels = PixelEvaluation(FixedMaps(maps), resolution="source", resize="crop")
    pixels.add(data, data.labels)
    row = pixels.metrics("good")["image"]["overall"]
    assert row["n_regions"] == 2  # the region cropped away counts in neither class
    assert row["pixel_roc_auc"] > 0.9


def test_several_views_pool_at_the_source_resolution_and_need_mask_files(tmp_path):
    shape, size = (12, 20), 16
    data = files_dataset(tmp_path, shape, [[(5, 9)]], size, "pad")
    two = MultiViewDataset(
        {"a": data.views["image"], "b": data.views["image"]},
        labels=data.labels,
        paths={"a": data.paths["image"], "b": data.paths["image"]},
        masks={"a": data.masks["image"], "b": data.masks["image"]},
        mask_paths={"a": data.mask_paths["image"], "b": data.mask_paths["image"]},
    )
    maps = np.stack([np.zeros((size, size), np.float32), peak_at((5, 9), shape, size, "pad")])
    clf = SimpleNamespace(anomaly_maps=lambda chunk: {"a": maps, "b": maps})
    pixels = PixelEvaluation(clf, resolution="source", resize="pad")
    pixels.add(two, two.labels)
    rows = pixels.metrics("good")
    assert list(rows) == ["a", "b", ALL_VIEWS] and pixels.views == ["a", "b"]
    assert rows[ALL_VIEWS]["overall"]["n_images"] == 4 and rows[ALL_VIEWS]["overall"]["n_regions"] == 2
    in_memory = MultiViewDataset(data.views, labels=data.labels, masks=data.masks)
    with pytest.raises(ValueError, match="not read from files"):
        PixelEvaluation(FixedMaps(maps), resolution="source").add(in_memory, in_memory.labels)
    with pytest.raises(ValueError, match="resolution must be one of"):
        PixelEvaluation(clf, resolution="full")


# ----------------------------------------------------------------------------- the command line

TINY = ["--preset", "patch", "--size", "16", "--epochs", "1", "-p", "filters=[8,4,4]", "--threads", "1"]


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


@pytest.mark.usefixtures("one_torch_thread")
def test_evaluate_reports_pixel_metrics_at_the_source_resolution(tmp_path):
    """An MVTec folder of 20x12 images (a bright 3x2 patch on the defective ones), loaded padded at 16."""
    root = tmp_path / "part"
    rng = np.random.default_rng(0)

    def texture() -> np.ndarray:
        return rng.integers(90, 130, (12, 20)).astype(np.uint8)

    for split, count in (("train", 12), ("test", 5)):
        (root / split / "good").mkdir(parents=True)
        for i in range(count):
            Image.fromarray(texture()).save(root / split / "good" / f"{i:03d}.png")
    for folder in ("test/scratch", "ground_truth/scratch"):
        (root / folder).mkdir(parents=True)
    for i in range(5):
        image, mask = texture(), np.zeros((12, 20), np.uint8)
        y, x = rng.integers(1, 9), rng.integers(1, 16)
        image[y : y + 2, x : x + 3], mask[y : y + 2, x : x + 3] = 255, 255
        Image.fromarray(image).save(root / "test" / "scratch" / f"{i:03d}.png")
        Image.fromarray(mask).save(root / "ground_truth" / "scratch" / f"{i:03d}_mask.png")
    model = tmp_path / "m.mmocc"
    src = ["--data", f"mvtec:{root}"]
    done = mmocc(tmp_path, "train", *src, "--normal", "good", *TINY, "-O", "resize=pad", "--out", model)
    assert done.returncode == 0, done.stderr

    source = mmocc(tmp_path, "evaluate", model, *src, "--pixel-resolution", "source", "--json")
    assert source.returncode == 0, source.stderr
    record = json.loads(source.stdout)
    assert record["pixel_resolution"] == "source"
    rows = record["pixel_metrics"]["image"]
    assert rows["scratch"]["n_images"] == 10 and rows["scratch"]["n_regions"] == 5
    assert rows["overall"]["pixel_roc_auc"] > 0.9  # a bright patch on a flat texture, found at 20x12 too
    loaded = json.loads(mmocc(tmp_path, "evaluate", model, *src, "--json").stdout)
    assert loaded["pixel_resolution"] == "loaded"
    assert loaded["pixel_metrics"]["image"]["overall"]["pixel_roc_auc"] != rows["overall"]["pixel_roc_auc"]

    text = mmocc(tmp_path, "evaluate", model, *src, "--pixel-resolution", "source")
    assert text.returncode == 0, text.stderr
    assert "pixel metrics at the source resolution" in text.stdout
    assert "pixel metrics, image (ROC AUC, AUPRO up to FPR 0.3):" in text.stdout
    assert "at the loaded resolution" in mmocc(tmp_path, "evaluate", model, *src).stdout
