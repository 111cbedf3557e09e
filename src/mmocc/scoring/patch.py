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

import functools
import math
from types import ModuleType

import numpy as np
import torch

from mmocc.scoring.base import Features, ScoringRule
from mmocc.scoring.state import Expect, FeatureDims

VIEW_COMBINATIONS: tuple[str, ...] = ("max", "mean")
"""How :class:`PatchScore` combines the standardized view scores."""

_QUERY_CHUNK = 256
_BANK_CHUNK = 4096
_FAISS_QUERY_CHUNK = 65536
_FAISS_NEIGHBOURS = 16
_PROJECTION_DIM = 128


@functools.cache
def faiss_module() -> ModuleType | None:
    """Return the faiss module when it is installed (``pip install "mmocc[faiss]"``), else None.

    Returns
    -------
    module or None
        ``faiss``, imported on first use.
    """
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def greedy_coreset(points: torch.Tensor, size: int, *, seed: int = 0) -> torch.Tensor:
    """Choose ``size`` points by greedy farthest-point selection (k-centre); return their indices.

    Distances are measured after a random Gaussian projection to at most 128
    dimensions (Roth et al., 2022), which keeps selection fast. When ``size``
    reaches ``m`` every point is kept, in their order, without selection.

    Parameters
    ----------
    points : Tensor of shape (m, C)
        The candidates.
    size : int
        How many to select (at most ``m``; at least 1).
    seed : int, default 0
        Seed of the projection and of the first point.

    Returns
    -------
    Tensor of shape (min(size, m),)
        Indices into ``points``, in selection order, without duplicates.

    Examples
    --------
    >>> pts = torch.tensor([[0.0], [0.1], [5.0], [10.0]])
    >>> sorted(greedy_coreset(pts, 3, seed=0).tolist())
    [0, 2, 3]
    """
    m = len(points)
    size = min(max(int(size), 1), m)
    if size >= m:
        return torch.arange(m)
    generator = torch.Generator().manual_seed(int(seed))
    x = points.float()
    if x.shape[1] > _PROJECTION_DIM:
        projection = torch.randn(x.shape[1], _PROJECTION_DIM, generator=generator) / math.sqrt(
            _PROJECTION_DIM
        )
        x = x @ projection
    # (C, m) layout: the per-step product c @ x_t streams contiguous rows, 2-3x faster than x @ c
    x_t = x.T.contiguous()
    squared = x.pow(2).sum(dim=1)
    chosen = torch.empty(size, dtype=torch.long)
    last = int(torch.randint(m, (1,), generator=generator))
    chosen[0] = last
    nearest = torch.full((m,), float("inf"))
    nearest[last] = float("-inf")  # a chosen point is never chosen again, even among duplicates
    step = torch.empty(m)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of small steps: extra threads only add synchronisation
    try:
        for i in range(1, size):
            # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2: one vector-matrix product per step
            torch.addmv(squared, x_t.T, x[last], alpha=-2.0, out=step)
            step.add_(squared[last])
            torch.minimum(nearest, step, out=nearest)
            last = int(nearest.argmax())
            nearest[last] = float("-inf")
            chosen[i] = last
    finally:
        torch.set_num_threads(threads)
    return chosen


def _blocked_nearest(
    queries: torch.Tensor,
    bank: torch.Tensor,
    query_owner: torch.Tensor | None,
    bank_owner: torch.Tensor | None,
) -> torch.Tensor:
    """Index of each query's nearest bank row by blocked matmul (-1 where every row is masked)."""
    bank_squared = bank.pow(2).sum(dim=1)
    index = torch.empty(len(queries), dtype=torch.long)
    for start in range(0, len(queries), _QUERY_CHUNK):
        block = queries[start : start + _QUERY_CHUNK]
        best = torch.full((len(block),), float("inf"))
        best_index = torch.full((len(block),), -1, dtype=torch.long)
        for first in range(0, len(bank), _BANK_CHUNK):
            part = bank[first : first + _BANK_CHUNK]
            # ||q - b||^2 - ||q||^2 = ||b||^2 - 2 q.b: the row's minimum is at the same column
            scores = torch.addmm(bank_squared[first : first + _BANK_CHUNK], block, part.T, alpha=-2.0)
            if query_owner is not None and bank_owner is not None:
                same = (
                    query_owner[start : start + _QUERY_CHUNK, None]
                    == bank_owner[None, first : first + len(part)]
                )
                scores.masked_fill_(same, float("inf"))
            values, where = scores.min(dim=1)
            better = values < best
            best = torch.where(better, values, best)
            best_index = torch.where(better, where + first, best_index)
        index[start : start + _QUERY_CHUNK] = best_index
    return index


