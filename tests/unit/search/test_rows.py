"""Bank building reads training patches a block at a time: the chunk bound, and the banks of laid-out rows."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch

from mmocc.scoring import Features
from mmocc.scoring import patch as patch_module
from mmocc.scoring.patch import PatchScore
from mmocc.search.coreset import CELL_SAMPLE, PROJECTION_DIM, cell_coreset, default_cells, greedy_coreset
from mmocc.search.rows import MapRows, TensorRows

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BLOCK = 96
"""Rows per block of the spy source: far below the rows of the maps."""


class SpyRows(MapRows):
    """MapRows that hands out blocks of at most BLOCK rows and records every row layout it makes."""

    laid_out: list[int] = []

    def take(self, index: torch.Tensor) -> torch.Tensor:
        self.laid_out.append(len(index))
        return super().take(index)

    def blocks(self, rows: int = BLOCK) -> Iterator[tuple[int, torch.Tensor]]:
        for start, block in super().blocks(min(rows, BLOCK)):
            self.laid_out.append(len(block))
            yield start, block


def _maps(n: int, channels: int, side: int, seed: int) -> np.ndarray:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(n, channels, side, side, generator=generator).numpy()


def _laid_out(maps: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(maps).permute(0, 2, 3, 1).reshape(-1, maps.shape[1]).contiguous()


def test_map_rows_are_the_maps_positions_in_row_major_order() -> None:
    first, second = _maps(3, 5, 4, 0), _maps(2, 5, 4, 1)
    rows = MapRows([first, second])
    every = torch.cat([_laid_out(first), _laid_out(second)])
    assert len(rows) == 80 and rows.width == 5
    assert torch.equal(torch.cat([block for _, block in rows.blocks(20)]), every)
    assert [start for start, _ in rows.blocks(20)] == [0, 16, 32, 48, 64]  # whole images (16 rows) per block
    picked = torch.tensor([79, 0, 47, 48, 5])
    assert torch.equal(rows.take(picked), every[picked])


def test_map_rows_refuse_bad_maps_and_indices() -> None:
    with pytest.raises(ValueError, match="same C"):
        MapRows([_maps(2, 4, 3, 0), _maps(2, 5, 3, 0)])
    with pytest.raises(IndexError, match=r"\[0, 18\)"):
        MapRows([_maps(2, 4, 3, 0)]).take(torch.tensor([18]))


@pytest.mark.parametrize("channels", [24, PROJECTION_DIM + 40])
@pytest.mark.parametrize("select", [greedy_coreset, cell_coreset])
def test_selection_from_maps_equals_selection_from_laid_out_rows(channels: int, select) -> None:
    maps = _maps(40, channels, 6, 2)
    assert torch.equal(select(MapRows([maps]), 90, seed=4), select(_laid_out(maps), 90, seed=4))
    assert torch.equal(select(TensorRows(_laid_out(maps)), 90, seed=4), select(_laid_out(maps), 90, seed=4))


@pytest.mark.parametrize("method", ["greedy", "cells"])
def test_bank_building_never_lays_out_more_rows_than_a_block_the_bank_or_the_cell_sample(
    method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chunk bound: of 7,680 training patches, no layout exceeds a block, the bank or the cell sample."""
    SpyRows.laid_out = []
    monkeypatch.setattr(patch_module, "MapRows", SpyRows)
    views = {"a": _maps(60, PROJECTION_DIM + 8, 8, 3), "b": _maps(60, PROJECTION_DIM + 8, 8, 4)}
    rule = PatchScore({"a": "g", "b": "g"}, coreset_ratio=0.02, coreset_method=method)
    rule.fit(Features(patches=views))
    bank_rows = len(rule.banks["g"])
    assert bank_rows == 154
    bound = max(BLOCK, bank_rows, CELL_SAMPLE * default_cells(bank_rows) if method == "cells" else 0)
    assert sum(size for size in SpyRows.laid_out if size <= BLOCK) >= 7680  # every patch was read
    assert max(SpyRows.laid_out) <= bound < 7680 // 4  # never all of them, nor a large part, at once
