"""Data sources streamed in chunks: list the samples first, decode them chunk by chunk.

:func:`plan_source` parses a SRC string (see :mod:`mmocc.data.sources`) and
lists its samples without decoding an image: ids, labels, the file of each
view (and of its ground-truth mask, for sources with masks) and the resolved
loader options (``mode="auto"`` is decided there, from the files, so every
chunk uses the same mode). :meth:`SourcePlan.chunks` then decodes, resizes
and caches the samples and their masks in chunks, in order, a bounded
number of chunks ahead in a background thread; the chunks, concatenated,
equal :func:`mmocc.data.sources.load_source`. Kinds without a planner in
:data:`mmocc.data.sources.SOURCES` (``synthetic``, ``mfeat``: no image
files) are loaded whole when planned and sliced.

Examples
--------
>>> plan = plan_source("synthetic:n_per_class=5,n_classes=2", size=8)
>>> len(plan), [len(chunk) for chunk in plan.chunks(4)]
(10, [4, 4, 2])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmocc.data.dataset import MultiViewDataset, concat_datasets, require_labels
from mmocc.data.listing import ImageListing
from mmocc.data.sources import Source, parse_source


@dataclass(frozen=True)
class SourcePlan:
    """The samples of a data source, listed; decoded only by :meth:`chunks` or :meth:`load`.

    Build it with :func:`plan_source`. Exactly one of ``listing`` and
    ``dataset`` is set.

    Attributes
    ----------
    source : Source
        The parsed source.
    options : dict
        The resolved loader options: for image sources ``size``, ``mode``
        (``"L"`` or ``"RGB"``, never ``"auto"``), ``cache``, ``cache_dir``,
        ``on_error``, ``n_jobs`` (threads) and ``resize``; otherwise the
        options given.
    listing : ImageListing or None
        The samples of an image source.
    dataset : MultiViewDataset or None
        The data of a source without image files, already in memory.
    """

    source: Source
    options: dict[str, Any]
    listing: ImageListing | None = None
    dataset: MultiViewDataset | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def ids(self) -> np.ndarray:
        """numpy.ndarray of str: the sample ids, in order (before any sample is dropped when decoding)."""
        return self.listing.ids if self.listing is not None else self._data.ids

    @property
    def labels(self) -> np.ndarray | None:
        """numpy.ndarray or None: the labels, None for unlabelled data."""
        return self.listing.labels if self.listing is not None else self._data.labels

    @property
    def paths(self) -> dict[str, np.ndarray]:
        """The file of each sample (dict of str to numpy.ndarray), per view read from files."""
        return self.listing.files if self.listing is not None else self._data.paths

    @property
    def mask_paths(self) -> dict[str, np.ndarray]:
        """The mask file of each sample (empty: no defect), per view whose masks come from files."""
        return self.listing.masks if self.listing is not None else self._data.mask_paths

    @property
    def skipped(self) -> tuple[str, ...]:
        """The samples dropped while listing (``on_error="skip"``), as warned (tuple of str)."""
        return self.listing.skipped if self.listing is not None else ()

    @property
    def classes(self) -> np.ndarray:
        """The sorted unique labels (empty for unlabelled data), as :attr:`MultiViewDataset.classes`."""
        return np.zeros(0) if self.labels is None else np.unique(self.labels)

    def require_labels(self, purpose: str) -> np.ndarray:
        """Return the labels, or raise naming what needed them, as :meth:`MultiViewDataset.require_labels`.

        Parameters
        ----------
        purpose : str
            What needs labels, for the message.

        Returns
        -------
        numpy.ndarray
            The labels.
        """
        return require_labels(self.labels, purpose)

    @property
    def _data(self) -> MultiViewDataset:
        """The in-memory dataset of a source without image files."""
        if self.dataset is None:
            raise AssertionError("a SourcePlan holds a listing or a dataset")
        return self.dataset

    def subset(self, index: slice | np.ndarray) -> SourcePlan:
        """Return the plan of some samples.

        The subset's first chunk does not warn again about the samples
        skipped while listing (see :attr:`skipped`).

        Parameters
        ----------
        index : slice, boolean mask or integer array
            The samples to keep, in the order given.

        Returns
        -------
        SourcePlan
            The plan of those samples.
        """
        if self.listing is not None:
            return SourcePlan(self.source, self.options, listing=self.listing.take(index))
        return SourcePlan(self.source, self.options, dataset=self._data[index])

    def chunks(self, chunk_size: int, prefetch: int = 2) -> Iterator[MultiViewDataset]:
        """Decode the samples chunk by chunk, in order, lazily.

        Up to ``prefetch`` chunks are decoded ahead in one background thread
        (each with the source's ``n_jobs`` decoding threads), so at most
        ``prefetch + 1`` decoded chunks are alive in the pipeline. Stopping
        the iteration (``break``, an exception, ``close()``) ends that thread.
        Under ``on_error="skip"`` a bad file drops its sample from its chunk,
        with the warning :func:`mmocc.data.sources.load_source` gives (the
        first chunk's also lists the samples skipped while listing); a chunk
        left empty is not yielded.

        Parameters
        ----------
        chunk_size : int
            Samples per chunk, at least 1.
        prefetch : int, default 2
            Chunks decoded ahead; 0 decodes each chunk when it is asked for.

        Yields
        ------
        MultiViewDataset
            The samples of one chunk.

        Raises
        ------
        ValueError
            For a chunk size below 1 or a negative ``prefetch``; when
            decoding, as the source's loader does (a bad file under
            ``on_error="raise"``, no usable sample).
        FileNotFoundError
            For a missing file under ``on_error="raise"``, when its chunk is reached.

        Notes
        -----
        Under ``on_error="raise"`` the error is the one the first chunk with
        a bad file gives; as within one in-memory load, a missing file of a
        chunk is reported before an unreadable one of that chunk, so a chunk
        with an unreadable file stops before a later chunk's missing file is seen.
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
            raise ValueError(f"prefetch must be a non-negative integer, got {prefetch!r}")
        if self.listing is not None:
            yield from self.listing.decoded(int(chunk_size), int(prefetch))
            return
        data = self._data
        for start in range(0, len(data), chunk_size):
            yield data[start : start + chunk_size]

    def load(self) -> MultiViewDataset:
        """Decode every sample into memory: what :func:`mmocc.data.sources.load_source` returns.

        Returns
        -------
        MultiViewDataset
            The data.
        """
        return self.listing.load() if self.listing is not None else self._data


def plan_source(source: str | Source, **options: Any) -> SourcePlan:
    """Parse a SRC string and list its samples without decoding an image.

    Parameters
    ----------
    source : str or Source
        The SRC string (see :mod:`mmocc.data.sources`), or an already parsed source.
    **options
        Loader options (``size``, ``mode``, ...); they override options
        given in the SRC string.

    Returns
    -------
    SourcePlan
        The listed samples.

    Raises
    ------
    ValueError, FileNotFoundError
        As :func:`mmocc.data.sources.load_source` does for the SRC string,
        the options and the listing; bad image files are found when their
        chunk is decoded.

    Examples
    --------
    >>> plan = plan_source("synthetic:n_per_class=3,n_classes=2", size=8)
    >>> plan.ids.tolist()[:3], plan.labels.tolist()[:3]
    (['0', '1', '2'], [0, 0, 0])
    """
    parsed = parse_source(source) if isinstance(source, str) else source
    listing = parsed.listing(**options)
    if listing is None:
        return SourcePlan(parsed, {**parsed.options, **options}, dataset=parsed.load(**options))
    return SourcePlan(parsed, listing.options, listing=listing)


def rebatch(parts: Iterable[MultiViewDataset], size: int) -> Iterator[MultiViewDataset]:
    """Regroup a stream of datasets into datasets of exactly ``size`` samples (the last may be smaller).

    Chunks that lost samples under ``on_error="skip"``, or samples filtered
    out chunk by chunk, are regrouped so that batches hold the samples an
    in-memory dataset sliced every ``size`` samples would.

    Parameters
    ----------
    parts : iterable of MultiViewDataset
        Datasets with the same views and columns, in order.
    size : int
        Samples per batch, at least 1.

    Yields
    ------
    MultiViewDataset
        The samples of ``parts``, in order, ``size`` at a time.
    """
    pending: list[MultiViewDataset] = []
    n_pending = 0
    for part in parts:
        start = 0
        while start < len(part):
            take = min(size - n_pending, len(part) - start)
            pending.append(part if take == len(part) else part[start : start + take])
            n_pending += take
            start += take
            if n_pending == size:
                yield concat_datasets(pending)
                pending, n_pending = [], 0
    if pending:
        yield concat_datasets(pending)
