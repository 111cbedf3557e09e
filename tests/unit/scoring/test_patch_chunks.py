"""The patch rule lays out patch rows a bounded chunk at a time, with the same scores as in one block."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmocc.scoring import patch
from mmocc.scoring.base import Features
from mmocc.scoring.patch import PatchScore

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _features(n: int, seed: int) -> Features:
    rng = np.random.default_rng(seed)
    maps = rng.normal(size=(n, 6, 8, 8)).astype(np.float32)
    return Features(patches={"a": maps, "b": maps[::-1].copy()})


def test_scoring_rows_stay_within_the_chunk_and_scores_do_not_change(monkeypatch: pytest.MonkeyPatch) -> None:
    train, test = _features(30, 0), _features(20, 1)
    whole = PatchScore({"a": "g", "b": "g"}, coreset_ratio=0.5, top_k=2)
    expected_train = whole.fit(train)
    expected = whole.score(test)
    sizes: list[int] = []
    as_rows = patch._as_rows

    def recorded(maps: np.ndarray) -> torch.Tensor:
        rows = as_rows(maps)
        sizes.append(len(rows))
        return rows

    monkeypatch.setattr(patch, "_as_rows", recorded)
    monkeypatch.setattr(patch, "SCORE_CHUNK", 3 * 64)  # three images of 8 x 8 positions
    chunked = PatchScore({"a": "g", "b": "g"}, coreset_ratio=0.5, top_k=2)
    fitted = chunked.fit(train)
    sizes.clear()  # bank building lays out each view once; scoring is chunked
    scores = chunked.score(test)
    assert max(sizes) == 3 * 64 and len(sizes) == 2 * 7
    assert np.array_equal(scores, expected) and np.array_equal(fitted, expected_train)


def test_cells_coreset_builds_a_bank_of_the_same_size_and_refuses_candidates() -> None:
    maps = np.random.default_rng(0).normal(size=(12, 4, 8, 8)).astype(np.float32)
    greedy = PatchScore({"a": "g"}, coreset_ratio=0.25)
    cells = PatchScore({"a": "g"}, coreset_ratio=0.25, coreset_method="cells")
    greedy.fit(Features(patches={"a": maps}))
    cells.fit(Features(patches={"a": maps}))
    assert cells.banks["g"].shape == greedy.banks["g"].shape
    with pytest.raises(ValueError, match="coreset_method='cells' selects among all patches"):
        PatchScore({"a": "g"}, coreset_method="cells", coreset_candidates=100)
