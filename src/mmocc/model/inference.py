"""Fast inference: a BatchNorm-folded copy of a fitted model, and batched feature extraction.

:func:`inference_model` returns a copy of a fitted
:class:`~mmocc.model.nn.JointAutoencoder` whose layer stacks have every
BatchNorm fused into the preceding convolution or linear layer (torch's
:func:`torch.nn.utils.fusion.fuse_conv_bn_eval` and
:func:`~torch.nn.utils.fusion.fuse_linear_bn_eval`), dropout removed, and, on
a CPU, image stacks run channels-last in cache-sized micro-batches (measured
in ``benchmarks/speed.py``). :func:`extract_features` runs it over arrays in
batches and computes exactly the features a scoring rule asks for.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

from mmocc.data.inputs import ViewSpec
from mmocc.model.device import resolve_amp
from mmocc.model.nn import ArchConfig, JointAutoencoder
from mmocc.model.patches import PatchFeatures
from mmocc.scoring.base import Features

#: Bytes of the largest activation of one micro-batch that :func:`inference_model`
#: aims for on a CPU (measured in ``benchmarks/speed.py``).
CPU_BLOCK_BYTES = 16 * 2**20


def _fused(layer: nn.Conv2d | nn.Linear, bn: nn.BatchNorm1d | nn.BatchNorm2d) -> nn.Module:
    """One layer equal to ``bn(layer(x))`` in eval mode, by torch's fusion formulas.

    BatchNorm without affine parameters takes scale 1 and shift 0 (torch's
    linear fusion does not accept missing ones).
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("BatchNorm without running statistics cannot be folded")
    ones = torch.ones_like(bn.running_var)
    bn_w = bn.weight if bn.weight is not None else ones
    bn_b = bn.bias if bn.bias is not None else torch.zeros_like(ones)
    fused = copy.deepcopy(layer)
    args = (layer.weight, layer.bias, bn.running_mean, bn.running_var, bn.eps, bn_w, bn_b)
    if isinstance(layer, nn.Conv2d):
        fused.weight, fused.bias = fuse_conv_bn_weights(*args)
    else:
        fused.weight, fused.bias = fuse_linear_bn_weights(*args)
    return fused


def fold_batchnorm(layers: nn.Sequential) -> nn.Sequential:
    """Return an inference copy of ``layers`` with every BatchNorm fused away.

    A ``Conv2d`` followed by a ``BatchNorm2d`` (or a ``Linear`` followed by a
    ``BatchNorm1d``) becomes one layer computing what the pair computes in
    eval mode, up to float rounding. Dropout layers, identities at inference,
    are dropped. Every layer of the result is new, so ``layers`` is left
    unchanged.

    Parameters
    ----------
    layers : torch.nn.Sequential
        An encoder or decoder layer stack in eval mode, as built by :mod:`mmocc.model.nn`.

    Returns
    -------
    torch.nn.Sequential
        The folded stack, in eval mode, without gradients.

    Examples
    --------
    >>> from mmocc.model.nn import ImageEncoder
    >>> encoder = ImageEncoder((1, 8, 8), ArchConfig(filters=(8, 4))).eval()
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
        layer, after = mods[i], mods[i + 1] if i + 1 < len(mods) else None
        if (isinstance(layer, nn.Conv2d) and isinstance(after, nn.BatchNorm2d)) or (
            isinstance(layer, nn.Linear) and isinstance(after, nn.BatchNorm1d)
        ):
            out.append(_fused(layer, after))
            i += 2
        else:
            if not isinstance(layer, nn.Dropout):
                out.append(copy.deepcopy(layer))
            i += 1
    folded = nn.Sequential(*out).eval()
    folded.requires_grad_(False)
    return folded


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
        if self.channels_last:
            layers = layers.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.layers = layers
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
    kinds: dict[str, ViewSpec] = {}
    for spec in model.specs:
        kinds.setdefault(model.view_group[spec.name], spec)
    for group, spec in kinds.items():
        image = spec.kind == "image"
        micro = _micro_batch(spec, model.arch, block_bytes) if image and block_bytes is not None else None
        for stacks in (fast.encoders, fast.decoders):
            stack = stacks[group]
            out_shape = getattr(stack, "out_shape", spec.shape)
            layers = stack.layers
            assert isinstance(layers, nn.Sequential)
            stacks[group] = InferenceStack(
                fold_batchnorm(layers),
                out_shape,
                channels_last=channels_last and image,
                micro_batch=micro,
            )
    return fast


def for_device(model: JointAutoencoder, device: torch.device) -> JointAutoencoder:
    """Return the inference copy suited to ``device``.

    On a CPU, image stacks run channels-last in cache-sized micro-batches;
    elsewhere whole batches run in the default memory format. Building the
    copy takes milliseconds, so callers rebuild it per call rather than cache it.

    Parameters
    ----------
    model : JointAutoencoder
        The fitted model, on ``device``.
    device : torch.device
        Where it runs.

    Returns
    -------
    JointAutoencoder
        The copy.
    """
    if device.type == "cpu":
        return inference_model(model)
    return inference_model(model, channels_last=False, block_bytes=None)


def _to_device(array: np.ndarray, device: torch.device, pin: bool) -> Tensor:
    """Move a host array to ``device`` (uint8 stays uint8; pinned, asynchronous copy when ``pin``)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if pin:
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


