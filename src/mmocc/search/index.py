"""Nearest-neighbour search over a memory bank: the one engine behind the k-NN and patch rules.

Backends, chosen by one policy (:func:`choose_backend`):

``"torch"``
    Exact. Ranks the bank rows of a block of queries by ``||b||^2 - 2 q.b``
    (one float32 matrix product; queries in blocks so the distance block stays
    under ``block_bytes``) and keeps the best ``k + MARGIN`` candidates.
``"faiss-flat"``
    Exact. faiss's brute-force ``IndexFlatL2`` gives the candidates (faster on
    large banks; ``pip install "mmocc[faiss]"``).
``"faiss-hnsw"``
    Approximate. A faiss HNSW graph; it may miss a true neighbour (recall
    below 1), and a graph built with several threads depends on their
    scheduling, so repeated fits can differ slightly.
``"projected"``
    Approximate. The bank's principal components (PCA fitted on at most
    :data:`PCA_SAMPLE` evenly spaced bank rows, to :func:`projected_dims`
    dimensions) rank the rows, with faiss's flat index when faiss is installed
    (unless a leave-one-out owner holds more than :data:`OWNER_ROOM` rows) and as
    the torch backend does otherwise; the ``k + rerank`` best of that
    ranking are re-ranked by their exact distances in full dimensions. It
    misses a true neighbour only when the projection ranks it below
    ``k + rerank`` others; with ``rerank`` at least the bank size it is exact.

The faiss policy: ``search="exact"`` uses faiss's flat index whenever faiss
is installed and torch's blocked search otherwise; both are exact, so the
neighbours found do not depend on it. ``search="approximate"`` builds an HNSW
graph, only when asked, and only for banks of more than ``exact_below`` rows.
``search="projected"`` needs no faiss, and ranks with it when it is installed.
Whatever the backend, the candidates' distances are recomputed directly as
``||q - b||``, so they carry no cancellation error of the matmul form, and
the nearest ``k`` of them are returned.

Leave-one-out: each bank row has an owner (by default its own row index; the
patch rule passes the sample each patch came from), and a query may exclude
one owner: every row of that owner is skipped, by owner, never by position,
so a duplicate of the query from another owner, at distance 0, still counts.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import Any

import numpy as np
import torch
from sklearn.decomposition import PCA

SEARCH_MODES: tuple[str, ...] = ("exact", "approximate", "projected")
"""The values of ``knn_search``: exact search, faiss HNSW, or a PCA ranking re-ranked exactly."""

BLOCK_BYTES = 64 * 2**20
"""Default bound on the float32 distance block of one query block (64 MiB)."""

MARGIN = 8
"""Extra candidates of the float32 ranking kept for the exact recomputation."""

EXACT_BELOW = 4096
"""Approximate search searches banks of at most this many rows exactly (cheaper than a graph there)."""

HNSW_M = 16
"""Neighbours per node of the HNSW graph."""

HNSW_EF_CONSTRUCTION = 40
"""Candidate list length while building the HNSW graph."""

HNSW_EF_SEARCH = 64
"""Smallest candidate list length of an HNSW search."""

FAISS_QUERY_CHUNK = 65536
"""Queries per faiss call (bounds the candidate arrays)."""

OWNER_ROOM = 16
"""Extra faiss candidates kept for rows of a query's excluded owner (queries left short: exact search)."""

PROJECTED_DIMS = 64
"""Principal components the ``"projected"`` backend ranks in (fewer for narrow banks: see projected_dims)."""

PCA_SAMPLE = 16384
"""Bank rows (evenly spaced) the ``"projected"`` backend fits its principal axes on."""

EXACT_PCA_WIDTH = 1024
"""Widest bank whose principal axes the ``"projected"`` backend computes exactly (wider: randomized)."""

RERANK = 32
"""Candidates beyond ``k`` that the ``"projected"`` backend re-ranks in full dimensions."""

_RECOMPUTE_ELEMENTS = 2**21
"""Elements of the gathered ``(queries, candidates, dims)`` block of the exact recomputation (8 MiB)."""


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


def require_faiss() -> ModuleType:
    """Return faiss, naming the extra that installs it when it is missing.

    Returns
    -------
    module
        The ``faiss`` module.

    Raises
    ------
    ImportError
        When faiss is not installed.
    """
    faiss = faiss_module()
    if faiss is None:
        raise ImportError('knn_search="approximate" needs faiss: pip install "mmocc[faiss]" (or faiss-cpu)')
    return faiss


