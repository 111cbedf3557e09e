"""Bank building and patch scoring show progress on stderr when asked, and print nothing otherwise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmocc.scoring.base import Features
from mmocc.scoring.patch import PatchScore
from mmocc.search.coreset import greedy_coreset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _points() -> torch.Tensor:
    return torch.randn(3000, 8, generator=torch.Generator().manual_seed(0))


def test_coreset_shows_progress_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    greedy_coreset(_points(), 2100, verbose=True)
    captured = capsys.readouterr()
    assert "coreset" in captured.err and not captured.out


@pytest.mark.parametrize("verbose", [False, None])  # None: stderr is not a terminal under pytest
def test_coreset_is_silent_otherwise(capsys: pytest.CaptureFixture[str], verbose: bool | None) -> None:
    greedy_coreset(_points(), 2100, verbose=verbose)
    assert capsys.readouterr() == ("", "")


def _features(n: int, seed: int) -> Features:
    maps = np.random.default_rng(seed).normal(size=(n, 4, 6, 6)).astype(np.float32)
    return Features(patches={"a": maps})


@pytest.mark.parametrize("verbose", [True, False, None])
def test_patch_rule_shows_progress_only_when_asked(
    capsys: pytest.CaptureFixture[str], verbose: bool | None
) -> None:
    rule = PatchScore({"a": "g"}, coreset_ratio=0.5, verbose=verbose)
    rule.fit(_features(10, 0))
    rule.score(_features(4, 1))
    rule.anomaly_maps(_features(4, 1))
    err = capsys.readouterr().err
    if verbose:
        assert "scoring a" in err and "maps a" in err
    else:
        assert err == ""
