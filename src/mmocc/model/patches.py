"""Local patch features of image views, for the patch scoring rule.

A source turns a batch of one image view into a few intermediate feature
maps; :func:`aggregate` averages each over a 3x3 neighbourhood, upsamples the
coarser maps to the finest one and stacks the channels, giving one feature
vector per position ``(n, C, h, w)`` (PatchCore's locally aware patch
features, Roth et al. 2022). Two sources:

``"autoencoder"``
    the joint autoencoder's own encoder, after its first two pooling blocks
    (strides 2 and 4), on the standardized input;
a pretrained backbone (:mod:`mmocc.model.backbones`)
    frozen ImageNet features on the [0, 1] input, optionally resized first
    (ImageNet features need more than 32 px).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmocc.model.nn import JointAutoencoder
from mmocc.model.tiling import TILE_BATCH, tiled_features

AUTOENCODER = "autoencoder"
"""The patch source that uses the trained autoencoder's own encoder maps."""

PATCH_BACKBONES: tuple[str, ...] = (AUTOENCODER, "efficientnet_lite0", "custom")
"""Values of ``patch_backbone``: the autoencoder's maps, a shipped pretrained backbone, or a user module."""


def aggregate(maps: list[Tensor]) -> Tensor:
    """Average each map over 3x3 neighbourhoods, bring all to the finest size, stack channels.

    Parameters
    ----------
    maps : list of Tensor of shape (n, C_i, h_i, w_i)
        Feature maps, finest first.

    Returns
    -------
    Tensor of shape (n, sum C_i, h_0, w_0)
        One feature vector per position of the finest map.

    Examples
    --------
    >>> aggregate([torch.ones(2, 3, 8, 8), torch.ones(2, 5, 4, 4)]).shape
    torch.Size([2, 8, 8, 8])
    """
    size = maps[0].shape[-2:]
    out = []
    for m in maps:
        m = F.avg_pool2d(m.float(), kernel_size=3, stride=1, padding=1, count_include_pad=False)
        if m.shape[-2:] != size:
            m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
        out.append(m)
    return torch.cat(out, dim=1)


def pooled_block_outputs(layers: nn.Sequential, x: Tensor, blocks: tuple[int, ...]) -> list[Tensor]:
    """Return the outputs of an encoder stack after the given pooling blocks (1-based).

    Works on the training stack and on its BatchNorm-folded inference copy.

    Parameters
    ----------
    layers : torch.nn.Sequential
        An image encoder's layers.
    x : Tensor of shape (n, C, H, W)
        Its (scaled) input.
    blocks : tuple of int
        Which pooling blocks to return, ascending.

    Returns
    -------
    list of Tensor
        One map per block.
    """
    out: list[Tensor] = []
    pools = 0
    for layer in layers:
        x = layer(x)
        if isinstance(layer, nn.MaxPool2d):
            pools += 1
            if pools in blocks:
                out.append(x)
            if pools >= blocks[-1]:
                break
    return out


class PatchFeatures:
    """Compute patch features of one image view from a model's encoder or a backbone.

    Parameters
    ----------
    backbone : torch.nn.Module or None
        A frozen backbone taking ``(n, C, H, W)`` images in [0, 1] and
        returning a list of feature maps, finest first; None uses the
        autoencoder's own encoder.
    size : int or None, default None
        Side to which images are resized before the backbone; None keeps
        them. Images of another size are resized with a warning
        (:func:`warn_resized`).
    tile : int or None, default None
        Tile side: a backbone sees overlapping tiles of the (resized) image,
        their maps stitched back (:func:`mmocc.model.tiling.tiled_features`);
        None: the whole image. The autoencoder's own maps are never tiled.
    overlap : float, default 0.25
        Share of a tile overlapping its neighbour.

    Examples
    --------
    >>> from mmocc.data.inputs import ViewSpec
    >>> from mmocc.model.nn import ArchConfig
    >>> model = JointAutoencoder([ViewSpec("a", "image", (1, 16, 16))], ArchConfig(filters=(8, 4, 4))).eval()
    >>> PatchFeatures(None)(model, "a", torch.rand(2, 1, 16, 16)).shape
    torch.Size([2, 12, 8, 8])
    """

    tile_batch: int | None = TILE_BATCH
    """Tiles per backbone call (:func:`mmocc.model.tiling.tiled_features`); None: all at once."""

    def __init__(
        self,
        backbone: nn.Module | None,
        size: int | None = None,
        tile: int | None = None,
        overlap: float = 0.25,
    ) -> None:
        self.backbone = backbone
        self.size = size
        self.tile = tile
        self.overlap = overlap

    def __call__(self, model: JointAutoencoder, view: str, raw: Tensor) -> Tensor:
        """Return the patch features ``(n, C, h, w)`` of a raw batch (backbones: by micro-batch)."""
        if self.backbone is None:
            return self.batch_maps(model, view, raw)
        side = self.size or int(raw.shape[-1])
        micro_batch = getattr(self.backbone, "micro_batch", None)  # FeatureBackbone's advice; else one pass
        step = micro_batch(side, side) if micro_batch is not None else len(raw)
        out: Tensor | None = None
        with torch.no_grad():
            for start in range(0, len(raw), max(1, step)):  # scaled, resized and aggregated per micro-batch
                maps = self.batch_maps(model, view, raw[start : start + step])
                if out is None:
                    out = maps.new_empty((len(raw), *maps.shape[1:]))
                out[start : start + len(maps)] = maps
        if out is None:
            raise ValueError("expected a non-empty batch of images")
        return out

    def batch_maps(self, model: JointAutoencoder, view: str, raw: Tensor) -> Tensor:
        """Return the patch features ``(n, C, h, w)`` of a raw batch in one pass (as an exported graph runs).

        Parameters
        ----------
        model : JointAutoencoder
            The fitted model (its scaler, and its encoder without a backbone).
        view : str
            The view's name.
        raw : Tensor of shape (n, C, H, W)
            Raw images of the view.

        Returns
        -------
        Tensor of shape (n, C', h, w)
            One feature vector per position.
        """
        scaler = model.scaler(view)
        if self.backbone is None:
            layers = model.encoder_of(view).layers
            depth = sum(isinstance(layer, nn.MaxPool2d) for layer in layers)
            blocks = (1, 2) if depth >= 3 else (1,)
            return aggregate(pooled_block_outputs(layers, scaler(raw), blocks))
        return self._backbone_maps(self.backbone, scaler.unit(raw).clamp(0.0, 1.0))

    def _backbone_maps(self, backbone: nn.Module, x: Tensor) -> Tensor:
        """Return the aggregated backbone maps of images in [0, 1], resized to ``size``, tiled when asked."""
        if self.size is not None and x.shape[-1] != self.size:
            warn_resized(tuple(x.shape[-2:]), self.size)
            x = self.resize(x, self.size)
        if self.tile is not None:
            extract = lambda tiles: aggregate(list(backbone(tiles)))  # noqa: E731
            return tiled_features(extract, x, self.tile, self.overlap, self.tile_batch)
        return aggregate(list(backbone(x)))

    @staticmethod
    def resize(x: Tensor, size: int) -> Tensor:
        """Resize images to ``size`` x ``size`` bilinearly, antialiased when shrinking (before a backbone)."""
        return F.interpolate(x, size=(size, size), mode="bilinear", antialias=size < x.shape[-1])


