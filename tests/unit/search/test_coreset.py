"""Greedy coreset selection (k-centre): size, no duplicates, and each pick is the farthest point left."""

from __future__ import annotations

import pytest
import torch

from mmocc.search.coreset import cell_coreset, coverage, greedy_coreset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def _clusters(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(200, 16, generator=generator) * 4
    return (
        centres[torch.randint(200, (n,), generator=generator)] + torch.randn(n, 16, generator=generator) * 0.3
    )


def test_selection_among_drawn_candidates_is_a_valid_bank_and_deterministic() -> None:
    points = _clusters(5000)
    chosen = greedy_coreset(points, 100, seed=4, max_candidates=1000)
    assert len(chosen) == 100 and len(set(chosen.tolist())) == 100
    assert 0 <= int(chosen.min()) and int(chosen.max()) < 5000
    assert torch.equal(chosen, greedy_coreset(points, 100, seed=4, max_candidates=1000))
    assert torch.equal(
        greedy_coreset(points, 100, seed=4, max_candidates=10**6), greedy_coreset(points, 100, seed=4)
    )


def test_coverage_of_drawn_candidates_stays_close_to_exact_greedy() -> None:
    """Bound stated on clustered toy data: q99 coverage within 1.1x of exact greedy, maximum within 1.5x."""
    points = _clusters(20000)
    exact = coverage(points, greedy_coreset(points, 400, seed=0))
    drawn = coverage(points, greedy_coreset(points, 400, seed=0, max_candidates=2000))
    assert float(drawn.quantile(0.99)) <= 1.1 * float(exact.quantile(0.99))
    assert float(drawn.max()) <= 1.5 * float(exact.max())
    assert float(coverage(points, torch.arange(len(points))).max()) == 0.0


def test_candidates_not_above_the_bank_size_draw_the_bank_at_random_with_a_warning() -> None:
    points = torch.randn(5000, 8, generator=torch.Generator().manual_seed(0))
    with pytest.warns(UserWarning, match="coreset_candidates=300 is not above the bank size 500"):
        chosen = greedy_coreset(points, 500, seed=1, max_candidates=300)
    assert len(chosen) == 500 and len(torch.unique(chosen)) == 500
    assert torch.equal(chosen, chosen.sort().values)
    with pytest.warns(UserWarning):
        assert torch.equal(chosen, greedy_coreset(points, 500, seed=1, max_candidates=300))


def test_cell_coreset_is_a_valid_deterministic_bank_led_by_its_cells() -> None:
    points = _clusters(5000)
    chosen = cell_coreset(points, 300, cells=40, seed=2)
    assert len(chosen) == 300 and len(set(chosen.tolist())) == 300
    assert 0 <= int(chosen.min()) and int(chosen.max()) < 5000
    assert torch.equal(chosen, cell_coreset(points, 300, cells=40, seed=2))
    assert torch.equal(cell_coreset(points, 5000), torch.arange(5000))


def test_cell_coreset_coverage_stays_close_to_exact_greedy_and_beats_drawn_candidates() -> None:
    """Bound stated on clustered toy data: q99 within 1.1x of exact greedy, maximum within 1.25x."""
    points = _clusters(20000)
    exact = coverage(points, greedy_coreset(points, 400, seed=0))
    cells = coverage(points, cell_coreset(points, 400, seed=0))
    drawn = coverage(points, greedy_coreset(points, 400, seed=0, max_candidates=2000))
    assert float(cells.quantile(0.99)) <= 1.1 * float(exact.quantile(0.99))
    assert float(cells.max()) <= 1.25 * float(exact.max())
    assert float(cells.max()) < float(drawn.max())
