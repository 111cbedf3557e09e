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
``ensemble``
    Mean of the ``knn``, ``mahalanobis`` and ``recon`` scores, each
    standardized by the mean and standard deviation of its training scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.covariance import LedoitWolf
from sklearn.neighbors import NearestNeighbors

SCORE_RULES = ("norm", "center", "knn", "mahalanobis", "recon", "ensemble")
ENSEMBLE_PARTS = ("knn", "mahalanobis", "recon")
KNN_BANKS = ("joint", "view", "pooled")
KNN_SPACES = ("latent", "input", "both")


@dataclass
class Features:
    """Per-sample features computed by a fitted joint autoencoder.

    Attributes
    ----------
    latents : dict of str to numpy.ndarray
        Flattened latent ``(n, D_v)`` of each view, in view order.
    recon : numpy.ndarray of shape (n,)
        Squared reconstruction error summed over views.
    inputs : dict of str to numpy.ndarray
        Flattened inputs of each view, scaled to [0, 1] by training
        statistics; empty unless a rule asks for them.
    """

    latents: dict[str, np.ndarray]
    recon: np.ndarray
    inputs: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def phi(self) -> np.ndarray:
        """Joint latent ``(n, sum D_v)``: the view latents concatenated (eq. 1)."""
        return np.concatenate(list(self.latents.values()), axis=1)


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


def _mean_knn_distance(bank: np.ndarray, queries: np.ndarray, k: int, leave_self_out: bool) -> np.ndarray:
    """Mean Euclidean distance of each query to its ``k`` nearest bank rows."""
    index = NearestNeighbors(algorithm="brute").fit(bank)
    dist, _ = index.kneighbors(np.asarray(queries, dtype=np.float32), n_neighbors=k + int(leave_self_out))
    return dist[:, int(leave_self_out) :].mean(axis=1).astype(np.float64)


class KNNScore(ScoringRule):
    """Mean distance to the ``k`` nearest training samples.

    Each (space, view) pair gives one k-NN score; the scores are standardized
    by their leave-one-out training scores and averaged.

    Parameters
    ----------
    n_neighbors : int
        ``k``; capped at the size of the memory bank minus one.
    bank : {"joint", "view", "pooled"}
        ``"joint"``: neighbours of the joint feature (views concatenated).
        ``"view"``: each view against that view's training samples.
        ``"pooled"``: each view against the training samples of all views
        that share its encoder, so a pose seen by one camera in training
        counts as normal for the other.
    space : {"latent", "input", "both"}
        Where distances are measured: the learned latent, the input scaled to
        [0, 1], or both (two scores per view).
    view_groups : dict of str to str
        View name to weight group (views of one group share an encoder).
    """

    name = "knn"

    def __init__(
        self,
        n_neighbors: int,
        bank: str = "joint",
        space: str = "latent",
        view_groups: dict[str, str] | None = None,
    ) -> None:
        if int(n_neighbors) < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors!r}")
        if bank not in KNN_BANKS:
            raise ValueError(f"knn_bank={bank!r} is not valid; choose one of {list(KNN_BANKS)}")
        if space not in KNN_SPACES:
            raise ValueError(f"knn_space={space!r} is not valid; choose one of {list(KNN_SPACES)}")
        self.n_neighbors = int(n_neighbors)
        self.bank = bank
        self.space = space
        self.view_groups = dict(view_groups or {})
        self.banks: dict[str, np.ndarray] = {}
        self.mean = np.zeros(0)
        self.std = np.ones(0)

    def _columns(self, feats: Features) -> list[tuple[str, np.ndarray]]:
        """(bank key, query features) of each score column."""
        spaces = ("latent", "input") if self.space == "both" else (self.space,)
        out = []
        for space in spaces:
            per_view = feats.latents if space == "latent" else feats.inputs
            if self.bank == "joint":
                out.append((f"{space}:joint", np.concatenate(list(per_view.values()), axis=1)))
                continue
            for view, values in per_view.items():
                key = self.view_groups[view] if self.bank == "pooled" else view
                out.append((f"{space}:{key}", values))
        return out

    def _raw(self, feats: Features, leave_self_out: bool) -> np.ndarray:
        columns = []
        for key, queries in self._columns(feats):
            bank = self.banks[key]
            k = max(1, min(self.n_neighbors, len(bank) - 1))
            columns.append(_mean_knn_distance(bank, queries, k, leave_self_out))
        return np.column_stack(columns)

    def fit(self, train: Features) -> np.ndarray:
        """Store the memory banks; score each training sample leaving itself out."""
        if len(train.recon) < 2:
            raise ValueError("the knn score needs at least 2 training samples")
        self.banks = {}
        for key, values in self._columns(train):
            part = np.asarray(values, dtype=np.float32)
            self.banks[key] = np.concatenate([self.banks[key], part]) if key in self.banks else part
        raw = self._raw(train, leave_self_out=True)
        self.mean = raw.mean(axis=0)
        self.std = raw.std(axis=0)
        self.std[self.std == 0] = 1.0
        return ((raw - self.mean) / self.std).mean(axis=1)

    def score(self, feats: Features) -> np.ndarray:
        """Return the standardized k-NN distances averaged over columns."""
        return ((self._raw(feats, leave_self_out=False) - self.mean) / self.std).mean(axis=1)

    def state(self) -> dict[str, np.ndarray]:
        """Return the memory banks and standardization statistics."""
        out = {f"bank.{key}": value for key, value in self.banks.items()}
        out.update({"mean": self.mean, "std": self.std})
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore the memory banks and statistics."""
        self.banks = {
            key[len("bank.") :]: np.ascontiguousarray(value, dtype=np.float32)
            for key, value in state.items()
            if key.startswith("bank.")
        }
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.std = np.asarray(state["std"], dtype=np.float64)


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


def make_rule(
    name: str,
    *,
    center: np.ndarray | None,
    n_neighbors: int,
    knn_bank: str = "joint",
    knn_space: str = "latent",
    view_groups: dict[str, str] | None = None,
) -> ScoringRule:
    """Build an unfitted scoring rule by name.

    Parameters
    ----------
    name : str
        One of :data:`SCORE_RULES`.
    center : numpy.ndarray or None
        Training centre, needed by ``center``.
    n_neighbors : int
        ``k`` for ``knn`` (also inside ``ensemble``).
    knn_bank : {"joint", "view", "pooled"}, default "joint"
        Memory bank layout of ``knn`` (see :class:`KNNScore`).
    knn_space : {"latent", "input", "both"}, default "latent"
        Feature space of ``knn`` (see :class:`KNNScore`).
    view_groups : dict of str to str, optional
        View name to weight group, for ``knn_bank="pooled"``.

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
        return KNNScore(n_neighbors, knn_bank, knn_space, view_groups)
    if name == "mahalanobis":
        return MahalanobisScore()
    if name == "recon":
        return ReconScore()
    if name == "ensemble":
        parts = {
            part: make_rule(
                part, center=center, n_neighbors=n_neighbors, knn_bank=knn_bank, view_groups=view_groups
            )
            for part in ENSEMBLE_PARTS
        }
        return EnsembleScore(parts)
    raise ValueError(f"unknown score {name!r}; choose one of {list(SCORE_RULES)}")
