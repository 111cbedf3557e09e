"""What every scoring rule shares: the :class:`Features` it reads and the :class:`ScoringRule` contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

FEATURE_KINDS: tuple[str, ...] = ("latent", "input", "recon")
"""Features a rule can ask for: per-view latents, [0, 1]-scaled inputs, reconstruction errors."""


@dataclass
class Features:
    """Per-sample features computed by a fitted joint autoencoder.

    Only the features a rule declared in :attr:`ScoringRule.needs` are filled.

    Attributes
    ----------
    latents : dict of str to numpy.ndarray
        Flattened latent ``(n, D_v)`` of each view, in view order.
    inputs : dict of str to numpy.ndarray
        Flattened inputs of each view, scaled to [0, 1] by training statistics.
    recon : numpy.ndarray of shape (n,) or None
        Squared reconstruction error summed over views.
    """

    latents: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    recon: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Number of samples."""
        for group in (self.latents, self.inputs):
            for array in group.values():
                return len(array)
        if self.recon is None:
            raise ValueError("these features are empty")
        return len(self.recon)

    @property
    def phi(self) -> np.ndarray:
        """Joint latent ``(n, sum D_v)``: the view latents concatenated (eq. 1)."""
        if not self.latents:
            raise ValueError("these features hold no latents; the scoring rule did not ask for them")
        return np.concatenate(list(self.latents.values()), axis=1)

    @staticmethod
    def concat(parts: list[Features]) -> Features:
        """Join the features of consecutive batches.

        Parameters
        ----------
        parts : list of Features
            Batches with the same fields filled.

        Returns
        -------
        Features
            All samples.
        """
        first = parts[0]
        return Features(
            latents={k: np.concatenate([p.latents[k] for p in parts]) for k in first.latents},
            inputs={k: np.concatenate([p.inputs[k] for p in parts]) for k in first.inputs},
            recon=None
            if first.recon is None
            else np.concatenate([p.recon for p in parts if p.recon is not None]),
        )


def standardize(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the column means and standard deviations of training scores (0 becomes 1).

    Parameters
    ----------
    scores : numpy.ndarray of shape (n, k)
        Training scores, one column per component.

    Returns
    -------
    mean, std : numpy.ndarray of shape (k,)
        The statistics that make each column zero-mean, unit-variance.
    """
    mean = scores.mean(axis=0)
    std = scores.std(axis=0)
    std[std == 0] = 1.0
    return mean, std


class ScoringRule(ABC):
    """Base class: declare the features needed, fit on training features, score new ones, expose state.

    The fitted state is plain named arrays (:meth:`state`), so a rule is
    saved without pickle.
    """

    name = ""

    @property
    def needs(self) -> frozenset[str]:
        """The features (of :data:`FEATURE_KINDS`) this rule reads; the detector computes exactly these."""
        return frozenset({"latent"})

    def fit(self, train: Features) -> np.ndarray:
        """Fit on training features and return their (honest) scores."""
        return self.score(train)

    @abstractmethod
    def score(self, feats: Features) -> np.ndarray:
        """Return anomaly scores of ``feats``."""

    def state(self) -> dict[str, np.ndarray]:
        """Fitted state as named arrays."""
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:  # noqa: B027 - stateless rules keep this no-op
        """Restore the state returned by :meth:`state`."""
