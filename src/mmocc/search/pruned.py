"""Image scores from the largest position scores, without searching every position against the whole bank.

A patch rule's image score is the mean of the ``k`` largest nearest-bank-row
distances among an image's positions. Only those ``k`` need an exact search;
every other position only needs to be shown too small. :func:`top_nearest`
does so with upper bounds from the bank's leading rows:

1. Every position is searched against the first ``s`` bank rows; its
   distance to the nearest of them (any of them would do) is an upper bound
   on its distance to the whole bank, because they are bank rows. A greedy coreset keeps its
   rows in selection order, so a short prefix already covers the bank
   (:func:`mmocc.search.coreset.greedy_coreset`); the bound is then close.
2. In each image, the ``k`` positions with the largest bounds are searched
   against the whole bank; the smallest of their exact distances, ``tau``,
   is a lower bound on the image's ``k``-th largest score.
3. A position whose bound is below ``tau`` cannot be among the top ``k`` and
   is dropped. The survivors are searched against the next rows up to a
   four times longer prefix (a tighter bound); the ``k`` survivors with the
   largest bounds are searched whole (``tau`` rises), the rest dropped
   again, and so on; the last survivors are searched against the whole bank.

The result equals the unpruned one exactly: every position that could be
among the ``k`` largest is searched against the whole bank by the same
engine (:meth:`mmocc.search.index.NeighborIndex.nearest_distance`), and a
position is dropped only when a bank row is already closer than ``tau``.
Prefix indexes honour the same leave-one-out owners as the bank's.
"""

from __future__ import annotations

import torch

from mmocc.search.index import BLOCK_BYTES, NeighborIndex

FIRST_PREFIX = 256
"""Bank rows of the first (coarsest) bound."""

PREFIX_GROWTH = 4
"""Each further bound searches this many times more leading bank rows."""

DROP_MARGIN = 1e-6
"""Relative margin below ``tau`` under which a bound drops a position (float32 rounding room)."""


def prefix_sizes(rows: int) -> list[int]:
    """Return the prefix lengths whose bounds are searched before the whole bank of ``rows`` rows.

    Parameters
    ----------
    rows : int
        Bank rows.

    Returns
    -------
    list of int
        :data:`FIRST_PREFIX`, growing by :data:`PREFIX_GROWTH`, each at most
        at most half the bank (empty for a bank under ``2 * FIRST_PREFIX`` rows,
        which is searched whole).

    Examples
    --------
    >>> prefix_sizes(1000), prefix_sizes(4096), prefix_sizes(100_000)
    ([256], [256, 1024], [256, 1024, 4096, 16384])
    """
    sizes = []
    size = FIRST_PREFIX
    while 2 * size <= rows:
        sizes.append(size)
        size *= PREFIX_GROWTH
    return sizes


class PrefixIndex:
    """A bank's search index with bounds from its leading rows, for exact top-k image scores.

    Parameters
    ----------
    index : NeighborIndex
        The whole bank's index (the bounds honour its owners).

    Examples
    --------
    >>> bank = torch.arange(3000, dtype=torch.float32)[:, None]
    >>> PrefixIndex(NeighborIndex(bank)).sizes
    [256, 1024]
    """

    def __init__(self, index: NeighborIndex) -> None:
        self.index = index
        self.sizes = prefix_sizes(len(index))

    def top_nearest(self, queries: torch.Tensor, k: int, exclude: torch.Tensor | None = None) -> torch.Tensor:
        """Return each image's ``k`` largest nearest-row distances, as the unpruned search gives them.

        Parameters
        ----------
        queries : Tensor of shape (n, positions, d)
            Each image's position features.
        k : int
            How many of the largest position scores each image needs (at
            most ``positions``).
        exclude : Tensor of shape (n,), optional
            The owner each image leaves out (leave-one-out, as in
            :meth:`NeighborIndex.kneighbors`).

        Returns
        -------
        Tensor of shape (n, k)
            Float32 distances, in no particular order; the same values as the
            ``k`` largest of :meth:`NeighborIndex.nearest_distance` over all
            positions.
        """
        n, positions, dims = queries.shape
        flat = queries.reshape(n * positions, dims)
        own = None if exclude is None else exclude.repeat_interleave(positions)
        if not self.sizes or positions <= k:
            exact = self.index.nearest_distance(flat, own).reshape(n, positions)
            return exact.topk(k, dim=1).values
        offsets = (torch.arange(n) * positions)[:, None]
        upper = self._bound(flat, own, None, 0, self.sizes[0])
        scores = torch.full(
            (n * positions,), float("-inf")
        )  # exact distances of the positions searched whole
        alive = torch.ones(n * positions, dtype=torch.bool)
        for low, high in zip(self.sizes, [*self.sizes[1:], len(self.index)], strict=True):
            # the k live positions of each image with the largest bounds are searched whole: tau rises
            picks = (
                upper.masked_fill(~alive, float("-inf")).reshape(n, positions).topk(k, dim=1).indices
                + offsets
            )
            picks = picks.reshape(-1)[alive[picks.reshape(-1)]]
            scores[picks] = self._exact(flat, own, picks)
            alive[picks] = False
            tau = scores.reshape(n, positions).topk(k, dim=1).values[:, -1]
            alive &= upper >= (tau * (1.0 - DROP_MARGIN)).repeat_interleave(positions)
            rows = torch.nonzero(alive)[:, 0]
            if high < len(self.index):
                upper[rows] = torch.minimum(upper[rows], self._bound(flat, own, rows, low, high))
            else:
                scores[rows] = self._exact(flat, own, rows)
        return scores.reshape(n, positions).topk(k, dim=1).values

    def _exact(self, flat: torch.Tensor, own: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor:
        """Return the whole bank's nearest-row distances of the chosen query rows (the unpruned search)."""
        if not len(rows):
            return torch.zeros(0)
        return self.index.nearest_distance(flat[rows], None if own is None else own[rows])

    def _bound(
        self, flat: torch.Tensor, own: torch.Tensor | None, rows: torch.Tensor | None, low: int, high: int
    ) -> torch.Tensor:
        """Return each chosen query's distance to one bank row in ``low:high``: an upper bound.

        The row (of another owner) is the float32 ranking's nearest (``||b||^2 - 2 q.b``, in the
        index's ranking space, projected or not: any row bounds), and its distance is computed directly
        in full dimensions; ``inf`` when every row there is the
        query's own owner's.
        """
        index = self.index
        queries = flat if rows is None else flat[rows]
        owners = None if own is None else (own if rows is None else own[rows])
        bank, rank_bank, norms = index.bank[low:high], index.rank_bank[low:high], index.rank_norms[low:high]
        bank_owners = None
        if owners is not None:
            bank_owners = torch.arange(low, high) if index.owners is None else index.owners[low:high]
        out = torch.empty(len(queries))
        step = max(1, BLOCK_BYTES // (4 * (high - low)))
        for start in range(0, len(queries), step):
            block = queries[start : start + step]
            rank = torch.addmm(norms, index.to_rank_space(block), rank_bank.T, alpha=-2.0)
            if owners is not None and bank_owners is not None:
                block_own = owners[start : start + step]
                rank.masked_fill_(bank_owners[None, :] == block_own[:, None], float("inf"))
            best = rank.argmin(dim=1)
            dist = (block - bank[best]).pow(2).sum(dim=1).sqrt()
            if owners is not None and bank_owners is not None:
                dist[bank_owners[best] == block_own] = float("inf")
            out[start : start + step] = dist
        return out
