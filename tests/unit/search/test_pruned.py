"""Pruned top-k image scores: the same values as searching every position against the whole bank."""

from __future__ import annotations

import pytest
import torch

from mmocc.search.coreset import greedy_coreset
from mmocc.search.index import NeighborIndex
from mmocc.search.pruned import PrefixIndex, prefix_sizes


def _clustered(n: int, dims: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(12, dims, generator=generator) * 4
    return centres[torch.randint(12, (n,), generator=generator)] + torch.randn(n, dims, generator=generator)


@pytest.mark.parametrize("k", [1, 3, 50])
@pytest.mark.parametrize("leave_out", [False, True])
def test_pruned_equals_unpruned(k: int, leave_out: bool) -> None:
    positions, dims = 50, 6
    train = _clustered(40 * positions, dims, seed=0)
    keep = greedy_coreset(train, 1200, seed=1)
    owners = (torch.arange(len(train)) // positions)[keep]
    index = NeighborIndex(train[keep], owners=owners if leave_out else None)
    queries = train[: 12 * positions] if leave_out else _clustered(12 * positions, dims, seed=2)
    queries[5 * positions + 7] += 30.0  # one outlying position
    exclude = torch.arange(12) if leave_out else None
    own = None if exclude is None else exclude.repeat_interleave(positions)
    full = index.nearest_distance(queries, own).reshape(12, positions)
    pruned = PrefixIndex(index).top_nearest(queries.reshape(12, positions, dims), k, exclude)
    assert PrefixIndex(index).sizes == [256]
    assert torch.equal(pruned.sort(dim=1).values, full.topk(k, dim=1).values.sort(dim=1).values)


def test_small_bank_is_searched_whole() -> None:
    index = NeighborIndex(torch.randn(100, 3))
    queries = torch.randn(4, 9, 3)
    top = PrefixIndex(index).top_nearest(queries, 2)
    full = index.nearest_distance(queries.reshape(-1, 3)).reshape(4, 9)
    assert prefix_sizes(100) == [] and torch.equal(top, full.topk(2, dim=1).values)
