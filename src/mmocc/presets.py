"""Named hyper-parameter presets of :class:`mmocc.MultimodalOCC`.

``paper``
    Laakom et al. (2023) as written: eq. (3) with the origin as centre,
    inputs scaled to [0, 1], biased layers with affine BatchNorm, Adam
    (lr 1e-3, weight decay 1e-3), 4 epochs, batch 32, score ``||phi||``.
    The paper does not give the dropout rate; 0.1 is used.
``default``
    The measured best on normal data only (see ``benchmarks/RESULTS.md``).
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
    "augment": "none",
    "augment_shift": 0.0,
    "score": "norm",
    "n_neighbors": 5,
    "diversity": None,
    "diversity_weight": 0.0,
    "diversity_gamma": 1.0,
}

DEFAULT: dict[str, Any] = {
    **PAPER,
    "dropout": 0.0,
    "shared_weights": "auto",
    "bias": False,
    "bn_affine": False,
    "scaling": "standard",
    "compactness": "center",
    "epochs": 30,
    "lr_schedule": "cosine",
    "augment": "shift",
    "augment_shift": 0.1,
    "score": "knn",
}

PRESETS = MappingProxyType({"paper": MappingProxyType(PAPER), "default": MappingProxyType(DEFAULT)})
HYPERPARAMETERS = tuple(PAPER)