FeatureTensors = dict[str, dict[str, Tensor]]
"""One batch's features as tensors, ``{kind: {view: Tensor}}`` (:data:`mmocc.scoring.FEATURE_KINDS`)."""


def feature_tensors(
    model: JointAutoencoder,
    batch: dict[str, Tensor],
    needs: frozenset[str],
    patch_maps: Callable[[JointAutoencoder, str, Tensor], Tensor] | None = None,
) -> FeatureTensors:
    """Compute the features ``needs`` names for one batch, as tensors.

    This is the computation both :func:`extract_features` (batch by batch,
    to numpy) and the ONNX export (:class:`mmocc.export.graph.DetectorGraph`,
    traced) run. The network runs only when latents or reconstructions are
    needed, and decodes only for reconstructions.

    Parameters
    ----------
    model : JointAutoencoder
        The (inference copy of the) fitted model.
    batch : dict of str to Tensor
        Raw batches of the views present.
    needs : frozenset of str
        Any of :data:`mmocc.scoring.FEATURE_KINDS`.
    patch_maps : callable, optional
        ``(model, view, raw) -> (n, C, h, w)`` patch features of an image
        view (a :class:`~mmocc.model.patches.PatchFeatures` or its
        ``batch_maps``); needed for ``"patch"``.

    Returns
    -------
    FeatureTensors
        The features, one dict of per-view tensors per kind needed.
    """
    feats: FeatureTensors = {}
    decode = bool(needs & {"recon", "recon_map"})
    if decode or "latent" in needs:
        out = model(batch, decode=decode)
        if "latent" in needs:
            feats["latent"] = out.latents
        if out.recons is not None:
            squared = {name: (out.recons[name].float() - x.float()).pow(2) for name, x in out.inputs.items()}
            if "recon" in needs:
                feats["recon"] = {name: s.flatten(1).sum(dim=1) for name, s in squared.items()}
            if "recon_map" in needs:
                feats["recon_map"] = {name: s.sum(dim=1) for name, s in squared.items() if s.ndim == 4}
    if "patch" in needs:
        if patch_maps is None:
            raise ValueError("patch features need a patch feature source")
        feats["patch"] = {k: patch_maps(model, k, v).float() for k, v in batch.items() if v.ndim == 4}
    if "input" in needs:
        feats["input"] = {k: model.scaler(k).unit(v).flatten(1) for k, v in batch.items()}
    return feats


def extract_features(
    model: JointAutoencoder,
    views: dict[str, np.ndarray],
    needs: frozenset[str],
    *,
    batch_size: int,
    amp: bool | str = False,
    patches: PatchFeatures | None = None,
) -> Iterator[Features]:
    """Yield the features a scoring rule needs, one batch of samples at a time.

    Parameters
    ----------
    model : JointAutoencoder
        The fitted model (its inference copy is built here).
    views : dict of str to numpy.ndarray
        Raw arrays in canonical layout: all of the model's views, or a subset.
    needs : frozenset of str
        Any of :data:`mmocc.scoring.FEATURE_KINDS`: ``"latent"`` (per-view
        latents), ``"recon"`` (reconstruction error per view),
        ``"recon_map"`` (per-pixel error of image views), ``"input"`` (the
        inputs scaled to [0, 1], flattened) and ``"patch"`` (local features
        of image views). The network runs only when latents or
        reconstructions are needed, and decodes only for reconstructions.
    batch_size : int
        Samples per batch; bounds memory.
    amp : {False, True, "auto"}, default False
        bf16 autocast when True, where the device computes bf16 natively
        (CUDA; CPUs with AVX512-BF16 or AMX): the encoders and a pretrained
        backbone run under it, features come back in float32. ``"auto"``
        (the estimator's default, which autocasts training only) scores in
        float32.
    patches : PatchFeatures, optional
        The patch feature source; needed for ``"patch"``.

    Yields
    ------
    Features
        The features of consecutive batches.
    """
    device = next(model.parameters()).device
    fast = for_device(model, device)
    use_amp = amp is True and resolve_amp(True, device)
    pin = device.type == "cuda"
    if "patch" in needs and patches is None:
        raise ValueError("patch features need a patch feature source")
    n = len(next(iter(views.values())))
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            batch = {k: _to_device(v[start : start + batch_size], device, pin) for k, v in views.items()}
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                tensors = feature_tensors(fast, batch, needs, patches)
            yield _as_features(tensors)


def _as_features(tensors: FeatureTensors) -> Features:
    """Copy a batch's feature tensors to float32 numpy arrays, in :class:`Features`."""

    def arrays(kind: str) -> dict[str, np.ndarray]:
        return {view: values.float().cpu().numpy() for view, values in tensors.get(kind, {}).items()}

    return Features(
        latents=arrays("latent"),
        inputs=arrays("input"),
        recons=arrays("recon"),
        recon_maps=arrays("recon_map"),
        patches=arrays("patch"),
    )
