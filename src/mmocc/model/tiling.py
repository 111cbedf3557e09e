"""Tiled feature extraction: a backbone sees overlapping tiles of a large image, their maps are stitched.

A pretrained backbone sees small defects at the scale it was trained on only
when the image is not shrunk to its input size first. :func:`tiled_features`
cuts each image into overlapping square tiles of ``tile`` pixels (the last
row and column of tiles flush with the image's far edges), runs the feature
function on all tiles in batches, and stitches the tiles' feature maps back
into one map of the whole image, averaging where tiles overlap. The result
has the resolution of the backbone's stride on the full image, so patch
scores, anomaly maps and memory banks work unchanged, at full resolution,
with memory bounded by the tile batch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

TILE_BATCH = 64
"""Tiles per call of the feature function (bounds the backbone's activations)."""


def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Start offsets of tiles of ``tile`` pixels along an axis of ``length``, every ``stride``, covering it.

    Parameters
    ----------
    length : int
        The image's side along this axis.
    tile : int
        The tile's side.
    stride : int
        Pixels between the starts of two neighbouring tiles.

    Returns
    -------
    list of int
        Ascending starts; the last tile ends at ``length`` (one tile at 0 when
        the image is no longer than a tile).

    Examples
    --------
    >>> tile_starts(256, 64, 48), tile_starts(64, 64, 48), tile_starts(100, 64, 48)
    ([0, 48, 96, 144, 192], [0], [0, 36])
    """
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def tiled_features(
    extract: Callable[[Tensor], Tensor],
    images: Tensor,
    tile: int,
    overlap: float,
    batch: int | None = TILE_BATCH,
) -> Tensor:
    """Features of whole images from their overlapping tiles.

    Parameters
    ----------
    extract : callable
        Maps a batch of tiles ``(m, C, tile, tile)`` to feature maps ``(m, D, h, w)``.
    images : Tensor of shape (n, C, H, W)
        The images.
    tile : int
        The tiles' side in pixels.
    overlap : float
        Share of a tile shared with its neighbour, in [0, 1): the stride is
        ``round(tile * (1 - overlap))`` pixels.
    batch : int or None, default :data:`TILE_BATCH`
        Tiles per call of ``extract``; None passes all at once (an exported
        graph, whose batch size is not known when it is traced).

    Returns
    -------
    Tensor of shape (n, D, round(H * h / tile), round(W * w / tile))
        The stitched feature map; overlapping cells are averaged. Images no
        larger than one tile are passed to ``extract`` whole.

    Examples
    --------
    >>> pool = lambda x: torch.nn.functional.avg_pool2d(x, 8)  # a "backbone" of stride 8
    >>> images = torch.rand(2, 3, 128, 96)
    >>> tiled_features(pool, images, 64, 0.5).shape
    torch.Size([2, 3, 16, 12])
    >>> torch.allclose(tiled_features(pool, images, 64, 0.5), pool(images), atol=1e-6)  # local: exact
    True
    """
    n, channels = images.shape[:2]
    height, width = int(images.shape[2]), int(images.shape[3])  # static sides (an exported graph's too)
    stride = max(1, round(tile * (1.0 - overlap)))
    ys, xs = tile_starts(height, tile, stride), tile_starts(width, tile, stride)
    if len(ys) == len(xs) == 1:
        return extract(images)
    origins = [(y, x) for y in ys for x in xs]
    crops = torch.stack([images[:, :, y : y + tile, x : x + tile] for y, x in origins], dim=1)
    crops = crops.reshape(n * len(origins), channels, tile, tile)
    if batch is None:
        feats = extract(crops)
    else:
        feats = torch.cat([extract(crops[i : i + batch]) for i in range(0, len(crops), batch)])
    depth, h, w = (int(side) for side in feats.shape[1:])
    feats = feats.reshape(n, len(origins), depth, h, w)
    out_h, out_w = max(h, round(height * h / tile)), max(w, round(width * w / tile))
    total = torch.zeros(n, depth, out_h, out_w, dtype=feats.dtype)
    count = torch.zeros(1, 1, out_h, out_w, dtype=feats.dtype)
    for index, (y, x) in enumerate(origins):  # one step per tile position, all images at once
        top, left = min(round(y * h / tile), out_h - h), min(round(x * w / tile), out_w - w)
        total[:, :, top : top + h, left : left + w] += feats[:, index]
        count[:, :, top : top + h, left : left + w] += 1
    return total / count
