"""Greedy coreset selection (k-centre) of a memory bank, as in PatchCore (Roth et al., 2022).

Greedy farthest-point selection keeps the points that cover the candidates
best: each step adds the candidate farthest from everything chosen so far.
It is O(candidates x selected); distances are measured after a random
Gaussian projection to at most :data:`PROJECTION_DIM` dimensions.

:func:`cell_coreset` is the approximate one for large banks: the points are
split into cells (the Voronoi cells of a greedy coreset of a sample), and
greedy selection measures each point's distance only to the bank rows of its
own cell, so a step costs a cell, not every point. Each step still adds the
point farthest from its cell's rows, over all cells; a point's distance to
the bank is at most what selection measured (a row of another cell can only
be closer), so coverage is never worse than selection believed.

Both take the points as a tensor or as a :class:`~mmocc.search.rows.RowSource`
(a patch rule's maps): the points are then projected a block at a time, and
the only copy of all of them that selection holds is the projected one,
``m x min(C, PROJECTION_DIM)`` float32, plus a few ``m``-long vectors.
"""

from __future__ import annotations

import math
import warnings

import torch

from mmocc.search.index import NeighborIndex
from mmocc.search.progress import progress_bar
from mmocc.search.rows import RowSource, TensorRows

PROJECTION_DIM = 128
"""Dimensions of the random projection distances are measured in."""

PROGRESS_EVERY = 1024
"""Greedy steps between two updates of the progress bar."""

CELL_SAMPLE = 32
"""Points sampled per cell to place the cells (:func:`cell_coreset`)."""


