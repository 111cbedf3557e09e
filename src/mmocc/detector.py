"""The estimator: :class:`MultimodalOCC`."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from sklearn.utils import check_random_state
from tqdm.auto import tqdm

from mmocc.base import BaseMultiviewDetector
from mmocc.data.inputs import ViewSpec
from mmocc.model import losses
from mmocc.model.augment import AUGMENTATIONS, augment_views
from mmocc.model.hyperparams import HYPERPARAMETERS, PRESETS
from mmocc.model.nn import ArchConfig, JointAutoencoder, inference_model
from mmocc.scoring import KNN_BANKS, KNN_SPACES, SCORE_RULES, Features, ScoringRule, make_rule

_CHOICES: dict[str, tuple[Any, ...]] = {
    "scaling": ("unit", "standard"),
    "compactness": ("origin", "center"),
    "lr_schedule": ("constant", "cosine"),
    "augment": AUGMENTATIONS,
    "score": SCORE_RULES,
    "knn_bank": KNN_BANKS,
    "knn_space": KNN_SPACES,
    "diversity": (None, *losses.DIVERSITY_KINDS),
    "shared_weights": (True, False, "auto"),
}
_CENTER_EPS = 0.1


def resolve_device(device: str | torch.device) -> torch.device:
    """Turn ``"auto"`` into CUDA when available, else CPU.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` or any torch device string.

    Returns
    -------
    torch.device
        The device to use.

    Raises
    ------
    ValueError
        If the device string is invalid or names an unavailable CUDA device.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device {device!r} is not a valid torch device: {exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available")
    return resolved


def _check_params(params: dict[str, Any]) -> None:
    """Validate resolved hyper-parameters, naming the culprit."""
    for name, choices in _CHOICES.items():
        if params[name] not in choices:
            raise ValueError(f"{name}={params[name]!r} is not valid; choose one of {list(choices)}")
    for name in ("epochs", "batch_size", "n_neighbors", "vector_latent"):
        value = params[name]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name in (
        "lr",
        "weight_decay",
        "compact_weight",
        "recon_weight",
        "diversity_weight",
        "diversity_gamma",
    ):
        value = params[name]
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value < 0
        ):
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    tol = params["stop_tol"]
    if tol is not None and (isinstance(tol, bool) or not isinstance(tol, (int, float)) or not tol >= 0):
        raise ValueError(f"stop_tol must be None or a number >= 0, got {tol!r}")
    if not 0.0 <= params["dropout"] < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {params['dropout']!r}")
    if not 0.0 <= params["augment_shift"] <= 0.5:
        raise ValueError(f"augment_shift must be in [0, 0.5], got {params['augment_shift']!r}")
    for name in ("filters", "hidden"):
        value = params[name]
        if not value or any(
            isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1 for v in value
        ):
            raise ValueError(f"{name} must be a non-empty sequence of positive integers, got {value!r}")


class MultimodalOCC(BaseMultiviewDetector):
    """Multimodal one-class classifier: a joint convolutional autoencoder.

    One autoencoder per view (weights shared between views of the same shape
    by default) is trained on normal samples only. The joint latent phi is the
    concatenation of the per-view latents (Laakom et al., 2023, eq. 1). The
    training loss is eq. (3): ``||phi - c||^2`` plus the squared
    reconstruction error of each view. A scoring rule turns the fitted model's
    features into an anomaly score; higher is more anomalous.

    Every hyper-parameter left at ``None`` takes its value from ``preset``.

    Parameters
    ----------
    preset : {"default", "paper"}, default "default"
        ``"paper"`` reproduces the paper (origin centre, norm score, 4 epochs);
        ``"default"`` is the measured best (see :mod:`mmocc.model.hyperparams`).
    views : sequence of str, optional
        Views to use, in order; all views of ``X`` by default. One view gives
        the paper's unimodal variant.
    filters : tuple of int, optional
        Channels of each image encoder block (paper: ``(64, 32, 16)``).
    hidden : tuple of int, optional
        Hidden widths of the MLP used for vector views.
    vector_latent : int, optional
        Latent width of a vector view.
    dropout : float, optional
        Dropout after each encoder block.
    shared_weights : {True, False, "auto"}, optional
        Share encoder/decoder between views (``True`` needs identical shapes;
        ``"auto"`` shares among views of identical shape).
    bias : bool, optional
        Biases in encoder layers. ``False`` removes a collapse route (Deep SVDD).
    bn_affine : bool, optional
        Learnable BatchNorm scale/shift in the encoder.
    scaling : {"unit", "standard"}, optional
        ``"unit"``: uint8 to [0, 1], floats min-max scaled per view;
        ``"standard"``: then per-channel (image) or per-feature (vector)
        standardization. Statistics are learned in ``fit`` and stored.
    compactness : {"origin", "center"}, optional
        Centre of the compactness term: the origin (paper) or the mean of the
        initial latents, fixed before training, with near-zero coordinates
        pushed to +-0.1 (Deep SVDD).
    compact_weight, recon_weight : float, optional
        Weights of the two terms of eq. (3) (paper: 1 and 1).
    epochs : int, optional
        Training epochs.
    batch_size : int, optional
        Training mini-batch size.
    lr : float, optional
        Adam learning rate.
    weight_decay : float, optional
        Adam weight decay.
    lr_schedule : {"constant", "cosine"}, optional
        Learning-rate schedule over the epochs.
    stop_tol : float, optional
        Stop criterion: end training early once the epoch loss has improved
        by less than this fraction over the last 3 epochs. Neither preset
        uses it (``None``: run all ``epochs``).
    augment : {"none", "shift", "shift_flip"}, optional
        Training augmentation, applied consistently to all image views.
    augment_shift : float, optional
        Largest random translation, as a fraction of the image side.
    score : {"norm", "center", "knn", "mahalanobis", "recon", "ensemble"}, optional
        Scoring rule (see :mod:`mmocc.scoring`).
    n_neighbors : int, optional
        ``k`` of the ``knn`` score.
    knn_bank : {"joint", "view", "pooled"}, optional
        Memory bank of the ``knn`` score: joint latents, per-view latents, or
        per-view latents pooled over views sharing an encoder (a pose seen by
        one camera in training counts as normal for the other).
    knn_space : {"latent", "input", "both"}, optional
        Feature space of the ``knn`` score: the learned latent, the input
        scaled to [0, 1], or both (scores standardized and averaged).
    diversity : {None, "direct", "det", "logdet"}, optional
        WLD-Reg diversity regularizer on each view's bottleneck.
    diversity_weight : float, optional
        Its weight lambda.
    diversity_gamma : float, optional
        Its similarity bandwidth gamma.
    contamination : float, default 0.05
        Fraction of training samples above ``threshold_`` (0.05 = the paper's
        95th percentile); in (0, 0.5].
    device : str, default "auto"
        ``"auto"`` uses CUDA when available; any torch device string is
        honoured.
    amp : bool, default False
        bf16 autocast on CUDA (ignored on CPU).
    score_batch_size : int, default 1024
        Batch size of inference, which bounds memory.
    random_state : int, numpy.random.RandomState or None, default None
        Seed of initialisation, shuffling and augmentation. Fixed seeds give
        identical scores on CPU.
    verbose : bool, default False
        Show a progress bar over epochs.

    Attributes
    ----------
    model_ : JointAutoencoder
        The fitted torch module (input scaling included).
    params_ : dict
        The resolved hyper-parameters.
    view_specs_ : list of ViewSpec
        Names, kinds and per-sample shapes of the fitted views.
    center_ : numpy.ndarray or None
        The compactness centre (None for the origin).
    rule_ : ScoringRule
        The fitted scoring rule.
    history_ : list of dict
        Per epoch: ``epoch``, ``loss``, ``compactness``, ``reconstruction``,
        ``diversity``, ``lr`` and ``seconds``.
    decision_scores_ : numpy.ndarray
        Scores of the training samples (k-NN leaves each one out).
    threshold_ : float
        The ``1 - contamination`` quantile of ``decision_scores_``.
    labels_ : numpy.ndarray
        Training labels, 0 normal / 1 anomaly.

    Examples
    --------
    >>> import numpy as np
    >>> from mmocc import MultimodalOCC
    >>> rng = np.random.default_rng(0)
    >>> X = {"left": rng.random((64, 1, 16, 16)), "right": rng.random((64, 1, 16, 16))}
    >>> clf = MultimodalOCC(epochs=1, filters=(8, 4), random_state=0).fit(X)
    >>> clf.decision_function(X).shape
    (64,)
    """

    def __init__(
        self,
        *,
        preset: str = "default",
        views: list[str] | tuple[str, ...] | None = None,
        filters: tuple[int, ...] | None = None,
        hidden: tuple[int, ...] | None = None,
        vector_latent: int | None = None,
        dropout: float | None = None,
        shared_weights: bool | str | None = None,
        bias: bool | None = None,
        bn_affine: bool | None = None,
        scaling: str | None = None,
        compactness: str | None = None,
        compact_weight: float | None = None,
        recon_weight: float | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        lr: float | None = None,
        weight_decay: float | None = None,
        lr_schedule: str | None = None,
        stop_tol: float | None = None,
        augment: str | None = None,
        augment_shift: float | None = None,
        score: str | None = None,
        n_neighbors: int | None = None,
        knn_bank: str | None = None,
        knn_space: str | None = None,
        diversity: str | None = None,
        diversity_weight: float | None = None,
        diversity_gamma: float | None = None,
        contamination: float = 0.05,
        device: str = "auto",
        amp: bool = False,
        score_batch_size: int = 1024,
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.preset = preset
        self.views = views
        self.filters = filters
        self.hidden = hidden
        self.vector_latent = vector_latent
        self.dropout = dropout
        self.shared_weights = shared_weights
        self.bias = bias
        self.bn_affine = bn_affine
        self.scaling = scaling
        self.compactness = compactness
        self.compact_weight = compact_weight
        self.recon_weight = recon_weight
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.stop_tol = stop_tol
        self.augment = augment
        self.augment_shift = augment_shift
        self.score = score
        self.n_neighbors = n_neighbors
        self.knn_bank = knn_bank
        self.knn_space = knn_space
        self.diversity = diversity
        self.diversity_weight = diversity_weight
        self.diversity_gamma = diversity_gamma
        self.contamination = contamination
        self.device = device
        self.amp = amp
        self.score_batch_size = score_batch_size
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ set-up
    def resolved_params(self) -> dict[str, Any]:
        """Hyper-parameters after filling ``None`` from the preset.

        Returns
        -------
        dict
            One entry per name in :data:`mmocc.model.hyperparams.HYPERPARAMETERS`.

        Raises
        ------
        ValueError
            For an unknown preset or an invalid value, naming the parameter.
        """
        if self.preset not in PRESETS:
            raise ValueError(f"preset={self.preset!r} is not valid; choose one of {sorted(PRESETS)}")
        params = dict(PRESETS[self.preset])
        for name in HYPERPARAMETERS:
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        params["filters"] = tuple(params["filters"])
        params["hidden"] = tuple(params["hidden"])
        _check_params(params)
        if not isinstance(self.score_batch_size, (int, np.integer)) or self.score_batch_size < 1:
            raise ValueError(f"score_batch_size must be a positive integer, got {self.score_batch_size!r}")
        return params

    def check_params(self) -> dict[str, Any]:
        """Validate the hyper-parameters without data; same as :meth:`resolved_params`."""
        return self.resolved_params()

    @staticmethod
    def arch_config(params: dict[str, Any]) -> ArchConfig:
        """Build the :class:`~mmocc.model.nn.ArchConfig` from resolved parameters.

        Parameters
        ----------
        params : dict
            Output of :meth:`resolved_params`.

        Returns
        -------
        ArchConfig
            The architecture.
        """
        return ArchConfig(
            filters=tuple(int(f) for f in params["filters"]),
            hidden=tuple(int(h) for h in params["hidden"]),
            vector_latent=int(params["vector_latent"]),
            dropout=float(params["dropout"]),
            shared_weights=params["shared_weights"],
            bias=bool(params["bias"]),
            bn_affine=bool(params["bn_affine"]),
        )

    # ---------------------------------------------------------------- training
    def _fit_views(self, views: dict[str, np.ndarray]) -> np.ndarray:
        params = self.resolved_params()
        self.params_ = params
        device = resolve_device(self.device)
        self.device_ = str(device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        specs = self.view_specs_
        with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            model = JointAutoencoder(specs, self.arch_config(params))
            _fit_scalers(model, views, params["scaling"])
            model.to(device)
            data = {name: torch.from_numpy(np.ascontiguousarray(a)).to(device) for name, a in views.items()}
            self.model_ = model
            center = self._initial_center(data) if params["compactness"] == "center" else None
            self.center_ = None if center is None else center.cpu().numpy()
            self.history_ = self._train(data, center, params, torch.Generator().manual_seed(seed))
        self.rule_ = rule_for(params, self.center_, self.model_.view_group)
        return self.rule_.fit(self._features(views))

    def _initial_center(self, data: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean joint latent of the untrained model, away from zero."""
        n = len(next(iter(data.values())))
        total = None
        for phi in self._phi_batches(data, n):
            part = phi.double().sum(dim=0)
            total = part if total is None else total + part
        center = (total / n).float()
        small = center.abs() < _CENTER_EPS
        center[small] = torch.where(center[small] < 0, -_CENTER_EPS, _CENTER_EPS)
        return center

    def _phi_batches(self, data: dict[str, torch.Tensor], n: int) -> Iterator[torch.Tensor]:
        self.model_.eval()
        with torch.inference_mode():
            for start in range(0, n, self.score_batch_size):
                batch = {k: v[start : start + self.score_batch_size] for k, v in data.items()}
                yield self.model_(batch, decode=False).phi

    def _train(
        self,
        data: dict[str, torch.Tensor],
        center: torch.Tensor | None,
        params: dict[str, Any],
        generator: torch.Generator,
    ) -> list[dict[str, float]]:
        model = self.model_
        n = len(next(iter(data.values())))
        batch_size = min(int(params["batch_size"]), n)
        optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"], weight_decay=params["weight_decay"])
        epochs = int(params["epochs"])
        scheduler = (
            torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
            if params["lr_schedule"] == "cosine"
            else None
        )
        device = next(model.parameters()).device
        use_amp = bool(self.amp) and device.type == "cuda"
        history = []
        for epoch in tqdm(range(epochs), desc="training", unit="epoch", disable=not self.verbose):
            started = time.perf_counter()
            model.train()
            order = torch.randperm(n, generator=generator).to(device)
            # A final batch of one sample breaks BatchNorm: fold it into the previous one.
            starts = list(range(0, n, batch_size))
            if len(starts) > 1 and n - starts[-1] == 1:
                starts.pop()
            sums = torch.zeros(3, device=device)
            for i, start in enumerate(starts):
                stop = starts[i + 1] if i + 1 < len(starts) else n
                idx = order[start:stop]
                batch = {k: model.scalers[k](v[idx]) for k, v in data.items()}
                batch = augment_views(batch, params["augment"], params["augment_shift"], generator)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    out = model(batch, scaled=True)
                    terms = self._loss_terms(out, center, params)
                loss = (
                    params["compact_weight"] * terms[0]
                    + params["recon_weight"] * terms[1]
                    + params["diversity_weight"] * terms[2]
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                sums += torch.stack(terms).detach().float() * len(idx)
            lr = optimizer.param_groups[0]["lr"]
            if scheduler is not None:
                scheduler.step()
            compact, recon, div = (sums / n).tolist()
            total = params["compact_weight"] * compact + params["recon_weight"] * recon
            total += params["diversity_weight"] * div
            history.append(
                {
                    "epoch": epoch + 1,
                    "loss": total,
                    "compactness": compact,
                    "reconstruction": recon,
                    "diversity": div,
                    "lr": lr,
                    "seconds": time.perf_counter() - started,
                }
            )
            if _converged(history, params["stop_tol"]):
                break
        return history

    def _loss_terms(
        self, out: Any, center: torch.Tensor | None, params: dict[str, Any]
    ) -> list[torch.Tensor]:
        """Batch means of compactness, reconstruction and diversity."""
        compact = losses.compactness(out.phi.float(), center).mean()
        recon = losses.reconstruction(
            {k: v.float() for k, v in out.inputs.items()}, {k: v.float() for k, v in out.recons.items()}
        ).mean()
        if params["diversity"] is None:
            div = compact.new_zeros(())
        else:
            div = sum(
                losses.diversity(
                    self._units(name, latent.float()), params["diversity"], gamma=params["diversity_gamma"]
                )
                for name, latent in out.latents.items()
            )
        return [compact, recon, div]

    def _units(self, name: str, latent: torch.Tensor) -> torch.Tensor:
        """Reshape a view's flat latent to ``(n, units, outputs per unit)``."""
        shape = self.model_.encoder_of(name).out_shape
        return latent.reshape(len(latent), shape[0], -1)

    # ----------------------------------------------------------------- scoring
    def _features(self, views: dict[str, np.ndarray]) -> Features:
        """Compute the features of all samples in batches."""
        return _concat_features(list(self._feature_batches(views)))

    def _inference_model(self, device: torch.device) -> JointAutoencoder:
        """Return the fitted model with BatchNorm folded, for scoring (see `inference_model`).

        On a CPU, image stacks also run channels-last in cache-sized
        micro-batches (measured in ``benchmarks/speed.py``); on other
        devices whole batches run in the default memory format. Building the
        copy takes milliseconds, so it is rebuilt on each call rather than
        cached beside ``model_``.
        """
        if device.type == "cpu":
            return inference_model(self.model_)
        return inference_model(self.model_, channels_last=False, block_bytes=None)

    def _feature_batches(self, views: dict[str, np.ndarray]) -> Iterator[Features]:
        device = next(self.model_.parameters()).device
        model = self._inference_model(device)
        use_amp = bool(self.amp) and device.type == "cuda"
        pin = device.type == "cuda"
        need_recon = self.params_["score"] in ("recon", "ensemble")
        need_inputs = self.params_["score"] in ("knn", "ensemble") and self.params_["knn_space"] != "latent"
        n = len(next(iter(views.values())))
        model.eval()
        with torch.inference_mode():
            for start in range(0, n, self.score_batch_size):
                batch = {
                    k: _to_device(v[start : start + self.score_batch_size], device, pin)
                    for k, v in views.items()
                }
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                    out = model(batch, decode=need_recon)
                if need_recon:
                    recon = losses.reconstruction(
                        {k: v.float() for k, v in out.inputs.items()},
                        {k: v.float() for k, v in out.recons.items()},
                    )
                else:
                    recon = torch.zeros(len(out.phi))
                latents = {k: v.float().cpu().numpy() for k, v in out.latents.items()}
                inputs = {}
                if need_inputs:
                    inputs = {k: model.scalers[k].unit(v).flatten(1).cpu().numpy() for k, v in batch.items()}
                yield Features(latents=latents, recon=recon.cpu().numpy(), inputs=inputs)

    def _score_views(self, views: dict[str, np.ndarray]) -> np.ndarray:
        parts = [self.rule_.score(feats) for feats in self._feature_batches(views)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def transform(self, X: Any) -> np.ndarray:
        """Joint latent phi of each sample.

        Parameters
        ----------
        X : dict of str to array-like, or dataset with a ``views`` mapping
            Views as seen at fit time.

        Returns
        -------
        numpy.ndarray of shape (n_samples, D)
            The joint latents (eq. 1).
        """
        return self._features(self._checked_views(X)).phi

    # ------------------------------------------------------------- save/load
    def save(self, path: str) -> None:
        """Save the fitted model to one safetensors file (no pickle).

        Parameters
        ----------
        path : str or path-like
            Destination; written atomically.
        """
        from mmocc.io import save_model

        save_model(self, path)


def _converged(history: list[dict[str, float]], tol: float | None, window: int = 3) -> bool:
    """Whether the loss improved by less than ``tol`` (relative) over the last ``window`` epochs."""
    if tol is None or len(history) <= window:
        return False
    before, now = history[-1 - window]["loss"], history[-1]["loss"]
    return (before - now) <= tol * abs(before)


def _to_device(array: np.ndarray, device: torch.device, pin: bool) -> torch.Tensor:
    """Move a host array to ``device`` (uint8 stays uint8; pinned, asynchronous copy when ``pin``)."""
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if pin:
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def _concat_features(parts: list[Features]) -> Features:
    return Features(
        latents={k: np.concatenate([p.latents[k] for p in parts]) for k in parts[0].latents},
        recon=np.concatenate([p.recon for p in parts]),
        inputs={k: np.concatenate([p.inputs[k] for p in parts]) for k in parts[0].inputs},
    )


def _fit_scalers(model: JointAutoencoder, views: dict[str, np.ndarray], scaling: str) -> None:
    """Learn per-view input scaling from the training arrays."""
    for spec in model.specs:
        array = views[spec.name]
        scaler = model.scalers[spec.name]
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


def rule_for(params: dict[str, Any], center: np.ndarray | None, view_groups: dict[str, str]) -> ScoringRule:
    """Build the unfitted scoring rule that resolved parameters ask for.

    Parameters
    ----------
    params : dict
        Resolved hyper-parameters (``score``, ``n_neighbors``, ``knn_bank``
        and ``knn_space`` are used).
    center : numpy.ndarray or None
        The training centre.
    view_groups : dict of str to str
        View name to weight group of the fitted model.

    Returns
    -------
    ScoringRule
        The rule, not yet fitted.
    """
    return make_rule(
        params["score"],
        center=center,
        n_neighbors=params["n_neighbors"],
        knn_bank=params["knn_bank"],
        knn_space=params["knn_space"],
        view_groups=view_groups,
    )


__all__ = ["MultimodalOCC", "ViewSpec", "resolve_device", "rule_for"]
