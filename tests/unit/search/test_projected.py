"""Projected search: a PCA ranking re-ranked exactly in full dimensions, exact when recall is forced to 1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmocc.search.index import NeighborIndex, projected_dims
from mmocc.search.pruned import PrefixIndex

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _points(m: int, dims: int, seed: int) -> torch.Tensor:
    return torch.randn(m, dims, generator=torch.Generator().manual_seed(seed))


def test_projected_search_with_every_row_reranked_is_exact() -> None:
    bank, queries = _points(600, 160, 0), _points(200, 160, 1)
    index = NeighborIndex(bank, "projected", rerank=len(bank))
    assert index.backend == "projected" and index.rank_bank.shape == (600, projected_dims(160)) == (600, 64)
    dist, rows = index.kneighbors(queries, 3)
    truth = torch.cdist(queries.double(), bank.double()).topk(3, dim=1, largest=False)
    assert np.array_equal(rows, truth.indices.numpy())
    np.testing.assert_allclose(dist, truth.values.numpy(), rtol=1e-6)


def test_projected_search_honours_owners_and_leave_one_out() -> None:
    bank = _points(400, 130, 2)
    owners = torch.arange(400) // 4
    index = NeighborIndex(bank, "projected", owners=owners, rerank=len(bank))
    got = index.nearest_distance(bank, owners)
    full = torch.cdist(bank.double(), bank.double())
    full[owners[:, None] == owners[None, :]] = float("inf")
    torch.testing.assert_close(got.double(), full.min(dim=1).values, rtol=1e-5, atol=1e-6)


def test_projected_search_returns_true_distances_to_bank_rows_never_below_the_exact() -> None:
    bank, queries = _points(3000, 192, 3), _points(500, 192, 4)
    approx = NeighborIndex(bank, "projected", rerank=4).nearest_distance(queries)
    exact = NeighborIndex(bank).nearest_distance(queries)
    assert bool((approx >= exact - 1e-5).all())


def test_pruned_scores_over_a_projected_index_equal_its_unpruned_scores_at_full_recall() -> None:
    bank, queries = _points(2000, 140, 5), _points(6 * 50, 140, 6).reshape(6, 50, 140)
    index = NeighborIndex(bank, "projected", rerank=len(bank))
    top = PrefixIndex(index).top_nearest(queries, 3)
    every = index.nearest_distance(queries.reshape(-1, 140)).reshape(6, 50).topk(3, dim=1).values
    assert torch.equal(top.sort(dim=1).values, every.sort(dim=1).values)


def test_a_bank_narrower_than_twice_the_projection_is_searched_exactly() -> None:
    bank, queries = _points(500, 100, 7), _points(50, 100, 8)
    index = NeighborIndex(bank, "projected", rerank=1)
    assert index.backend in {"torch", "faiss-flat"} and index.projection is None
    np.testing.assert_allclose(
        index.nearest_distance(queries).numpy(), NeighborIndex(bank).nearest_distance(queries).numpy()
    )


def test_projected_axes_from_an_evenly_spaced_sample_are_deterministic() -> None:
    bank = _points(5000, 256, 9)
    first, second = NeighborIndex(bank, "projected"), NeighborIndex(bank, "projected")
    assert first.projection is not None and second.projection is not None
    assert torch.equal(first.projection[1], second.projection[1])
    axes = first.projection[1]
    torch.testing.assert_close(axes.T @ axes, torch.eye(64), atol=1e-4, rtol=0)