def greedy_coreset(
    points: torch.Tensor | RowSource,
    size: int,
    *,
    seed: int = 0,
    max_candidates: int | None = None,
    verbose: bool | None = False,
) -> torch.Tensor:
    """Choose ``size`` points by greedy farthest-point selection (k-centre); return their indices.

    Distances are measured after a random Gaussian projection to at most 128
    dimensions (Roth et al., 2022), which keeps selection fast. When ``size``
    reaches ``m`` every point is kept, in their order, without selection.
    Selection costs ``O(candidates x size)``: with ``max_candidates``, greedy
    selection runs on that many points drawn at random (an approximation whose
    coverage :func:`coverage` measures), so the cost stops growing with ``m``.

    Parameters
    ----------
    points : Tensor of shape (m, C) or RowSource
        The candidates (a source is read a block at a time).
    size : int
        How many to select (at most ``m``; at least 1).
    seed : int, default 0
        Seed of the projection, of the first point and of the candidate draw.
    max_candidates : int, optional
        Select among at most this many points drawn at random; None: all
        points (exact greedy selection). When it is not above ``size``, the
        cost bound wins: the result is ``size`` points drawn at random, with
        a warning (a bank is never silently selected among all points).
    verbose : bool or None, default False
        A progress bar over the selected points on stderr; None: when stderr
        is a terminal (:func:`mmocc.search.progress.shows`).

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
    source = _source(points)
    m = len(source)
    size = min(max(int(size), 1), m)
    if size >= m:
        return torch.arange(m)
    if max_candidates is not None and max_candidates < m:
        draw = torch.Generator().manual_seed(int(seed) + 1)
        if max_candidates <= size:
            warnings.warn(
                f"coreset_candidates={max_candidates:,} is not above the bank size {size:,} of {m:,} "
                f"patches: the bank is {size:,} patches drawn at random, without greedy selection; raise "
                "coreset_candidates or lower coreset_ratio",
                UserWarning,
                stacklevel=2,
            )
            return torch.randperm(m, generator=draw)[:size].sort().values
        subset = torch.randperm(m, generator=draw)[:max_candidates].sort().values
        return subset[greedy_coreset(source.take(subset), size, seed=seed, verbose=verbose)]
    generator = torch.Generator().manual_seed(int(seed))
    projection = _projection(source.width, generator)
    # (C, m) layout: the per-step product c @ x_t streams contiguous rows, 2-3x faster than x @ c
    x_t = torch.empty(source.width if projection is None else PROJECTION_DIM, m)
    squared = torch.empty(m)
    for start, block in source.blocks():
        x = _project(block, projection)
        x_t[:, start : start + len(x)] = x.T
        squared[start : start + len(x)] = x.pow(2).sum(dim=1)
    chosen = torch.empty(size, dtype=torch.long)
    last = int(torch.randint(m, (1,), generator=generator))
    chosen[0] = last
    nearest = torch.full((m,), float("inf"))
    nearest[last] = float("-inf")  # a chosen point is never chosen again, even among duplicates
    step = torch.empty(m)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of small steps: extra threads only add synchronisation
    bar = progress_bar(size, "coreset", "row", verbose)
    try:
        for i in range(1, size):
            if i % PROGRESS_EVERY == 0:
                bar.update(PROGRESS_EVERY)
            # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2: one vector-matrix product per step
            torch.addmv(squared, x_t.T, x_t[:, last].contiguous(), alpha=-2.0, out=step)
            step.add_(squared[last])
            torch.minimum(nearest, step, out=nearest)
            last = int(nearest.argmax())
            nearest[last] = float("-inf")
            chosen[i] = last
    finally:
        torch.set_num_threads(threads)
        bar.close()
    return chosen


def _source(points: torch.Tensor | RowSource) -> RowSource:
    """Return the points as a row source (a tensor is wrapped)."""
    return TensorRows(points) if isinstance(points, torch.Tensor) else points


def _projection(width: int, generator: torch.Generator) -> torch.Tensor | None:
    """Return a random Gaussian projection to :data:`PROJECTION_DIM` dims for wider points, else None."""
    if width <= PROJECTION_DIM:
        return None
    return torch.randn(width, PROJECTION_DIM, generator=generator) / math.sqrt(PROJECTION_DIM)


def _project(rows: torch.Tensor, projection: torch.Tensor | None) -> torch.Tensor:
    """Float32 rows after the projection (unchanged without one)."""
    return rows if projection is None else rows @ projection


def default_cells(size: int) -> int:
    """Return the cells :func:`cell_coreset` splits the points into for a bank of ``size`` rows.

    About ``4 * sqrt(size)`` (the cost of placing the cells, points x cells,
    balances the cost of selection, size x points / cells), and at most a
    quarter of ``size`` (each cell gets rows to spare).

    Parameters
    ----------
    size : int
        Bank rows.

    Returns
    -------
    int
        Cells, at least 1.

    Examples
    --------
    >>> default_cells(4), default_cells(10_000), default_cells(143_000)
    (1, 400, 1513)
    """
    return max(1, min(size // 4, math.ceil(4 * math.sqrt(size))))


def cell_coreset(
    points: torch.Tensor | RowSource,
    size: int,
    *,
    cells: int | None = None,
    seed: int = 0,
    verbose: bool | None = False,
) -> torch.Tensor:
    """Choose ``size`` points by greedy farthest-point selection within cells (approximate k-centre).

    The cells' centres are a greedy coreset of a random sample of
    ``CELL_SAMPLE * cells`` points, and they are the first bank rows; every
    point belongs to its nearest centre's cell. Each further step adds the
    point farthest from the rows of its own cell, over all cells (module
    docstring). A step costs ``O(m / cells)`` instead of ``O(m)``, placing the
    cells ``O(m x cells)``: about ``sqrt(size) / 2`` times fewer operations
    than :func:`greedy_coreset` with the default cells.

    Parameters
    ----------
    points : Tensor of shape (m, C) or RowSource
        The candidates (a source is read a block at a time).
    size : int
        How many to select (at most ``m``; at least 1).
    cells : int, optional
        Cells (at most ``size``); default :func:`default_cells`.
    seed : int, default 0
        Seed of the projection, of the sample and of the cells' selection.
    verbose : bool or None, default False
        A progress bar, as in :func:`greedy_coreset`.

    Returns
    -------
    Tensor of shape (min(size, m),)
        Indices into ``points`` without duplicates: the cells' centres first.

    Examples
    --------
    >>> pts = torch.tensor([[0.0], [0.1], [5.0], [5.1], [10.0], [10.1]])
    >>> sorted(cell_coreset(pts, 3, cells=3).tolist())
    [0, 3, 5]
    """
    source = _source(points)
    m = len(source)
    size = min(max(int(size), 1), m)
    if size >= m:
        return torch.arange(m)
    cells = min(default_cells(size) if cells is None else max(1, int(cells)), size)
    generator = torch.Generator().manual_seed(int(seed))
    projection = _projection(source.width, generator)
    sample = torch.randperm(m, generator=generator)[: CELL_SAMPLE * cells]
    sampled = _project(source.take(sample), projection)
    placed = greedy_coreset(sampled, cells, seed=seed)
    centres = sample[placed]
    centre_index = NeighborIndex(sampled[placed])
    cell, dist = torch.empty(m, dtype=torch.long), torch.empty(m)
    for start, block in source.blocks():  # each point's cell, a block at a time
        d, c = centre_index.kneighbors(_project(block, projection), 1)
        dist[start : start + len(block)] = torch.from_numpy(d[:, 0]).float()
        cell[start : start + len(block)] = torch.from_numpy(c[:, 0])
    order = cell.argsort(stable=True)
    starts = torch.zeros(cells + 1, dtype=torch.long)
    starts[1:] = torch.bincount(cell, minlength=cells).cumsum(0)
    nearest = dist[order]
    nearest[torch.isin(order, centres)] = float("-inf")  # chosen already (duplicates of a centre stay)
    del cell, dist
    slot = torch.empty_like(order)
    slot[order] = torch.arange(m)
    x = torch.empty(m, sampled.shape[1])  # the points sorted by cell: the one copy selection holds
    squared = torch.empty(m)
    for start, block in source.blocks():  # read in order, each row written to its sorted slot
        rows, projected = slot[start : start + len(block)], _project(block, projection)
        x[rows], squared[rows] = projected, projected.pow(2).sum(dim=1)
    del slot
    picked = _select_in_cells(x, squared, nearest, starts, size - cells, verbose)
    return torch.cat([centres, order[picked]])


def _select_in_cells(
    x: torch.Tensor,
    squared: torch.Tensor,
    nearest: torch.Tensor,
    starts: torch.Tensor,
    steps: int,
    verbose: bool | None,
) -> torch.Tensor:
    """Take greedy steps over points sorted by cell (and their squared norms), each in its own cell."""
    bounds = starts.tolist()
    cell_max = torch.full((len(bounds) - 1,), float("-inf"))
    cell_arg = torch.zeros(len(bounds) - 1, dtype=torch.long)
    for c in range(len(bounds) - 1):  # once per cell: its farthest point
        if bounds[c + 1] > bounds[c]:
            value, where = nearest[bounds[c] : bounds[c + 1]].max(dim=0)
            cell_max[c], cell_arg[c] = value, bounds[c] + where
    chosen = torch.empty(steps, dtype=torch.long)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # many small steps, as in greedy_coreset
    bar = progress_bar(steps, "coreset", "row", verbose)
    try:
        for i in range(steps):
            if i and i % PROGRESS_EVERY == 0:
                bar.update(PROGRESS_EVERY)
            c = int(cell_max.argmax())
            last, low, high = int(cell_arg[c]), bounds[c], bounds[c + 1]
            chosen[i] = last
            part = nearest[low:high]
            step = torch.addmv(squared[low:high], x[low:high], x[last], alpha=-2.0).add_(squared[last])
            torch.minimum(part, step.clamp_min_(0).sqrt_(), out=part)
            part[last - low] = float("-inf")
            cell_max[c], where = part.max(dim=0)
            cell_arg[c] = low + where
    finally:
        torch.set_num_threads(threads)
        bar.close()
    return chosen


def coverage(points: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """Distance of every point to its nearest chosen point: how well a bank covers its training patches.

    Parameters
    ----------
    points : Tensor of shape (m, C)
        All candidates.
    chosen : Tensor of shape (k,)
        Indices of the bank rows among them.

    Returns
    -------
    Tensor of shape (m,)
        Euclidean distances (0 for the chosen points), exact.

    Examples
    --------
    >>> pts = torch.tensor([[0.0], [1.0], [4.0]])
    >>> coverage(pts, torch.tensor([0, 2])).tolist()
    [0.0, 1.0, 0.0]
    """
    return NeighborIndex(points[chosen]).nearest_distance(points)
