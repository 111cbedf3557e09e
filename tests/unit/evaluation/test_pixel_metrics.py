"""Pixel ROC AUC and AUPRO (mmocc.evaluation.pixel_metrics): hand-computed values, references, errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from mmocc import metrics
from mmocc.evaluation import pixel_metrics as pm


def _two_regions() -> tuple[np.ndarray, np.ndarray]:
    """One 1x14 image: region A = pixel 0, region B = pixels 2-4, ten defect-free pixels.

    Scores, by threshold from the top: A 0.9, B 0.8, normal 0.7, B 0.6, normal
    0.5, 0.4, 0.3, 0.2, B 0.1, then five normals at 0.0. The PRO curve
    (FPR, PRO): (0, 0) -> (0, 1/2) -> (0, 2/3) -> (0.1, 2/3) -> (0.1, 5/6)
    -> (0.2, 5/6) -> (0.3, 5/6) -> ...
    """
    masks = np.zeros((1, 1, 14), dtype=bool)
    masks[0, 0, [0, 2, 3, 4]] = True
    maps = np.zeros((1, 1, 14))
    maps[0, 0, :10] = [0.9, 0.7, 0.8, 0.6, 0.1, 0.5, 0.4, 0.3, 0.2, 0.0]
    return masks, maps


def test_aupro_hand_computed() -> None:
    masks, maps = _two_regions()
    # (0.1 * 2/3 + 0.2 * 5/6) / 0.3
    assert pm.aupro(masks, maps) == pytest.approx(7 / 9, abs=1e-12)
    # interpolation inside a horizontal segment: (0.1 * 2/3 + 0.15 * 5/6) / 0.25
    assert pm.aupro(masks, maps, max_fpr=0.25) == pytest.approx(23 / 30, abs=1e-12)


def test_aupro_hand_computed_with_a_tie() -> None:
    masks, maps = _two_regions()
    maps[0, 0, 4] = 0.4  # B's last pixel ties with the normal at 0.4: a diagonal from (0.2, 5/6) to (0.3, 1)
    assert pm.aupro(masks, maps) == pytest.approx(
        (0.1 * 2 / 3 + 0.1 * 5 / 6 + 0.1 * 11 / 12) / 0.3, abs=1e-12
    )
    # interpolated halfway along the diagonal, at PRO 11/12
    expected = (0.1 * 2 / 3 + 0.1 * 5 / 6 + 0.05 * (5 / 6 + 11 / 12) / 2) / 0.25
    assert pm.aupro(masks, maps, max_fpr=0.25) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(31 / 40, abs=1e-12)


def test_regions_are_8_connected_within_an_image_only() -> None:
    masks = np.zeros((2, 4, 4), dtype=bool)
    masks[0, 0, 0] = masks[0, 1, 1] = True  # diagonal neighbours: one region
    masks[1, 0, 0] = True  # same place in the next image: another region
    maps = np.zeros((2, 4, 4))
    maps[0, 0, 0] = 1.0  # half of the first region found, the second region missed
    maps[1, 1:, 1:] = 0.5  # defect-free pixels between: the other pixels fall at FPR 9/29 > 0.3
    rows = pm.pixel_metrics_by_type(masks, maps, ["a", "a"])
    assert rows["a"]["n_regions"] == 2
    assert rows["a"]["aupro"] == pytest.approx(0.25, abs=1e-12)  # PRO = (1/2 + 0) / 2 up to FPR 0.3


def _reference_aupro(masks: np.ndarray, maps: np.ndarray, max_fpr: float) -> float:
    """A threshold-by-threshold transcription of the MVTec AD definition (slow, for small arrays)."""
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True
    regions, n_regions = ndimage.label(masks, structure=structure)
    fprs, pros = [0.0], [0.0]
    for t in np.unique(maps)[::-1]:
        above = maps >= t
        fprs.append(above[~masks].mean())
        pros.append(np.mean([above[regions == r].mean() for r in range(1, n_regions + 1)]))
    x, y = np.array(fprs), np.array(pros)
    end = np.searchsorted(x, max_fpr, side="right")
    y_limit = np.interp(max_fpr, x[end - 1 : end + 1], y[end - 1 : end + 1])
    xs, ys = np.append(x[:end], max_fpr), np.append(y[:end], y_limit)
    return float(np.sum(np.diff(xs) * (ys[1:] + ys[:-1]) / 2) / max_fpr)


@pytest.mark.parametrize("seed", range(6))
def test_matches_the_reference_and_sklearn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    masks = np.zeros((5, 12, 10), dtype=bool)
    for i in range(5):
        r, c, h, w = rng.integers(0, 9), rng.integers(0, 7), rng.integers(1, 4), rng.integers(1, 4)
        masks[i, r : r + h, c : c + w] = i != 0
        masks[i, rng.integers(0, 12), rng.integers(0, 10)] |= i % 2 == 1
    maps = np.round(rng.random(masks.shape) + 0.6 * masks, 1)  # coarse scores: many ties
    for max_fpr in (0.3, 0.05, 1.0):
        assert pm.aupro(masks, maps, max_fpr=max_fpr) == pytest.approx(
            _reference_aupro(masks, maps, max_fpr), abs=1e-12
        )
    assert pm.pixel_roc_auc(masks, maps) == pytest.approx(
        roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12
    )


def test_chunking_does_not_change_the_values(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(7)
    masks = rng.random((9, 8, 8)) > 0.85
    masks[::3] = False
    maps = rng.random(masks.shape).astype(np.float32) + masks
    labels = ["good", "a", "b"] * 3
    whole = pm.pixel_metrics_by_type(masks, maps, labels, normal="good")
    monkeypatch.setattr(pm, "_CHUNK_PIXELS", 100)  # one image per chunk
    assert pm.pixel_metrics_by_type(masks, maps, labels, normal="good") == whole


def test_invariant_to_a_monotone_transform() -> None:
    rng = np.random.default_rng(3)
    masks = rng.random((4, 16, 16)) > 0.9
    maps = rng.normal(size=masks.shape) + masks
    before = pm.pixel_metrics(masks, maps)
    assert pm.pixel_metrics(masks, np.exp(3 * maps) - 7) == before
    assert pm.pixel_metrics(masks, np.round(maps, 1)) != before  # not vacuous: merging scores into ties does


def test_perfect_and_reversed_maps() -> None:
    rng = np.random.default_rng(4)
    masks = rng.random((3, 10, 10)) > 0.8
    noise = rng.random(masks.shape)
    assert pm.pixel_metrics(masks, noise + 2 * masks) == {"pixel_roc_auc": 1.0, "aupro": 1.0}
    assert pm.pixel_metrics(masks, noise - 2 * masks) == {"pixel_roc_auc": 0.0, "aupro": 0.0}


def test_masks_as_0_1_integers_give_the_same_values() -> None:
    masks, maps = _two_regions()
    assert pm.pixel_metrics(masks.astype(np.uint8), maps) == pm.pixel_metrics(masks, maps)
    assert pm.pixel_metrics(masks.astype(float), maps.astype(np.float32)) == pm.pixel_metrics(masks, maps)


def test_per_type_rows_use_the_type_and_the_normal_images() -> None:
    rng = np.random.default_rng(5)
    masks = np.zeros((6, 10, 10), dtype=bool)
    masks[2, 2:5, 2:5] = masks[3, 6:9, 1:3] = masks[3, 0, 0] = True  # "crack": three regions
    masks[4, 4:7, 4:7] = masks[5, 1, 1:4] = True  # "stain": two regions
    maps = rng.random(masks.shape) + 0.5 * masks
    labels = np.array(["good", "good", "crack", "crack", "stain", "stain"])
    rows = pm.pixel_metrics_by_type(masks, maps, labels, normal="good")
    assert list(rows) == ["crack", "stain", "overall"]
    for kind, images in {"crack": [0, 1, 2, 3], "stain": [0, 1, 4, 5], "overall": list(range(6))}.items():
        expected = pm.pixel_metrics(masks[images], maps[images])
        assert rows[kind]["aupro"] == pytest.approx(expected["aupro"], abs=1e-12)
        assert rows[kind]["pixel_roc_auc"] == pytest.approx(expected["pixel_roc_auc"], abs=1e-12)
        assert rows[kind]["n_images"] == len(images)
    assert [rows[k]["n_regions"] for k in rows] == [3, 2, 5]


def test_per_type_accepts_several_normal_labels_and_integer_labels() -> None:
    masks = np.zeros((3, 4, 4), dtype=bool)
    masks[2, 1, 1] = True
    maps = masks + np.zeros(masks.shape)
    rows = pm.pixel_metrics_by_type(masks, maps, np.array([0, 1, 7]), normal=[0, 1])
    assert list(rows) == [7, "overall"]
    assert rows[7]["n_images"] == 3 and rows[7]["aupro"] == 1.0


def test_facade_exports_the_pixel_metrics() -> None:
    assert metrics.aupro is pm.aupro and metrics.pixel_metrics_by_type is pm.pixel_metrics_by_type
    for name in ("aupro", "pixel_roc_auc", "pixel_metrics", "PIXEL_METRIC_NAMES", "OVERALL"):
        assert name in metrics.__all__


@pytest.mark.parametrize(
    ("masks", "maps", "message"),
    [
        (np.zeros((2, 4, 4), bool), np.zeros((2, 4, 5)), r"masks \(2, 4, 4\) and maps \(2, 4, 5\)"),
        (np.zeros((4, 4), bool), np.zeros((4, 4)), r"\(n_images, height, width\)"),
        (np.full((2, 3, 3), 2), np.zeros((2, 3, 3)), "boolean or 0/1; image 0"),
        (np.array([["a"]]).reshape(1, 1, 1), np.zeros((1, 1, 1)), "masks must be boolean"),
        (np.eye(3, dtype=bool)[None], np.zeros((1, 3, 3), dtype=complex), "maps must be real"),
        (np.zeros((2, 3, 3), bool), np.zeros((2, 3, 3)), "masks has no defect pixel"),
        (np.ones((2, 3, 3), bool), np.zeros((2, 3, 3)), "masks has no defect-free pixel"),
    ],
)
def test_errors_name_the_culprit(masks: np.ndarray, maps: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        pm.pixel_metrics(masks, maps)


def test_nan_in_maps_names_the_image() -> None:
    masks, maps = _two_regions()
    masks, maps = np.concatenate([masks, masks]), np.concatenate([maps, maps])
    maps[1, 0, 5] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values \\(first in image 1\\)"):
        pm.aupro(masks, maps)


def test_max_fpr_out_of_range() -> None:
    masks, maps = _two_regions()
    with pytest.raises(ValueError, match="max_fpr must be in"):
        pm.aupro(masks, maps, max_fpr=0.0)


def test_per_type_errors() -> None:
    masks = np.zeros((3, 4, 4), dtype=bool)
    masks[1, 0, 0] = True
    maps = np.zeros(masks.shape)
    with pytest.raises(ValueError, match="labels has 2 entries but masks and maps have 3 images"):
        pm.pixel_metrics_by_type(masks, maps, ["good", "a"], normal="good")
    with pytest.raises(ValueError, match="image 1 is labelled normal but its mask has 1 defect pixels"):
        pm.pixel_metrics_by_type(masks, maps, ["good", "good", "a"], normal="good")
    with pytest.raises(ValueError, match="type 'b' has no defect pixel"):
        pm.pixel_metrics_by_type(masks, maps, ["good", "a", "b"], normal="good")
    with pytest.raises(ValueError, match="named 'overall'"):
        pm.pixel_metrics_by_type(masks, maps, ["good", "overall", "good"], normal="good")