def projected_dims(dims: int) -> int:
    """Return the principal components the ``"projected"`` backend ranks a bank of ``dims`` columns in.

    :data:`PROJECTED_DIMS` for banks at least twice as wide; a narrower bank
    keeps its columns (it is searched exactly: projecting it would save less
    than re-ranking costs).

    Parameters
    ----------
    dims : int
        Columns of the bank.

    Returns
    -------
    int
        Dimensions of the ranking space: :data:`PROJECTED_DIMS`, or ``dims``.

    Examples
    --------
    >>> projected_dims(1280), projected_dims(128), projected_dims(48)
    (64, 64, 48)
    """
    return PROJECTED_DIMS if dims >= 2 * PROJECTED_DIMS else dims


def principal_axes(
    bank: torch.Tensor, dims: int, sample: int = PCA_SAMPLE
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the bank's mean and its ``dims`` leading principal axes.

    scikit-learn's PCA fitted on at most ``sample`` evenly spaced rows: exact
    (the covariance's eigenvectors) for banks of at most
    :data:`EXACT_PCA_WIDTH` columns, a seeded randomized solver for wider
    ones. The axes only choose which candidates are re-ranked exactly, so a
    sample of a large bank serves as well as all of it, at a cost that does
    not grow with the bank.

    Parameters
    ----------
    bank : Tensor of shape (m, d)
        Rows the PCA is fitted on.
    dims : int
        Axes to keep (at most ``d``).
    sample : int, default :data:`PCA_SAMPLE`
        Rows fitted on, at most.

    Returns
    -------
    mean : Tensor of shape (d,)
        Float32 column means of the rows fitted on.
    axes : Tensor of shape (d, min(dims, rows fitted on))
        Float32 orthonormal columns, by decreasing variance.

    Examples
    --------
    >>> mean, axes = principal_axes(torch.tensor([[0.0, 0.0], [2.0, 0.1], [4.0, 0.0]]), 1)
    >>> [round(v, 3) for v in mean.tolist()], [round(abs(v), 3) for v in axes[:, 0].tolist()]
    ([2.0, 0.033], [1.0, 0.0])
    """
    rows = torch.linspace(0, len(bank) - 1, min(len(bank), sample)).round().long()
    solver = "covariance_eigh" if bank.shape[1] <= EXACT_PCA_WIDTH else "randomized"
    fitted = PCA(n_components=min(dims, len(rows)), svd_solver=solver, random_state=0)
    fitted.fit(bank[rows].float().numpy())
    mean = torch.from_numpy(fitted.mean_).float()
    return mean, torch.from_numpy(fitted.components_.T).float().contiguous()


def choose_backend(search: str, n_rows: int, exact_below: int = EXACT_BELOW) -> str:
    """Apply the faiss policy: which backend searches a bank of ``n_rows`` rows.

    Parameters
    ----------
    search : {"exact", "approximate"}
        What the caller asked for.
    n_rows : int
        Rows of the bank.
    exact_below : int, default :data:`EXACT_BELOW`
        Approximate search searches banks of at most this many rows exactly.

    Returns
    -------
    {"torch", "faiss-flat", "faiss-hnsw", "projected"}
        The backend.

    Raises
    ------
    ValueError
        For an unknown ``search``.
    ImportError
        For ``search="approximate"`` without faiss.
    """
    if search not in SEARCH_MODES:
        raise ValueError(f"knn_search={search!r} is not valid; choose one of {list(SEARCH_MODES)}")
    if search == "approximate":
        require_faiss()
        if n_rows > exact_below:
            return "faiss-hnsw"
    if search == "projected":
        return "projected"
    return "faiss-flat" if faiss_module() is not None else "torch"


class NeighborIndex:
    """A memory bank prepared for k-nearest-neighbour queries under the Euclidean distance.

    Parameters
    ----------
    bank : numpy.ndarray or Tensor
        ``(m, d)`` bank rows; stored as float32.
    search : {"exact", "approximate", "projected"}, default "exact"
        Exact search, a faiss HNSW graph for large banks, or a PCA ranking
        re-ranked exactly (see the module docstring).
    owners : numpy.ndarray or Tensor, optional
        ``(m,)`` integer owner of each row, for leave-one-out by owner; default:
        each row owns itself (leave-one-out by row).
    block_bytes : int, default :data:`BLOCK_BYTES`
        Bound on the float32 distance block of one query block (torch backend);
        at least one query per block.
    exact_below : int, default :data:`EXACT_BELOW`
        Approximate search searches banks of at most this many rows exactly.
    rerank : int, default :data:`RERANK`
        Projected search: candidates beyond ``k`` re-ranked in full
        dimensions (at least the bank size: exact).

    Attributes
    ----------
    backend : {"torch", "faiss-flat", "faiss-hnsw", "projected"}
        The backend the policy chose.
    rank_bank : Tensor
        The rows the candidates are ranked by: the bank, or its projection.

    Raises
    ------
    ValueError
        For an unknown ``search``, a bank that is not a non-empty 2-D array,
        owners of the wrong shape, or a non-positive ``block_bytes``.
    ImportError
        For ``search="approximate"`` without faiss.

    Examples
    --------
    >>> bank = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    >>> dist, rows = NeighborIndex(bank).kneighbors(np.array([[0.9, 0.0]]), 2)
    >>> rows.tolist(), np.round(dist, 3).tolist()
    ([[1, 0]], [[0.1, 0.9]])
    """

    def __init__(
        self,
        bank: np.ndarray | torch.Tensor,
        search: str = "exact",
        *,
        owners: np.ndarray | torch.Tensor | None = None,
        block_bytes: int = BLOCK_BYTES,
        exact_below: int = EXACT_BELOW,
        rerank: int = RERANK,
    ) -> None:
        values = torch.as_tensor(bank).float().contiguous()
        if values.ndim != 2 or not values.numel():
            shape = tuple(values.shape)
            raise ValueError(f"the bank must be a non-empty (rows, dims) array, got shape {shape}")
        if block_bytes < 1:
            raise ValueError(f"block_bytes must be >= 1, got {block_bytes!r}")
        self.backend = choose_backend(search, len(values), exact_below)
        if self.backend == "projected" and projected_dims(values.shape[1]) == values.shape[1]:
            self.backend = choose_backend("exact", len(values))  # narrow: nothing worth projecting away
        self.block_bytes = int(block_bytes)
        self.bank = values
        self.sq_norms = values.square().sum(dim=1)
        self.rerank = int(rerank)
        self.projection: tuple[torch.Tensor, torch.Tensor] | None = None
        self.rank_bank, self.rank_norms = values, self.sq_norms
        if self.backend == "projected":
            self.projection = principal_axes(values, projected_dims(values.shape[1]))
            self.rank_bank = self.to_rank_space(values)
            self.rank_norms = self.rank_bank.square().sum(dim=1)
        self.owners: torch.Tensor | None = None
        self.max_owned = 1
        if owners is not None:
            self.owners = torch.as_tensor(owners).long()
            if self.owners.shape != (len(values),):
                shape = tuple(self.owners.shape)
                raise ValueError(f"owners must be ({len(values)},), one per bank row, got {shape}")
            self.max_owned = int(torch.unique(self.owners, return_counts=True)[1].max())
        self.faiss_index: Any = None
        if self.backend.startswith("faiss") or (self.projection is not None and faiss_module() is not None):
            self.faiss_index = self._build_faiss(self.rank_bank.numpy())

    def _build_faiss(self, values: np.ndarray) -> Any:
        """Build the faiss index of the chosen backend over the bank rows (in the ranking space)."""
        faiss = require_faiss()
        faiss.omp_set_num_threads(torch.get_num_threads())  # follow torch's (the caller's) thread count
        if self.backend == "faiss-hnsw":
            index = faiss.IndexHNSWFlat(values.shape[1], HNSW_M)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        else:
            index = faiss.IndexFlatL2(values.shape[1])
        index.add(values)
        return index

    def to_rank_space(self, rows: torch.Tensor) -> torch.Tensor:
        """Return ``rows`` in the space the candidates are ranked in: projected, or unchanged.

        Parameters
        ----------
        rows : Tensor of shape (n, d)
            Float32 rows of the bank's width.

        Returns
        -------
        Tensor
            ``(n, d)`` unchanged, or ``(n, projected_dims(d))`` principal coordinates.
        """
        if self.projection is None:
            return rows
        mean, axes = self.projection
        return (rows - mean) @ axes

    def __len__(self) -> int:
        """Return the number of bank rows."""
        return int(self.bank.shape[0])

    def kneighbors(
        self, queries: np.ndarray | torch.Tensor, k: int, exclude: np.ndarray | torch.Tensor | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the distances and bank rows of each query's ``k`` nearest bank rows, nearest first.

        Parameters
        ----------
        queries : numpy.ndarray or Tensor
            ``(n, d)`` query rows.
        k : int
            Neighbours per query; at most the bank size (minus one when
            excluding by row).
        exclude : numpy.ndarray or Tensor, optional
            ``(n,)`` owner each query leaves out (leave-one-out): with the
            default owners, its own bank row. Rows of other owners equal to the
            query still count.

        Returns
        -------
        distances : numpy.ndarray
            ``(n, k)`` float64 Euclidean distances, ascending; ``inf`` where a
            query has fewer than ``k`` rows of other owners.
        indices : numpy.ndarray
            ``(n, k)`` int64 bank rows; ``-1`` where the distance is ``inf``.

        Raises
        ------
        ValueError
            For a bad ``k``, query width or ``exclude``.
        """
        q = torch.as_tensor(queries).float().contiguous()
        available = len(self) - (exclude is not None and self.owners is None)
        if q.ndim != 2 or q.shape[1] != self.bank.shape[1]:
            raise ValueError(f"queries must be (n, {self.bank.shape[1]}), got shape {tuple(q.shape)}")
        if not 1 <= k <= available:
            raise ValueError(f"k must be in [1, {available}] for this bank, got {k!r}")
        own = None if exclude is None else self._checked_exclude(exclude, len(q))
        if not len(q):
            return np.zeros((0, k)), np.zeros((0, k), dtype=np.int64)
        # owners of many rows (a patch bank's images) would crowd faiss's candidates: the projected
        # ranking then masks them in torch instead
        crowded = own is not None and self.backend == "projected" and self.max_owned > OWNER_ROOM
        with torch.no_grad():
            if self.faiss_index is None or crowded:
                dist, idx = self._exact(q, k, own)
            else:
                dist, idx = self._faiss(q, k, own)
        return dist.numpy(), idx.numpy()

    def mean_distance(
        self, queries: np.ndarray | torch.Tensor, k: int, exclude: np.ndarray | torch.Tensor | None = None
    ) -> np.ndarray:
        """Return the mean Euclidean distance of each query to its ``k`` nearest bank rows.

        Parameters
        ----------
        queries, k, exclude
            As in :meth:`kneighbors`.

        Returns
        -------
        numpy.ndarray
            ``(n,)`` float64 mean distances.
        """
        return self.kneighbors(queries, k, exclude)[0].mean(axis=1)

    def nearest_distance(
        self, queries: np.ndarray | torch.Tensor, exclude: np.ndarray | torch.Tensor | None = None
    ) -> torch.Tensor:
        """Return the float32 distance of each query to its nearest bank row (the patch rule's maps).

        Parameters
        ----------
        queries : numpy.ndarray or Tensor
            ``(n, d)`` query rows.
        exclude : numpy.ndarray or Tensor, optional
            As in :meth:`kneighbors`.

        Returns
        -------
        Tensor of shape (n,)
            ``||q - b||`` in float32 to the nearest row of another owner;
            ``inf`` where every row is the query's own owner's.
        """
        q = torch.as_tensor(queries).float().contiguous()
        if exclude is not None and self.owners is None and len(self) == 1:
            return torch.full((len(q),), float("inf"))
        rows = torch.from_numpy(self.kneighbors(q, 1, exclude)[1][:, 0])
        out = torch.full((len(q),), float("inf"))
        for start in range(0, len(q), FAISS_QUERY_CHUNK):
            part = rows[start : start + FAISS_QUERY_CHUNK]
            hit = part >= 0
            diff = q[start : start + FAISS_QUERY_CHUNK][hit] - self.bank[part[hit]]
            out[start : start + FAISS_QUERY_CHUNK][hit] = diff.pow(2).sum(dim=1).sqrt()
        return out

    def _checked_exclude(self, exclude: np.ndarray | torch.Tensor, n: int) -> torch.Tensor:
        """Return the excluded owner of each query, checked against the bank's owners."""
        own = torch.as_tensor(exclude).long()
        if self.owners is None:
            if own.shape != (n,) or (len(own) and not 0 <= int(own.min()) <= int(own.max()) < len(self)):
                raise ValueError(f"self_index must be {n} bank rows in [0, {len(self)}), one per query")
        elif own.shape != (n,):
            raise ValueError(f"exclude must be ({n},), one owner per query, got {tuple(own.shape)}")
        return own

    def _owned(self, cand: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
        """Mask of the candidates (rows of ``cand``) that belong to their query's excluded owner."""
        owner = cand if self.owners is None else self.owners[cand.clamp_min(0)]
        return owner == own[:, None]

    def _exact(self, q: torch.Tensor, k: int, own: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Blocked matmul ranking (full or projected), top candidates, exact distances of the candidates."""
        n_cand = min(k + (MARGIN if self.projection is None else self.rerank), len(self))
        rows = max(1, self.block_bytes // (4 * len(self)))
        dist, idx = torch.empty((len(q), k), dtype=torch.float64), torch.empty((len(q), k), dtype=torch.long)
        for start in range(0, len(q), rows):
            block = q[start : start + rows]
            rank = torch.addmm(self.rank_norms, self.to_rank_space(block), self.rank_bank.T, alpha=-2.0)
            block_own = None if own is None else own[start : start + rows]
            if block_own is not None and self.owners is None:
                rank[torch.arange(len(block)), block_own] = torch.inf
            elif block_own is not None and self.owners is not None:
                rank.masked_fill_(self.owners[None, :] == block_own[:, None], torch.inf)
            cand = rank.topk(n_cand, dim=1, largest=False, sorted=False).indices
            dist[start : start + rows], idx[start : start + rows] = self._best(block, cand, k, block_own)
        return dist, idx

    def _best(
        self, block: torch.Tensor, cand: torch.Tensor, k: int, own: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the ``k`` nearest candidates by exact distance, skipping missing (-1) and excluded ones."""
        exact = self._distances(block, cand)
        invalid = cand < 0
        if own is not None:
            invalid |= self._owned(cand, own)
        exact[invalid] = torch.inf
        best, order = exact.topk(k, dim=1, largest=False, sorted=True)
        chosen = cand.gather(1, order)
        chosen[~torch.isfinite(best)] = -1
        return best, chosen

    def _distances(self, block: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """Float64 Euclidean distances of each query of ``block`` to its candidate bank rows."""
        out = torch.empty(cand.shape, dtype=torch.float64)
        n_cand, dims = cand.shape[1], self.bank.shape[1]
        step = max(1, _RECOMPUTE_ELEMENTS // (n_cand * dims))
        for start in range(0, len(block), step):
            picked = cand[start : start + step].clamp_min(0).reshape(-1)
            rows = self.bank.index_select(0, picked).view(-1, n_cand, dims)
            diff = block[start : start + step, None, :] - rows
            out[start : start + step] = torch.linalg.vector_norm(diff, dim=2)
        return out

    def _faiss(self, q: torch.Tensor, k: int, own: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Faiss candidates (plus room for the excluded owner's rows), exact distances, exact fallback."""
        extra = 0 if own is None else min(self.max_owned, OWNER_ROOM)
        margin = {"faiss-flat": MARGIN, "projected": self.rerank}.get(self.backend, 0)
        n_cand = min(k + extra + margin, len(self))
        require_faiss().omp_set_num_threads(torch.get_num_threads())
        if self.backend == "faiss-hnsw":
            self.faiss_index.hnsw.efSearch = max(HNSW_EF_SEARCH, 2 * n_cand)
        dist, idx = torch.empty((len(q), k), dtype=torch.float64), torch.empty((len(q), k), dtype=torch.long)
        for start in range(0, len(q), FAISS_QUERY_CHUNK):
            block = q[start : start + FAISS_QUERY_CHUNK]
            block_own = None if own is None else own[start : start + FAISS_QUERY_CHUNK]
            cand = torch.from_numpy(self.faiss_index.search(self.to_rank_space(block).numpy(), n_cand)[1])
            best, chosen = self._best(block, cand, k, block_own)
            short = torch.nonzero(~torch.isfinite(best).all(dim=1))[:, 0]
            if len(short):  # too few candidates of other owners: search those queries exactly
                short_own = None if block_own is None else block_own[short]
                best[short], chosen[short] = self._exact(block[short], k, short_own)
            dist[start : start + len(block)], idx[start : start + len(block)] = best, chosen
        return dist, idx
