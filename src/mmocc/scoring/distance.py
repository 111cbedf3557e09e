"""Scoring rules on the joint latent and the reconstruction error: norm, centre, Mahalanobis, recon."""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf

from mmocc.scoring.base import Features, ScoringRule


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

    @property
    def needs(self) -> frozenset[str]:
        """Reconstruction errors only."""
        return frozenset({"recon"})

    def score(self, feats: Features) -> np.ndarray:
        """Return the reconstruction error."""
        if feats.recon is None:
            raise ValueError("the recon score needs reconstruction errors in its features")
        return feats.recon.astype(np.float64)