def _faiss_nearest(
    queries: torch.Tensor,
    bank: torch.Tensor,
    query_owner: torch.Tensor | None,
    bank_owner: torch.Tensor | None,
) -> torch.Tensor:
    """Index of each query's nearest bank row by faiss flat L2 search (-1 where every row is masked).

    With owners, the ``k`` nearest rows are searched and the first one of
    another sample is kept; queries whose ``k`` nearest all belong to their
    own sample are searched again exactly by :func:`_blocked_nearest`.
    """
    faiss = faiss_module()
    if faiss is None:
        raise ImportError('use_faiss=True needs faiss: pip install "mmocc[faiss]" (or faiss-cpu)')
    faiss.omp_set_num_threads(torch.get_num_threads())
    flat = faiss.IndexFlatL2(bank.shape[1])
    flat.add(bank.numpy())
    masked = query_owner is not None and bank_owner is not None
    k = min(len(bank), _FAISS_NEIGHBOURS) if masked else 1
    index = torch.empty(len(queries), dtype=torch.long)
    for start in range(0, len(queries), _FAISS_QUERY_CHUNK):
        block = queries[start : start + _FAISS_QUERY_CHUNK]
        found = torch.from_numpy(flat.search(block.numpy(), k)[1])
        if not masked:
            index[start : start + len(block)] = found[:, 0]
            continue
        assert query_owner is not None and bank_owner is not None
        owner = query_owner[start : start + len(block)]
        other = (found >= 0) & (bank_owner[found.clamp_min(0)] != owner[:, None])
        first = other.to(torch.uint8).argmax(dim=1)
        picked = found.gather(1, first[:, None])[:, 0]
        unresolved = torch.nonzero(~other.any(dim=1))[:, 0]
        if len(unresolved):
            picked[unresolved] = _blocked_nearest(block[unresolved], bank, owner[unresolved], bank_owner)
        index[start : start + len(block)] = picked
    return index


def nearest_distance(
    queries: torch.Tensor,
    bank: torch.Tensor,
    *,
    query_owner: torch.Tensor | None = None,
    bank_owner: torch.Tensor | None = None,
    use_faiss: bool | None = None,
) -> torch.Tensor:
    """Euclidean distance of each query to its nearest bank row, in bounded memory.

    The nearest row is found by faiss's flat L2 search when faiss is installed
    (``pip install "mmocc[faiss]"``), else by blocked matrix products
    (``||b||^2 - 2 q.b`` over blocks of 256 queries and 4,096 bank rows);
    the distance to it is then computed directly, so it does not suffer the
    cancellation of the matrix-product form.

    Parameters
    ----------
    queries : Tensor of shape (q, C)
        Query vectors (float32).
    bank : Tensor of shape (m, C)
        The memory bank (float32).
    query_owner, bank_owner : Tensor of shape (q,) and (m,), optional
        Sample index of each row; a query ignores bank rows of its own sample
        (leave-one-out), by owner, not by position. Both or neither.
    use_faiss : bool or None, default None
        Search with faiss; None uses it when it is installed.

    Returns
    -------
    Tensor of shape (q,)
        The distances (float32); ``inf`` for a query whose every bank row is
        its own sample's.
    """
    queries, bank = queries.float().contiguous(), bank.float().contiguous()
    if (query_owner is None) != (bank_owner is None):
        raise ValueError("give both query_owner and bank_owner, or neither")
    if use_faiss is None:
        use_faiss = faiss_module() is not None
    if len(queries) == 0 or len(bank) == 0:
        return torch.full((len(queries),), float("inf"))
    search = _faiss_nearest if use_faiss else _blocked_nearest
    index = search(queries, bank, query_owner, bank_owner)
    out = torch.full((len(queries),), float("inf"))
    for start in range(0, len(queries), _FAISS_QUERY_CHUNK):
        rows = index[start : start + _FAISS_QUERY_CHUNK]
        hit = rows >= 0
        diff = queries[start : start + _FAISS_QUERY_CHUNK][hit] - bank[rows[hit]]
        out[start : start + _FAISS_QUERY_CHUNK][hit] = diff.pow(2).sum(dim=1).sqrt()
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
        """Raw nearest-patch distance maps ``(n, h, w)`` (float32) of each view present."""
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
            out[view] = dist.reshape(n, h, w).numpy()
        return out

    def _image_scores(self, maps: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Top-k mean of the position scores of each view."""
        out = {}
        for view, values in maps.items():
            flat = values.reshape(len(values), -1)
            k = min(self.top_k, flat.shape[1])
            top = flat.max(axis=1, keepdims=True) if k == 1 else np.partition(flat, -k, axis=1)[:, -k:]
            out[view] = top.astype(np.float64).mean(axis=1)
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
        stats = {k[len("stats.") :]: v for k, v in state.items() if k.startswith("stats.")}
        self.mean = {view: float(v[0]) for view, v in stats.items()}
        self.std = {view: float(v[1]) for view, v in stats.items()}
        self.train_view_scores = {
            k[len("train_view.") :]: np.asarray(v, dtype=np.float64)
            for k, v in state.items()
            if k.startswith("train_view.")
        }
