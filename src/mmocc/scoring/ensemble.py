"""The ensemble score: the mean of standardized component scores."""

from __future__ import annotations

import numpy as np

from mmocc.scoring.base import Features, ScoringRule, standardize
from mmocc.scoring.state import Expect, FeatureDims, mean_std_spec


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

    @property
    def needs(self) -> frozenset[str]:
        """The union of what the parts need."""
        return frozenset().union(*(part.needs for part in self.parts.values()))

    def fit(self, train: Features) -> np.ndarray:
        """Fit each part and standardize by its training scores."""
        scores = np.column_stack([part.fit(train) for part in self.parts.values()])
        self.mean, self.std = standardize(scores)
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

    def state_spec(self, dims: FeatureDims) -> dict[str, Expect]:
        """Expect the statistics of the part scores, and each part's state under ``<part>.``."""
        out = mean_std_spec(len(self.parts))
        for name, part in self.parts.items():
            out.update({f"{name}.{key}": value for key, value in part.state_spec(dims).items()})
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore statistics and parts."""
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.std = np.asarray(state["std"], dtype=np.float64)
        for name, part in self.parts.items():
            prefix = f"{name}."
            part.load_state({k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
