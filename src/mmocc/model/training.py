"""The training engine of the joint autoencoder, apart from the estimator.

:func:`fit_autoencoder` runs the epochs: shuffled mini-batches, consistent
augmentation of the image views, the :class:`~mmocc.model.losses.JointLoss`,
Adam with an optional cosine schedule, optional bf16 autocast on CUDA. What
happens between epochs (a progress bar, early stopping) is a
:class:`Callback`, not a branch in the loop. :func:`fit_scalers` learns the
input scaling and :func:`initial_center` the Deep SVDD centre before
training.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from mmocc.model.augment import augment_views
from mmocc.model.hyperparams import HyperParams
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
        unit = array.astype(np.float64) * gain - shift
        axes = (0, 2, 3) if spec.kind == "image" else (0,)
        std = unit.std(axis=axes)
        std[std < 1e-6] = 1.0
        scaler.mean.copy_(
            torch.as_tensor(unit.mean(axis=axes), dtype=torch.float32).reshape(scaler.mean.shape)
        )
        scaler.std.copy_(torch.as_tensor(std, dtype=torch.float32).reshape(scaler.std.shape))


def initial_center(model: JointAutoencoder, data: dict[str, Tensor], batch_size: int) -> Tensor:
    """Mean joint latent of the (untrained) model, with near-zero coordinates pushed away from 0.

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
    model.eval()
    total: Tensor | None = None
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            batch = {k: v[start : start + batch_size] for k, v in data.items()}
            part = model(batch, decode=False).phi.double().sum(dim=0)
            total = part if total is None else total + part
    assert total is not None
    center = (total / n).float()
    small = center.abs() < CENTER_EPS
    center[small] = torch.where(center[small] < 0, -CENTER_EPS, CENTER_EPS)
    return center


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
    amp: bool = False,
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
    amp : bool, default False
        bf16 autocast (used on CUDA only).
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
    use_amp = bool(amp) and next(model.parameters()).device.type == "cuda"
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
        for callback in callbacks:
            callback.on_train_end()
    return history
