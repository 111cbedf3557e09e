"""k-nearest-neighbour search over a memory bank: exact (blocked matmul + top-k) or approximate (faiss HNSW).

Exact search ranks the bank rows of a block of queries by
``||b||^2 - 2 q.b`` (one matrix product in float32, queries in blocks so the
distance block stays under ``block_bytes``), keeps the ``k + margin`` best
candidates, and recomputes their distances directly as ``||q - b||``, so the
returned distances carry no cancellation error of the matmul trick.

Approximate search builds a faiss HNSW graph over the bank
(``pip install "mmocc[faiss]"``); banks of at most ``exact_below`` rows are
searched exactly. Its distances are exact for the neighbours it finds; it may
miss a true neighbour (recall below 1), and a graph built with several threads
depends on their scheduling, so repeated fits can differ slightly.

Leave-one-out search takes the bank row of each query (``self_index``) and
drops that row by index, never by position: a duplicate of the query, at
distance 0, is still a neighbour. Under HNSW one extra neighbour is asked for;
when the query itself is among the results it is dropped, otherwise the first
``k`` are kept.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import torch

SEARCH_MODES: tuple[str, ...] = ("exact", "approximate")
"""The values of ``knn_search``: exact search, or faiss HNSW."""

BLOCK_BYTES = 64 * 2**20
"""Default bound on the float32 distance block of one query block (64 MiB)."""

MARGIN = 8
"""Extra candidates of the float32 ranking kept for the exact recomputation (exact search)."""

EXACT_BELOW = 4096
"""Approximate search searches banks of at most this many rows exactly (cheaper than a graph there)."""

HNSW_M = 16
"""Neighbours per node of the HNSW graph."""

HNSW_EF_CONSTRUCTION = 40
"""Candidate list length while building the HNSW graph."""

HNSW_EF_SEARCH = 64
"""Smallest candidate list length of an HNSW search."""

_RECOMPUTE_ELEMENTS = 2**21
"""Elements of the gathered ``(queries, candidates, dims)`` block of the exact recomputation (8 MiB)."""


def import_faiss() -> ModuleType:
    """Import faiss, naming the extra that installs it when it is missing.

    Returns
    -------
    module
        The ``faiss`` module.

    Raises
    ------
    ImportError
        When faiss is not installed.
    """
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            'knn_search="approximate" needs faiss: pip install "mmocc[faiss]" (or faiss-cpu)'
        ) from exc
    return faiss


class NeighborIndex:
    """A memory bank prepared for k-nearest-neighbour queries under the Euclidean distance.

    Parameters
    ----------
    bank : numpy.ndarray
        ``(m, d)`` bank rows; stored as float32.
    search : {"exact", "approximate"}, default "exact"
        Exact blocked matmul + top-k, or a faiss HNSW graph.
    block_bytes : int, default :data:`BLOCK_BYTES`
        Bound on the float32 distance block of one query block (exact search);
        at least one query per block.
    exact_below : int, default :data:`EXACT_BELOW`
        Approximate search searches banks of at most this many rows exactly.

    Raises
    ------
    ValueError
        For an unknown ``search``, a bank that is not a non-empty 2-D array,
        or a non-positive ``block_bytes``.
    ImportError
        For ``search="approximate"`` without faiss.
    """

    def __init__(
        self,
        bank: np.ndarray,
        search: str = "exact",
        block_bytes: int = BLOCK_BYTES,
        exact_below: int = EXACT_BELOW,
    ) -> None:
        if search not in SEARCH_MODES:
            raise ValueError(f"knn_search={search!r} is not valid; choose one of {list(SEARCH_MODES)}")
        values = np.ascontiguousarray(bank, dtype=np.float32)
        if values.ndim != 2 or not values.size:
            raise ValueError(f"the bank must be a non-empty (rows, dims) array, got shape {values.shape}")
        if block_bytes < 1:
            raise ValueError(f"block_bytes must be >= 1, got {block_bytes!r}")
        self.search = search
        self.block_bytes = int(block_bytes)
        self.bank = torch.from_numpy(values)
        self.sq_norms = self.bank.square().sum(dim=1)
        self.hnsw: Any = None
        if search == "approximate" and len(values) > exact_below:
            faiss = import_faiss()
            faiss.omp_set_num_threads(torch.get_num_threads())  # follow torch's (the caller's) thread count
            self.hnsw = faiss.IndexHNSWFlat(values.shape[1], HNSW_M)
            self.hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            self.hnsw.add(values)

    def __len__(self) -> int:
        """Return the number of bank rows."""
        return int(self.bank.shape[0])

    def kneighbors(
        self, queries: np.ndarray, k: int, self_index: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the distances and bank rows of each query's ``k`` nearest bank rows, nearest first.

        Parameters
        ----------
        queries : numpy.ndarray
            ``(n, d)`` query rows.
        k : int
            Neighbours per query; at most the bank size (minus one with ``self_index``).
        self_index : numpy.ndarray, optional
            ``(n,)`` bank row of each query, excluded from its neighbours
            (leave-one-out). Other rows equal to the query still count.

        Returns
        -------
        distances : numpy.ndarray
            ``(n, k)`` float64 Euclidean distances, ascending.
        indices : numpy.ndarray
            ``(n, k)`` int64 bank rows.

        Raises
        ------
        ValueError
            For a bad ``k``, query width or ``self_index``.
        """
        q = np.ascontiguousarray(queries, dtype=np.float32)
        available = len(self) - (self_index is not None)
        if q.ndim != 2 or q.shape[1] != self.bank.shape[1]:
            raise ValueError(f"queries must be (n, {self.bank.shape[1]}), got shape {q.shape}")
        if not 1 <= k <= available:
            raise ValueError(f"k must be in [1, {available}] for this bank, got {k!r}")
        own = None
        if self_index is not None:
            own = np.asarray(self_index, dtype=np.int64)
            if own.shape != (len(q),) or (len(own) and not 0 <= own.min() <= own.max() < len(self)):
                raise ValueError(f"self_index must be {len(q)} bank rows in [0, {len(self)}), one per query")
        if not len(q):
            return np.zeros((0, k)), np.zeros((0, k), dtype=np.int64)
        if self.hnsw is not None:
            return self._approximate(q, k, own)
        return self._exact(q, k, own)

    def mean_distance(self, queries: np.ndarray, k: int, self_index: np.ndarray | None = None) -> np.ndarray:
        """Return the mean Euclidean distance of each query to its ``k`` nearest bank rows.

        Parameters
        ----------
        queries, k, self_index
            As in :meth:`kneighbors`.

        Returns
        -------
        numpy.ndarray
            ``(n,)`` float64 mean distances.
        """
        return self.kneighbors(queries, k, self_index)[0].mean(axis=1)

    def _exact(self, q: np.ndarray, k: int, own: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Blocked matmul ranking, top ``k + MARGIN`` candidates, exact distances of the candidates."""
        queries = torch.from_numpy(q)
        n_cand = min(k + MARGIN, len(self))
        rows = max(1, self.block_bytes // (4 * len(self)))
        dist, idx = np.empty((len(q), k)), np.empty((len(q), k), dtype=np.int64)
        with torch.no_grad():
            for start in range(0, len(q), rows):
                block = queries[start : start + rows]
                rank = torch.addmm(self.sq_norms, block, self.bank.T, alpha=-2.0)
                span = torch.arange(len(block))
                if own is not None:
                    rank[span, torch.from_numpy(own[start : start + rows])] = torch.inf
                cand = rank.topk(n_cand, dim=1, largest=False, sorted=False).indices
                exact = self._distances(block, cand)
                if own is not None:
                    exact[cand == torch.from_numpy(own[start : start + rows])[:, None]] = torch.inf
                best, order = exact.topk(k, dim=1, largest=False, sorted=True)
                dist[start : start + rows] = best.numpy()
                idx[start : start + rows] = cand.gather(1, order).numpy()
        return dist, idx

    def _distances(self, block: torch.Tensor, cand: torch.Tensor) -> torch.Tensor:
        """Float64 Euclidean distances of each query of ``block`` to its candidate bank rows."""
        out = torch.empty(cand.shape, dtype=torch.float64)
        n_cand, dims = cand.shape[1], self.bank.shape[1]
        step = max(1, _RECOMPUTE_ELEMENTS // (n_cand * dims))
        for start in range(0, len(block), step):
            rows = self.bank.index_select(0, cand[start : start + step].reshape(-1)).view(-1, n_cand, dims)
            diff = block[start : start + step, None, :] - rows
            out[start : start + step] = torch.linalg.vector_norm(diff, dim=2)
        return out

    def _approximate(self, q: np.ndarray, k: int, own: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """HNSW search for ``k`` neighbours, plus one under leave-one-out for the query itself."""
        n_cand = min(k + (own is not None), len(self))
        import_faiss().omp_set_num_threads(torch.get_num_threads())
        self.hnsw.hnsw.efSearch = max(HNSW_EF_SEARCH, 2 * n_cand)
        sq, idx = self.hnsw.search(q, n_cand)
        dist = np.sqrt(np.maximum(sq, 0.0), dtype=np.float64)
        invalid = idx < 0
        if own is not None:
            invalid |= idx == own[:, None]
        dist[invalid] = np.inf
        order = np.argsort(dist, axis=1, kind="stable")[:, :k]
        dist, idx = np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)
        short = ~np.isfinite(dist).all(axis=1)
        if short.any():
            exact = self._exact(q[short], k, None if own is None else own[short])
            dist[short], idx[short] = exact
        return dist, idx
