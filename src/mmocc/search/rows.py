"""Training patches as rows, laid out a block at a time: bank building never copies them all at once.

A patch rule's training patches are the positions of ``(n, C, h, w)`` feature
maps. Selecting a bank needs them as ``(rows, C)`` vectors, but laying all of
them out is a second copy of every training feature. A :class:`RowSource`
hands them out in blocks of at most :data:`BLOCK_ROWS` rows (:meth:`blocks`),
or picks given rows (:meth:`take`), so the temporary copies of bank building
are bounded by the block, and only the bank itself is kept.

:class:`TensorRows` serves rows already laid out (a ``(m, C)`` tensor);
:class:`MapRows` serves the positions of one or more views' maps, view after
view, image after image, position after position (row-major), the order in
which the rows of a flattened ``(n * h * w, C)`` layout would come.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np
import torch

BLOCK_ROWS = 2**16
"""Rows a :class:`RowSource` lays out at a time (64 Ki rows: 40 MiB at 152 float32 columns)."""


class RowSource(Protocol):
    """Rows of ``width`` float32 columns, handed out a block at a time."""

    @property
    def width(self) -> int:
        """Columns of every row."""
        ...

    def __len__(self) -> int:
        """Return the number of rows."""
        ...

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """Return the chosen rows, ``(len(index), width)`` float32, in the order given."""
        ...

    def blocks(self, rows: int = BLOCK_ROWS) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(start, block)``: consecutive rows, at most ``rows`` at a time."""
        ...


class TensorRows:
    """Rows already laid out as one tensor.

    Parameters
    ----------
    points : Tensor of shape (m, C)
        The rows (cast to float32 a block at a time, when they are not).

    Examples
    --------
    >>> rows = TensorRows(torch.arange(6.0).reshape(3, 2))
    >>> len(rows), rows.width, rows.take(torch.tensor([2, 0])).tolist()
    (3, 2, [[4.0, 5.0], [0.0, 1.0]])
    """

    def __init__(self, points: torch.Tensor) -> None:
        if points.ndim != 2:
            raise ValueError(f"points must be (rows, columns), got shape {tuple(points.shape)}")
        self.points = points

    @property
    def width(self) -> int:
        """Columns of every row."""
        return int(self.points.shape[1])

    def __len__(self) -> int:
        """Return the number of rows."""
        return int(self.points.shape[0])

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """Return the chosen rows as float32."""
        return self.points[index].float()

    def blocks(self, rows: int = BLOCK_ROWS) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield consecutive float32 blocks of at most ``rows`` rows."""
        for start in range(0, len(self), rows):
            yield start, self.points[start : start + rows].float()


class MapRows:
    """The positions of feature maps as rows, laid out only a block (or a chosen set) at a time.

    Parameters
    ----------
    maps : sequence of numpy.ndarray
        ``(n_i, C, h_i, w_i)`` maps with the same ``C`` (the views of one
        bank); their rows follow one another in the order given.

    Examples
    --------
    >>> maps = np.arange(2 * 3 * 2 * 2, dtype=np.float32).reshape(2, 3, 2, 2)
    >>> rows = MapRows([maps])
    >>> len(rows), rows.width, rows.take(torch.tensor([5])).tolist()
    (8, 3, [[13.0, 17.0, 21.0]])
    """

    def __init__(self, maps: Sequence[np.ndarray]) -> None:
        if not maps or len({m.shape[1] for m in maps}) != 1 or any(m.ndim != 4 for m in maps):
            raise ValueError("maps must be one or more (n, C, h, w) arrays with the same C")
        self.maps = list(maps)
        sizes = [int(m.shape[0] * m.shape[2] * m.shape[3]) for m in self.maps]
        self.starts = np.cumsum([0, *sizes])

    @property
    def width(self) -> int:
        """Columns of every row (the maps' channels)."""
        return int(self.maps[0].shape[1])

    def __len__(self) -> int:
        """Return the number of rows: every position of every image of every map."""
        return int(self.starts[-1])

    def take(self, index: torch.Tensor) -> torch.Tensor:
        """Return the chosen positions as ``(len(index), C)`` float32 rows, in the order given."""
        wanted = np.asarray(index, dtype=np.int64)
        if len(wanted) and not 0 <= wanted.min() <= wanted.max() < len(self):
            raise IndexError(f"row indices must be in [0, {len(self)})")
        out = np.empty((len(wanted), self.width), dtype=np.float32)
        which = np.searchsorted(self.starts, wanted, side="right") - 1
        for m, maps in enumerate(self.maps):
            hit = np.nonzero(which == m)[0]
            if len(hit):
                local = wanted[hit] - self.starts[m]
                image, position = np.divmod(local, maps.shape[2] * maps.shape[3])
                y, x = np.divmod(position, maps.shape[3])
                out[hit] = maps[image, :, y, x]
        return torch.from_numpy(out)

    def blocks(self, rows: int = BLOCK_ROWS) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield consecutive float32 blocks of whole images, at most ``rows`` rows (one image at least)."""
        for m, maps in enumerate(self.maps):
            n, c, h, w = maps.shape
            step = max(1, rows // (h * w))
            for first in range(0, n, step):
                part = np.ascontiguousarray(maps[first : first + step])
                block = torch.from_numpy(part).permute(0, 2, 3, 1).reshape(-1, c).float()
                yield int(self.starts[m]) + first * h * w, block
