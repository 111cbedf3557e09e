"""Image scores from the largest position scores, without searching every position against the whole bank.

A patch rule's image score is the mean of the ``k`` largest nearest-bank-row
distances among an image's positions. Only those ``k`` need an exact search;
every other position only needs to be shown too small. :func:`top_nearest`
does so with upper bounds from the bank's leading rows:

1. Every position is searched (exactly) against the first ``s`` bank rows;
   its distance to the nearest of them is an upper bound on its distance to
   the whole bank, because they are bank rows. A greedy coreset keeps its
   rows in selection order, so a short prefix already covers the bank
   (:func:`mmocc.search.coreset.greedy_coreset`); the bound is then close.
2. In each image, the ``k`` positions with the largest bounds are searched
   against the whole bank; the smallest of their exact distances, ``tau``,
   is a lower bound on the image's ``k``-th largest score.
3. A position whose bound is below ``tau`` cannot be among the top ``k`` and
   is dropped. The survivors are searched against a four times longer prefix
   (a tighter bound), dropped again, and so on; the last survivors are
   searched against the whole bank.

The result equals the unpruned one exactly: every position that could be
among the ``k`` largest is searched against the whole bank by the same
engine (:meth:`mmocc.search.index.NeighborIndex.nearest_distance`), and a
position is dropped only when a bank row is already closer than ``tau``.
Prefix indexes honour the same leave-one-out owners as the bank's.
"""

from __future__ import annotations

import torch

from mmocc.search.index import NeighborIndex

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
    """A bank's search index with the indexes of its leading rows, for bounded top-k image scores.

    Parameters
    ----------
    index : NeighborIndex
        The whole bank's index (its owners are kept by the prefixes).

    Examples
    --------
    >>> bank = torch.arange(3000, dtype=torch.float32)[:, None]
    >>> PrefixIndex(NeighborIndex(bank)).sizes
    [256]
    """

    def __init__(self, index: NeighborIndex) -> None:
        self.index = index
        self.sizes = prefix_sizes(len(index))
        self._prefixes: dict[int, NeighborIndex] = {}

    def prefix(self, size: int) -> NeighborIndex:
        """Return the exact index of the first ``size`` bank rows (built on first use)."""
        if size not in self._prefixes:
            owners = None if self.index.owners is None else self.index.owners[:size]
            self._prefixes[size] = NeighborIndex(self.index.bank[:size], owners=owners)
        return self._prefixes[size]

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
        bound = self._search(self.prefix(self.sizes[0]), flat, own, None).reshape(n, positions)
        first = bound.topk(k, dim=1).indices + (torch.arange(n) * positions)[:, None]
        tau = self._search(self.index, flat, own, first.reshape(-1)).reshape(n, k)
        threshold = (tau.min(dim=1).values * (1.0 - DROP_MARGIN)).repeat_interleave(positions)
        alive = torch.ones(n * positions, dtype=torch.bool)
        alive[first.reshape(-1)] = False
        upper = bound.reshape(-1)
        for size in self.sizes[1:]:
            alive &= upper >= threshold
            rows = torch.nonzero(alive)[:, 0]
            upper[rows] = torch.minimum(upper[rows], self._search(self.prefix(size), flat, own, rows))
        rows = torch.nonzero(alive & (upper >= threshold))[:, 0]
        scores = torch.full((n * positions,), float("-inf"))
        scores[first.reshape(-1)] = tau.reshape(-1)
        scores[rows] = self._search(self.index, flat, own, rows)
        return scores.reshape(n, positions).topk(k, dim=1).values

    @staticmethod
    def _search(
        index: NeighborIndex, flat: torch.Tensor, own: torch.Tensor | None, rows: torch.Tensor | None
    ) -> torch.Tensor:
        """Nearest-row distances of the chosen query rows (all when ``rows`` is None)."""
        if rows is None:
            return index.nearest_distance(flat, own)
        if not len(rows):
            return torch.zeros(0)
        return index.nearest_distance(flat[rows], None if own is None else own[rows])
