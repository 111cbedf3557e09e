"""The patch rule's coreset selection and nearest-patch search, against brute force on toy data."""

from __future__ import annotations

import pytest
import torch

from mmocc.scoring.patch import faiss_module, greedy_coreset, nearest_distance

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEARCHES = [False, *([True] if faiss_module() is not None else [])]
"""``use_faiss`` values to test: the torch path always, faiss where it is installed."""


def _points(m: int, dims: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(m, dims, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("size", [1, 2, 17, 50, 60, 1000])
def test_coreset_has_its_size_and_no_duplicates(size: int) -> None:
    chosen = greedy_coreset(_points(50, 8), size, seed=3)
    assert len(chosen) == min(size, 50)
    assert len(set(chosen.tolist())) == len(chosen)
    assert 0 <= int(chosen.min()) and int(chosen.max()) < 50


def test_coreset_has_no_duplicates_among_duplicate_points() -> None:
    points = _points(5, 4).repeat(4, 1)  # every point four times
    chosen = greedy_coreset(points, 12)
    assert len(set(chosen.tolist())) == 12
    first = {tuple(points[i].tolist()) for i in chosen[:5].tolist()}
    assert len(first) == 5  # the five distinct points come first: a copy is at distance 0


def test_each_selected_point_is_the_farthest_from_those_already_chosen() -> None:
    points = _points(200, 16, seed=1)  # <= 128 dims: no projection, exact distances
    chosen = greedy_coreset(points, 30, seed=2).tolist()
    for i in range(1, len(chosen)):
        nearest = torch.cdist(points.double(), points[chosen[:i]].double()).min(dim=1).values
        assert float(nearest[chosen[i]]) == pytest.approx(float(nearest.max()), rel=1e-5)


@pytest.mark.parametrize("use_faiss", SEARCHES)
@pytest.mark.parametrize("m", [1, 7, 5000])
def test_nearest_distance_equals_brute_force(use_faiss: bool, m: int) -> None:
    queries, bank = _points(300, 12, seed=4), _points(m, 12, seed=5)
    got = nearest_distance(queries, bank, use_faiss=use_faiss)
    expected = torch.cdist(queries.double(), bank.double()).min(dim=1).values
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use_faiss", SEARCHES)
def test_nearest_distance_masks_the_query_owner(use_faiss: bool) -> None:
    queries, bank = _points(400, 6, seed=6), _points(3000, 6, seed=7)
    query_owner, bank_owner = torch.arange(400) % 9, torch.arange(3000) % 9
    got = nearest_distance(queries, bank, query_owner=query_owner, bank_owner=bank_owner, use_faiss=use_faiss)
    dist = torch.cdist(queries.double(), bank.double())
    dist[query_owner[:, None] == bank_owner[None, :]] = float("inf")
    torch.testing.assert_close(got.double(), dist.min(dim=1).values, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use_faiss", SEARCHES)
def test_leave_one_out_masks_own_patches_even_next_to_a_duplicate_sample(use_faiss: bool) -> None:
    # samples 0 and 1 are identical, sample 2 differs; each has 40 patches, all of them in the bank
    patches = _points(40, 5, seed=8)
    rows = torch.cat([patches, patches, patches + 3.0])
    owner = torch.arange(3).repeat_interleave(40)
    got = nearest_distance(rows, rows, query_owner=owner, bank_owner=owner, use_faiss=use_faiss)
    assert torch.all(got[:80] == 0.0)  # the duplicate's own copy is found, not the sample's own patch
    distinct = torch.cdist(rows[80:], rows[:80]).min(dim=1).values
    torch.testing.assert_close(got[80:], distinct, rtol=1e-5, atol=1e-6)  # never its own (distance 0)
    lonely = nearest_distance(rows[80:], rows[80:], query_owner=owner[80:], bank_owner=owner[80:])
    assert torch.all(torch.isinf(lonely))  # only its own sample in the bank: nothing left


def test_nearest_distance_needs_both_owners_or_neither() -> None:
    with pytest.raises(ValueError, match="both"):
        nearest_distance(_points(3, 2), _points(4, 2), query_owner=torch.zeros(3, dtype=torch.long))
