"""Scoring rules on the joint latent and the reconstruction error: norm, centre, Mahalanobis, recon."""

from __future__ import annotations

import numpy as np
from sklearn.covariance import LedoitWolf

from mmocc.scoring.base import Features, ScoringRule
from mmocc.scoring.state import Expect, FeatureDims


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

    def state_spec(self, dims: FeatureDims) -> dict[str, Expect]:
        """Expect the location and precision matrix of the joint latent."""
        width = sum(dims.latent.values())
        return {"location": Expect((width,)), "precision": Expect((width, width))}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore location and precision."""
        self.location = np.asarray(state["location"], dtype=np.float64)
        self.precision = np.asarray(state["precision"], dtype=np.float64)


class ReconScore(ScoringRule):
    """Squared reconstruction error summed over views.

    Per view, the error standardized by the training errors of that view is
    the view score; the per-pixel error, standardized by the training pixel
    errors, is the anomaly map.
    """

    name = "recon"

    def __init__(self) -> None:
        self.stats: dict[str, np.ndarray] = {}

    @property
    def needs(self) -> frozenset[str]:
        """Reconstruction errors only."""
        return frozenset({"recon"})

    @property
    def map_needs(self) -> frozenset[str]:
        """Per-pixel reconstruction errors."""
        return frozenset({"recon_map"})

    def fit(self, train: Features) -> np.ndarray:
        """Record each view's error statistics; return the training scores."""
        self.stats = {view: np.array([v.mean(), v.std() or 1.0]) for view, v in train.recons.items()}
        return self.score(train)

    def score(self, feats: Features) -> np.ndarray:
        """Return the reconstruction error summed over views."""
        return feats.recon.astype(np.float64)

    def _stats(self, view: str) -> np.ndarray:
        if view not in self.stats:
            raise ValueError(f"no training statistics for view {view!r} (a model saved by an older mmocc?)")
        return self.stats[view]

    has_maps = True

    def view_scores(self, feats: Features) -> dict[str, np.ndarray]:
        """Each view's error, standardized by its training errors."""
        out = {}
        for view, values in feats.recons.items():
            mean, std = self._stats(view)
            out[view] = (values.astype(np.float64) - mean) / std
        return out

    def score_with_views(self, feats: Features) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Return the summed error and each view's standardized error."""
        return self.score(feats), self.view_scores(feats)

    def anomaly_maps(self, feats: Features) -> dict[str, np.ndarray]:
        """Per-pixel error of each image view, on the scale of its view score."""
        out = {}
        for view, maps in feats.recon_maps.items():
            mean, std = self._stats(view)
            pixels = maps.shape[1] * maps.shape[2]
            out[view] = (maps.astype(np.float64) * pixels - mean) / std
        return out

    def state(self) -> dict[str, np.ndarray]:
        """Return each view's error statistics."""
        return {f"stats.{view}": values for view, values in self.stats.items()}

    def state_spec(self, dims: FeatureDims) -> dict[str, Expect]:
        """Expect each view's error statistics ``[mean, std]`` (absent in files of older versions)."""
        return {f"stats.{view}": Expect((2,), required=False, values="mean_std") for view in dims.latent}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore the statistics (absent in files of older versions)."""
        prefix = "stats."
        self.stats = {
            key[len(prefix) :]: np.asarray(value, dtype=np.float64)
            for key, value in state.items()
            if key.startswith(prefix)
        }
