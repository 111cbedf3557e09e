"""The training engine of the joint autoencoder, apart from the estimator.

:func:`fit_autoencoder` runs the epochs: shuffled mini-batches, consistent
augmentation of the image views, the :class:`~mmocc.model.losses.JointLoss`,
Adam with an optional cosine schedule. Image stacks train in channels-last
memory format (1.6x as fast as NCHW on a 2-core CPU; the float rounding
differs), under bf16 autocast where the device computes bf16 natively
(:func:`~mmocc.model.device.resolve_amp`). What happens between epochs (a progress bar, early stopping) is a
:class:`Callback`, not a branch in the loop. :func:`fit_scalers` learns the
input scaling and :func:`initial_center` the Deep SVDD centre before
training. :func:`fit_joint_model` is the whole set-up the estimator runs:
build the model from seeded weights, fit its scaling, fix the centre, build
the loss and the callbacks, train.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmocc.data.inputs import ViewSpec
from mmocc.model.augment import augment_views
from mmocc.model.device import resolve_amp
from mmocc.model.hyperparams import HyperParams
from mmocc.model.inference import for_device
from mmocc.model.losses import JointLoss
from mmocc.model.nn import JointAutoencoder

History = list[dict[str, float]]
"""Per-epoch records: ``epoch``, ``loss``, ``compactness``, ``reconstruction``,
``diversity``, ``lr`` and ``seconds``."""

CENTER_EPS = 0.1
"""Coordinates of the initial centre closer to 0 than this are pushed to +-CENTER_EPS (Deep SVDD)."""


class Callback:
    """Hooks called by :func:`fit_autoencoder`; the base class does nothing."""

    def on_train_begin(self, epochs: int) -> None:
        """Call before the first epoch with the number of epochs planned."""

    def on_epoch_end(self, history: History) -> bool:
        """Call after each epoch; return True to stop training."""
        return False

    def on_train_end(self) -> None:
        """Call once training has ended (also after an early stop)."""


class ProgressBar(Callback):
    """A tqdm progress bar over epochs, showing the epoch loss."""

    def __init__(self) -> None:
        self.bar: Any = None

    def on_train_begin(self, epochs: int) -> None:
        """Open the bar."""
        self.bar = tqdm(total=epochs, desc="training", unit="epoch")

    def on_epoch_end(self, history: History) -> bool:
        """Advance the bar by one epoch."""
        self.bar.set_postfix(loss=f"{history[-1]['loss']:.4g}", refresh=False)
        self.bar.update(1)
        return False

    def on_train_end(self) -> None:
        """Close the bar."""
        self.bar.close()


class EarlyStopping(Callback):
    """Stop once the epoch loss improved by less than ``tol`` (relative) over ``window`` epochs.

    Parameters
    ----------
    tol : float
        Smallest relative improvement that keeps training going.
    window : int, default 3
        Epochs over which the improvement is measured.

    Examples
    --------
    >>> stop = EarlyStopping(0.01, window=2)
    >>> stop.on_epoch_end([{"loss": 1.0}, {"loss": 0.5}, {"loss": 0.499}])
    False
    >>> stop.on_epoch_end([{"loss": 1.0}, {"loss": 0.5}, {"loss": 0.499}, {"loss": 0.498}])
    True
    """

    def __init__(self, tol: float, window: int = 3) -> None:
        self.tol = float(tol)
        self.window = int(window)

    def on_epoch_end(self, history: History) -> bool:
        """Return True when the loss has stalled."""
        if len(history) <= self.window:
            return False
        before, now = history[-1 - self.window]["loss"], history[-1]["loss"]
        return (before - now) <= self.tol * abs(before)


def fit_scalers(model: JointAutoencoder, views: dict[str, np.ndarray], scaling: str) -> None:
    """Learn each view's input scaling from the training arrays, in place.

    uint8 maps to [0, 1] by 1/255, every other dtype is min-max scaled by its
    training range; with ``scaling="standard"`` the unit-scaled input is then
    standardized per channel (images) or per feature (vectors). Range, gain
    and shift are computed in float64 and, for views of other dtypes than
    uint8, kept in float64 buffers (:func:`~mmocc.model.nn.scale_dtype`); the
    statistics come from the float64 unit-scaled values. So a large offset
    shared by all values (``1e8 + noise``) cancels before anything is rounded
    to float32.

    Parameters
    ----------
    model : JointAutoencoder
        The model whose :class:`~mmocc.model.nn.InputScaler` buffers are set.
    views : dict of str to numpy.ndarray
        Training arrays in canonical layout.
    scaling : {"unit", "standard"}
        The scaling.
    """
    for spec in model.specs:
        array = views[spec.name]
        scaler = model.scaler(spec.name)
        if array.dtype == np.uint8:
            gain, shift = 1.0 / 255.0, 0.0
        else:
            low, high = float(array.min()), float(array.max())
            gain = 1.0 / (high - low) if high > low else 1.0
            shift = low * gain
        scaler.gain.fill_(gain)
        scaler.shift.fill_(shift)
        if scaling != "standard":
            continue
        mean, std = _unit_mean_std(array, gain, shift, (0, 2, 3) if spec.kind == "image" else (0,))
        std[std < 1e-6] = 1.0
        scaler.mean.copy_(torch.as_tensor(mean, dtype=torch.float32).reshape(scaler.mean.shape))
        scaler.std.copy_(torch.as_tensor(std, dtype=torch.float32).reshape(scaler.std.shape))


STATS_CHUNK_ELEMENTS = 2**24
"""Values of a training array converted to float64 at a time by :func:`_unit_mean_std` (128 MiB)."""


def _unit_mean_std(
    array: np.ndarray, gain: float, shift: float, axes: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of ``array * gain - shift`` over ``axes``, in float64, a chunk at a time.

    Two passes over chunks of samples (the mean, then the squared deviations
    from it), so no float64 copy of the whole array is made.
    """
    step = max(1, STATS_CHUNK_ELEMENTS // max(1, int(np.prod(array.shape[1:]))))
    count = len(array) * int(np.prod([array.shape[a] for a in axes if a != 0]))
    chunks = range(0, len(array), step)
    total = sum((array[i : i + step].astype(np.float64) * gain - shift).sum(axis=axes) for i in chunks)
    mean = np.asarray(total) / count
    shape = [1 if a in axes else n for a, n in enumerate(array.shape)]
    squares = sum(
        np.square(array[i : i + step].astype(np.float64) * gain - shift - mean.reshape(shape)).sum(axis=axes)
        for i in chunks
    )
    return mean, np.sqrt(np.asarray(squares) / count)


def initial_center(model: JointAutoencoder, data: dict[str, Tensor], batch_size: int) -> Tensor:
    """Mean joint latent of the (untrained) model, with near-zero coordinates pushed away from 0.

    The latents come from the model's inference copy
    (:func:`~mmocc.model.inference.for_device`: BatchNorm folded, channels-last
    micro-batches on a CPU), which computes the eval-mode model's outputs.

    Parameters
    ----------
    model : JointAutoencoder
        The model; it is put in eval mode.
    data : dict of str to Tensor
        Raw training batches, on the model's device.
    batch_size : int
        Samples per forward pass.

    Returns
    -------
    Tensor of shape (D,)
        The centre, float32.
    """
    n = len(next(iter(data.values())))
    fast = for_device(model.eval(), next(model.parameters()).device)
    total: Tensor | None = None
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            batch = {k: v[start : start + batch_size] for k, v in data.items()}
            part = fast(batch, decode=False).phi.double().sum(dim=0)
            total = part if total is None else total + part
    assert total is not None
    center = (total / n).float()
    small = center.abs() < CENTER_EPS
    center[small] = torch.where(center[small] < 0, -CENTER_EPS, CENTER_EPS)
    return center


def training_layout(data: dict[str, Tensor], channels_last: bool) -> dict[str, Tensor]:
    """Return the training arrays with image batches in channels-last format (or as given).

    Parameters
    ----------
    data : dict of str to Tensor
        Raw training arrays; 4-D ones are images ``(n, C, H, W)``.
    channels_last : bool
        Convert the images.

    Returns
    -------
    dict of str to Tensor
        The arrays, same shapes and values.
    """
    if not channels_last:
        return data
    return {k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v for k, v in data.items()}


def _batch_starts(n: int, batch_size: int) -> list[int]:
    """Start of each mini-batch; a final batch of one sample (which breaks BatchNorm) joins the previous."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return starts


def _run_epoch(
    model: JointAutoencoder,
    data: dict[str, Tensor],
    hp: HyperParams,
    loss: JointLoss,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    use_amp: bool,
) -> Tensor:
    """Train one epoch; return the sample-weighted sums of the three loss terms."""
    n = len(next(iter(data.values())))
    device = next(model.parameters()).device
    model.train()
    order = torch.randperm(n, generator=generator).to(device)
    starts = _batch_starts(n, min(hp.batch_size, n))
    sums = torch.zeros(3, device=device)
    for i, start in enumerate(starts):
        stop = starts[i + 1] if i + 1 < len(starts) else n
        idx = order[start:stop]
        batch = {k: model.scaler(k)(v[idx]) for k, v in data.items()}
        batch = augment_views(batch, hp.augment, hp.augment_shift, generator)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = model(batch, scaled=True)
            assert out.recons is not None
            terms = loss.terms(out.phi, out.latents, out.inputs, out.recons)
        optimizer.zero_grad(set_to_none=True)
        loss.total(terms).backward()
        optimizer.step()
        sums += terms.stacked() * len(idx)
    return sums


def fit_autoencoder(
    model: JointAutoencoder,
    data: dict[str, Tensor],
    hp: HyperParams,
    loss: JointLoss,
    *,
    generator: torch.Generator,
    amp: bool | str = "auto",
    channels_last: bool = True,
    callbacks: Sequence[Callback] = (),
) -> History:
    """Train a joint autoencoder on normal samples.

    Parameters
    ----------
    model : JointAutoencoder
        The model, with its input scaling already fitted (:func:`fit_scalers`).
    data : dict of str to Tensor
        Raw training arrays (uint8 or float) on the model's device.
    hp : HyperParams
        ``epochs``, ``batch_size``, ``lr``, ``weight_decay``,
        ``lr_schedule``, ``augment`` and ``augment_shift`` are used here.
    loss : JointLoss
        The loss to minimise.
    generator : torch.Generator
        CPU generator of the shuffling and augmentation draws.
    amp : {"auto", True, False}, default "auto"
        bf16 autocast, where the device computes bf16 natively
        (:func:`~mmocc.model.device.resolve_amp`).
    channels_last : bool, default True
        Train image stacks in channels-last memory format. The model's
        parameters are returned to the default (contiguous) format.
    callbacks : sequence of Callback, default ()
        Called after each epoch; any returning True stops training.

    Returns
    -------
    History
        One record per epoch run.

    Raises
    ------
    ValueError
        For fewer than 2 training samples.
    """
    n = len(next(iter(data.values())))
    if n < 2:
        raise ValueError(
            f"training needs at least 2 samples (BatchNorm needs 2 per batch), got n_samples = {n}"
        )
    optimizer = torch.optim.Adam(model.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
    scheduler = (
        torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=hp.epochs)
        if hp.lr_schedule == "cosine"
        else None
    )
    use_amp = resolve_amp(amp, next(model.parameters()).device)
    data = training_layout(data, channels_last)
    if channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    history: History = []
    for callback in callbacks:
        callback.on_train_begin(hp.epochs)
    try:
        for epoch in range(hp.epochs):
            started = time.perf_counter()
            sums = _run_epoch(model, data, hp, loss, optimizer, generator, use_amp)
            lr = optimizer.param_groups[0]["lr"]
            if scheduler is not None:
                scheduler.step()
            compact, recon, div = (sums / n).tolist()
            history.append(
                {
                    "epoch": epoch + 1,
                    "loss": loss.weighted(compact, recon, div),
                    "compactness": compact,
                    "reconstruction": recon,
                    "diversity": div,
                    "lr": lr,
                    "seconds": time.perf_counter() - started,
                }
            )
            if any([callback.on_epoch_end(history) for callback in callbacks]):
                break
    finally:
        if channels_last:
            model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        for callback in callbacks:
            callback.on_train_end()
    return history


def default_callbacks(verbose: bool | None, stop_tol: float | None) -> list[Callback]:
    """Return the callbacks of the estimator's ``verbose`` and ``stop_tol``.

    Parameters
    ----------
    verbose : bool or None
        Show a :class:`ProgressBar`; None shows it when stderr is a terminal.
    stop_tol : float or None
        :class:`EarlyStopping` with this tolerance; None trains every epoch.

    Returns
    -------
    list of Callback
        The progress bar first, then early stopping.
    """
    show = sys.stderr.isatty() if verbose is None else verbose
    callbacks: list[Callback] = [ProgressBar()] if show else []
    if stop_tol is not None:
        callbacks.append(EarlyStopping(stop_tol))
    return callbacks


def _train(
    model: JointAutoencoder,
    views: dict[str, np.ndarray],
    hp: HyperParams,
    seed: int,
    *,
    amp: bool | str,
    batch_size: int,
    verbose: bool | None,
) -> tuple[Tensor | None, History]:
    """Fix the compactness centre, then train ``model``; return the centre (None: the origin) and history."""
    device = next(model.parameters()).device
    data = {name: torch.from_numpy(np.ascontiguousarray(a)).to(device) for name, a in views.items()}
    center = initial_center(model, data, batch_size) if hp.compactness == "center" else None
    loss = JointLoss(
        center=center,
        units=model.bottleneck_units(),
        compact_weight=hp.compact_weight,
        recon_weight=hp.recon_weight,
        diversity=hp.diversity,
        diversity_weight=hp.diversity_weight,
        diversity_gamma=hp.diversity_gamma,
    )
    generator = torch.Generator().manual_seed(seed)
    callbacks = default_callbacks(verbose, hp.stop_tol)
    return center, fit_autoencoder(model, data, hp, loss, generator=generator, amp=amp, callbacks=callbacks)


def fit_joint_model(
    specs: Sequence[ViewSpec],
    views: dict[str, np.ndarray],
    hp: HyperParams,
    *,
    device: torch.device,
    seed: int,
    amp: bool | str = "auto",
    batch_size: int = 1024,
    verbose: bool | None = False,
) -> tuple[JointAutoencoder, Tensor | None, History]:
    """Build a joint autoencoder for ``specs``, fit its input scaling and, when the score needs it, train it.

    Weights are initialised from ``seed`` inside a forked torch RNG, so the
    caller's random streams are left as they were. The autoencoder is not
    trained when the score reads only a pretrained backbone's features
    (:attr:`HyperParams.trains_autoencoder`).

    Parameters
    ----------
    specs : sequence of ViewSpec
        The views, in order.
    views : dict of str to numpy.ndarray
        Training arrays in canonical layout.
    hp : HyperParams
        The hyper-parameters.
    device : torch.device
        Where the model is trained.
    seed : int
        Seed of the initial weights, the shuffling and the augmentation.
    amp : {"auto", True, False}, default "auto"
        bf16 autocast (:func:`fit_autoencoder`).
    batch_size : int, default 1024
        Samples per forward pass when computing the initial centre.
    verbose : bool or None, default False
        Progress bar (:func:`default_callbacks`).

    Returns
    -------
    model : JointAutoencoder
        The model on ``device``, in eval mode.
    center : Tensor or None
        The compactness centre; None for the origin or when not trained.
    history : History
        One record per epoch run (empty when not trained).
    """
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = JointAutoencoder(specs, hp.arch())
        fit_scalers(model, views, hp.scaling)
        model.to(device)
        center: Tensor | None = None
        history: History = []
        if hp.trains_autoencoder:
            center, history = _train(model, views, hp, seed, amp=amp, batch_size=batch_size, verbose=verbose)
    return model.eval(), center, history
