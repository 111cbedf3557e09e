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

import copy
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


class InputScaler(nn.Module):
    """Per-view input scaling held as buffers.

    ``unit(x) = x * gain - shift`` maps uint8 to [0, 1] (``gain = 1/255``)
    and min-max scales floats; ``forward(x) = (unit(x) - mean) / std`` then
    standardizes per channel (images) or per feature (vectors).

    Parameters
    ----------
    stat_shape : tuple of int
        Broadcast shape of ``mean`` and ``std`` for one sample.
    """

    def __init__(self, stat_shape: Sequence[int]) -> None:
        super().__init__()
        self.register_buffer("gain", torch.ones(()))
        self.register_buffer("shift", torch.zeros(()))
        self.register_buffer("mean", torch.zeros(tuple(stat_shape)))
        self.register_buffer("std", torch.ones(tuple(stat_shape)))

    def unit(self, x: Tensor) -> Tensor:
        """Map a raw batch to float32 in [0, 1] (by training statistics)."""
        return x.to(torch.float32) * self.gain - self.shift

    def forward(self, x: Tensor) -> Tensor:
        """Scale a raw batch to float32 model input."""
        return (self.unit(x) - self.mean) / self.std


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


class JointAutoencoder(nn.Module):
    """Joint multiview autoencoder over N >= 1 named views.

    Parameters
    ----------
    specs : sequence of ViewSpec
        Views in their fixed order; the order defines the layout of phi.
    arch : ArchConfig
        Architecture hyper-parameters.
    """

    def __init__(self, specs: Sequence[ViewSpec], arch: ArchConfig) -> None:
        super().__init__()
        if not specs:
            raise ValueError("the model needs at least one view")
        self.specs = list(specs)
        self.arch = arch
        self.view_group = group_views(self.specs, arch.shared_weights)
        self.encoders = nn.ModuleDict()
        self.decoders = nn.ModuleDict()
        self.scalers = nn.ModuleDict()
        for spec in self.specs:
            group = self.view_group[spec.name]
            if spec.kind == "image":
                self.scalers[spec.name] = InputScaler((spec.shape[0], 1, 1))
            else:
                self.scalers[spec.name] = InputScaler(spec.shape)
            if group in self.encoders:
                continue
            if spec.kind == "image":
                encoder = ImageEncoder(spec.shape, arch)
                self.encoders[group] = encoder
                self.decoders[group] = ImageDecoder(encoder, spec.shape[0], arch)
            else:
                self.encoders[group] = VectorEncoder(spec.shape[0], arch)
                self.decoders[group] = VectorDecoder(spec.shape[0], arch)

    def latent_dims(self) -> dict[str, int]:
        """Flattened latent width of each view, in view order."""
        out = {}
        for spec in self.specs:
            shape = self.encoders[self.view_group[spec.name]].out_shape
            width = 1
            for s in shape:
                width *= s
            out[spec.name] = width
        return out

    def encoder_of(self, name: str) -> nn.Module:
        """Return the encoder used by view ``name``."""
        return self.encoders[self.view_group[name]]

    def forward(self, views: dict[str, Tensor], *, decode: bool = True, scaled: bool = False) -> JointOutput:
        """Encode (and optionally decode) a batch of views.

        Parameters
        ----------
        views : dict of str to Tensor
            Raw batches (uint8 or float), one per view of ``specs``.
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
        for spec in self.specs:
            x = views[spec.name] if scaled else self.scalers[spec.name](views[spec.name])
            inputs[spec.name] = x
            z = self.encoders[self.view_group[spec.name]](x)
            maps[spec.name] = z
            latents[spec.name] = z.flatten(1)
        if decode:
            for spec in self.specs:
                recons[spec.name] = self.decoders[self.view_group[spec.name]](maps[spec.name])
        phi = torch.cat([latents[spec.name] for spec in self.specs], dim=1)
        return JointOutput(phi=phi, latents=latents, inputs=inputs, recons=recons if decode else None)


# ------------------------------------------------------------------ inference
def fold_batchnorm(layers: nn.Sequential) -> nn.Sequential:
    """Return an inference copy of ``layers`` with every BatchNorm folded away.

    A ``Conv2d`` followed by a ``BatchNorm2d`` (or a ``Linear`` followed by a
    ``BatchNorm1d``) becomes one layer with weight ``W * s`` and bias
    ``(b - running_mean) * s + beta``, where
    ``s = gamma / sqrt(running_var + eps)``; this is exactly what the pair
    computes in eval mode, up to float rounding. Dropout layers, identities at
    inference, are dropped. Every layer of the result is new, so ``layers``
    is left unchanged.

    Parameters
    ----------
    layers : torch.nn.Sequential
        An encoder or decoder layer stack, as built by this module.

    Returns
    -------
    torch.nn.Sequential
        The folded stack, in eval mode, without gradients.

    Examples
    --------
    >>> arch = ArchConfig(filters=(8, 4))
    >>> encoder = ImageEncoder((1, 8, 8), arch).eval()
    >>> folded = fold_batchnorm(encoder.layers)
    >>> [type(m).__name__ for m in folded]
    ['Conv2d', 'ReLU', 'MaxPool2d', 'Conv2d', 'ReLU', 'MaxPool2d']
    >>> x = torch.rand(2, 1, 8, 8)
    >>> bool(torch.allclose(folded(x), encoder(x), atol=1e-6))
    True
    """
    mods = list(layers)
    out: list[nn.Module] = []
    i = 0
    while i < len(mods):
        layer = mods[i]
        after = mods[i + 1] if i + 1 < len(mods) else None
        foldable = (isinstance(layer, nn.Conv2d) and isinstance(after, nn.BatchNorm2d)) or (
            isinstance(layer, nn.Linear) and isinstance(after, nn.BatchNorm1d)
        )
        if foldable and after.running_mean is not None:
            out.append(_folded(layer, after))
            i += 2
            continue
        if not isinstance(layer, nn.Dropout):
            out.append(copy.deepcopy(layer))
        i += 1
    folded = nn.Sequential(*out).eval()
    folded.requires_grad_(False)
    return folded


def _folded(layer: nn.Conv2d | nn.Linear, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> nn.Module:
    """One conv or linear layer equal to ``bn(layer(x))`` in eval mode (float64 arithmetic).

    The new layer is built with ``skip_init``, so the global RNG is not touched.
    """
    weight = layer.weight.detach()
    dtype, device = weight.dtype, weight.device
    var = bn.running_var.detach().double()
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double()
    bias = -bn.running_mean.detach().double() * scale
    if layer.bias is not None:
        bias = bias + layer.bias.detach().double() * scale
    if bn.bias is not None:
        bias = bias + bn.bias.detach().double()
    if isinstance(layer, nn.Conv2d):
        new: nn.Module = torch.nn.utils.skip_init(
            nn.Conv2d,
            layer.in_channels,
            layer.out_channels,
            kernel_size=layer.kernel_size,
            stride=layer.stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=layer.groups,
            bias=True,
            padding_mode=layer.padding_mode,
            device=device,
            dtype=dtype,
        )
        shape = (-1, 1, 1, 1)
    else:
        new = torch.nn.utils.skip_init(
            nn.Linear, layer.in_features, layer.out_features, bias=True, device=device, dtype=dtype
        )
        shape = (-1, 1)
    with torch.no_grad():
        new.weight.copy_((weight.double() * scale.reshape(shape)).to(dtype))
        new.bias.copy_(bias.to(dtype))
    return new


class InferenceStack(nn.Module):
    """A folded layer stack run in cache-sized micro-batches, optionally channels-last.

    On a CPU the activations of a large batch (a 256-image batch of 64x32x32
    float maps is 64 MiB) do not fit in the caches, and the elementwise
    passes (ReLU, max-pool, upsample) become memory-bound. Running the whole
    stack on one small micro-batch after another keeps each micro-batch's
    activations in cache. Every sample is computed independently (eval-mode
    BatchNorm is folded into the weights), so the result does not depend on
    the micro-batch size beyond float rounding.

    Parameters
    ----------
    layers : torch.nn.Sequential
        The stack, usually from :func:`fold_batchnorm`.
    out_shape : tuple of int
        Per-sample output shape of the stack (kept for
        :meth:`JointAutoencoder.latent_dims`).
    channels_last : bool, default False
        Run 4-D inputs in ``torch.channels_last`` memory format; outputs are
        returned contiguous.
    micro_batch : int or None, default None
        Largest number of samples run through the stack at once; None runs the
        whole batch.
    """

    def __init__(
        self,
        layers: nn.Sequential,
        out_shape: Sequence[int],
        *,
        channels_last: bool = False,
        micro_batch: int | None = None,
    ) -> None:
        super().__init__()
        self.channels_last = bool(channels_last)
        # The weights too: a one-channel input is both contiguous and channels-last,
        # and then the weight's format decides the format of the conv's output.
        self.layers = layers.to(memory_format=torch.channels_last) if self.channels_last else layers
        self.out_shape = tuple(out_shape)
        self.micro_batch = None if micro_batch is None else max(1, int(micro_batch))

    def _run(self, x: Tensor) -> Tensor:
        if self.channels_last and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
            return self.layers(x).contiguous()
        return self.layers(x)

    def forward(self, x: Tensor) -> Tensor:
        """Apply the stack to a batch, one micro-batch at a time."""
        if self.micro_batch is None or len(x) <= self.micro_batch:
            return self._run(x)
        return torch.cat([self._run(part) for part in x.split(self.micro_batch)])


#: Bytes of the largest activation of one micro-batch that :func:`inference_model`
#: aims for on a CPU (measured in ``benchmarks/speed.py``).
CPU_BLOCK_BYTES = 16 * 2**20


def _micro_batch(spec: ViewSpec, arch: ArchConfig, block_bytes: int) -> int:
    """Return the samples per micro-batch that keep the widest activation of a view within ``block_bytes``."""
    channels, height, width = spec.shape
    widest = max((channels, *arch.filters)) * height * width * 4
    return max(1, block_bytes // widest)


def inference_model(
    model: JointAutoencoder,
    *,
    channels_last: bool = True,
    block_bytes: int | None = CPU_BLOCK_BYTES,
) -> JointAutoencoder:
    """Return a copy of a fitted model optimised for inference.

    Every encoder and decoder is replaced by an :class:`InferenceStack`:
    BatchNorm folded into the preceding layer, dropout removed, image stacks
    in channels-last format and run in micro-batches. Scaling, view order and
    outputs are those of ``model``; results agree with ``model.eval()`` to
    float rounding. ``model`` itself is not changed.

    Parameters
    ----------
    model : JointAutoencoder
        The fitted model.
    channels_last : bool, default True
        Channels-last memory format for image stacks.
    block_bytes : int or None, default :data:`CPU_BLOCK_BYTES`
        Target size of the widest activation of one image micro-batch; None
        runs whole batches (the better choice on a GPU).

    Returns
    -------
    JointAutoencoder
        The optimised copy, in eval mode, without gradients.
    """
    fast = copy.deepcopy(model).eval()
    fast.requires_grad_(False)
    kinds = {}
    for spec in model.specs:
        kinds.setdefault(model.view_group[spec.name], spec)
    for group, spec in kinds.items():
        image = spec.kind == "image"
        micro = _micro_batch(spec, model.arch, block_bytes) if image and block_bytes is not None else None
        for stacks in (fast.encoders, fast.decoders):
            stack = stacks[group]
            out_shape = getattr(stack, "out_shape", spec.shape)
            stacks[group] = InferenceStack(
                fold_batchnorm(stack.layers),
                out_shape,
                channels_last=channels_last and image,
                micro_batch=micro,
            )
    return fast
