"""Image sources listed before they are decoded, and decoded chunk by chunk.

Every image source (manifest, folder, pairs, turntable, mvtec, mtile) first lists its
samples: ids, labels, the file of each view (and of its ground-truth mask,
where the source has masks), and the decoding options, with
``mode="auto"`` already resolved from the files. That listing is an
:class:`ImageListing`; nothing is decoded yet. :meth:`ImageListing.decoded`
then decodes, resizes and caches it in chunks, in order, optionally a few
chunks ahead in a background thread (:func:`prefetched`). Decoding it in one
chunk is what the ``load_*`` functions return, so the chunks of a listing,
concatenated, equal the in-memory load.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from mmocc.data.dataset import MultiViewDataset
from mmocc.data.images import DEFAULT_RESIZE, decode_samples, resolve_mode, warn_skipped

T = TypeVar("T")

_POLL_S = 0.1
"""How often a waiting prefetch thread checks whether its consumer has stopped."""


@dataclass(frozen=True)
class ImageListing:
    """The samples of an image source, listed but not decoded.

    Attributes
    ----------
    files : dict of str to numpy.ndarray
        The file of each sample (as a string), per view, in view order.
    contexts : numpy.ndarray of str
        How error messages name each sample.
    ids : numpy.ndarray of str
        Sample ids.
    labels, groups : numpy.ndarray or None
        Per-sample labels and groups, as the source's loader types them.
    metadata : dict of str to numpy.ndarray
        Other per-sample columns.
    masks : dict of str to numpy.ndarray
        The ground-truth mask file of each sample (a string, empty for a
        sample without defect), per view whose masks are known.
    skipped : tuple of str
        Samples dropped while listing (``on_error="skip"``), reported with
        the first chunk's bad files.
    options : dict
        The decoding options: ``size``, ``mode`` (resolved: ``"L"`` or
        ``"RGB"``), ``cache``, ``cache_dir``, ``on_error``, ``n_jobs``
        (the thread count) and ``resize``.
    origin : str
        Prefix of the error raised when no sample is usable (the manifest
        names itself there); empty or ending in ``": "``.
    """

    files: dict[str, np.ndarray]
    contexts: np.ndarray
    ids: np.ndarray
    options: dict[str, Any]
    labels: np.ndarray | None = None
    groups: np.ndarray | None = None
    metadata: dict[str, np.ndarray] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()
    origin: str = ""

    @classmethod
    def build(
        cls,
        samples: Sequence[Mapping[str, Path]],
        contexts: Sequence[str],
        *,
        ids: Sequence[str] | np.ndarray,
        size: int,
        mode: str,
        cache: bool,
        cache_dir: str | os.PathLike[str] | None,
        on_error: str,
        n_jobs: int,
        labels: np.ndarray | None = None,
        groups: np.ndarray | None = None,
        metadata: Mapping[str, np.ndarray] | None = None,
        masks: Mapping[str, Sequence[str]] | None = None,
        skipped: Sequence[str] = (),
        origin: str = "",
        resize: str = DEFAULT_RESIZE,
    ) -> ImageListing:
        """List samples for decoding, resolving ``mode="auto"`` from the first sample's files.

        Parameters
        ----------
        samples : sequence of mapping of str to pathlib.Path
            For each sample, the file of each view; all have the same views.
        contexts : sequence of str
            For each sample, how error messages name it.
        ids : sequence of str
            Sample ids.
        size, cache, cache_dir, on_error, n_jobs
            Decoding options, already checked (see
            :func:`mmocc.data.images.check_image_options`).
        mode : {"RGB", "L", "auto"}
            Colour mode; ``"auto"`` is decided here, once for every chunk.
        labels, groups : numpy.ndarray, optional
            Per-sample labels and groups.
        metadata : mapping of str to numpy.ndarray, optional
            Other per-sample columns.
        masks : mapping of str to sequence of str, optional
            The mask file of each sample (empty: no defect), per view whose
            masks are known.
        skipped : sequence of str, default ()
            Samples already dropped while listing.
        origin : str, default ""
            Prefix of the "no usable samples" error.
        resize : {"stretch", "pad", "crop"}, default "stretch"
            How images and masks are brought to a square, already checked
            (see :mod:`mmocc.data.images`).

        Returns
        -------
        ImageListing
            The listing.

        Raises
        ------
        ValueError
            When no sample is listed (every one was skipped); the skipped
            samples are warned first.
        """
        if not samples:
            warn_skipped(skipped)
            raise ValueError(f"{origin}no usable samples: all {len(skipped)} were skipped")
        views = list(samples[0])
        return cls(
            files={view: np.asarray([str(sample[view]) for sample in samples], dtype=str) for view in views},
            contexts=np.asarray(contexts, dtype=str),
            ids=np.asarray(ids, dtype=str),
            options={
                "size": int(size),
                "mode": resolve_mode(mode, samples),
                "cache": cache,
                "cache_dir": cache_dir,
                "on_error": on_error,
                "n_jobs": n_jobs,
                "resize": resize,
            },
            labels=labels,
            groups=groups,
            metadata=dict(metadata or {}),
            masks={view: np.asarray(column, dtype=str) for view, column in (masks or {}).items()},
            skipped=tuple(skipped),
            origin=origin,
        )

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: slice | np.ndarray) -> ImageListing:
        """Return the listing of some samples; samples skipped while listing are not carried over.

        Parameters
        ----------
        index : slice, boolean mask or integer array
            The samples to keep, in the order given.

        Returns
        -------
        ImageListing
            The subset.
        """

        def pick(array: np.ndarray | None) -> np.ndarray | None:
            return None if array is None else array[index]

        return replace(
            self,
            files={view: column[index] for view, column in self.files.items()},
            contexts=self.contexts[index],
            ids=self.ids[index],
            labels=pick(self.labels),
            groups=pick(self.groups),
            metadata={name: column[index] for name, column in self.metadata.items()},
            masks={view: column[index] for view, column in self.masks.items()},
            skipped=(),
        )

    def decode(self, rows: slice) -> tuple[MultiViewDataset | None, list[str]]:
        """Decode some samples, dropping those with a bad file under ``on_error="skip"``.

        Thread-safe and silent: the caller reports the messages.

        Parameters
        ----------
        rows : slice
            The samples to decode.

        Returns
        -------
        dataset : MultiViewDataset or None
            The samples kept, with their masks, None when every one was dropped.
        messages : list of str
            One line per bad file of the samples dropped.

        Raises
        ------
        FileNotFoundError, ValueError
            For a bad file (a mask of another size than its image included)
            under ``on_error="raise"``, naming the sample.
        """
        part = self.take(rows)
        views, masks, keep, messages = decode_samples(
            {view: column.tolist() for view, column in part.files.items()},
            part.contexts.tolist(),
            masks={view: column.tolist() for view, column in part.masks.items()},
            **self.options,
        )
        if not keep.any():
            return None, messages
        kept = part if keep.all() else part.take(keep)
        return (
            MultiViewDataset(
                views,
                labels=kept.labels,
                ids=kept.ids,
                groups=kept.groups,
                metadata=kept.metadata,
                paths=kept.files,
                masks=masks,
                mask_paths=kept.masks,
            ),
            messages,
        )

    def decoded(self, chunk_size: int, prefetch: int = 0) -> Iterator[MultiViewDataset]:
        """Decode the listing chunk by chunk, in order.

        Each chunk's bad files are warned as it is handed out (the first
        chunk's warning also lists the samples skipped while listing); a
        chunk whose samples were all dropped is not yielded.

        Parameters
        ----------
        chunk_size : int
            Listed samples per chunk (a chunk may hold fewer after drops).
        prefetch : int, default 0
            Chunks decoded ahead in a background thread (see :func:`prefetched`).

        Yields
        ------
        MultiViewDataset
            The samples of one chunk.

        Raises
        ------
        FileNotFoundError, ValueError
            For a bad file under ``on_error="raise"``, when its chunk is
            reached; ValueError when no sample at all is usable.
        """
        jobs = (
            _bound(self.decode, slice(start, start + chunk_size)) for start in range(0, len(self), chunk_size)
        )
        pending = list(self.skipped)
        n_kept = 0
        with contextlib.closing(prefetched(jobs, prefetch)) as results:
            for dataset, messages in results:
                warn_skipped([*pending, *messages])
                pending = []
                if dataset is not None:
                    n_kept += len(dataset)
                    yield dataset
                del dataset
        if not n_kept:
            raise ValueError(
                f"{self.origin}no usable samples: all {len(self) + len(self.skipped)} were skipped"
            )

    def load(self) -> MultiViewDataset:
        """Decode every sample into memory, as one chunk.

        Returns
        -------
        MultiViewDataset
            The samples kept.
        """
        return next(self.decoded(max(len(self), 1)))


def _bound(fn: Callable[[slice], T], rows: slice) -> Callable[[], T]:
    """Return ``fn`` applied to ``rows``, as a job for :func:`prefetched`."""
    return lambda: fn(rows)


_DONE = object()


def prefetched(jobs: Iterable[Callable[[], T]], depth: int) -> Generator[T, None, None]:
    """Run jobs in order, up to ``depth`` of them ahead of the consumer in one background thread.

    At most ``depth + 1`` results are alive in the pipeline at any time: the
    one the consumer holds and ``depth`` computed or being computed ahead.
    The consumer's slot is freed when it asks for the next result. When the
    consumer stops early (or raises), the thread finishes its current job
    and ends before the generator closes; a job's exception is raised in the
    consumer at that job's place in the order.

    Parameters
    ----------
    jobs : iterable of callables
        Jobs without arguments, consumed lazily by the thread.
    depth : int
        Jobs run ahead; 0 runs each job in the consumer's thread when its
        result is asked for.

    Yields
    ------
    object
        Each job's result, in order.
    """
    if depth < 0:
        raise ValueError(f"prefetch must be >= 0, got {depth}")
    if depth == 0:
        for job in jobs:
            yield job()
        return
    results: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
    slots = threading.Semaphore(depth + 1)
    stop = threading.Event()

    def produce() -> None:
        try:
            for job in jobs:
                while not slots.acquire(timeout=_POLL_S):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                results.put((True, job()))
        except BaseException as exc:  # handed to the consumer, raised there
            results.put((False, exc))
        results.put((True, _DONE))

    thread = threading.Thread(target=produce, name="mmocc-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = results.get()
            if not ok:
                raise value
            if value is _DONE:
                return
            yield value
            del value
            slots.release()
    finally:
        stop.set()
        thread.join()
