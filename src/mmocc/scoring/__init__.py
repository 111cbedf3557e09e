"""Scoring rules on the features of a fitted joint autoencoder.

A scoring rule turns :class:`Features` (joint latent phi, per-view latents and
reconstruction errors) into one anomaly score per sample, higher meaning more
anomalous. Each rule is fitted on the training features, returns honest
training scores (k-NN leaves each training sample out of its own neighbours)
and exposes its fitted state as plain arrays so it can be saved without
pickle.

Rules
-----
``norm``
    ``||phi||``, the distance to the origin (the paper).
``center``
    ``||phi - c||`` with ``c`` the centre fixed before training (Deep SVDD).
``knn``
    Mean Euclidean distance to the ``k`` nearest training latents: of the
    joint latent, of each view's latent, or of each view's latent against a
    bank pooled over the views that share an encoder (``knn_bank``).
``mahalanobis``
    Mahalanobis distance under a Ledoit-Wolf shrinkage covariance.
``recon``
    Squared reconstruction error summed over views.
``patch``
    Local: per view, the distance of each position's feature vector to its
    nearest neighbour in a coreset memory bank of training patches; a view
    scores its highest positions, views are standardized and combined
    (:class:`PatchScore`). Gives anomaly maps and per-view scores.
``ensemble``
    Mean of the ``knn``, ``mahalanobis`` and ``recon`` scores, each
    standardized by the mean and standard deviation of its training scores.
``combined``
    The mean of a global part (``knn``: another object) and a local part
    (``patch``: a defect on this object), each standardized by its
    leave-one-out training scores (:class:`CombinedScore`); reports which
    part fired (the larger), and keeps the local part's per-view scores and maps.

Each rule declares in :attr:`ScoringRule.needs` which features it reads
(latents, [0, 1]-scaled inputs, reconstruction errors); the detector computes
exactly those.
"""

from __future__ import annotations

import numpy as np

from mmocc.detectors.parts import PART_NAMES, fired_part
from mmocc.scoring.base import FEATURE_KINDS, Features, ScoringRule, standardize
from mmocc.scoring.combined import CombinedScore
from mmocc.scoring.distance import CenterScore, MahalanobisScore, NormScore, ReconScore
from mmocc.scoring.ensemble import EnsembleScore
from mmocc.scoring.knn import KNN_BANKS, KNN_SPACES, KNNScore
from mmocc.scoring.patch import CORESET_METHODS, VIEW_COMBINATIONS, PatchScore
from mmocc.search.index import SEARCH_MODES

SCORE_RULES: tuple[str, ...] = (
    "norm",
    "center",
    "knn",
    "mahalanobis",
    "recon",
    "ensemble",
    "patch",
    "combined",
)
"""Names accepted by :func:`make_rule` (and ``MultimodalOCC(score=...)``)."""

ENSEMBLE_PARTS: tuple[str, ...] = ("knn", "mahalanobis", "recon")
"""The components of the ``ensemble`` rule."""


def make_rule(
    name: str,
    *,
    center: np.ndarray | None,
    n_neighbors: int,
    knn_bank: str = "joint",
    knn_space: str = "latent",
    knn_search: str = "exact",
    view_groups: dict[str, str] | None = None,
    coreset_ratio: float = 0.1,
    coreset_candidates: int | None = None,
    coreset_method: str = "greedy",
    patch_top_k: int = 1,
    view_combine: str = "max",
    seed: int = 0,
    verbose: bool | None = None,
) -> ScoringRule:
    """Build an unfitted scoring rule by name.

    Parameters
    ----------
    name : str
        One of :data:`SCORE_RULES`.
    center : numpy.ndarray or None
        Training centre, needed by ``center``.
    n_neighbors : int
        ``k`` for ``knn`` (also inside ``ensemble`` and ``combined``).
    knn_bank : {"joint", "view", "pooled"}, default "joint"
        Memory bank layout of ``knn`` (see :class:`KNNScore`).
    knn_space : {"latent", "input", "both"}, default "latent"
        Feature space of ``knn``, also inside ``ensemble`` and ``combined`` (see :class:`KNNScore`).
    knn_search : {"exact", "approximate", "projected"}, default "exact"
        Neighbour search of ``knn`` (also inside ``ensemble``) and of ``patch``
        (both inside ``combined``; see :class:`mmocc.search.index.NeighborIndex`).
    view_groups : dict of str to str, optional
        View name to weight group, for ``knn_bank="pooled"`` and ``patch``.
    coreset_ratio, coreset_candidates, coreset_method, patch_top_k, view_combine, seed
        Parameters of ``patch`` (also the local part of ``combined``; see :class:`PatchScore`).
    verbose : bool or None, default None
        Progress bars of ``patch`` (None: when stderr is a terminal).

    Returns
    -------
    ScoringRule
        The rule.

    Raises
    ------
    ValueError
        For an unknown name, or ``center`` without a centre.
    """
    if name == "norm":
        return NormScore()
    if name == "center":
        if center is None:
            raise ValueError("score='center' needs a training centre: use compactness='center'")
        return CenterScore(center)
    if name == "knn":
        return KNNScore(n_neighbors, knn_bank, knn_space, view_groups, knn_search)
    if name == "combined":  # the k-NN and patch rules these options build
        options = {key: value for key, value in locals().items() if key != "name"}
        return CombinedScore(make_rule("knn", **options), make_rule("patch", **options))
    if name == "patch":
        return PatchScore(
            dict(view_groups or {}),
            coreset_ratio=coreset_ratio,
            coreset_candidates=coreset_candidates,
            coreset_method=coreset_method,
            top_k=patch_top_k,
            combine=view_combine,
            seed=seed,
            search=knn_search,
            verbose=verbose,
        )
    if name == "mahalanobis":
        return MahalanobisScore()
    if name == "recon":
        return ReconScore()
    if name == "ensemble":
        parts = {
            part: make_rule(
                part,
                center=center,
                n_neighbors=n_neighbors,
                knn_bank=knn_bank,
                knn_space=knn_space,
                knn_search=knn_search,
                view_groups=view_groups,
            )
            for part in ENSEMBLE_PARTS
        }
        return EnsembleScore(parts)
    raise ValueError(f"unknown score {name!r}; choose one of {list(SCORE_RULES)}")


__all__ = [
    "ENSEMBLE_PARTS",
    "PART_NAMES",
    "FEATURE_KINDS",
    "KNN_BANKS",
    "KNN_SPACES",
    "SCORE_RULES",
    "SEARCH_MODES",
    "CORESET_METHODS",
    "VIEW_COMBINATIONS",
    "CenterScore",
    "CombinedScore",
    "EnsembleScore",
    "Features",
    "KNNScore",
    "MahalanobisScore",
    "NormScore",
    "PatchScore",
    "ReconScore",
    "ScoringRule",
    "fired_part",
    "make_rule",
    "standardize",
]
