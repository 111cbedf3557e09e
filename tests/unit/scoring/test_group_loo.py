"""Leave-one-group-out training scores: a sample is not judged against its own object's other samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmocc import MultimodalOCC
from mmocc.datasets import MultiViewDataset, make_synthetic
from mmocc.detectors.base import sample_groups
from mmocc.scoring import Features, KNNScore, PatchScore

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _grouped(n_groups: int, per_group: int, dims: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Points in tight clusters of ``per_group`` (one object seen several times), and their group codes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_groups, dims)) * 5
    points = np.repeat(centres, per_group, axis=0) + rng.normal(scale=0.01, size=(n_groups * per_group, dims))
    return points.astype(np.float32), np.repeat(np.arange(n_groups), per_group)


def test_knn_leaves_the_whole_group_out():
    points, groups = _grouped(12, 3, 5)
    by_sample = KNNScore(1, "view", "latent", {"a": "a"})
    by_group = KNNScore(1, "view", "latent", {"a": "a"})
    by_sample.fit(Features(latents={"a": points}))
    by_group.fit(Features(latents={"a": points}, sample_groups=groups))
    dist = np.linalg.norm(points[:, None] - points[None], axis=2)
    dist[groups[:, None] == groups[None]] = np.inf
    want = dist.min(axis=1)
    got = by_group._raw(Features(latents={"a": points}, sample_groups=groups), leave_self_out=True)[0][:, 0]
    np.testing.assert_allclose(got, want, rtol=1e-5)
    sample_raw = by_sample._raw(Features(latents={"a": points}), leave_self_out=True)[0][:, 0]
    assert sample_raw.max() < 0.1 < got.min()  # per sample, the twin in the same group is always the nearest


def test_patch_leaves_the_whole_group_out():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(4, 6, 3, 3)).astype(np.float32)
    maps = np.repeat(base, 2, axis=0)  # two identical images per object
    groups = np.repeat(np.arange(4), 2)
    rule = PatchScore({"a": "a"}, coreset_ratio=1.0)
    per_sample = PatchScore({"a": "a"}, coreset_ratio=1.0)
    rule.fit(Features(patches={"a": maps}, sample_groups=groups))
    per_sample.fit(Features(patches={"a": maps}))
    raw = rule._maps(Features(patches={"a": maps}, sample_groups=groups), leave_own_out=True)["a"]
    twins = per_sample._maps(Features(patches={"a": maps}), leave_own_out=True)["a"]
    assert np.all(twins == 0.0)  # each image finds its twin
    rows = torch.from_numpy(maps).permute(0, 2, 3, 1).reshape(-1, 6)
    owner = torch.from_numpy(groups).repeat_interleave(9)
    dist = torch.cdist(rows.double(), rows.double())
    dist[owner[:, None] == owner[None]] = float("inf")
    np.testing.assert_allclose(raw.reshape(-1), dist.min(dim=1).values.numpy(), rtol=1e-5)


def test_sample_groups_only_when_several_objects_hold_several_samples():
    assert sample_groups(None) is None
    assert sample_groups(["a", "a"]) is None  # one object: leave-one-out by sample
    assert sample_groups(["a", "b", "c"]) is None  # one sample per object: the same thing
    assert sample_groups(np.array([5, 5, 9])).tolist() == [0, 0, 1]


def test_threshold_of_grouped_data_is_honest_for_new_objects():
    """Three noisy copies per object: per-sample leave-one-out makes tau tiny and flags most new objects."""
    data = make_synthetic(n_per_class=45, n_classes=2, size=16, seed=0)
    data = data.subset(np.flatnonzero(data.labels == data.classes[0]))  # 45 distinct objects
    rng = np.random.default_rng(0)
    copies = {
        k: np.clip(
            np.repeat(v, 3, axis=0).astype(int) + rng.integers(-2, 3, (3 * len(v), *v.shape[1:])), 0, 255
        ).astype(np.uint8)
        for k, v in data.views.items()
    }
    groups = np.repeat(np.arange(len(data)), 3)
    train_mask = groups < 30
    train = MultiViewDataset({k: v[train_mask] for k, v in copies.items()}, groups=groups[train_mask])
    new = {k: v[~train_mask] for k, v in copies.items()}  # 15 objects never seen
    params = {"epochs": 1, "filters": (8, 4, 4), "random_state": 0}
    flagged_grouped = MultimodalOCC(**params).fit(train).predict(new).mean()
    flagged_flat = MultimodalOCC(**params).fit(train.views).predict(new).mean()  # no groups: per sample
    assert flagged_flat >= 0.5, flagged_flat
    assert flagged_grouped <= 0.25, flagged_grouped
