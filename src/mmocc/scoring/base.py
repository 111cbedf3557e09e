"""What every scoring rule shares: the :class:`Features` it reads and the :class:`ScoringRule` contract."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from mmocc.scoring.state import Expect, FeatureDims

FEATURE_KINDS: tuple[str, ...] = ("latent", "input", "recon", "recon_map", "patch")
"""Features a rule can ask for: per-view latents, [0, 1]-scaled inputs, reconstruction errors,
per-pixel reconstruction errors, and local patch feature maps."""


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
    recons : dict of str to numpy.ndarray
        Squared reconstruction error ``(n,)`` of each view.
    recon_maps : dict of str to numpy.ndarray
        Per-pixel squared reconstruction error ``(n, H, W)`` of each image view
        (summed over channels).
    patches : dict of str to numpy.ndarray
        Local feature vectors ``(n, C, h, w)`` of each image view.
    sample_groups : numpy.ndarray or None
        For training features: an integer code per sample saying which
        samples come from one object (a tile's lightings, a specimen's poses).
        Leave-one-out training scores then leave the whole group out, so a
        training sample is not judged against its own object's other views.
        None: every sample is its own group.
    """

    latents: dict[str, np.ndarray] = field(default_factory=dict)
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    recons: dict[str, np.ndarray] = field(default_factory=dict)
    recon_maps: dict[str, np.ndarray] = field(default_factory=dict)
    patches: dict[str, np.ndarray] = field(default_factory=dict)
    sample_groups: np.ndarray | None = None

    def _groups(self) -> tuple[dict[str, np.ndarray], ...]:
        return (self.latents, self.inputs, self.recons, self.recon_maps, self.patches)

    @property
    def views(self) -> list[str]:
        """Names of the views these features cover, in order."""
        names: dict[str, None] = {}
        for group in self._groups():
            names.update(dict.fromkeys(group))
        return list(names)

    @property
    def recon(self) -> np.ndarray:
        """Squared reconstruction error summed over views ``(n,)``."""
        if not self.recons:
            raise ValueError(
                "these features hold no reconstruction errors; the scoring rule did not ask for them"
            )
        total = np.zeros(self.n, dtype=next(iter(self.recons.values())).dtype)
        for values in self.recons.values():
            total = total + values
        return total

    @property
    def n(self) -> int:
        """Number of samples."""
        for group in self._groups():
            for array in group.values():
                return len(array)
        raise ValueError("these features are empty")

    @property
    def phi(self) -> np.ndarray:
        """Joint latent ``(n, sum D_v)``: the view latents concatenated (eq. 1)."""
        if not self.latents:
            raise ValueError("these features hold no latents; the scoring rule did not ask for them")
        return np.concatenate(list(self.latents.values()), axis=1)

    @staticmethod
    def collect(batches: Iterable[Features], n: int) -> Features:
        """Join consecutive batches of features into arrays of ``n`` samples, each allocated once.

        Each batch is copied into place as it arrives, so the peak memory is
        all the samples plus one batch, not twice all of them (a list of
        batches, then their concatenation).

        Parameters
        ----------
        batches : iterable of Features
            Consecutive batches with the same fields filled.
        n : int
            Samples in all the batches together.

        Returns
        -------
        Features
            All samples.

        Raises
        ------
        ValueError
            When the batches do not hold exactly ``n`` samples.
        """
        names = ("latents", "inputs", "recons", "recon_maps", "patches")
        out: dict[str, dict[str, np.ndarray]] = {name: {} for name in names}
        start = 0
        for batch in batches:
            size = batch.n
            if start + size > n:
                raise ValueError(f"the feature batches hold more than the {n} samples expected")
            for name in names:
                for key, values in getattr(batch, name).items():
                    if key not in out[name]:
                        out[name][key] = np.empty((n, *values.shape[1:]), dtype=values.dtype)
                    out[name][key][start : start + size] = values
            start += size
        if start != n:
            raise ValueError(f"the feature batches hold {start} samples, expected {n}")
        return Features(
            latents=out["latents"],
            inputs=out["inputs"],
            recons=out["recons"],
            recon_maps=out["recon_maps"],
            patches=out["patches"],
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

    supports_views = False
    """Whether the rule's score combines per-view scores: then views may be missing at scoring."""

    has_maps = False
    """Whether :meth:`anomaly_maps` gives spatial scores of image views."""

    part_names: tuple[str, ...] = ()
    """Names of the parts whose standardized scores :meth:`score_details` reports (none for most rules)."""

    train_view_scores: dict[str, np.ndarray]
    """Leave-one-out training score of each view (rules with ``supports_views``)."""

    @property
    def needs(self) -> frozenset[str]:
        """The features (of :data:`FEATURE_KINDS`) this rule reads; the detector computes exactly these."""
        return frozenset({"latent"})

    @property
    def allows_missing_views(self) -> bool:
        """Whether a subset of the views can be scored, its score combined from the view scores."""
        return bool(self.supports_views)

    @property
    def map_needs(self) -> frozenset[str]:
        """The features :meth:`anomaly_maps` reads."""
        return self.needs

    def fit(self, train: Features) -> np.ndarray:
        """Fit on training features and return their (honest) scores."""
        return self.score(train)

    @abstractmethod
    def score(self, feats: Features) -> np.ndarray:
        """Return anomaly scores of ``feats``."""

    def view_scores(self, feats: Features) -> dict[str, np.ndarray]:
        """Standardized score of each view present, comparable across views.

        Raises
        ------
        ValueError
            When the rule scores the views jointly.
        """
        raise ValueError(
            f"score={self.name!r} scores the views jointly, so it has no per-view scores; "
            "use score='patch', 'recon', or 'knn' with knn_bank='view' or 'pooled'"
        )

    def score_with_views(self, feats: Features) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Return the sample scores and, where the rule has them, the view scores, in one pass.

        Returns
        -------
        scores : numpy.ndarray of shape (n,)
            As :meth:`score`.
        view_scores : dict of str to numpy.ndarray
            As :meth:`view_scores`; empty when the rule scores the views jointly.
        """
        return self.score(feats), {}

    def score_details(
        self, feats: Features
    ) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
        """Return the scores, the view scores and the standardized score of each part, in one pass.

        Returns
        -------
        scores, view_scores : numpy.ndarray and dict
            As :meth:`score_with_views`.
        part_scores : dict of str to numpy.ndarray
            One standardized score per name of :attr:`part_names`; empty for a rule without parts.
        """
        return (*self.score_with_views(feats), {})

    def combine(self, view_scores: dict[str, np.ndarray]) -> np.ndarray:
        """Combine view scores into the sample score, as :meth:`score` does.

        Raises
        ------
        ValueError
            When the rule scores the views jointly.
        """
        raise ValueError(f"score={self.name!r} scores the views jointly and cannot combine a subset of them")

    def anomaly_maps(self, feats: Features) -> dict[str, np.ndarray]:
        """Per-position anomaly scores ``(n, h, w)`` of each image view present.

        Raises
        ------
        ValueError
            When the rule has no spatial scores.
        """
        raise ValueError(
            f"score={self.name!r} gives one number per sample, not a map; use score='patch' or 'recon'"
        )

    def state(self) -> dict[str, np.ndarray]:
        """Fitted state as named arrays."""
        return {}

    def state_spec(self, dims: FeatureDims) -> dict[str, Expect]:
        """Describe what each array of :meth:`state` must be, for features of widths ``dims``.

        Saving checks :meth:`state` against it, and loading checks a model
        file's tensors against it, so the rule describes its state once.

        Parameters
        ----------
        dims : FeatureDims
            The widths of the features the rule reads, and the training-set size.

        Returns
        -------
        dict of str to Expect
            One per state array (empty for a stateless rule).
        """
        return {}

    def load_state(self, state: dict[str, np.ndarray]) -> None:  # noqa: B027 - stateless rules keep this no-op
        """Restore the state returned by :meth:`state`."""
