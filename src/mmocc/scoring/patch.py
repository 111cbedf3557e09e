"""The patch score: per-view memory banks of local feature vectors (PatchCore-style).

Each image view is seen as a grid of local feature vectors ``(n, C, h, w)``
(from intermediate maps of the autoencoder's encoder or of a pretrained
backbone, averaged over a 3x3 neighbourhood; see
:mod:`mmocc.model.patches`). Training patches of the views that share an
encoder form one memory bank, thinned by greedy coreset selection. A query
position scores its distance to the nearest bank patch; a view scores the mean
of its ``top_k`` highest positions (1 = the maximum); each view's score is
standardized by its leave-one-out training scores (a training image is scored
against the bank without any patch of its own sample, or of its own object when
the training samples have groups), and the views are
combined by their maximum or mean. The position scores, standardized alike,
are the anomaly maps.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mmocc.scoring.base import Features, ScoringRule
from mmocc.scoring.state import Expect, FeatureDims
from mmocc.search.coreset import cell_coreset, greedy_coreset
from mmocc.search.index import SEARCH_MODES, NeighborIndex, require_faiss
from mmocc.search.progress import progress_bar
from mmocc.search.pruned import PrefixIndex
from mmocc.search.rows import MapRows, RowSource

VIEW_COMBINATIONS: tuple[str, ...] = ("max", "mean")
"""How :class:`PatchScore` combines the standardized view scores."""

CORESET_METHODS: tuple[str, ...] = ("greedy", "cells")
"""How :class:`PatchScore` selects a bank: exact greedy k-centre, or greedy within cells (approximate)."""

SCORE_CHUNK = 2**16
"""Positions whose features :meth:`PatchScore._image_scores` lays out as rows at a time (whole images)."""


def _owners(feats: Features, n: int) -> torch.Tensor:
    """Leave-one-out owner of each of ``n`` training samples: its group code, or itself."""
    if feats.sample_groups is None:
        return torch.arange(n)
    return torch.from_numpy(np.asarray(feats.sample_groups, dtype=np.int64))


def _positions(feats: Features, view: str) -> int:
    """Positions per image of one view's patch maps."""
    return int(np.prod(feats.patches[view].shape[2:]))


def _as_rows(maps: np.ndarray) -> torch.Tensor:
    """``(n, C, h, w)`` maps to ``(n * h * w, C)`` patch rows."""
    n, c, h, w = maps.shape
    return torch.from_numpy(np.ascontiguousarray(maps)).permute(0, 2, 3, 1).reshape(n * h * w, c).float()


