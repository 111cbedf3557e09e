"""PyTorch modules: per-view encoders/decoders and the joint multiview model.

The modules here hold no training logic, so a fitted :class:`JointAutoencoder`
can be exported and used on its own. Input scaling (uint8 to [0, 1] and the
per-view statistics learned at fit time) lives in the model as buffers, so the
exported module takes raw arrays.

Architecture (Laakom et al., 2023): an image encoder is a stack of blocks
``conv 3x3 -> BatchNorm -> ReLU -> MaxPool 2x2 -> Dropout``; the decoder mirrors
it with ``conv 3x3 -> BatchNorm -> ReLU -> upsample`` blocks and a final linear
``conv 3x3`` back to the input channels. Vector views use an MLP of
``Linear -> BatchNorm -> ReLU -> Dropout`` layers. The joint latent phi is the
concatenation of the flattened encoder outputs in view order (eq. 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mmocc.data.inputs import ViewSpec


@dataclass(frozen=True)
class ArchConfig:
    """Hyper-parameters of the joint autoencoder.

    Parameters
    ----------
    filters : tuple of int
        Output channels of each image encoder block; its length is the number
        of pooling blocks.
    hidden : tuple of int
        Hidden widths of the vector-view MLP encoder.
    vector_latent : int
        Latent width of a vector view.
    dropout : float
        Dropout rate after each encoder block.
    shared_weights : bool or "auto"
        ``True`` shares one encoder/decoder among all views (they must have the
        same shape); ``False`` gives each view its own; ``"auto"`` shares among
        views of identical shape.
    bias : bool
        Whether convolutions and linear layers of the encoder have biases.
    bn_affine : bool
        Whether BatchNorm layers have learnable scale and shift.
    """

    filters: tuple[int, ...] = (64, 32, 16)
    hidden: tuple[int, ...] = (128,)
    vector_latent: int = 32
    dropout: float = 0.0
    shared_weights: bool | str = True
    bias: bool = True
    bn_affine: bool = True


def _conv_block(c_in: int, c_out: int, *, bias: bool, bn_affine: bool) -> list[nn.Module]:
    return [
        nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=bias),
        nn.BatchNorm2d(c_out, affine=bn_affine),
        nn.ReLU(inplace=True),
    ]


class ImageEncoder(nn.Module):
    """Convolutional encoder: blocks of conv, BatchNorm, ReLU, max-pool, dropout.

    Parameters
    ----------
    shape : tuple of int
        Input shape ``(C, H, W)``.
    arch : ArchConfig
        Filters, dropout, bias and BatchNorm settings.

    Raises
    ------
    ValueError
        If the image is too small for the number of pooling blocks.
    """

    def __init__(self, shape: Sequence[int], arch: ArchConfig) -> None:
        super().__init__()
        channels, height, width = (int(s) for s in shape)
        blocks = len(arch.filters)
        if blocks == 0:
            raise ValueError("filters must name at least one encoder block")
        if min(height, width) < 2**blocks:
            raise ValueError(
                f"image of size {height}x{width} is too small for {blocks} pooling blocks "
                f"(needs at least {2**blocks}x{2**blocks}); use fewer filters or larger images"
            )
        layers: list[nn.Module] = []
        c_in = channels
        self.sizes: list[tuple[int, int]] = []
        for c_out in arch.filters:
            self.sizes.append((height, width))
            layers += _conv_block(c_in, c_out, bias=arch.bias, bn_affine=arch.bn_affine)
            layers += [nn.MaxPool2d(2), nn.Dropout(arch.dropout)]
            c_in, height, width = c_out, height // 2, width // 2
        self.layers = nn.Sequential(*layers)
        self.out_shape = (c_in, height, width)

    def forward(self, x: Tensor) -> Tensor:
        """Encode ``(n, C, H, W)`` images to ``(n, C', H', W')`` feature maps."""
        return self.layers(x)


class ImageDecoder(nn.Module):
    """Mirror of :class:`ImageEncoder`: conv, BatchNorm, ReLU, upsample blocks.

    Parameters
    ----------
    encoder : ImageEncoder
        The encoder to mirror; its recorded sizes make odd sizes round-trip.
    out_channels : int
        Channels of the reconstructed image.
    arch : ArchConfig
        Filters and BatchNorm settings.
    """

    def __init__(self, encoder: ImageEncoder, out_channels: int, arch: ArchConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = encoder.out_shape[0]
        for c_out, size in zip(reversed(arch.filters), reversed(encoder.sizes), strict=True):
            layers += _conv_block(c_in, c_out, bias=True, bn_affine=True)
            layers.append(nn.Upsample(size=size, mode="nearest"))
            c_in = c_out
        layers.append(nn.Conv2d(c_in, out_channels, kernel_size=3, padding=1))
        self.layers = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """Decode feature maps back to ``(n, C, H, W)`` images."""
        return self.layers(z)


class VectorEncoder(nn.Module):
    """MLP encoder for ``(n, d)`` feature vectors.

    Parameters
    ----------
    dim : int
        Input width ``d``.
    arch : ArchConfig
        Hidden widths, latent width, dropout, bias and BatchNorm settings.
    """

    def __init__(self, dim: int, arch: ArchConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d_in = dim
        for width in arch.hidden:
            layers += [
                nn.Linear(d_in, width, bias=arch.bias),
                nn.BatchNorm1d(width, affine=arch.bn_affine),
                nn.ReLU(inplace=True),
                nn.Dropout(arch.dropout),
            ]
            d_in = width
        layers.append(nn.Linear(d_in, arch.vector_latent, bias=arch.bias))
        self.layers = nn.Sequential(*layers)
        self.out_shape = (arch.vector_latent,)

    def forward(self, x: Tensor) -> Tensor:
        """Encode ``(n, d)`` vectors to ``(n, vector_latent)``."""
        return self.layers(x)


class VectorDecoder(nn.Module):
    """MLP decoder mirroring :class:`VectorEncoder`.

    Parameters
    ----------
    dim : int
        Output width ``d``.
    arch : ArchConfig
        Hidden widths and latent width.
    """

    def __init__(self, dim: int, arch: ArchConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d_in = arch.vector_latent
        for width in reversed(arch.hidden):
            layers += [nn.Linear(d_in, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
            d_in = width
        layers.append(nn.Linear(d_in, dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        """Decode latents back to ``(n, d)`` vectors."""
        return self.layers(z)


INPUT_CLIP = 1e6
"""Bound on scaled input values. Training values scale to [0, 1] (standardized: at most the
square root of the number of values a statistic is taken over), so the bound changes nothing
there; a scoring value a million training ranges out, or 1e30, is clipped to it and gets a
very high but finite score instead of an overflow to inf or NaN in float32."""


class InputScaler(nn.Module):
    """Per-view input scaling held as buffers.

    ``unit(x) = x * gain - shift`` maps uint8 to [0, 1] (``gain = 1/255``)
    and min-max scales other dtypes by their training range;
    ``forward(x) = (unit(x) - mean) / std`` then standardizes per channel
    (images) or per feature (vectors). With float64 ``gain`` and ``shift``,
    ``unit`` computes in float64 for every input dtype but uint8, so values
    with a large offset (``1e8 + noise``) keep their variation; the result is
    float32 either way. Both outputs are clipped to +-:data:`INPUT_CLIP`.

    Parameters
    ----------
    stat_shape : tuple of int
        Broadcast shape of ``mean`` and ``std`` for one sample.
    dtype : torch.dtype, default torch.float32
        dtype of ``gain`` and ``shift``: float64 for views fitted on other
        dtypes than uint8 (:func:`scale_dtype`).
    """

    gain: Tensor
    shift: Tensor
    mean: Tensor
    std: Tensor

    def __init__(self, stat_shape: Sequence[int], dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.register_buffer("gain", torch.ones((), dtype=dtype))
        self.register_buffer("shift", torch.zeros((), dtype=dtype))
        self.register_buffer("mean", torch.zeros(tuple(stat_shape)))
        self.register_buffer("std", torch.ones(tuple(stat_shape)))

    def unit(self, x: Tensor) -> Tensor:
        """Map a raw batch to float32 in [0, 1] (by training statistics), clipped to +-:data:`INPUT_CLIP`."""
        if x.dtype == torch.uint8:
            return x.to(torch.float32) * self.gain.to(torch.float32) - self.shift.to(torch.float32)
        unit = (x.to(self.gain.dtype) * self.gain - self.shift).clamp(-INPUT_CLIP, INPUT_CLIP)
        return unit.to(torch.float32)

    def forward(self, x: Tensor) -> Tensor:
        """Scale a raw batch to float32 model input, clipped to +-:data:`INPUT_CLIP`."""
        return ((self.unit(x) - self.mean) / self.std).clamp(-INPUT_CLIP, INPUT_CLIP)


def scale_dtype(spec: ViewSpec) -> torch.dtype:
    """Return the dtype of a view's ``gain`` and ``shift``: float64 for a recorded dtype other than uint8.

    uint8 views are scaled by the exact 1/255 in float32. Specs without a
    recorded dtype come from model files written before float64 scaling and
    keep float32, so that those files load and score as before.

    Parameters
    ----------
    spec : ViewSpec
        The view.

    Returns
    -------
    torch.dtype
        ``torch.float64`` or ``torch.float32``.

    Examples
    --------
    >>> scale_dtype(ViewSpec("size", "vector", (2,), "float64"))
    torch.float64
    >>> scale_dtype(ViewSpec("size", "vector", (2,)))  # no recorded dtype: an older model file
    torch.float32
    """
    return torch.float64 if spec.dtype not in (None, "uint8") else torch.float32


RESERVED_KEY_PREFIX = "view#"
"""Module keys of views whose names torch cannot use as keys are ``view#<position>``."""


def _own_key(name: str, probe: nn.ModuleDict) -> bool:
    """Whether ``name`` can be its own key in ``probe`` (an empty ModuleDict) and is not a reserved key."""
    reserved = name.startswith(RESERVED_KEY_PREFIX) or hasattr(probe, name)
    return bool(name) and "." not in name and not reserved


def module_keys(names: Sequence[str]) -> dict[str, str]:
    """Key of each view in a :class:`torch.nn.ModuleDict`.

    A name torch accepts as a module key is its own key, so state-dict names
    stay ``scalers.<view>.*``. A name it refuses (empty, with a ``.``, or an
    attribute of ``nn.ModuleDict`` such as ``keys`` or ``type``) gets the
    positional key ``view#<i>``; names starting with ``view#`` do too, so no
    two views share a key.

    Parameters
    ----------
    names : sequence of str
        The view names, in order.

    Returns
    -------
    dict of str to str
        View name to module key.

    Examples
    --------
    >>> module_keys(["left", "cam.right", "keys"])
    {'left': 'left', 'cam.right': 'view#1', 'keys': 'view#2'}
    """
    probe = nn.ModuleDict()
    return {
        name: name if _own_key(name, probe) else f"{RESERVED_KEY_PREFIX}{i}" for i, name in enumerate(names)
    }


def group_views(specs: Sequence[ViewSpec], shared_weights: bool | str) -> dict[str, str]:
    """Assign each view to a weight group.

    Parameters
    ----------
    specs : sequence of ViewSpec
        The views, in order.
    shared_weights : bool or "auto"
        The sharing policy (see :class:`ArchConfig`).

    Returns
    -------
    dict of str to str
        View name to group name; views in one group share encoder and decoder.

    Raises
    ------
    ValueError
        If ``shared_weights=True`` and the views differ in kind or shape, or
        the policy is unknown.
    """
    if shared_weights is True:
        first = specs[0]
        for spec in specs[1:]:
            if (spec.kind, spec.shape) != (first.kind, first.shape):
                raise ValueError(
                    f"shared_weights=True needs views of identical shape, but view {spec.name!r} is "
                    f"{spec.kind} {spec.shape} and view {first.name!r} is {first.kind} {first.shape}; "
                    "use shared_weights='auto' or False"
                )
        return {spec.name: "shared" for spec in specs}
    if shared_weights is False:
        return {spec.name: f"view_{i}" for i, spec in enumerate(specs)}
    if shared_weights == "auto":
        groups: dict[tuple, str] = {}
        out = {}
        for spec in specs:
            key = (spec.kind, spec.shape)
            groups.setdefault(key, f"group_{len(groups)}")
            out[spec.name] = groups[key]
        return out
    raise ValueError(f"shared_weights must be True, False or 'auto', got {shared_weights!r}")


@dataclass
class JointOutput:
    """What one forward pass of :class:`JointAutoencoder` returns.

    Attributes
    ----------
    phi : Tensor
        Joint latent ``(n, D)``: flattened per-view latents concatenated.
    latents : dict of str to Tensor
        Flattened latent of each view.
    inputs : dict of str to Tensor
        Scaled inputs (the reconstruction targets).
    recons : dict of str to Tensor or None
        Reconstructions, or None when decoding was skipped.
    """

    phi: Tensor
    latents: dict[str, Tensor]
    inputs: dict[str, Tensor]
    recons: dict[str, Tensor] | None


def _image_encoder(spec: ViewSpec, arch: ArchConfig) -> ImageEncoder:
    """Build the encoder of an image view; a ValueError (image too small) names the view."""
    try:
        return ImageEncoder(spec.shape, arch)
    except ValueError as exc:
        raise ValueError(f"view {spec.name!r}: {exc}") from None


class JointAutoencoder(nn.Module):
    """Joint multiview autoencoder over N >= 1 named views.

    Parameters
    ----------
    specs : sequence of ViewSpec
        Views in their fixed order; the order defines the layout of phi.
    arch : ArchConfig
        Architecture hyper-parameters.

    Attributes
    ----------
    scaler_keys : dict of str to str
        Key of each view's :class:`InputScaler` in ``scalers`` (see
        :func:`module_keys`); use :meth:`scaler` rather than ``scalers``.
    """

    def __init__(self, specs: Sequence[ViewSpec], arch: ArchConfig) -> None:
        super().__init__()
        if not specs:
            raise ValueError("the model needs at least one view")
        self.specs = list(specs)
        self.arch = arch
        self.view_group = group_views(self.specs, arch.shared_weights)
        self.scaler_keys = module_keys([spec.name for spec in self.specs])
        self.encoders = nn.ModuleDict()
        self.decoders = nn.ModuleDict()
        self.scalers = nn.ModuleDict()
        for spec in self.specs:
            group = self.view_group[spec.name]
            stat_shape = (spec.shape[0], 1, 1) if spec.kind == "image" else spec.shape
            self.scalers[self.scaler_keys[spec.name]] = InputScaler(stat_shape, scale_dtype(spec))
            if group in self.encoders:
                continue
            if spec.kind == "image":
                encoder = _image_encoder(spec, arch)
                self.encoders[group] = encoder
                self.decoders[group] = ImageDecoder(encoder, spec.shape[0], arch)
            else:
                self.encoders[group] = VectorEncoder(spec.shape[0], arch)
                self.decoders[group] = VectorDecoder(spec.shape[0], arch)

    def bottleneck_units(self) -> dict[str, int]:
        """Units (channels, or latent width of a vector view) of each view's bottleneck, in view order."""
        return {spec.name: self.out_shape_of(spec.name)[0] for spec in self.specs}

    def latent_dims(self) -> dict[str, int]:
        """Flattened latent width of each view, in view order."""
        return {spec.name: math.prod(self.out_shape_of(spec.name)) for spec in self.specs}

    def out_shape_of(self, name: str) -> tuple[int, ...]:
        """Per-sample shape of the encoder output of view ``name``."""
        shape: tuple[int, ...] = self.encoder_of(name).out_shape
        return shape

    def scaler(self, name: str) -> InputScaler:
        """Return the input scaler of view ``name``."""
        scaler = self.scalers[self.scaler_keys[name]]
        assert isinstance(scaler, InputScaler)
        return scaler

    def encoder_of(self, name: str) -> ImageEncoder | VectorEncoder:
        """Return the encoder of view ``name`` (or its inference stack, which has the same ``out_shape``)."""
        return self.encoders[self.view_group[name]]  # type: ignore[return-value]

    def forward(self, views: dict[str, Tensor], *, decode: bool = True, scaled: bool = False) -> JointOutput:
        """Encode (and optionally decode) a batch of views.

        Parameters
        ----------
        views : dict of str to Tensor
            Raw batches (uint8 or float), one per view of ``specs``; a subset
            of the views gives the outputs of those views only (then phi is
            the concatenation of the views present, not the joint latent).
        decode : bool, default True
            Also compute reconstructions.
        scaled : bool, default False
            The batches are already scaled (skip :class:`InputScaler`).

        Returns
        -------
        JointOutput
            phi, per-view latents, scaled inputs and reconstructions.
        """
        inputs: dict[str, Tensor] = {}
        latents: dict[str, Tensor] = {}
        recons: dict[str, Tensor] = {}
        maps: dict[str, Tensor] = {}
        present = [spec for spec in self.specs if spec.name in views]
        for spec in present:
            x = views[spec.name] if scaled else self.scaler(spec.name)(views[spec.name])
            inputs[spec.name] = x
            z = self.encoders[self.view_group[spec.name]](x)
            maps[spec.name] = z
            latents[spec.name] = z.flatten(1)
        if decode:
            for spec in present:
                recons[spec.name] = self.decoders[self.view_group[spec.name]](maps[spec.name])
        phi = torch.cat([latents[spec.name] for spec in present], dim=1)
        return JointOutput(phi=phi, latents=latents, inputs=inputs, recons=recons if decode else None)
