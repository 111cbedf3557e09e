"""The search engine: nearest rows on every backend against brute force, exclusion, the faiss policy."""

from __future__ import annotations

import pytest
import torch

from mmocc.search import index as search_index
from mmocc.search.index import NeighborIndex, choose_backend, faiss_module

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEARCHES = [False, *([True] if faiss_module() is not None else [])]
"""Whether faiss may be used: the torch backend always, faiss flat where it is installed."""


@pytest.fixture
def use_faiss(request, monkeypatch) -> bool:
    """Hide faiss from the policy when the parameter is False."""
    if not request.param:
        monkeypatch.setattr(search_index, "faiss_module", lambda: None)
    return bool(request.param)


def nearest_distance(queries, bank, query_owner=None, bank_owner=None, **_) -> torch.Tensor:
    """The patch rule's search: nearest row of another owner, float32 distances."""
    return NeighborIndex(bank, owners=bank_owner).nearest_distance(queries, query_owner)


def _points(m: int, dims: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(m, dims, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("use_faiss", SEARCHES, indirect=True)
@pytest.mark.parametrize("m", [1, 7, 5000])
def test_nearest_distance_equals_brute_force(use_faiss: bool, m: int) -> None:
    queries, bank = _points(300, 12, seed=4), _points(m, 12, seed=5)
    index = NeighborIndex(bank)
    assert index.backend == ("faiss-flat" if use_faiss else "torch")
    got = index.nearest_distance(queries)
    expected = torch.cdist(queries.double(), bank.double()).min(dim=1).values
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use_faiss", SEARCHES, indirect=True)
def test_nearest_distance_masks_the_query_owner(use_faiss: bool) -> None:
    queries, bank = _points(400, 6, seed=6), _points(3000, 6, seed=7)
    query_owner, bank_owner = torch.arange(400) % 9, torch.arange(3000) % 9
    got = nearest_distance(queries, bank, query_owner=query_owner, bank_owner=bank_owner)
    dist = torch.cdist(queries.double(), bank.double())
    dist[query_owner[:, None] == bank_owner[None, :]] = float("inf")
    torch.testing.assert_close(got.double(), dist.min(dim=1).values, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("use_faiss", SEARCHES, indirect=True)
def test_leave_one_out_masks_own_patches_even_next_to_a_duplicate_sample(use_faiss: bool) -> None:
    # samples 0 and 1 are identical, sample 2 differs; each has 40 patches, all of them in the bank
    patches = _points(40, 5, seed=8)
    rows = torch.cat([patches, patches, patches + 3.0])
    owner = torch.arange(3).repeat_interleave(40)
    got = nearest_distance(rows, rows, query_owner=owner, bank_owner=owner)
    assert torch.all(got[:80] == 0.0)  # the duplicate's own copy is found, not the sample's own patch
    distinct = torch.cdist(rows[80:], rows[:80]).min(dim=1).values
    torch.testing.assert_close(got[80:], distinct, rtol=1e-5, atol=1e-6)  # never its own (distance 0)
    lonely = nearest_distance(rows[80:], rows[80:], query_owner=owner[80:], bank_owner=owner[80:])
    assert torch.all(torch.isinf(lonely))  # only its own sample in the bank: nothing left


@pytest.mark.parametrize("use_faiss", SEARCHES, indirect=True)
def test_exclusion_by_row_and_by_owner_agree_when_each_row_is_its_own_owner(use_faiss: bool) -> None:
    bank = _points(500, 8, seed=9)
    by_row = NeighborIndex(bank).kneighbors(bank, 3, torch.arange(500))
    by_owner = NeighborIndex(bank, owners=torch.arange(500)).kneighbors(bank, 3, torch.arange(500))
    for got, want in zip(by_row, by_owner, strict=True):
        assert (got == want).all()
    assert not (by_row[1] == torch.arange(500)[:, None].numpy()).any()


@pytest.mark.parametrize("use_faiss", SEARCHES, indirect=True)
def test_kneighbors_by_owner_equals_brute_force_and_reports_missing_neighbours(use_faiss: bool) -> None:
    queries, bank = _points(200, 6, seed=10), _points(900, 6, seed=11)
    owners = torch.arange(900) // 30  # 30 rows per owner: more than the faiss candidates left for them
    exclude = torch.arange(200) % 30
    dist, rows = NeighborIndex(bank, owners=owners).kneighbors(queries, 4, exclude)
    brute = torch.cdist(queries.double(), bank.double())
    brute[owners[None, :] == exclude[:, None]] = float("inf")
    want = brute.topk(4, dim=1, largest=False).values.numpy()
    assert abs(dist - want).max() < 1e-5
    assert (owners[torch.from_numpy(rows)] != exclude[:, None]).all()
    lonely = NeighborIndex(bank[:30], owners=owners[:30]).kneighbors(
        queries[:5], 2, torch.zeros(5, dtype=torch.long)
    )
    assert torch.isinf(torch.from_numpy(lonely[0])).all() and (lonely[1] == -1).all()


def test_the_faiss_policy_is_one_function(monkeypatch) -> None:
    if faiss_module() is not None:
        assert choose_backend("exact", 10) == "faiss-flat"
        assert choose_backend("approximate", 10, exact_below=100) == "faiss-flat"
        assert choose_backend("approximate", 1000, exact_below=100) == "faiss-hnsw"
    monkeypatch.setattr(search_index, "faiss_module", lambda: None)
    assert choose_backend("exact", 10**6) == "torch"
    with pytest.raises(ImportError, match=r"mmocc\[faiss\]"):
        choose_backend("approximate", 10**6)
    with pytest.raises(ValueError, match="knn_search='fast' is not valid"):
        choose_backend("fast", 10)


def test_owners_must_match_the_bank() -> None:
    with pytest.raises(ValueError, match=r"owners must be \(4,\)"):
        NeighborIndex(_points(4, 2), owners=torch.zeros(3, dtype=torch.long))