class PatchScore(ScoringRule):
    """Nearest-neighbour distance of local patches to a memory bank, per view.

    Parameters
    ----------
    view_groups : dict of str to str
        View name to bank (views of one group share an encoder and a bank).
    coreset_ratio : float, default 0.1
        Fraction of the training patches kept in each bank, in (0, 1].
    coreset_candidates : int, optional
        Greedy selection among at most this many training patches drawn at
        random (:func:`mmocc.search.coreset.greedy_coreset`); None: all.
    coreset_method : {"greedy", "cells"}, default "greedy"
        Exact greedy selection, or greedy selection within cells
        (:func:`mmocc.search.coreset.cell_coreset`, approximate, much
        cheaper on large banks; not with ``coreset_candidates``).
    top_k : int, default 1
        A view's score is the mean of its ``top_k`` highest position scores.
    combine : {"max", "mean"}, default "max"
        How standardized view scores are combined: a defect seen by one camera
        stands out more under the maximum.
    seed : int, default 0
        Seed of the coreset selection.
    search : {"exact", "approximate", "projected"}, default "exact"
        The neighbour search of the banks (:class:`~mmocc.search.index.NeighborIndex`):
        exact; a faiss HNSW graph; or the bank's principal components with
        the best candidates re-ranked in full dimensions. The approximate
        ones may miss a bank row, scoring a position above its exact score.
    verbose : bool or None, default None
        Progress bars of bank building and scoring on stderr; None: when
        stderr is a terminal (:mod:`mmocc.search.progress`). An attribute,
        not saved: the estimator sets it from its own ``verbose``.
    """

    name = "patch"

    def __init__(
        self,
        view_groups: dict[str, str],
        *,
        coreset_ratio: float = 0.1,
        coreset_candidates: int | None = None,
        coreset_method: str = "greedy",
        top_k: int = 1,
        combine: str = "max",
        seed: int = 0,
        search: str = "exact",
        verbose: bool | None = None,
    ) -> None:
        if not 0.0 < float(coreset_ratio) <= 1.0:
            raise ValueError(f"coreset_ratio must be in (0, 1], got {coreset_ratio!r}")
        if coreset_method not in CORESET_METHODS:
            raise ValueError(
                f"coreset_method={coreset_method!r} is not valid; choose one of {list(CORESET_METHODS)}"
            )
        if coreset_method == "cells" and coreset_candidates is not None:
            raise ValueError(
                "coreset_method='cells' selects among all patches: leave coreset_candidates None"
            )
        if int(top_k) < 1:
            raise ValueError(f"patch_top_k must be >= 1, got {top_k!r}")
        if combine not in VIEW_COMBINATIONS:
            raise ValueError(
                f"view_combine={combine!r} is not valid; choose one of {list(VIEW_COMBINATIONS)}"
            )
        if search not in SEARCH_MODES:
            raise ValueError(f"knn_search={search!r} is not valid; choose one of {list(SEARCH_MODES)}")
        if search == "approximate":
            require_faiss()  # fail before bank building, not at the first search
        self.view_groups = dict(view_groups)
        self.coreset_ratio = float(coreset_ratio)
        self.coreset_candidates = coreset_candidates
        self.coreset_method = coreset_method
        self.top_k = int(top_k)
        self.view_combine = combine
        self.seed = int(seed)
        self.search = search
        self.verbose = verbose
        self.banks: dict[str, torch.Tensor] = {}
        self._indexes: dict[str, PrefixIndex] = {}
        self.mean: dict[str, float] = {}
        self.std: dict[str, float] = {}
        self.train_view_scores: dict[str, np.ndarray] = {}

    supports_views = True
    has_maps = True

    @property
    def needs(self) -> frozenset[str]:
        """Patch feature maps only."""
        return frozenset({"patch"})

    def _index(self, group: str) -> PrefixIndex:
        """Return the search index of one bank, built on first use (at fit, with each row's sample)."""
        if group not in self._indexes:
            self._indexes[group] = PrefixIndex(NeighborIndex(self.banks[group], self.search))
        return self._indexes[group]

    def _group(self, view: str) -> str:
        """Return the bank of a view, refusing a view not seen in training."""
        if view not in self.view_groups:
            raise ValueError(f"view {view!r} was not seen in training")
        return self.view_groups[view]

    def _maps(self, feats: Features, leave_own_out: bool = False) -> dict[str, np.ndarray]:
        """Raw nearest-patch distance maps ``(n, h, w)`` (float32) of each view present.

        With ``leave_own_out`` the features are the training features, and each
        patch ignores the bank rows of its own sample (of its group, when the
        features have ``sample_groups``).
        """
        out = {}
        for view, maps in feats.patches.items():
            n, _, h, w = maps.shape
            owners = _owners(feats, n) if leave_own_out else None
            index, step = self._index(self._group(view)).index, max(1, SCORE_CHUNK // (h * w))
            parts = []
            with progress_bar(n, f"maps {view}", "image", self.verbose) as bar:
                for start in range(0, n, step):  # chunks of images, as in _image_scores
                    own = None if owners is None else owners[start : start + step].repeat_interleave(h * w)
                    parts.append(index.nearest_distance(_as_rows(maps[start : start + step]), own))
                    bar.update(len(maps[start : start + step]))
            out[view] = torch.cat(parts).reshape(n, h, w).numpy()
        return out

    def _image_scores(self, feats: Features, leave_own_out: bool = False) -> dict[str, np.ndarray]:
        """Top-k mean of the position scores of each view, searching only positions that can reach the top.

        Equal to the top-k mean of :meth:`_maps` (:class:`~mmocc.search.pruned.PrefixIndex`).
        """
        out = {}
        for view, maps in feats.patches.items():
            n, c, h, w = maps.shape
            owners = _owners(feats, n) if leave_own_out else None
            index, step = self._index(self._group(view)), max(1, SCORE_CHUNK // (h * w))
            tops = []
            with progress_bar(n, f"scoring {view}", "image", self.verbose) as bar:
                for start in range(0, n, step):  # chunks of images: the row copies stay O(SCORE_CHUNK)
                    rows = _as_rows(maps[start : start + step]).reshape(-1, h * w, c)
                    own = None if owners is None else owners[start : start + step]
                    tops.append(index.top_nearest(rows, min(self.top_k, h * w), own))
                    bar.update(len(rows))
            out[view] = torch.cat(tops).numpy().astype(np.float64).mean(axis=1)
        return out

    def combine(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        """Combine standardized view scores by their maximum or mean."""
        stacked = np.column_stack(list(scores.values()))
        return stacked.max(axis=1) if self.view_combine == "max" else stacked.mean(axis=1)

    def fit(self, train: Features) -> np.ndarray:
        """Build the coreset banks and standardize each view by its leave-one-out scores."""
        if train.n < 2:
            raise ValueError("the patch score needs at least 2 training samples")
        for offset, group in enumerate(sorted({self.view_groups[view] for view in train.patches})):
            views = [view for view in train.patches if self.view_groups[view] == group]
            # the group's training patches are read from the maps a block at a time, never all laid out
            source = MapRows([train.patches[view] for view in views])
            owner = torch.cat(
                [_owners(train, train.n).repeat_interleave(_positions(train, v)) for v in views]
            )
            keep = self._select(source, math.ceil(self.coreset_ratio * len(source)), self.seed + offset)
            self.banks[group] = source.take(keep)
            self._indexes[group] = PrefixIndex(
                NeighborIndex(self.banks[group], self.search, owners=owner[keep])
            )
        raw = self._image_scores(train, leave_own_out=True)
        self.mean = {view: float(values.mean()) for view, values in raw.items()}
        self.std = {view: float(values.std()) or 1.0 for view, values in raw.items()}
        self.train_view_scores = self._standardize(raw)
        return self.combine(self.train_view_scores)

    def _select(self, points: RowSource, size: int, seed: int) -> torch.Tensor:
        """Return the indices of the bank rows among a group's training patches, by ``coreset_method``."""
        if self.coreset_method == "cells":
            return cell_coreset(points, size, seed=seed, verbose=self.verbose)
        return greedy_coreset(
            points, size, seed=seed, max_candidates=self.coreset_candidates, verbose=self.verbose
        )

    def _standardize(self, scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {view: (values - self.mean[view]) / self.std[view] for view, values in scores.items()}

    def view_scores(self, feats: Features) -> dict[str, np.ndarray]:
        """Standardized score of each view present (comparable across views)."""
        return self._standardize(self._image_scores(feats))

    def score(self, feats: Features) -> np.ndarray:
        """Combine the views' standardized scores."""
        return self.combine(self.view_scores(feats))

    def score_with_views(self, feats: Features) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Return the sample scores and the view scores from one search."""
        views = self.view_scores(feats)
        return self.combine(views), views

    def anomaly_maps(self, feats: Features) -> dict[str, np.ndarray]:
        """Position scores ``(n, h, w)`` of each view, standardized by the view's statistics."""
        return {
            view: (m.astype(np.float64) - self.mean[view]) / self.std[view]
            for view, m in self._maps(feats).items()
        }

    def state(self) -> dict[str, np.ndarray]:
        """Return the banks and each view's standardization statistics."""
        out = {f"bank.{group}": bank.numpy() for group, bank in self.banks.items()}
        for view in self.mean:
            out[f"stats.{view}"] = np.array([self.mean[view], self.std[view]])
            out[f"train_view.{view}"] = self.train_view_scores[view]
        return out

    def state_spec(self, dims: FeatureDims) -> dict[str, Expect]:
        """Expect a coreset bank per image-view group; each image view's statistics and training scores."""
        out: dict[str, Expect] = {}
        for view, channels in dims.patch.items():
            out[f"bank.{self.view_groups[view]}"] = Expect((None, channels))
            out[f"stats.{view}"] = Expect((2,), values="mean_std")
            out[f"train_view.{view}"] = Expect((dims.n_train,))
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore the banks and statistics."""
        self.banks = {
            k[len("bank.") :]: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
            for k, v in state.items()
            if k.startswith("bank.")
        }
        self._indexes = {}
        stats = {k[len("stats.") :]: v for k, v in state.items() if k.startswith("stats.")}
        self.mean = {view: float(v[0]) for view, v in stats.items()}
        self.std = {view: float(v[1]) for view, v in stats.items()}
        self.train_view_scores = {
            k[len("train_view.") :]: np.asarray(v, dtype=np.float64)
            for k, v in state.items()
            if k.startswith("train_view.")
        }
