"""The patch score: per-view memory banks of local feature vectors (PatchCore-style).

Each image view is seen as a grid of local feature vectors ``(n, C, h, w)``
(from intermediate maps of the autoencoder's encoder or of a pretrained
backbone, averaged over a 3x3 neighbourhood; see
:mod:`mmocc.model.patches`). Training patches of the views that share an
encoder form one memory bank, thinned by greedy coreset selection. A query
position scores its distance to the nearest bank patch; a view scores the mean
of its ``top_k`` highest positions (1 = the maximum); each view's score is
standardized by its leave-one-out training scores (a training image is scored
against the bank without any patch of its own sample), and the views are
combined by their maximum or mean. The position scores, standardized alike,
are the anomaly maps.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from mmocc.scoring.base import Features, ScoringRule

VIEW_COMBINATIONS: tuple[str, ...] = ("max", "mean")
"""How :class:`PatchScore` combines the standardized view scores."""

_CHUNK_BYTES = 32 * 2**20
_PROJECTION_DIM = 128


def greedy_coreset(points: torch.Tensor, size: int, *, seed: int = 0) -> torch.Tensor:
    """Choose ``size`` points by greedy farthest-point selection (k-centre); return their indices.

    Distances are measured after a random Gaussian projection to at most 128
    dimensions (Roth et al., 2022), which keeps selection fast.

    Parameters
    ----------
    points : Tensor of shape (m, C)
        The candidates.
    size : int
        How many to select (at most ``m``).
    seed : int, default 0
        Seed of the projection and of the first point.

    Returns
    -------
    Tensor of shape (size,)
        Indices into ``points``, in selection order.

    Examples
    --------
    >>> pts = torch.tensor([[0.0], [0.1], [5.0], [10.0]])
    >>> sorted(greedy_coreset(pts, 3, seed=0).tolist())
    [0, 2, 3]
    """
    m = len(points)
    size = min(int(size), m)
    generator = torch.Generator().manual_seed(int(seed))
    x = points.float()
    if x.shape[1] > _PROJECTION_DIM:
        projection = torch.randn(x.shape[1], _PROJECTION_DIM, generator=generator) / math.sqrt(
            _PROJECTION_DIM
        )
        x = x @ projection
    squared = x.pow(2).sum(dim=1)
    chosen = [int(torch.randint(m, (1,), generator=generator))]
    nearest = torch.full((m,), float("inf"))
    step = torch.empty(m)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of small steps: extra threads only add synchronisation
    try:
        for _ in range(1, size):
            last = chosen[-1]
            # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2: one matrix-vector product per step
            torch.mv(x, x[last], out=step)
            step.mul_(-2.0).add_(squared).add_(squared[last])
            torch.minimum(nearest, step, out=nearest)
            chosen.append(int(nearest.argmax()))
    finally:
        torch.set_num_threads(threads)
    return torch.tensor(chosen, dtype=torch.long)


def nearest_distance(
    queries: torch.Tensor,
    bank: torch.Tensor,
    *,
    query_owner: torch.Tensor | None = None,
    bank_owner: torch.Tensor | None = None,
) -> torch.Tensor:
    """Euclidean distance of each query to its nearest bank row, in bounded memory.

    Queries are processed in chunks so that one chunk's distance matrix stays
    near 32 MiB, whatever the number of queries.

    Parameters
    ----------
    queries : Tensor of shape (q, C)
        Query vectors.
    bank : Tensor of shape (m, C)
        The memory bank.
    query_owner, bank_owner : Tensor of shape (q,) and (m,), optional
        Sample index of each row; a query ignores bank rows of its own sample
        (leave-one-out). Both or neither.

    Returns
    -------
    Tensor of shape (q,)
        The distances (float32).
    """
    chunk = max(1, _CHUNK_BYTES // (4 * max(1, len(bank))))
    out = torch.empty(len(queries))
    for start in range(0, len(queries), chunk):
        dist = torch.cdist(queries[start : start + chunk], bank)
        if query_owner is not None and bank_owner is not None:
            same = query_owner[start : start + chunk, None] == bank_owner[None, :]
            dist = dist.masked_fill(same, float("inf"))
        out[start : start + chunk] = dist.min(dim=1).values
    return out


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
    top_k : int, default 1
        A view's score is the mean of its ``top_k`` highest position scores.
    combine : {"max", "mean"}, default "max"
        How standardized view scores are combined: a defect seen by one camera
        stands out more under the maximum.
    seed : int, default 0
        Seed of the coreset selection.
    """

    name = "patch"

    def __init__(
        self,
        view_groups: dict[str, str],
        *,
        coreset_ratio: float = 0.1,
        top_k: int = 1,
        combine: str = "max",
        seed: int = 0,
    ) -> None:
        if not 0.0 < float(coreset_ratio) <= 1.0:
            raise ValueError(f"coreset_ratio must be in (0, 1], got {coreset_ratio!r}")
        if int(top_k) < 1:
            raise ValueError(f"patch_top_k must be >= 1, got {top_k!r}")
        if combine not in VIEW_COMBINATIONS:
            raise ValueError(
                f"view_combine={combine!r} is not valid; choose one of {list(VIEW_COMBINATIONS)}"
            )
        self.view_groups = dict(view_groups)
        self.coreset_ratio = float(coreset_ratio)
        self.top_k = int(top_k)
        self.view_combine = combine
        self.seed = int(seed)
        self.banks: dict[str, torch.Tensor] = {}
        self.mean: dict[str, float] = {}
        self.std: dict[str, float] = {}
        self.train_view_scores: dict[str, np.ndarray] = {}

    supports_views = True
    has_maps = True

    @property
    def needs(self) -> frozenset[str]:
        """Patch feature maps only."""
        return frozenset({"patch"})

    def _maps(self, feats: Features, owners: dict[str, torch.Tensor] | None = None) -> dict[str, np.ndarray]:
        """Raw nearest-patch distance maps ``(n, h, w)`` of each view present."""
        out = {}
        for view, maps in feats.patches.items():
            if view not in self.view_groups:
                raise ValueError(f"view {view!r} was not seen in training")
            n, _, h, w = maps.shape
            bank = self.banks[self.view_groups[view]]
            if owners is None:
                dist = nearest_distance(_as_rows(maps), bank)
            else:
                query_owner = torch.arange(n).repeat_interleave(h * w)
                dist = nearest_distance(
                    _as_rows(maps), bank, query_owner=query_owner, bank_owner=owners[self.view_groups[view]]
                )
            out[view] = dist.reshape(n, h, w).numpy().astype(np.float64)
        return out

    def _image_scores(self, maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Top-k mean of the position scores of each view."""
        out = {}
        for view, values in maps.items():
            flat = values.reshape(len(values), -1)
            k = min(self.top_k, flat.shape[1])
            out[view] = np.sort(flat, axis=1)[:, -k:].mean(axis=1)
        return out

    def combine(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        """Combine standardized view scores by their maximum or mean."""
        stacked = np.column_stack(list(scores.values()))
        return stacked.max(axis=1) if self.view_combine == "max" else stacked.mean(axis=1)

    def fit(self, train: Features) -> np.ndarray:
        """Build the coreset banks and standardize each view by its leave-one-out scores."""
        if train.n < 2:
            raise ValueError("the patch score needs at least 2 training samples")
        rows: dict[str, list[torch.Tensor]] = {}
        owners: dict[str, list[torch.Tensor]] = {}
        for view, maps in train.patches.items():
            n, _, h, w = maps.shape
            group = self.view_groups[view]
            rows.setdefault(group, []).append(_as_rows(maps))
            owners.setdefault(group, []).append(torch.arange(n).repeat_interleave(h * w))
        kept_owner: dict[str, torch.Tensor] = {}
        for offset, group in enumerate(sorted(rows)):
            points, owner = torch.cat(rows[group]), torch.cat(owners[group])
            keep = greedy_coreset(
                points, math.ceil(self.coreset_ratio * len(points)), seed=self.seed + offset
            )
            self.banks[group], kept_owner[group] = points[keep].contiguous(), owner[keep]
        raw = self._image_scores(self._maps(train, kept_owner))
        self.mean = {view: float(values.mean()) for view, values in raw.items()}
        self.std = {view: float(values.std()) or 1.0 for view, values in raw.items()}
        self.train_view_scores = self._standardize(raw)
        return self.combine(self.train_view_scores)

    def _standardize(self, scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {view: (values - self.mean[view]) / self.std[view] for view, values in scores.items()}

    def view_scores(self, feats: Features) -> dict[str, np.ndarray]:
        """Standardized score of each view present (comparable across views)."""
        return self._standardize(self._image_scores(self._maps(feats)))

    def score(self, feats: Features) -> np.ndarray:
        """Combine the views' standardized scores."""
        return self.combine(self.view_scores(feats))

    def score_with_views(self, feats: Features) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Return the sample scores and the view scores from one search."""
        views = self.view_scores(feats)
        return self.combine(views), views

    def anomaly_maps(self, feats: Features) -> dict[str, np.ndarray]:
        """Position scores ``(n, h, w)`` of each view, standardized by the view's statistics."""
        return {view: (m - self.mean[view]) / self.std[view] for view, m in self._maps(feats).items()}

    def state(self) -> dict[str, np.ndarray]:
        """Return the banks and each view's standardization statistics."""
        out = {f"bank.{group}": bank.numpy() for group, bank in self.banks.items()}
        for view in self.mean:
            out[f"stats.{view}"] = np.array([self.mean[view], self.std[view]])
            out[f"train_view.{view}"] = self.train_view_scores[view]
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore the banks and statistics."""
        self.banks = {
            k[len("bank.") :]: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
            for k, v in state.items()
            if k.startswith("bank.")
        }
        stats = {k[len("stats.") :]: v for k, v in state.items() if k.startswith("stats.")}
        self.mean = {view: float(v[0]) for view, v in stats.items()}
        self.std = {view: float(v[1]) for view, v in stats.items()}
        self.train_view_scores = {
            k[len("train_view.") :]: np.asarray(v, dtype=np.float64)
            for k, v in state.items()
            if k.startswith("train_view.")
        }
