"""Tiled features: tiles cover the image, stitching is exact for a local extractor, a defect across a tile
border is found and the stitched map peaks inside it; tiling is saved with the model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from mmocc import MultimodalOCC, load
from mmocc.model.tiling import tile_starts, tiled_features

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    ("length", "tile", "stride"), [(256, 64, 48), (100, 64, 64), (64, 64, 16), (70, 16, 5)]
)
def test_tiles_cover_the_axis_and_end_flush(length: int, tile: int, stride: int) -> None:
    starts = tile_starts(length, tile, stride)
    assert starts[0] == 0 and starts == sorted(set(starts))
    assert starts[-1] + tile == max(length, tile)
    covered = np.zeros(length, dtype=bool)
    for start in starts:
        covered[start : start + tile] = True
    assert covered.all()
    assert all(b - a <= stride for a, b in zip(starts, starts[1:], strict=False))


def test_stitching_a_local_extractor_gives_the_whole_image_map() -> None:
    conv = nn.Conv2d(3, 5, kernel_size=4, stride=4, bias=False)
    images = torch.rand(3, 3, 96, 64)
    with torch.no_grad():
        whole, tiled = conv(images), tiled_features(conv, images, 32, 0.5)
    torch.testing.assert_close(tiled, whole)


class _Local(nn.Module):
    """A fixed local feature extractor (stride 4): what a pretrained backbone is to a small defect."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=4, stride=4)
        with torch.no_grad():
            generator = torch.Generator().manual_seed(0)
            self.conv.weight.copy_(torch.randn(self.conv.weight.shape, generator=generator))
            self.conv.bias.copy_(torch.randn(self.conv.bias.shape, generator=generator))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv(x))


def _textures(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(100, 140, (n, 1, 64, 64)).astype(np.uint8)


def test_a_defect_across_a_tile_border_is_found_and_the_map_peaks_inside_it(tmp_path) -> None:
    train, test = _textures(12, 0), _textures(4, 1)
    test[1, 0, 28:36, 28:36] = 255  # 8x8 px across the border of the 32-px tiles at 32
    clf = MultimodalOCC(
        preset="pretrained",
        patch_backbone=_Local(),
        patch_size=None,
        tile_size=32,
        tile_overlap=0.0,
        random_state=0,
    ).fit({"gray": train})
    scores = clf.decision_function({"gray": test})
    assert int(np.argmax(scores)) == 1
    heat = clf.anomaly_maps({"gray": test})["gray"][1]
    assert heat.shape == (64, 64)
    y, x = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert 24 <= y < 40 and 24 <= x < 40, (y, x)
    clf.save(tmp_path / "m.mmocc")
    same = load(tmp_path / "m.mmocc", backbone=_Local())
    assert same.params_.tile_size == 32
    np.testing.assert_array_equal(same.decision_function({"gray": test}), scores)


def test_tile_parameters_are_checked() -> None:
    with pytest.raises(ValueError, match="tile_overlap"):
        MultimodalOCC(tile_overlap=1.0).resolved_params()
    with pytest.raises(ValueError, match="tile_size"):
        MultimodalOCC(tile_size=8).resolved_params()
