"""Named hyper-parameter presets of :class:`mmocc.MultimodalOCC`.

``paper``
    Laakom et al. (2023) as written: eq. (3) with the origin as centre,
    inputs scaled to [0, 1], biased layers with affine BatchNorm, Adam
    (lr 1e-3, weight decay 1e-3), 4 epochs, batch 32, score ``||phi||``.
    The paper does not give the dropout rate; 0.1 is used. No diversity
    regularizer; when one is switched on (``diversity="logdet"`` etc.) its
    weight lambda = 100 and bandwidth gamma = 0.1 come from the normal-only
    sweep in ``benchmarks/ABLATIONS.md``.
``default``
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
      in training counts as normal for the other.

    No diversity regularizer (none helped on COIL-20, ``benchmarks/ABLATIONS.md``);
    if switched on, lambda = 1 and gamma = 0.1 (the sweep's logdet choice).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

PAPER: dict[str, Any] = {
    "filters": (64, 32, 16),
    "hidden": (128,),
    "vector_latent": 32,
    "dropout": 0.1,
    "shared_weights": True,
    "bias": True,
    "bn_affine": True,
    "scaling": "unit",
    "compactness": "origin",
    "compact_weight": 1.0,
    "recon_weight": 1.0,
    "epochs": 4,
    "batch_size": 32,
    "lr": 1e-3,
    "weight_decay": 1e-3,
    "lr_schedule": "constant",
    "stop_tol": None,
    "augment": "none",
    "augment_shift": 0.0,
    "score": "norm",
    "n_neighbors": 5,
    "knn_bank": "joint",
    "knn_space": "latent",
    "diversity": None,
    "diversity_weight": 100.0,
    "diversity_gamma": 0.1,
}

DEFAULT: dict[str, Any] = {
    **PAPER,
    "filters": (32, 16, 16),
    "dropout": 0.0,
    "shared_weights": "auto",
    "bias": False,
    "bn_affine": False,
    "scaling": "standard",
    "compactness": "center",
    "compact_weight": 0.1,
    "epochs": 15,
    "lr_schedule": "cosine",
    "augment": "shift",
    "augment_shift": 0.1,
    "score": "knn",
    "knn_bank": "pooled",
    "knn_space": "both",
    "diversity_weight": 1.0,
}

PRESETS = MappingProxyType({"paper": MappingProxyType(PAPER), "default": MappingProxyType(DEFAULT)})
HYPERPARAMETERS = tuple(PAPER)
