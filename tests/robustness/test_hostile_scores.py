"""Hostile scores and the messages about them: NaN from a backbone, repeated calibration samples, advice.

Each test is named after its case and failed before the fix.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from torch import nn

from mmocc import MultimodalOCC
from mmocc.cli.main import cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class NonFiniteFor(nn.Module):
    """A user patch backbone that returns ``value`` (NaN, inf) for images brighter than mid-grey."""

    def __init__(self, value: float) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bright = x.mean(dim=(1, 2, 3)) > 0.6
        return torch.relu(self.conv(x)).masked_fill(bright[:, None, None, None], self.value)


def _images(n_dark: int, n_bright: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    dark = rng.integers(0, 120, (n_dark, 16, 16, 3), dtype=np.uint8)
    bright = rng.integers(200, 256, (n_bright, 16, 16, 3), dtype=np.uint8)
    return {"v": np.concatenate([dark, bright])}


def _patch_model(value: float) -> MultimodalOCC:
    return MultimodalOCC(
        preset="patch", patch_backbone=NonFiniteFor(value), epochs=1, random_state=0, verbose=False
    )


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_features_are_an_error_at_fit_calibrate_and_scoring(value):
    with pytest.raises(
        ValueError, match=r"fit: view 'v': the features of 3 of 23 samples \(first: sample 20\)"
    ):
        _patch_model(value).fit(_images(20, 3))
    clf = _patch_model(value).fit(_images(20, 0))
    assert np.isfinite(clf.threshold_)
    bad = _images(17, 3, seed=1)
    message = r"view 'v': the features of 3 of 20 samples \(first: sample 17\) are NaN or infinite"
    for method in (clf.decision_function, clf.predict, clf.predict_proba, clf.decision_function_by_view):
        with pytest.raises(ValueError, match=message):
            method(bad)
    threshold = clf.threshold_
    with pytest.raises(ValueError, match=message):
        clf.calibrate(bad)
    assert clf.threshold_ == threshold


def test_calibrating_on_repeated_samples_warns_about_too_few_distinct_scores():
    clf = MultimodalOCC(filters=(4,), epochs=1, random_state=0, verbose=False).fit(_images(20, 0))
    repeated = {"v": np.repeat(_images(3, 0, seed=2)["v"], 10, axis=0)}
    with pytest.warns(UserWarning, match=r"the 30 calibration samples give only 3 distinct scores") as caught:
        clf.calibrate(repeated)
    assert len(caught) == 1


def test_the_advice_for_a_list_of_pixel_values_on_a_uint8_model_fits_0_to_255():
    images = _images(20, 0)
    clf = MultimodalOCC(filters=(4,), epochs=1, random_state=0, verbose=False).fit(images)
    with pytest.raises(TypeError) as error:
        clf.decision_function({"v": images["v"].tolist()})
    assert "got int64: its values are in [0, 119], on the 0-255 scale" in str(error.value)
    assert "np.asarray(x).round().astype(np.uint8)" in str(error.value) and "x * 255" not in str(error.value)
    with pytest.raises(TypeError, match=r"values are in \[0, 0.46\d*\]: convert with \(x \* 255\)"):
        clf.decision_function({"v": images["v"] / 255.0})


def test_evaluate_without_anomalies_says_so(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(9):
        for view in ("left", "right"):
            path = tmp_path / "data" / "bee" / f"s{i}" / f"{view}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
    model, data = str(tmp_path / "m.mmocc"), str(tmp_path / "data")
    common = ["--data", data, "-O", "cache=false", "--device", "cpu", "-q"]
    train = ["train", *common, "--normal", "bee", "--holdout", "0.34", "--epochs", "1", "--out", model]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert CliRunner().invoke(cli, [*train, "-p", "filters=[4]"]).exit_code == 0
    result = CliRunner().invoke(cli, ["evaluate", model, *common])
    assert result.exit_code != 0
    assert f"no anomalies in {data}: all 3 samples evaluated are of the normal class ['bee']" in result.output