def warn_resized(shape: tuple[int, ...], size: int) -> None:
    """Warn that images of ``shape`` (H, W) are resized to ``patch_size`` = ``size`` for the backbone.

    Enlarging adds no detail and costs time; shrinking loses small defects.
    The message is the same for every batch, so Python's default warning
    filter shows it once per process.

    Parameters
    ----------
    shape : tuple of int
        The images' ``(H, W)``.
    size : int
        The backbone's input side, ``patch_size``.
    """
    height, width = shape
    how = "resized"
    if size > max(height, width) or size < min(height, width):
        how = "upscaled" if size > height else "downscaled"
    warnings.warn(
        f"the images are {height}x{width} px but patch_size={size}: the pretrained backbone sees them "
        f"{how} to {size}x{size} px; to align them, load the images at {size} px (mmocc train --size "
        f"{size}, or size={size}) or set patch_size={height} (--param patch_size={height})",
        UserWarning,
        stacklevel=2,
    )


def smooth_upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Upsample position scores ``(n, h, w)`` bilinearly to ``size`` and smooth them.

    The Gaussian's sigma is 4 px at 224 px (as in PatchCore), scaled to the
    output size.

    Parameters
    ----------
    maps : Tensor of shape (n, h, w)
        Position scores.
    size : tuple of int
        Output ``(H, W)``.

    Returns
    -------
    Tensor of shape (n, H, W)
        The anomaly maps.
    """
    up = F.interpolate(maps[:, None].float(), size=size, mode="bilinear", align_corners=False)
    sigma = 4.0 * max(size) / 224.0
    radius = max(1, int(round(3 * sigma)))
    grid = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (grid / sigma) ** 2)
    kernel = kernel / kernel.sum()
    up = F.pad(up, (radius, radius, radius, radius), mode="replicate")
    up = F.conv2d(up, kernel.reshape(1, 1, 1, -1))
    up = F.conv2d(up, kernel.reshape(1, 1, -1, 1))
    return up[:, 0]


def input_size_maps(
    parts: Iterable[dict[str, np.ndarray]], sizes: Mapping[str, tuple[int, int]]
) -> dict[str, np.ndarray]:
    """Bring each image view's position scores, batch by batch, to its input size (:func:`smooth_upsample`).

    Parameters
    ----------
    parts : iterable of dict of str to numpy.ndarray
        Per batch, the ``(n, h, w)`` position scores of each view present.
    sizes : mapping of str to (int, int)
        The input ``(H, W)`` of each image view.

    Returns
    -------
    dict of str to numpy.ndarray of shape (n_samples, H, W)
        One map stack per view, batches concatenated.
    """
    chunks: dict[str, list[np.ndarray]] = {}
    for maps_by_view in parts:
        for view, maps in maps_by_view.items():
            chunks.setdefault(view, []).append(smooth_upsample(torch.from_numpy(maps), sizes[view]).numpy())
    return {view: np.concatenate(stack) for view, stack in chunks.items()}
