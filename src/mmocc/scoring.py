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
    Mean Euclidean distance to the ``k`` nearest training latents.
``mahalanobis``
    Mahalanobis distance under a Ledoit-Wolf shrinkage covariance.
``recon``
    Squared reconstruction error summed over views.
``ensemble``
    Mean of the ``knn``, ``mahalanobis`` and ``recon`` scores, each
    standardized by the mean and standard deviation of its training scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.neighbors import NearestNeighbors

SCORE_RULES = ("norm", "center", "knn", "mahalanobis", "recon", "ensemble")
ENSEMBLE_PARTS = ("knn", "mahalanobis", "recon")


@dataclass
class Features:
    """Per-sample features computed by a fitted joint autoencoder.

    Attributes
    ----------
    phi : numpy.ndarray of shape (n, D)
        Joint latents.
    recon : numpy.ndarray of shape (n,)
        Squared reconstruction error summed over views.
    """

    phi: np.ndarray
    recon: np.ndarray


class ScoringRule:
    """Base class: fit on training features, score new ones, expose state."""

    name = ""

    def fit(self, train: Features) -> np.ndarray:
        """Fit on training features and return their (honest) scores."""
        return self.score(train)

    def score(self, feats: Features) -> np.ndarray:
        """Return anomaly scores of ``feats``."""
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        """Fitted state as named arrays."""
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore the state returned by :meth:`state`."""


class NormScore(ScoringRule):
    """Distance of the joint latent to the origin (paper)."""

    name = "norm"

    def score(self, feats: Features) -> np.ndarray:
        """Return ``||phi||``."""
        return np.linalg.norm(feats.phi.astype(np.float64), axis=1)


class CenterScore(ScoringRule):
    """Distance of the joint latent to a fixed centre.

    Parameters
    ----------
    center : numpy.ndarray of shape (D,)
        The hypersphere centre used in training.
    """

    name = "center"

    def __init__(self, center: np.ndarray) -> None:
        self.center = np.asarray(center, dtype=np.float64)

    def score(self, feats: Features) -> np.ndarray:
        """Return ``||phi - c||``."""
        return np.linalg.norm(feats.phi.astype(np.float64) - self.center, axis=1)


class KNNScore(ScoringRule):
    """Mean distance to the ``k`` nearest training latents.

    Parameters
    ----------
    n_neighbors : int
        ``k``; capped at the number of training samples minus one.
    """

    name = "knn"

    def __init__(self, n_neighbors: int) -> None:
        if int(n_neighbors) < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors!r}")
        self.n_neighbors = int(n_neighbors)
        self.bank = np.zeros((0, 0), dtype=np.float32)

    def _k(self) -> int:
        return max(1, min(self.n_neighbors, len(self.bank) - 1))

    def _index(self) -> NearestNeighbors:
        return NearestNeighbors(algorithm="brute").fit(self.bank)

    def fit(self, train: Features) -> np.ndarray:
        """Store the training latents; score each leaving itself out."""
        self.bank = np.ascontiguousarray(train.phi, dtype=np.float32)
        if len(self.bank) < 2:
            raise ValueError("the knn score needs at least 2 training samples")
        k = self._k()
        dist, _ = self._index().kneighbors(self.bank, n_neighbors=k + 1)
        return dist[:, 1:].mean(axis=1).astype(np.float64)

    def score(self, feats: Features) -> np.ndarray:
        """Return the mean distance to the ``k`` nearest training latents."""
        dist, _ = self._index().kneighbors(np.asarray(feats.phi, dtype=np.float32), n_neighbors=self._k())
        return dist.mean(axis=1).astype(np.float64)

    def state(self) -> dict[str, np.ndarray]:
        """Return the memory bank."""
        return {"bank": self.bank}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore the memory bank."""
        self.bank = np.ascontiguousarray(state["bank"], dtype=np.float32)


class MahalanobisScore(ScoringRule):
    """Mahalanobis distance under a Ledoit-Wolf shrinkage covariance."""

    name = "mahalanobis"

    def __init__(self) -> None:
        self.location = np.zeros(0)
        self.precision = np.zeros((0, 0))

    def fit(self, train: Features) -> np.ndarray:
        """Estimate location and shrunk precision from training latents."""
        estimator = LedoitWolf().fit(train.phi.astype(np.float64))
        self.location = estimator.location_
        self.precision = estimator.precision_
        return self.score(train)

    def score(self, feats: Features) -> np.ndarray:
        """Return ``sqrt((phi - mu)^T P (phi - mu))``."""
        diff = feats.phi.astype(np.float64) - self.location
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", diff, self.precision, diff), 0.0))

    def state(self) -> dict[str, np.ndarray]:
        """Return location and precision."""
        return {"location": self.location, "precision": self.precision}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore location and precision."""
        self.location = np.asarray(state["location"], dtype=np.float64)
        self.precision = np.asarray(state["precision"], dtype=np.float64)


class ReconScore(ScoringRule):
    """Squared reconstruction error summed over views."""

    name = "recon"

    def score(self, feats: Features) -> np.ndarray:
        """Return the reconstruction error."""
        return feats.recon.astype(np.float64)


class EnsembleScore(ScoringRule):
    """Mean of standardized component scores.

    Parameters
    ----------
    parts : dict of str to ScoringRule
        The component rules.
    """

    name = "ensemble"

    def __init__(self, parts: dict[str, ScoringRule]) -> None:
        self.parts = parts
        self.mean = np.zeros(len(parts))
        self.std = np.ones(len(parts))

    def fit(self, train: Features) -> np.ndarray:
        """Fit each part and standardize by its training scores."""
        scores = np.column_stack([part.fit(train) for part in self.parts.values()])
        self.mean = scores.mean(axis=0)
        self.std = scores.std(axis=0)
        self.std[self.std == 0] = 1.0
        return ((scores - self.mean) / self.std).mean(axis=1)

    def score(self, feats: Features) -> np.ndarray:
        """Return the mean standardized score of the parts."""
        scores = np.column_stack([part.score(feats) for part in self.parts.values()])
        return ((scores - self.mean) / self.std).mean(axis=1)

    def state(self) -> dict[str, np.ndarray]:
        """Return standardization statistics and each part's state."""
        out = {"mean": self.mean, "std": self.std}
        for name, part in self.parts.items():
            out.update({f"{name}.{key}": value for key, value in part.state().items()})
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore statistics and parts."""
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.std = np.asarray(state["std"], dtype=np.float64)
        for name, part in self.parts.items():
            prefix = f"{name}."
            part.load_state({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})


def make_rule(name: str, *, center: np.ndarray | None, n_neighbors: int) -> ScoringRule:
    """Build an unfitted scoring rule by name.

    Parameters
    ----------
    name : str
        One of :data:`SCORE_RULES`.
    center : numpy.ndarray or None
        Training centre, needed by ``center``.
    n_neighbors : int
        ``k`` for ``knn`` (also inside ``ensemble``).

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
        return KNNScore(n_neighbors)
    if name == "mahalanobis":
        return MahalanobisScore()
    if name == "recon":
        return ReconScore()
    if name == "ensemble":
        return EnsembleScore(
            {part: make_rule(part, center=center, n_neighbors=n_neighbors) for part in ENSEMBLE_PARTS}
        )
    raise ValueError(f"unknown score {name!r}; choose one of {list(SCORE_RULES)}")
