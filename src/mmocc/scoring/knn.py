"""The k-nearest-neighbour score: memory banks of training features, joint or per view, latent or input."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from mmocc.scoring.base import Features, ScoringRule, standardize
from mmocc.scoring.state import Expect, FeatureDims, mean_std_spec
from mmocc.search.index import SEARCH_MODES, NeighborIndex, require_faiss

KNN_BANKS: tuple[str, ...] = ("joint", "view", "pooled")
"""Memory bank layouts of :class:`KNNScore`."""

KNN_SPACES: tuple[str, ...] = ("latent", "input", "both")
"""Feature spaces of :class:`KNNScore`."""


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
    search : {"exact", "approximate"}
        Exact search (blocked matmul + top-k), or a faiss HNSW graph
        (``pip install "mmocc[faiss]"``); see :mod:`mmocc.search.index`.
        Training scores leave each sample out by its bank row, so a duplicate
        training sample still counts as a neighbour at distance 0.
    """

    name = "knn"

    def __init__(
        self,
        n_neighbors: int,
        bank: str = "joint",
        space: str = "latent",
        view_groups: dict[str, str] | None = None,
        search: str = "exact",
    ) -> None:
        if int(n_neighbors) < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors!r}")
        if bank not in KNN_BANKS:
            raise ValueError(f"knn_bank={bank!r} is not valid; choose one of {list(KNN_BANKS)}")
        if space not in KNN_SPACES:
            raise ValueError(f"knn_space={space!r} is not valid; choose one of {list(KNN_SPACES)}")
        if search not in SEARCH_MODES:
            raise ValueError(f"knn_search={search!r} is not valid; choose one of {list(SEARCH_MODES)}")
        if search == "approximate":
            require_faiss()  # fail before training, not at the first search
        self.n_neighbors = int(n_neighbors)
        self.bank = bank
        self.space = space
        self.view_groups = dict(view_groups or {})
        self.search = search
        self.banks: dict[str, np.ndarray] = {}
        self._indexes: dict[str, NeighborIndex] = {}
        self.mean = np.zeros(0)
        self.std = np.ones(0)
        self.train_view_scores: dict[str, np.ndarray] = {}

    @property
    def needs(self) -> frozenset[str]:
        """Latents, inputs or both, by ``space``."""
        return frozenset({"latent", "input"} if self.space == "both" else {self.space})

    @property
    def supports_views(self) -> bool:  # type: ignore[override]
        """Per-view scores exist unless the bank is joint."""
        return self.bank != "joint"

    def column_plan(self, present: Sequence[str]) -> list[tuple[int, str, str | None, tuple[str, ...]]]:
        """(column index, bank key, view, query views) of each score column whose view is present.

        Columns run over spaces, then over the trained views in order; with
        every view present this is the column order of the training scores
        (``mean`` and ``std``). A joint column's query is the concatenation of
        the present views' features in the order of ``present``.

        Parameters
        ----------
        present : sequence of str
            The views present, in the model's view order.

        Returns
        -------
        list of tuple
            One ``(index, key, view, query_views)`` per column; ``view`` is
            None for a joint column. The space of a column is the prefix of
            its key (``"latent:..."``, ``"input:..."``).
        """
        spaces = ("latent", "input") if self.space == "both" else (self.space,)
        out: list[tuple[int, str, str | None, tuple[str, ...]]] = []
        index = 0
        for space in spaces:
            if self.bank == "joint":
                out.append((index, f"{space}:joint", None, tuple(present)))
                index += 1
                continue
            for view in self.view_groups:
                key = self.view_groups[view] if self.bank == "pooled" else view
                if view in present:
                    out.append((index, f"{space}:{key}", view, (view,)))
                index += 1
        return out

    def _columns(self, feats: Features) -> list[tuple[int, str, str | None, np.ndarray]]:
        """(column index, bank key, view, query features) of each column of :meth:`column_plan`."""
        out = []
        for index, key, view, sources in self.column_plan(list(feats.latents or feats.inputs)):
            per_view = feats.latents if key.startswith("latent:") else feats.inputs
            queries = (
                per_view[sources[0]]
                if len(sources) == 1
                else np.concatenate([per_view[source] for source in sources], axis=1)
            )
            out.append((index, key, view, queries))
        return out

    def _index(self, key: str) -> NeighborIndex:
        """Return the search index of one bank, built on first use."""
        if key not in self._indexes:
            self._indexes[key] = NeighborIndex(self.banks[key], self.search)
        return self._indexes[key]

    def _raw(self, feats: Features, leave_self_out: bool) -> tuple[np.ndarray, list[int], list[str | None]]:
        """k-NN distances ``(n, columns present)``, the index and the view of each column.

        With ``leave_self_out`` the features are the training features, whose
        rows sit in each bank in column order; each query leaves out its own row,
        or every row of its group when the features have ``sample_groups``.
        """
        columns, index, views = [], [], []
        offsets: dict[str, int] = {}
        for i, key, view, queries in self._columns(feats):
            search = self._index(key)
            k = max(1, min(self.n_neighbors, len(search) - 1))
            own = None
            if leave_self_out and feats.sample_groups is not None:  # leave the sample's whole group out
                own = feats.sample_groups
                k = max(1, min(k, len(search) - search.max_owned))
            elif leave_self_out:
                start = offsets.get(key, 0)
                own = np.arange(start, start + len(queries))
                offsets[key] = start + len(queries)
            columns.append(search.mean_distance(queries, k, own))
            index.append(i)
            views.append(view)
        return np.column_stack(columns), index, views

    def _standardized(self, feats: Features, leave_self_out: bool) -> tuple[np.ndarray, list[str | None]]:
        """Standardized k-NN distances ``(n, columns present)`` and the view of each column."""
        raw, index, views = self._raw(feats, leave_self_out)
        return (raw - self.mean[index]) / self.std[index], views

    def fit(self, train: Features) -> np.ndarray:
        """Store the memory banks; score each training sample leaving itself (or its group) out."""
        if train.n < 2:
            raise ValueError("the knn score needs at least 2 training samples")
        self.banks, self._indexes = {}, {}
        owners: dict[str, list[np.ndarray]] = {}
        for _, key, _, values in self._columns(train):
            part = np.asarray(values, dtype=np.float32)
            self.banks[key] = np.concatenate([self.banks[key], part]) if key in self.banks else part
            if train.sample_groups is not None:
                owners.setdefault(key, []).append(train.sample_groups)
        for key, parts in owners.items():
            self._indexes[key] = NeighborIndex(self.banks[key], self.search, owners=np.concatenate(parts))
        raw, _, views = self._raw(train, leave_self_out=True)
        self.mean, self.std = standardize(raw)
        z = (raw - self.mean) / self.std
        if self.supports_views:
            self.train_view_scores = self._by_view(z, views)
        return z.mean(axis=1)

    @staticmethod
    def _by_view(z: np.ndarray, views: list[str | None]) -> dict[str, np.ndarray]:
        out = {}
        for view in dict.fromkeys(v for v in views if v is not None):
            out[view] = z[:, [i for i, v in enumerate(views) if v == view]].mean(axis=1)
        return out

    def score(self, feats: Features) -> np.ndarray:
        """Return the standardized k-NN distances averaged over the columns present."""
        z, _ = self._standardized(feats, leave_self_out=False)
        return z.mean(axis=1)

    def view_scores(self, feats: Features) -> dict[str, np.ndarray]:
        """Each view's standardized k-NN distances, averaged over spaces."""
        if not self.supports_views:
            return super().view_scores(feats)
        z, views = self._standardized(feats, leave_self_out=False)
        return self._by_view(z, views)

    def score_with_views(self, feats: Features) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Return the sample scores and the view scores from one k-NN search."""
        z, views = self._standardized(feats, leave_self_out=False)
        return z.mean(axis=1), self._by_view(z, views) if self.supports_views else {}

    def combine(self, view_scores: dict[str, np.ndarray]) -> np.ndarray:
        """Combine view scores as :meth:`score` does: their mean."""
        return np.column_stack(list(view_scores.values())).mean(axis=1)

    def state(self) -> dict[str, np.ndarray]:
        """Return the memory banks and standardization statistics."""
        out = {f"bank.{key}": value for key, value in self.banks.items()}
        out.update({"mean": self.mean, "std": self.std})
        out.update({f"train_view.{v}": values for v, values in self.train_view_scores.items()})
        return out

    def state_spec(self, dims: FeatureDims) -> dict[str, Expect]:
        """Expect the memory banks (a pooled one holds its views' rows), statistics, view training scores."""
        spaces = ("latent", "input") if self.space == "both" else (self.space,)
        keys = {view: group if self.bank == "pooled" else view for view, group in self.view_groups.items()}
        members = Counter(keys.values())
        out: dict[str, Expect] = {}
        for space in spaces:
            width = dims.latent if space == "latent" else dims.input
            if self.bank == "joint":
                out[f"bank.{space}:joint"] = Expect((dims.n_train, sum(width.values())))
                continue
            for view, key in keys.items():
                out[f"bank.{space}:{key}"] = Expect((dims.n_train * members[key], width[view]))
        columns = len(spaces) * (1 if self.bank == "joint" else len(keys))  # a column per view and space
        out.update(mean_std_spec(columns))
        if self.bank != "joint":
            out.update({f"train_view.{view}": Expect((dims.n_train,), required=False) for view in keys})
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore the memory banks and statistics."""
        self.banks = {
            key[len("bank.") :]: np.ascontiguousarray(value, dtype=np.float32)
            for key, value in state.items()
            if key.startswith("bank.")
        }
        self._indexes = {}
        self.mean = np.asarray(state["mean"], dtype=np.float64)
        self.std = np.asarray(state["std"], dtype=np.float64)
        self.train_view_scores = {
            key[len("train_view.") :]: np.asarray(value, dtype=np.float64)
            for key, value in state.items()
            if key.startswith("train_view.")
        }
